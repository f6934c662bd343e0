package client

import (
	"encoding/json"
	"errors"
	"hash/crc32"
	"runtime"
	"testing"
	"time"

	"github.com/feedgate/feedgate/codec"
	"github.com/feedgate/feedgate/codec/vcdiff"
	"github.com/feedgate/feedgate/internal/oddsfeed"
)

// deltaCase applies delta to base as the reader does, and checks the
// outcome: an error that leaves no base, or one JSON payload within the
// size bound that becomes the next base.
func deltaCase(t *testing.T, f codec.Format, base, delta []byte) error {
	cd := &chanDelta{id: "b", base: base}
	fr := codec.Frame{Type: codec.FrameMessage, Channel: "c", Msg: codec.Message{ID: "n"}, Delta: delta, Base: "b", BaseCRC: crc32.ChecksumIEEE(base)}
	err := applyDelta(cd, f, &fr)
	if err != nil {
		if cd.base != nil || fr.Msg.Data != nil {
			t.Fatalf("failed delta left base %q / data %q", cd.base, fr.Msg.Data)
		}
		return err
	}
	if len(fr.Wire) > codec.MaxDeltaPayload || !json.Valid(fr.Msg.Data) || cd.id != "n" || &cd.base[0] != &fr.Wire[0] {
		t.Fatalf("applied delta: wire %d bytes, data %.80q, base %q", len(fr.Wire), fr.Msg.Data, cd.id)
	}
	return nil
}

func deltaSeeds(tb testing.TB) (seeds [][3][]byte) {
	feed, err := oddsfeed.New(oddsfeed.Config{Seed: 11})
	if err != nil {
		tb.Fatal(err)
	}
	prev := feed.Move(0, time.Unix(0, 0)).Payload
	for i := 0; i < 4; i++ {
		next := feed.Move(0, time.Unix(int64(i), 0)).Payload
		for _, f := range []codec.Format{codec.FormatJSON, codec.FormatMsgpack} {
			a, _ := f.WireData(prev)
			b, _ := f.WireData(next)
			seeds = append(seeds, [3][]byte{{byte(f)}, a, vcdiff.Encode(a, b)})
		}
		prev = next
	}
	return seeds
}

// FuzzApplyDelta feeds the client's delta path hostile deltas against a
// base it holds: errors, never a panic, a payload that is not one value,
// or one beyond the size bound.
func FuzzApplyDelta(f *testing.F) {
	for _, s := range deltaSeeds(f) {
		f.Add(s[0][0], s[1], s[2])
	}
	f.Add(byte(0), []byte(`{"a":1}`), []byte{0xd6, 0xc3, 0xc4, 0, 0, 1, 7, 0, 0x7f, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, fm byte, base, delta []byte) {
		if delta == nil {
			delta = []byte{} // a frame with a delta field, however empty
		}
		deltaCase(t, codec.Format(fm%2), base, delta)
	})
}

// TestApplyDeltaHostile: seeds that must fail, and must not allocate their
// declared size.
func TestApplyDeltaHostile(t *testing.T) {
	for _, s := range deltaSeeds(t) {
		if err := deltaCase(t, codec.Format(s[0][0]), s[1], s[2]); err != nil {
			t.Fatalf("a real delta fails: %v", err)
		}
	}
	base := []byte(`{"a":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`)
	huge := vcdiff.Encode(base, make([]byte, 64<<20)) // a few bytes: one RUN of 64 MiB
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := deltaCase(t, codec.FormatJSON, base, huge)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, vcdiff.ErrTooLarge) {
		t.Fatalf("64 MiB target: %v, want ErrTooLarge", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Fatalf("a refused 64 MiB target allocated %d bytes", grew)
	}
	if len(huge) > 64 {
		t.Fatalf("the hostile delta is %d bytes: expected a RUN", len(huge))
	}
	// Not a delta at all, a copy past the source, a wrong format's payload.
	for _, d := range [][]byte{{}, []byte("garbage"), vcdiff.Encode(append(base, base...), append(base, base...))} {
		if err := deltaCase(t, codec.FormatJSON, base, d); err == nil {
			t.Fatalf("delta %x applied to a base it does not fit", d)
		}
	}
	ok := vcdiff.Encode(base, []byte{0x81, 0xa1, 'a', 0xc4, 0x00}) // msgpack with a bin value: no JSON
	if err := deltaCase(t, codec.FormatMsgpack, base, ok); !errors.Is(err, codec.ErrBadRequest) {
		t.Fatalf("a payload JSON cannot carry: %v", err)
	}
}
