package backbone

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/feedgate/feedgate/codec"
)

// TestWarmKeepBounded: a replay that brings more than it may hold keeps the
// newest messages, and its cut says up to when it dropped: every message
// published after the cut is kept, none at or before it, whatever order
// they came in.
func TestWarmKeepBounded(t *testing.T) {
	const n, limit = 1000, 100
	r := rand.New(rand.NewPCG(1, 2))
	t0 := time.Unix(1_800_000_000, 0)
	var w warmup
	for _, i := range r.Perm(n) {
		// Two messages per millisecond: ties in publish time.
		w.keep(warmMsg{at: t0.Add(time.Duration(i/2) * time.Millisecond), m: codec.Message{Seq: uint64(i)}}, limit)
	}
	if len(w.got) >= limit || w.cut.IsZero() {
		t.Fatalf("held %d (limit %d), cut %v", len(w.got), limit, w.cut)
	}
	kept := map[uint64]bool{}
	for _, g := range w.got {
		kept[g.m.Seq] = true
	}
	for i := range n {
		at := t0.Add(time.Duration(i/2) * time.Millisecond)
		if at.After(w.cut) != kept[uint64(i)] {
			t.Fatalf("message %d published %v, cut %v: kept %v", i, at.Sub(t0), w.cut.Sub(t0), kept[uint64(i)])
		}
	}
	sortWarm(w.got)
	for i := 1; i < len(w.got); i++ {
		if w.got[i].at.Before(w.got[i-1].at) || w.got[i].at.Equal(w.got[i-1].at) && w.got[i].m.Seq < w.got[i-1].m.Seq {
			t.Fatalf("not in publish order at %d", i)
		}
	}
}
