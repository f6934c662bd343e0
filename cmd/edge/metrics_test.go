package main

import (
	"testing"
	"time"
)

// BenchmarkObserver: the cost the histograms add per message.
func BenchmarkObserver(b *testing.B) {
	x, err := newMetrics()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		x.Published(time.Duration(i%5000)*time.Microsecond, nil)
		x.Delivered(time.Duration(i%5000)*time.Microsecond, time.Millisecond, i%6000)
	}
}
