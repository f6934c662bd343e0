package gateway_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/feedgate/feedgate/client"
	"github.com/feedgate/feedgate/codec"
	"github.com/feedgate/feedgate/gateway"
	"github.com/feedgate/feedgate/internal/edgetest"
)

// injector is a backbone whose deliveries the test chooses, to set up
// interleavings of several origins exactly (the Pub/Sub path with real
// edges is covered in internal/e2e).
type injector struct {
	deliver func(*codec.Message)
	started chan struct{}
}

func newInjector() *injector { return &injector{started: make(chan struct{})} }

func (b *injector) Start(_ context.Context, d func(*codec.Message)) error {
	b.deliver = d
	close(b.started)
	return nil
}
func (b *injector) Publish(*codec.Message, func(error)) { panic("not used") }
func (b *injector) Close(context.Context) error         { return nil }

// t0 is the origin time of the tests' first message (Unix ms).
const t0 = 1767225600000

func (b *injector) inject(origin string, seq uint64) { b.injectAt(origin, seq, seq-1, t0) }

// injectAt delivers origin's message seq, whose predecessor is prev, with
// origin time t.
func (b *injector) injectAt(origin string, seq, prev uint64, t int64) {
	<-b.started
	b.deliver(&codec.Message{Channel: "c", ID: fmt.Sprintf("%s-%d", origin, seq), Data: fmt.Appendf(nil, `"%s-%d"`, origin, seq), Origin: origin, Seq: seq, Prev: prev, Time: t})
}

func resumeFrom(t *testing.T, e *edgetest.Edge, token string) (*client.Client, client.Attached) {
	t.Helper()
	c := edgetest.MustDial(t, e.URL, client.Options{})
	a, err := c.AttachInfo(edgetest.Ctx10(t), "c", codec.AttachOptions{Resume: token})
	if err != nil {
		t.Fatal(err)
	}
	return c, a
}

func TestResumeAcrossOrigins(t *testing.T) {
	t.Run("an origin missing from the token whose messages left history", func(t *testing.T) {
		bb := newInjector()
		e := edgetest.MustStartEdge(t, gateway.Config{HistorySize: 3}, bb)
		bb.inject("aa", 1)
		bb.inject("bb", 1)
		for s := uint64(2); s <= 4; s++ {
			bb.inject("aa", s)
		}
		// The client saw aa-1 only; bb-1 has left history.
		if _, a := resumeFrom(t, e, "1.aa-1"); a.Continuity != codec.ContinuityLost {
			t.Fatalf("continuity %s, want lost (bb-1 cannot be sent)", a.Continuity)
		}
	})
	t.Run("an origin missing from the token, still in history", func(t *testing.T) {
		bb := newInjector()
		e := edgetest.MustStartEdge(t, gateway.Config{HistorySize: 10}, bb)
		bb.inject("aa", 1)
		bb.inject("bb", 1)
		bb.inject("aa", 2)
		c, a := resumeFrom(t, e, "1.aa-1")
		if a.Continuity != codec.ContinuityResumed {
			t.Fatalf("continuity %s, want resumed", a.Continuity)
		}
		for _, want := range []string{`"bb-1"`, `"aa-2"`} {
			if m := edgetest.NextMessage(t, c); string(m.Data) != want {
				t.Fatalf("got %s, want %s", m.Data, want)
			}
		}
	})
	t.Run("resume on an edge behind the token", func(t *testing.T) {
		bb := newInjector()
		e := edgetest.MustStartEdge(t, gateway.Config{}, bb)
		bb.inject("aa", 1)
		bb.inject("aa", 2)
		// The client got up to aa-4 on a faster edge.
		c, a := resumeFrom(t, e, "1.aa-4")
		if a.Continuity != codec.ContinuityResumed {
			t.Fatalf("continuity %s, want resumed", a.Continuity)
		}
		for s := uint64(3); s <= 5; s++ {
			bb.inject("aa", s)
		}
		if m := edgetest.NextMessage(t, c); string(m.Data) != `"aa-5"` {
			t.Fatalf("got %s, want aa-5 (aa-3 and aa-4 were already delivered)", m.Data)
		}
		bb.inject("aa", 6)
		if m := edgetest.NextMessage(t, c); string(m.Data) != `"aa-6"` {
			t.Fatalf("got %s, want aa-6", m.Data)
		}
	})
	t.Run("positions name only the origins active within the lateness bound", func(t *testing.T) {
		bb := newInjector()
		e := edgetest.MustStartEdge(t, gateway.Config{}, bb)
		c := edgetest.MustDial(t, e.URL, client.Options{})
		edgetest.MustAttach(t, c, "c", codec.AttachOptions{})
		var last client.Message
		for i := range 200 {
			// A new origin every 10 s of origin time: six within a minute.
			bb.injectAt(fmt.Sprintf("o%d", i), 1, 0, t0+int64(i)*10_000)
			last = edgetest.NextMessage(t, c)
			p, err := codec.ParseToken(last.Pos)
			if err != nil {
				t.Fatalf("the edge's own token %q does not parse: %v", last.Pos, err)
			}
			if len(p.Seqs) > 7 || p.Overflow {
				t.Fatalf("token %q names %d origins", last.Pos, len(p.Seqs))
			}
		}
		bb.injectAt("o199", 2, 1, t0+200*10_000)
		c2, a := resumeFrom(t, e, last.Pos)
		if a.Continuity != codec.ContinuityResumed {
			t.Fatalf("continuity %s, want resumed", a.Continuity)
		}
		if m := edgetest.NextMessage(t, c2); string(m.Data) != `"o199-2"` {
			t.Fatalf("got %s, want o199-2", m.Data)
		}
	})
}

