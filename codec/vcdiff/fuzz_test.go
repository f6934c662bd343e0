package vcdiff

import (
	"bytes"
	"errors"
	"testing"
)

// fuzzMaxTarget is the target limit of FuzzDecode: small, so the fuzzer
// meets the limit often.
const fuzzMaxTarget = 4096

// FuzzDecode feeds hostile deltas to Decode against a fixed source: it must
// never panic, must return an error wrapping one of the sentinels, and must
// respect the target limit.
func FuzzDecode(f *testing.F) {
	source := market2K().source
	for _, p := range testPairs() {
		if len(p.target) <= fuzzMaxTarget && len(p.source) <= fuzzMaxTarget {
			f.Add(Encode(source, p.target))
		}
	}
	f.Add(Encode(source, market2K().target))
	hello := []byte("hello world")
	f.Add(build(0,
		win{tgtLen: 11, data: hello, inst: []byte{codeAdd0 + 11}},
		win{ind: winTarget | winAdler32, segLen: 5, segPos: 6, tgtLen: 5, inst: []byte{codeCopy0 + 16*modeSelf + 5 - 3}, addr: []byte{0}, sum: []byte{1, 2, 3, 4}}))
	f.Add(build(hdrAppHeader, win{ind: winSource, segLen: 100, segPos: 3, tgtLen: 40, data: []byte("ab"), inst: []byte{codeRun, 20, codeAddCopy + 5, codeCopyAdd1 + 7, 0xFF}, addr: []byte{1, 2, 3}}))
	f.Fuzz(func(t *testing.T, delta []byte) {
		out, err := Decode(source, delta, fuzzMaxTarget)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			return
		}
		if len(out) > fuzzMaxTarget || cap(out) > fuzzMaxTarget {
			t.Fatalf("output of %d bytes (capacity %d) over the %d-byte limit", len(out), cap(out), fuzzMaxTarget)
		}
	})
}

// FuzzRoundTrip: Decode(source, Encode(source, target)) is target.
func FuzzRoundTrip(f *testing.F) {
	for _, p := range testPairs() {
		if len(p.source)+len(p.target) <= 8192 {
			f.Add(p.source, p.target)
		}
	}
	f.Fuzz(func(t *testing.T, source, target []byte) {
		var e Encoder
		d := e.Append(nil, source, target)
		got, err := Decode(source, d, len(target))
		if err != nil {
			t.Fatalf("Decode: %v", err)
		}
		if !bytes.Equal(got, target) {
			t.Fatalf("round trip differs")
		}
		// A reused Encoder gives the same delta.
		if again := e.Append(nil, source, target); !bytes.Equal(again, d) {
			t.Fatalf("reused Encoder: different delta")
		}
	})
}
