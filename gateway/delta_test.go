package gateway

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/feedgate/feedgate/codec"
	"github.com/feedgate/feedgate/codec/vcdiff"
	"github.com/feedgate/feedgate/internal/oddsfeed"
)

// marketDocs returns n successive documents of one odds market.
func marketDocs(tb testing.TB, n int) [][]byte {
	tb.Helper()
	feed, err := oddsfeed.New(oddsfeed.Config{Seed: 7})
	if err != nil {
		tb.Fatal(err)
	}
	var docs [][]byte
	for i := 0; i < n; i++ {
		docs = append(docs, feed.Move(0, time.Unix(1767225600, 0).Add(time.Duration(i)*time.Second)).Payload)
	}
	return docs
}

func docMsg(seq uint64, data []byte) *codec.Message {
	return &codec.Message{Channel: "c", ID: fmt.Sprintf("a-%d", seq), Data: data, Origin: "a", Seq: seq, Prev: seq - 1, Time: 1_800_000_000_000 + int64(seq)}
}

// receiver rebuilds a subscriber's payloads the way a client does: it
// holds the wire payload of the last message and applies delta frames to
// it after checking their base.
type receiver struct {
	f      codec.Format
	baseID string
	base   []byte
	kinds  []string // "F" full, "D" delta, per message
}

func (r *receiver) apply(t *testing.T, fr codec.Frame) []byte {
	t.Helper()
	if fr.Delta == nil {
		r.kinds = append(r.kinds, "F")
		r.baseID, r.base = fr.Msg.ID, fr.Wire
		return fr.Msg.Data
	}
	r.kinds = append(r.kinds, "D")
	if fr.Msg.Data != nil {
		t.Fatalf("delta frame of %s has data too", fr.Msg.ID)
	}
	if r.base == nil || fr.Base != r.baseID || fr.BaseCRC != crc32.ChecksumIEEE(r.base) {
		t.Fatalf("delta frame of %s names base %s/%08x; the subscriber holds %s/%08x", fr.Msg.ID, fr.Base, fr.BaseCRC, r.baseID, crc32.ChecksumIEEE(r.base))
	}
	wire, err := vcdiff.Decode(r.base, fr.Delta, codec.MaxDeltaPayload)
	if err != nil {
		t.Fatalf("delta of %s: %v", fr.Msg.ID, err)
	}
	data, err := r.f.DataFromWire(wire)
	if err != nil {
		t.Fatalf("delta of %s: %v", fr.Msg.ID, err)
	}
	r.baseID, r.base = fr.Msg.ID, wire
	return data
}

// check applies c's queued message frames and compares each payload with
// the published one; it returns the kinds, e.g. "F D D".
func (r *receiver) check(t *testing.T, c *conn, published map[string][]byte) string {
	t.Helper()
	r.kinds = nil
	for _, fr := range taken(t, c) {
		switch fr.Type {
		case codec.FrameMessage:
			want := published[fr.Msg.ID]
			if r.f == codec.FormatMsgpack {
				// What msgpack subscribers get: the same value, keys sorted.
				w, _ := r.f.WireData(want)
				want, _ = r.f.DataFromWire(w)
			}
			if got := r.apply(t, fr); !bytes.Equal(got, want) {
				t.Fatalf("%v: payload of %s is\n%.200s\nwant\n%.200s", r.f, fr.Msg.ID, got, want)
			}
		case codec.FrameContinuity:
			r.kinds = append(r.kinds, "lost")
		}
	}
	return strings.Join(r.kinds, " ")
}