// TestResumeManyOrigins: the two failures of issue 7 item 6, reproduced
// with one edge fed as the backbone would feed it.
func TestResumeManyOrigins(t *testing.T) {
	t.Run("ten origins one after another, resuming from the newest token", func(t *testing.T) {
		bb := newInjector()
		e := edgetest.MustStartEdge(t, gateway.Config{}, bb)
		c := edgetest.MustDial(t, e.URL, client.Options{})
		edgetest.MustAttach(t, c, "c", codec.AttachOptions{})
		var last client.Message
		for i := range 10 {
			for s := uint64(1); s <= 2; s++ {
				bb.injectAt(fmt.Sprintf("p%d", i), s, s-1, t0+int64(i)*1000+int64(s))
				last = edgetest.NextMessage(t, c)
			}
		}
		bb.injectAt("p9", 3, 2, t0+9003)
		c2, a := resumeFrom(t, e, last.Pos)
		if a.Continuity != codec.ContinuityResumed {
			t.Fatalf("continuity %s, want resumed", a.Continuity)
		}
		if m := edgetest.NextMessage(t, c2); string(m.Data) != `"p9-3"` {
			t.Fatalf("got %s, want p9-3 (and nothing older)", m.Data)
		}
	})
	t.Run("nine origins in turn: every token resumes", func(t *testing.T) {
		bb := newInjector()
		e := edgetest.MustStartEdge(t, gateway.Config{}, bb)
		c := edgetest.MustDial(t, e.URL, client.Options{})
		edgetest.MustAttach(t, c, "c", codec.AttachOptions{})
		var got []client.Message
		for i := range 18 {
			o := i % 9
			seq := uint64(i/9 + 1)
			bb.injectAt(fmt.Sprintf("q%d", o), seq, seq-1, t0+int64(i)*100)
			got = append(got, edgetest.NextMessage(t, c))
		}
		for i, m := range got {
			c2, a := resumeFrom(t, e, m.Pos)
			if a.Continuity != codec.ContinuityResumed {
				t.Fatalf("token %d (%s): continuity %s, want resumed", i, m.Pos, a.Continuity)
			}
			for _, want := range got[i+1:] {
				if r := edgetest.NextMessage(t, c2); string(r.Data) != string(want.Data) {
					t.Fatalf("token %d: replayed %s, want %s", i, r.Data, want.Data)
				}
			}
			c2.Close()
		}
	})
}

// TestResumeFromImpossibleFutureTokenIsLost: a token that parses but whose
// watermark is more than the lateness bound (1 minute) past the edge's
// clock cannot have been issued by any edge (a corrupted store, a client
// that made it up): the resume answers lost, from the edge's position, and
// live messages follow (protocol.md §7.3, rule 6). A watermark ahead of
// the edge within the bound is a position the edge may lag, and resumes.
//
// Before: "2.zzzzzzzzzzzz" (a watermark in the year ~150,000,000) was
// answered resumed, and the subscriber was then treated as ahead of the
// edge for ever: every live message skipped, no continuity frame.
func TestResumeFromImpossibleFutureTokenIsLost(t *testing.T) {
	clk := newFakeClock()
	bb := newInjector()
	e := edgetest.MustStartEdge(t, gateway.Config{Now: clk.Now}, bb)
	now := clk.Now().UnixMilli()
	bb.injectAt("aa", 1, 0, now)
	bound := now + time.Minute.Milliseconds()

	if _, a := resumeFrom(t, e, codec.Position{Watermark: bound}.Token()); a.Continuity != codec.ContinuityResumed {
		t.Fatalf("watermark at the lateness bound past the clock: %s, want resumed (this edge may lag the token's)", a.Continuity)
	}
	var subs []*client.Client
	for _, tok := range []string{codec.Position{Watermark: bound + 1}.Token(), "2.zzzzzzzzzzzz"} {
		c, a := resumeFrom(t, e, tok)
		if a.Continuity != codec.ContinuityLost || a.Pos == tok {
			t.Fatalf("resume from %s: %s from %s, want lost from the edge's position", tok, a.Continuity, a.Pos)
		}
		subs = append(subs, c)
	}
	bb.injectAt("aa", 2, 1, now)
	for i, c := range subs {
		if m := edgetest.NextMessage(t, c); m.ID != "aa-2" {
			t.Fatalf("subscriber %d after lost: got %s, want the live message aa-2", i, m.ID)
		}
	}
}
