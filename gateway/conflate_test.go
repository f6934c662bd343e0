package gateway

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/feedgate/feedgate/codec"
)

// bubbleHub is testHub on the bubble's clock, for synctest.
func bubbleHub(queue int) (*Server, *hub) {
	h := newHub(100, time.Hour, time.Now, func(*codec.Message, codec.Format, error) {})
	return &Server{cfg: Config{SendQueueBytes: queue, Logger: slog.New(slog.DiscardHandler)}, hub: h}, h
}

func keyedMsg(seq uint64, key string, v int) *codec.Message {
	m := docMsg(seq, []byte(fmt.Sprintf(`{"market_id":%q,"v":%d,"pad":"%s"}`, key, v, strings.Repeat("p", 200))))
	m.Time = time.Now().UnixMilli()
	return m
}

// after sleeps d on the bubble's clock and waits for the timers that fired.
func after(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

// TestConflateInterval: at most one message per interval, latest wins;
// what was held is sent at the window's end, in full after a superseded
// message and as a delta when the subscriber holds its base.
func TestConflateInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, h := bubbleHub(1 << 20)
		ch := h.get("c", true)
		c := socketless(srv, 1, codec.FormatJSON)
		ch.attach(c, 1, codec.AttachOptions{Conflate: time.Second, Delta: codec.DeltaVCDIFF})
		taken(t, c)
		pub := map[string][]byte{}
		deliver := func(m *codec.Message) { pub[m.ID] = m.Data; h.deliver(m) }
		r := &receiver{f: codec.FormatJSON}
		ids := func() string {
			var s []string
			for _, fr := range taken(t, c) {
				s = append(s, fr.Msg.ID)
				r.apply(t, fr)
			}
			return strings.Join(s, " ")
		}

		deliver(keyedMsg(1, "m", 1)) // the window is open: sent at once
		if got := ids(); got != "a-1" {
			t.Fatalf("first message: %q", got)
		}
		after(100 * time.Millisecond)
		deliver(keyedMsg(2, "m", 2))
		after(100 * time.Millisecond)
		deliver(keyedMsg(3, "m", 3)) // supersedes a-2
		if got := ids(); got != "" {
			t.Fatalf("inside the window: %q sent", got)
		}
		after(800*time.Millisecond + time.Millisecond)
		if got := ids(); got != "a-3" {
			t.Fatalf("at the window's end: %q, want a-3", got)
		}
		after(500 * time.Millisecond)
		deliver(keyedMsg(4, "m", 4)) // inside the window that a-3 opened
		if got := ids(); got != "" {
			t.Fatalf("inside the second window: %q sent", got)
		}
		after(500 * time.Millisecond)
		if got := ids(); got != "a-4" {
			t.Fatalf("at the second window's end: %q, want a-4", got)
		}
		if got := strings.Join(r.kinds, " "); got != "F D D" {
			t.Fatalf("kinds %q: want a-1 full, a-3 a delta against a-1, which it holds (a-2 was dropped), a-4 delta", got)
		}
		after(2 * time.Second)
		deliver(keyedMsg(5, "m", 5)) // the window is open again
		if got := ids(); got != "a-5" {
			t.Fatalf("after a quiet spell: %q, want a-5 at once", got)
		}
		if st := srv.DeltaStats(); st.Conflated != 1 {
			t.Fatalf("conflated %d, want 1", st.Conflated)
		}
	})
}

