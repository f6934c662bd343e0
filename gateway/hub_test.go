package gateway

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/feedgate/feedgate/codec"
)

// TestDeliverToSweptChannelLooksAgain: the sweep forgets an idle channel
// between a delivery's lookup and its taking the channel's lock (here: the
// lookup's result is kept, and the sweep runs before the delivery). The
// forgotten copy refuses the message, and the hub's delivery looks again:
// the message is in the history of the channel's new state, which serves
// attaches from then on.
//
// Before: channel.deliver did not check dead, so the message went into the
// forgotten copy: missing from history, and from every later attach's
// rewind or resume. (Not reproduced by the probe, found by reading.)
func TestDeliverToSweptChannelLooksAgain(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Unix(1_800_000_000, 0).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	h := newHub(100, time.Hour, now, func(*codec.Message, codec.Format, error) {})
	srv := &Server{cfg: Config{SendQueueBytes: 1 << 20}, hub: h}

	stale := h.get("c", true) // the delivery's lookup
	clock.Add(int64(time.Hour))
	h.sweep(30 * time.Minute)
	if h.get("c", false) != nil {
		t.Fatal("the idle channel was not swept")
	}
	m := msg("a", 1, 0, now().UnixMilli())
	if _, ok := stale.deliver(m); ok {
		t.Fatal("the swept channel state took the message")
	}
	if len(stale.hist) != 0 {
		t.Fatalf("the swept channel state holds %d messages", len(stale.hist))
	}
	h.deliver(m)
	live := h.get("c", false)
	if live == nil || live == stale || len(live.hist) != 1 || live.hist[0].m != m {
		t.Fatal("the message is not in the history of the channel's new state")
	}
	c := socketless(srv, 1, codec.FormatJSON)
	live.attach(c, 1, codec.AttachOptions{Rewind: 10})
	if got := summary(taken(t, c)); got != "attached:fresh m:a-1" {
		t.Fatalf("rewind after the delivery: %q", got)
	}
}