// TestVariantsPreparedOnce: however many subscribers, a message is
// encoded at most once per variant that some subscriber takes, and each
// subscriber rebuilds the published payloads byte for byte.
func TestVariantsPreparedOnce(t *testing.T) {
	srv, h := testHub()
	ch := h.get("c", true)
	var subs []*conn
	var recv []*receiver
	for i := 0; i < 12; i++ {
		f := codec.Format(i % 2)
		c := socketless(srv, uint64(i), f)
		opts := codec.AttachOptions{}
		if i >= 4 {
			opts.Delta = codec.DeltaVCDIFF
		}
		ch.attach(c, 1, opts)
		taken(t, c)
		subs, recv = append(subs, c), append(recv, &receiver{f: f})
	}
	docs := marketDocs(t, 5)
	published := map[string][]byte{}
	for i, d := range docs {
		m := docMsg(uint64(i+1), d)
		published[m.ID] = d
		h.deliver(m)
	}
	for i, c := range subs {
		want := "F F F F F"
		if i >= 4 {
			want = "F D D D D"
		}
		if got := recv[i].check(t, c, published); got != want {
			t.Errorf("subscriber %d (%v): %s, want %s", i, c.format, got, want)
		}
	}
	st := srv.DeltaStats()
	for v, want := range map[string]uint64{"json": 5, "msgpack": 5, "json+vcdiff": 4, "msgpack+vcdiff": 4} {
		if st.Prepared[v] != want {
			t.Errorf("prepared %s: %d, want %d (once per message)", v, st.Prepared[v], want)
		}
	}
	if st.Deltas != 8*4 || st.Full != 8 {
		t.Errorf("stats %+v: want 32 deltas and 8 full frames to delta subscribers", st)
	}
	// No delta subscriber, no delta encoded.
	_, h2 := testHub()
	ch2 := h2.get("c", true)
	ch2.attach(socketless(srv, 99, codec.FormatJSON), 1, codec.AttachOptions{})
	for i, d := range docs {
		h2.deliver(docMsg(uint64(i+1), d))
	}
	if n := h2.prepared[fullVariant(codec.FormatJSON, false).delta()].Load(); n != 0 {
		t.Errorf("%d delta frames prepared without a delta subscriber", n)
	}
}

// TestDeltaDecisions: delta or full, case by case.
func TestDeltaDecisions(t *testing.T) {
	docs := marketDocs(t, 12)
	deltaOpts := codec.AttachOptions{Delta: codec.DeltaVCDIFF}
	// setup delivers docs[:n] on a fresh channel and returns it with the
	// published payloads.
	setup := func(n int) (*Server, *hub, *channel, map[string][]byte) {
		srv, h := testHub()
		ch := h.get("c", true)
		published := map[string][]byte{}
		for i := 0; i < n; i++ {
			m := docMsg(uint64(i+1), docs[i])
			published[m.ID] = docs[i]
			h.deliver(m)
		}
		return srv, h, ch, published
	}
	for _, f := range []codec.Format{codec.FormatJSON, codec.FormatMsgpack} {
		t.Run(f.String(), func(t *testing.T) {
			t.Run("live: first full, then deltas", func(t *testing.T) {
				srv, h, ch, pub := setup(3)
				c := socketless(srv, 1, f)
				ch.attach(c, 1, deltaOpts)
				for i := 3; i < 6; i++ {
					m := docMsg(uint64(i+1), docs[i])
					pub[m.ID] = docs[i]
					h.deliver(m)
				}
				r := &receiver{f: f}
				if got := r.check(t, c, pub); got != "F D D" {
					t.Fatalf("%s, want F D D", got)
				}
			})
			t.Run("rewind: first full, deltas along the replay", func(t *testing.T) {
				srv, h, ch, pub := setup(6)
				c := socketless(srv, 1, f)
				ch.attach(c, 1, codec.AttachOptions{Delta: codec.DeltaVCDIFF, Rewind: 4})
				h.deliver(docMsg(7, docs[6]))
				pub["a-7"] = docs[6]
				r := &receiver{f: f}
				if got := r.check(t, c, pub); got != "F D D D D" {
					t.Fatalf("%s, want F D D D D", got)
				}
			})
			t.Run("resume: first full, deltas along the replay", func(t *testing.T) {
				srv, h, ch, pub := setup(6)
				c := socketless(srv, 1, f)
				ch.attach(c, 1, codec.AttachOptions{Delta: codec.DeltaVCDIFF, Resume: ch.hist[2].pos})
				h.deliver(docMsg(7, docs[6]))
				pub["a-7"] = docs[6]
				r := &receiver{f: f}
				if got := r.check(t, c, pub); got != "F D D D" {
					t.Fatalf("%s, want F D D D (a-4 full, a-5 … a-7 deltas)", got)
				}
			})
			t.Run("after a gap: full", func(t *testing.T) {
				srv, h, ch, pub := setup(2)
				c := socketless(srv, 1, f)
				ch.attach(c, 1, deltaOpts)
				for _, m := range []*codec.Message{docMsg(3, docs[2]), {Channel: "c", ID: "a-5", Data: docs[4], Origin: "a", Seq: 5, Prev: 4, Time: 1_800_000_000_005}, docMsg(6, docs[5])} {
					pub[m.ID] = m.Data
					h.deliver(m)
				}
				r := &receiver{f: f}
				if got := r.check(t, c, pub); got != "F lost F D" {
					t.Fatalf("%s, want F lost F D", got)
				}
			})
			t.Run("not smaller: full", func(t *testing.T) {
				srv, h := testHub()
				ch := h.get("c", true)
				c := socketless(srv, 1, f)
				ch.attach(c, 1, deltaOpts)
				pub := map[string][]byte{}
				// Random text: nothing in it repeats, so the delta from "b"
				// is all of it, and its frame is larger than the full one.
				rnd := rand.New(rand.NewPCG(1, 2))
				var long string
				for range 40 {
					long += strconv.FormatUint(rnd.Uint64(), 36)
				}
				for i, d := range []string{`"a"`, `"b"`, `["` + long + `",1]`, `["` + long + `",2]`} {
					m := docMsg(uint64(i+1), []byte(d))
					pub[m.ID] = m.Data
					h.deliver(m)
				}
				r := &receiver{f: f}
				if got := r.check(t, c, pub); got != "F F F D" {
					t.Fatalf("%s, want F F F D (deltas from a 3-byte payload, and to a new random one, are not smaller)", got)
				}
			})
			t.Run("over the size bound: full", func(t *testing.T) {
				srv, h := testHub()
				ch := h.get("c", true)
				c := socketless(srv, 1, f)
				ch.attach(c, 1, deltaOpts)
				big := func(v int) []byte {
					return []byte(fmt.Sprintf(`{"v":%d,"pad":"%s"}`, v, strings.Repeat("x", codec.MaxDeltaPayload)))
				}
				pub := map[string][]byte{}
				for i, d := range [][]byte{big(1), big(2), docs[0], docs[1]} {
					m := docMsg(uint64(i+1), d)
					pub[m.ID] = m.Data
					h.deliver(m)
				}
				r := &receiver{f: f}
				if got := r.check(t, c, pub); got != "F F F D" {
					t.Fatalf("%s, want F F F D", got)
				}
			})
			t.Run("resumed ahead of the edge: full until caught up", func(t *testing.T) {
				srv, h, ch, pub := setup(4)
				// A token from an edge that had a-5 and a-6 already.
				ahead := codec.Position{Seqs: map[string]uint64{"a": 6}}.Token()
				c := socketless(srv, 1, f)
				ch.attach(c, 1, codec.AttachOptions{Delta: codec.DeltaVCDIFF, Resume: ahead})
				for i := 4; i < 9; i++ {
					m := docMsg(uint64(i+1), docs[i])
					pub[m.ID] = docs[i]
					h.deliver(m)
				}
				r := &receiver{f: f}
				// a-5 and a-6 are skipped (it has them), a-7 is full (it
				// may not hold a-6's payload), then deltas.
				if got := r.check(t, c, pub); got != "F D D" {
					t.Fatalf("%s, want F D D", got)
				}
			})
			t.Run("re-attach: full again", func(t *testing.T) {
				srv, h, ch, pub := setup(1)
				c := socketless(srv, 1, f)
				ch.attach(c, 1, deltaOpts)
				h.deliver(docMsg(2, docs[1]))
				ch.attach(c, 2, deltaOpts)
				h.deliver(docMsg(3, docs[2]))
				h.deliver(docMsg(4, docs[3]))
				pub["a-2"], pub["a-3"], pub["a-4"] = docs[1], docs[2], docs[3]
				r := &receiver{f: f}
				if got := r.check(t, c, pub); got != "F F D" {
					t.Fatalf("%s, want F F D", got)
				}
			})
		})
	}
}