// TestConflateByKey: the latest message per key, in channel order; the
// positions the subscriber gets never claim a held message: resuming from
// the last one it got replays what was held, conflated.
func TestConflateByKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, h := bubbleHub(1 << 20)
		ch := h.get("c", true)
		opts := codec.AttachOptions{Conflate: time.Second, ConflateKey: "market_id"}
		c := socketless(srv, 1, codec.FormatMsgpack)
		ch.attach(c, 1, opts)
		taken(t, c)
		h.deliver(keyedMsg(1, "A", 1))
		h.deliver(keyedMsg(2, "B", 1))
		h.deliver(keyedMsg(3, "A", 2))
		h.deliver(keyedMsg(4, "B", 2))
		h.deliver(keyedMsg(5, "A", 3))
		h.deliver(keyedMsg(6, "C", 1))
		frs := taken(t, c)
		if got := summary(frs); got != "m:a-1" {
			t.Fatalf("before the window's end: %q", got)
		}
		last := frs[0].Pos
		// The client goes away now: a resume from what it got replays what
		// was held for it (the latest of each key after a-1).
		r := socketless(srv, 2, codec.FormatJSON)
		ch.attach(r, 1, codec.AttachOptions{Conflate: time.Second, ConflateKey: "market_id", Resume: last})
		if got := summary(taken(t, r)); got != "attached:resumed m:a-4 m:a-5 m:a-6" {
			t.Fatalf("conflated resume: %q", got)
		}
		after(time.Second + time.Millisecond)
		if got := summary(taken(t, c)); got != "m:a-4 m:a-5 m:a-6" {
			t.Fatalf("at the window's end: %q, want B's, A's and C's latest in channel order", got)
		}
		// The payload key is the raw JSON value: 1 and "1" differ; a payload
		// without the field, or not an object, has the key "".
		for _, tc := range []struct{ data, key string }{
			{`{"market_id":"1"}`, `"1"`}, {`{"market_id":1}`, `1`}, {`{"x":1}`, ``}, {`[1]`, ``}, {`{"market_id":{"a":[1,2]}}`, `{"a":[1,2]}`},
		} {
			if got := payloadKey([]byte(tc.data), "market_id"); got != tc.key {
				t.Errorf("key of %s: %q, want %q", tc.data, got, tc.key)
			}
		}
	})
}

// TestConflatedSlowConsumer: a conflated subscriber whose send queue is
// full is not disconnected: the message waits, superseded by later ones,
// until there is room at a window's end.
func TestConflatedSlowConsumer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, h := bubbleHub(700) // room for two of these frames
		ch := h.get("c", true)
		c := socketless(srv, 1, codec.FormatJSON)
		plain := socketless(srv, 2, codec.FormatJSON)
		ch.attach(c, 1, codec.AttachOptions{Conflate: 100 * time.Millisecond})
		ch.attach(plain, 1, codec.AttachOptions{})
		taken(t, c)
		taken(t, plain)
		for i := 1; i <= 30; i++ {
			h.deliver(keyedMsg(uint64(i), "m", i))
			after(50 * time.Millisecond)
		}
		if !plain.closing || plain.reason != EndSlowConsumer {
			t.Fatalf("the plain subscriber was not disconnected as a slow consumer")
		}
		c.mu.Lock()
		closing, queued := c.closing, len(c.queue)
		c.mu.Unlock()
		if closing {
			t.Fatalf("the conflated subscriber was disconnected (%v)", c.reason)
		}
		if queued != 2 {
			t.Fatalf("%d frames queued, want the two that fit", queued)
		}
		if got := summary(taken(t, c)); got != "m:a-1 m:a-2" {
			t.Fatalf("queued %q", got)
		}
		// The client read them: the next window sends the latest.
		after(100 * time.Millisecond)
		if got := summary(taken(t, c)); got != "m:a-30" {
			t.Fatalf("after reading: %q, want the latest, a-30", got)
		}
	})
}

// TestConflatedGap: a gap drops what is held (the continuity frame tells
// the client to refetch) and the next message is sent in full.
func TestConflatedGap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, h := bubbleHub(1 << 20)
		ch := h.get("c", true)
		c := socketless(srv, 1, codec.FormatJSON)
		ch.attach(c, 1, codec.AttachOptions{Conflate: time.Second, Delta: codec.DeltaVCDIFF})
		taken(t, c)
		h.deliver(keyedMsg(1, "m", 1))
		h.deliver(keyedMsg(2, "m", 2))
		gap := keyedMsg(4, "m", 4)
		gap.Prev = 3
		h.deliver(gap)
		after(time.Second + time.Millisecond)
		frs := taken(t, c)
		if got := summary(frs); got != "m:a-1 lost m:a-4" {
			t.Fatalf("%q, want a-1, the continuity frame, a-4", got)
		}
		if frs[2].Delta != nil {
			t.Fatal("the message after a gap is a delta")
		}
	})
}
