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

}

var errNotCalled = codec.Errorf(codec.CodeInternal, "done not called")
