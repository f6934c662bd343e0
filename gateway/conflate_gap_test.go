package gateway

import (
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/feedgate/feedgate/codec"
)

// TestConflatedGapSlowReader: protocol.md §6.2 "Slow readers": a
// conflated subscriber is not disconnected as a slow consumer for a
// conflated channel. Before, a gap on that channel while its queue was
// full (a phone on a slow link, reading behind) queued the continuity frame
// with enqueue, which ended the connection as a slow consumer. Now the
// frame waits for room, and goes before anything after the gap.
func TestConflatedGapSlowReader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, h := bubbleHub(700) // room for two of these frames
		ch := h.get("c", true)
		c := socketless(srv, 1, codec.FormatJSON)
		ch.attach(c, 1, codec.AttachOptions{Conflate: 100 * time.Millisecond, Delta: codec.DeltaVCDIFF})
		taken(t, c)
		for i := 1; i <= 10; i++ {
			h.deliver(keyedMsg(uint64(i), "m", i))
			after(50 * time.Millisecond)
		}
		gap := keyedMsg(12, "m", 12)
		gap.Prev = 11 // a-11 never came
		h.deliver(gap)
		after(50 * time.Millisecond)
		c.mu.Lock()
		closing, reason := c.closing, c.reason
		c.mu.Unlock()
		if closing {
			t.Fatalf("conflated subscriber with a full queue was disconnected (%v) by a gap on its conflated channel", reason)
		}
		taken(t, c) // the reader catches up
		h.deliver(keyedMsg(13, "m", 13))
		after(time.Second)
		got := strings.Fields(summary(taken(t, c)))
		if len(got) == 0 || got[0] != "lost" || !slices.Contains(got, "m:a-13") {
			t.Fatalf("once the queue had room: %v, want the continuity frame first, then a-13", got)
		}
	})
}

// TestConflatedResumeAheadIsConflated: protocol.md §6.2: a conflated
// subscriber gets at most one message per interval, and a replay to it is
// conflated too. Before, one that resumed on an edge lagging the edge it
// came from (§7.3; an odds app whose edge drained) got every message while
// the edge caught up, one per delivery, unconflated (9 frames here).
func TestConflatedResumeAheadIsConflated(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, h := bubbleHub(1 << 20)
		ch := h.get("c", true)
		after(2 * time.Minute) // bubble clock: the edge started more than the lateness bound ago
		m1 := keyedMsg(1, "m", 1)
		h.deliver(m1)
		// The client had a-1..a-3 and z-1 from an edge ahead of this one.
		tok := codec.Position{Watermark: m1.Time - 60_000, Seqs: map[string]uint64{"a": 3, "z": 1}}.Token()
		c := socketless(srv, 1, codec.FormatJSON)
		ch.attach(c, 1, codec.AttachOptions{Resume: tok, Conflate: time.Second, ConflateKey: "market_id", Delta: codec.DeltaVCDIFF})
		if got := summary(taken(t, c)); got != "attached:resumed" {
			t.Fatalf("attach: %q", got)
		}
		for i := 2; i <= 12; i++ {
			h.deliver(keyedMsg(uint64(i), "m", i)) // one key, all within one window
		}
		got := summary(taken(t, c))
		if got != "m:a-4" {
			t.Fatalf("within one 1s window, one key, the conflated subscriber got %q, want at most one message (m:a-4)", got)
		}
	})
}
