package main

import (
	"testing"
	"time"

	"github.com/feedgate/feedgate/auth"
	"github.com/feedgate/feedgate/backbone"
	"github.com/feedgate/feedgate/gateway"
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

// TestEndReasonMetrics: connection ends and dropped frames are exported
// with one series per reason, zeros included.
func TestEndReasonMetrics(t *testing.T) {
	x, err := newMetrics()
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.NewStatic(nil)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := gateway.New(gateway.Config{Authorizer: a}, backbone.NewLocal(backbone.LocalConfig{}))
	if err != nil {
		t.Fatal(err)
	}
	if err := x.observe(srv, backbone.NewLocal(backbone.LocalConfig{})); err != nil {
		t.Fatal(err)
	}
	mfs, err := x.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for r := range gateway.NumEndReasons {
		want["feedgate_connection_ends_total/"+r.String()] = true
		want["feedgate_dropped_frames_total/"+r.String()] = true
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" {
					delete(want, mf.GetName()+"/"+l.GetValue())
				}
			}
		}
	}
	if len(want) > 0 {
		t.Fatalf("missing series: %v", want)
	}
}
