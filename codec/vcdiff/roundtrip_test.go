package vcdiff

import (
	"bytes"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	for _, p := range testPairs() {
		t.Run(p.name, func(t *testing.T) {
			d := Encode(p.source, p.target)
			got, err := Decode(p.source, d, len(p.target))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !bytes.Equal(got, p.target) {
				t.Fatalf("round trip differs: got %d bytes, want %d", len(got), len(p.target))
			}
			t.Logf("%s: source %d B, target %d B, delta %d B", p.name, len(p.source), len(p.target), len(d))
		})
	}
}

// TestEncoderReuse: one Encoder, used for inputs of changing sizes (its
// tables are resized and reused), gives the deltas of a fresh one.
func TestEncoderReuse(t *testing.T) {
	var e Encoder
	ps := testPairs()
	for i := range 3 {
		for _, p := range ps {
			got := e.Append(nil, p.source, p.target)
			var fresh Encoder
			if want := fresh.Append(nil, p.source, p.target); !bytes.Equal(got, want) {
				t.Fatalf("pass %d, %s: the reused Encoder's delta differs from a fresh one's", i, p.name)
			}
		}
	}
}
