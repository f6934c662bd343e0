package gateway_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

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

func (b *injector) inject(origin string, seq uint64) {
	<-b.started
	prev := seq - 1
	b.deliver(&codec.Message{Channel: "c", ID: fmt.Sprintf("%s-%d", origin, seq), Data: fmt.Appendf(nil, `"%s-%d"`, origin, seq), Origin: origin, Seq: seq, Prev: prev, Time: 1})
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
	t.Run("positions name a bounded number of origins", func(t *testing.T) {
		bb := newInjector()
		e := edgetest.MustStartEdge(t, gateway.Config{}, bb)
		c := edgetest.MustDial(t, e.URL, client.Options{})
		edgetest.MustAttach(t, c, "c", codec.AttachOptions{})
		var last client.Message
		for i := range 20 {
			bb.inject(fmt.Sprintf("o%d", i), 1)
			last = edgetest.NextMessage(t, c)
		}
		if n := strings.Count(last.Pos, "_") + 1; n > 8 {
			t.Fatalf("token %q names %d origins", last.Pos, n)
		}
		if _, err := codec.ParseToken(last.Pos); err != nil {
			t.Fatalf("the edge's own token does not parse: %v", err)
		}
		// And it resumes: the most recent origins are all in it.
		bb.inject("o19", 2)
		if _, a := resumeFrom(t, e, last.Pos); a.Continuity != codec.ContinuityResumed {
			t.Fatalf("continuity %s, want resumed", a.Continuity)
		}
	})
}