// TestDeltaFrameSmall: on the odds feed, a delta frame is a fraction of
// the full one.
func TestDeltaFrameSmall(t *testing.T) {
	docs := marketDocs(t, 50)
	srv, h := testHub()
	ch := h.get("c", true)
	var subs [codec.NumFormats]*conn
	for f := range subs {
		subs[f] = socketless(srv, uint64(f), codec.Format(f))
		ch.attach(subs[f], 1, codec.AttachOptions{Delta: codec.DeltaVCDIFF})
		taken(t, subs[f])
	}
	for i, d := range docs {
		h.deliver(docMsg(uint64(i+1), d))
	}
	for f, c := range subs {
		var full, delta int
		for i, e := range ch.hist {
			if i == 0 {
				continue
			}
			full += len(e.frames[fullVariant(codec.Format(f), false)])
			delta += len(e.frames[fullVariant(codec.Format(f), false).delta()])
		}
		t.Logf("%v: full frames %d B, delta frames %d B per message (%.1f%%)", codec.Format(f), full/(len(docs)-1), delta/(len(docs)-1), 100*float64(delta)/float64(full))
		if delta*2 > full {
			t.Errorf("%v: delta frames %d B against full %d B: not half", codec.Format(f), delta, full)
		}
		_ = c
	}
}
