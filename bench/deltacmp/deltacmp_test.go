package deltacmp

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/centrifugal/fdelta"
	"github.com/feedgate/feedgate/codec/vcdiff"
)

// TestSizes checks that both encoders round-trip every input and prints
// the delta sizes side by side.
func TestSizes(t *testing.T) {
	t.Logf("%-26s %8s %8s %8s %7s", "input", "target", "vcdiff", "fdelta", "ratio")
	for _, in := range Inputs() {
		v := vcdiff.Encode(in.Source, in.Target)
		got, err := vcdiff.Decode(in.Source, v, len(in.Target))
		if err != nil || !bytes.Equal(got, in.Target) {
			t.Fatalf("%s: vcdiff round trip: %v", in.Name, err)
		}
		f := fdelta.Create(in.Source, in.Target)
		got, err = fdelta.Apply(in.Source, f)
		if err != nil || !bytes.Equal(got, in.Target) {
			t.Fatalf("%s: fdelta round trip: %v", in.Name, err)
		}
		t.Logf("%-26s %8d %8d %8d %7.2f", in.Name, len(in.Target), len(v), len(f), float64(len(v))/float64(len(f)))
	}
}

// BenchmarkDelta encodes each input with both encoders; delta-B is the
// delta size.
func BenchmarkDelta(b *testing.B) {
	encoders := []struct {
		name string
		enc  func(src, tgt []byte) []byte
	}{
		{"vcdiff", vcdiff.Encode},
		{"fdelta", fdelta.Create},
	}
	for _, in := range Inputs() {
		for _, e := range encoders {
			b.Run(fmt.Sprintf("%s/%s", in.Name, e.name), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(in.Target)))
				var d []byte
				for b.Loop() {
					d = e.enc(in.Source, in.Target)
				}
				b.ReportMetric(float64(len(d)), "delta-B")
			})
		}
	}
}
