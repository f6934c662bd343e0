package vcdiff

import (
	"testing"
)

// BenchmarkEncode encodes the 2 KB odds market with three prices changed,
// the shape of the edge's per-message delta, and reports the delta size.
func BenchmarkEncode(b *testing.B) {
	p := market2K()
	b.Run("Encode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(p.target)))
		var d []byte
		for b.Loop() {
			d = Encode(p.source, p.target)
		}
		b.ReportMetric(float64(len(d)), "delta-B")
		b.ReportMetric(float64(len(p.target)), "target-B")
	})
	b.Run("Encoder.Append", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(p.target)))
		var e Encoder
		buf := make([]byte, 0, 1024)
		for b.Loop() {
			buf = e.Append(buf[:0], p.source, p.target)
		}
		b.ReportMetric(float64(len(buf)), "delta-B")
	})
}

// BenchmarkDecode decodes the delta of BenchmarkEncode.
func BenchmarkDecode(b *testing.B) {
	p := market2K()
	d := Encode(p.source, p.target)
	b.ReportAllocs()
	b.SetBytes(int64(len(p.target)))
	for b.Loop() {
		if _, err := Decode(p.source, d, len(p.target)); err != nil {
			b.Fatal(err)
		}
	}
}
