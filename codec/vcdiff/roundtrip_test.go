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
