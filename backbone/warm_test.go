package backbone

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"cloud.google.com/go/pubsub/v2"

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

// TestWarmNotOverBeforeQuiet: a replay whose subscriptions all brought a
// fresh message before any old one is not over at once: the quiet period
// counts from then. Before, with no old message yet, it was over at the
// first look (the replay's subscriptions are unordered: Pub/Sub does not
// promise the backlog comes before a fresh beacon).
func TestWarmNotOverBeforeQuiet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &warmup{start: time.Now(), fresh: make([]atomic.Bool, 2)}
		w.fresh[0].Store(true)
		if w.over() {
			t.Fatal("over with a subscription not fresh yet")
		}
		w.fresh[1].Store(true)
		if w.over() {
			t.Fatal("over at once, before any old message could come")
		}
		time.Sleep(warmQuiet / 2)
		w.lastOld.Store(time.Now().UnixNano()) // the backlog starts
		time.Sleep(warmQuiet / 2)
		if w.over() {
			t.Fatal("over one second after an old message")
		}
		time.Sleep(warmQuiet / 2)
		if !w.over() {
			t.Fatal("not over after the quiet period")
		}
	})
}

// TestWarmKeepsWithinSkew: a replayed message published up to warmSkew
// after the replay's start (Pub/Sub's clock ahead of the edge's) is kept
// as well as counted fresh; later ones are only counted fresh.
func TestWarmKeepsWithinSkew(t *testing.T) {
	start := time.Unix(1_800_000_000, 0)
	w := &warmup{start: start, fresh: make([]atomic.Bool, 1)}
	msg := func(id string, at time.Time) *pubsub.Message {
		env := codec.EncodeEnvelope(&codec.Message{Channel: "c", ID: id, Origin: "o", Seq: 1, Time: at.UnixMilli(), Data: []byte(`1`)})
		return &pubsub.Message{ID: id, Data: env.Data, Attributes: env.Attributes, PublishTime: at}
	}
	w.note(0, msg("old", start.Add(-time.Second)))
	if w.fresh[0].Load() {
		t.Fatal("an old message counted fresh")
	}
	w.note(0, msg("skewed", start.Add(warmSkew-time.Millisecond)))
	w.note(0, msg("new", start.Add(warmSkew)))
	if !w.fresh[0].Load() {
		t.Fatal("no fresh message counted")
	}
	var ids []string
	for _, g := range w.got {
		ids = append(ids, g.m.ID)
	}
	if fmt.Sprint(ids) != "[old skewed]" {
		t.Fatalf("kept %v, want [old skewed]", ids)
	}
}
