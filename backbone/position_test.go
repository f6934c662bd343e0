package backbone

import (
	"testing"

	"github.com/feedgate/feedgate/codec"
)

func TestPositions(t *testing.T) {
	l := NewLocal(LocalConfig{})
	var got []*codec.Message
	l.Start(t.Context(), func(m *codec.Message) { got = append(got, m) })
	for _, id := range []string{"a", "b", "a", "c"} {
		var err error = errNotCalled
		l.Publish(&codec.Message{Channel: "ch", ID: id, Data: []byte("1")}, func(e error) { err = e })
		if err != nil {
			t.Fatalf("publish %s: %v", id, err)
		}
	}
	// The retry of "a" was acknowledged but neither delivered nor numbered.
	if len(got) != 3 {
		t.Fatalf("delivered %d messages, want 3", len(got))
	}
	for i, m := range got {
		if m.Origin != l.Origin() || m.Seq != uint64(i+1) || m.Prev != uint64(i) {
			t.Fatalf("message %d: origin %s seq %d prev %d", i, m.Origin, m.Seq, m.Prev)
		}
	}
	if l.Stats().Retries.Load() != 1 {
		t.Fatalf("retries %d, want 1", l.Stats().Retries.Load())
	}

	t.Run("gap and reorder detection", func(t *testing.T) {
		st := l.stripeFor("other")
		in := func(seq, prev uint64, id string) {
			st.mu.Lock()
			l.deliverLocked(st, &codec.Message{Channel: "other", ID: id, Origin: "remote", Seq: seq, Prev: prev})
			st.mu.Unlock()
		}
		in(1, 0, "1")
		in(2, 1, "2")
		in(5, 3, "5") // 3 was accepted by its origin and never arrived
		in(4, 3, "4") // arrives behind 5
		in(2, 1, "2") // a redelivered duplicate: neither
		if g, r := l.Stats().Gaps.Load(), l.Stats().Reorders.Load(); g != 1 || r != 1 {
			t.Fatalf("gaps %d reorders %d, want 1 and 1", g, r)
		}
	})
}

var errNotCalled = codec.Errorf(codec.CodeInternal, "done not called")
