package backbone

import (
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/feedgate/feedgate/codec"
)

// recorder collects what a backbone delivers.
type recorder struct {
	mu  sync.Mutex
	got []string // "origin:seq"
}

func (r *recorder) deliver(m *codec.Message) {
	r.mu.Lock()
	r.got = append(r.got, fmt.Sprintf("%s:%d", m.Origin, m.Seq))
	r.mu.Unlock()
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

func remote(seq, prev uint64) *codec.Message {
	return &codec.Message{Channel: "c", ID: fmt.Sprint("id", seq), Origin: "r", Seq: seq, Prev: prev, Data: []byte("1")}
}

func expectDelivered(t *testing.T, r *recorder, want ...string) {
	t.Helper()
	got := r.list()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
}

// TestHoldBack: per origin, a message that arrives ahead of a missing
// predecessor waits for it (and both go out in order), or, after the gap
// wait, goes out with the gap; a copy that arrives after that is dropped.
func TestHoldBack(t *testing.T) {
	const wait = 3 * time.Second
	t.Run("filled by a late predecessor", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			l := NewLocal(LocalConfig{Order: OrderConfig{GapWait: wait}})
			var r recorder
			l.Start(t.Context(), r.deliver)
			l.receive(remote(1, 0))
			l.receive(remote(3, 2))
			l.receive(remote(4, 3))
			expectDelivered(t, &r, "r:1")
			time.Sleep(wait - time.Millisecond)
			synctest.Wait()
			expectDelivered(t, &r, "r:1")
			l.receive(remote(2, 1))
			expectDelivered(t, &r, "r:1", "r:2", "r:3", "r:4")
			st := l.Stats()
			if st.Reorders.Load() != 2 || st.Filled.Load() != 2 || st.Gaps.Load() != 0 || st.Late.Load() != 0 {
				t.Fatalf("reorders %d filled %d gaps %d late %d, want 2 2 0 0", st.Reorders.Load(), st.Filled.Load(), st.Gaps.Load(), st.Late.Load())
			}
		})
	})
	t.Run("given up after the gap wait", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			l := NewLocal(LocalConfig{Order: OrderConfig{GapWait: wait}})
			var r recorder
			l.Start(t.Context(), r.deliver)
			l.receive(remote(1, 0))
			l.receive(remote(3, 2))
			time.Sleep(time.Second)
			l.receive(remote(5, 4)) // a second gap, behind the first
			time.Sleep(wait - time.Second)
			synctest.Wait()
			expectDelivered(t, &r, "r:1", "r:3")
			l.receive(remote(2, 1)) // too late: dropped, never out of order
			time.Sleep(time.Second)
			synctest.Wait()
			expectDelivered(t, &r, "r:1", "r:3", "r:5")
			l.receive(remote(6, 5))
			expectDelivered(t, &r, "r:1", "r:3", "r:5", "r:6")
			st := l.Stats()
			if st.Gaps.Load() != 2 || st.Late.Load() != 1 || st.Delivered.Load() != 4 {
				t.Fatalf("gaps %d late %d delivered %d, want 2 1 4", st.Gaps.Load(), st.Late.Load(), st.Delivered.Load())
			}
		})
	})
	t.Run("the next head's own deadline after a fill", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			const wait = 15 * time.Second
			l := NewLocal(LocalConfig{Order: OrderConfig{GapWait: wait}})
			var r recorder
			l.Start(t.Context(), r.deliver)
			l.receive(remote(1, 0))
			l.receive(remote(9, 8)) // t=0
			time.Sleep(5 * time.Second)
			l.receive(remote(7, 6)) // t=5
			time.Sleep(5 * time.Second)
			l.receive(remote(3, 2)) // t=10
			time.Sleep(7 * time.Second)
			l.receive(remote(2, 1)) // t=17: fills the gap before 3
			expectDelivered(t, &r, "r:1", "r:2", "r:3")
			time.Sleep(3*time.Second + time.Millisecond) // t=20: 7 has waited its gap wait
			synctest.Wait()
			expectDelivered(t, &r, "r:1", "r:2", "r:3", "r:7", "r:9")
		})
	})
	t.Run("bounded", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			l := NewLocal(LocalConfig{Order: OrderConfig{GapWait: time.Hour, MaxHeld: 3}})
			var r recorder
			l.Start(t.Context(), r.deliver)
			l.receive(remote(1, 0))
			for s := uint64(3); s <= 6; s++ {
				l.receive(remote(s, s-1))
			}
			expectDelivered(t, &r, "r:1", "r:3", "r:4", "r:5", "r:6")
			if g := l.Stats().Gaps.Load(); g != 1 {
				t.Fatalf("gaps %d, want 1", g)
			}
		})
	})
	t.Run("origins are independent", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			l := NewLocal(LocalConfig{Order: OrderConfig{GapWait: wait}})
			var r recorder
			l.Start(t.Context(), r.deliver)
			l.receive(remote(1, 0))
			l.receive(remote(3, 2))
			other := remote(7, 6)
			other.Origin, other.ID = "q", "q7"
			l.receive(other) // an origin first seen here starts where it is
			expectDelivered(t, &r, "r:1", "q:7")
		})
	})
}

// TestDeliverOutsideLock: the gateway's deliver runs without the stripe
// lock: it may publish on its own channel, and a deliver that takes long on
// one channel does not hold up another channel of the same stripe.
func TestDeliverOutsideLock(t *testing.T) {
	l := NewLocal(LocalConfig{})
	// Two channels on the same stripe.
	a, b := "a", ""
	for i := 0; b == ""; i++ {
		if n := fmt.Sprint("b", i); l.stripeFor(n) == l.stripeFor(a) {
			b = n
		}
	}
	block, release := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	var got []string
	l.Start(t.Context(), func(m *codec.Message) {
		mu.Lock()
		got = append(got, m.Channel+"/"+string(m.Data))
		mu.Unlock()
		switch string(m.Data) {
		case `"block"`:
			close(block)
			<-release
		case `"again"`:
			l.Publish(&codec.Message{Channel: m.Channel, ID: "nested", Data: []byte(`"nested"`)}, func(error) {})
		}
	})
	go l.Publish(&codec.Message{Channel: a, ID: "1", Data: []byte(`"block"`)}, func(error) {})
	<-block
	done := make(chan error, 1)
	l.Publish(&codec.Message{Channel: b, ID: "2", Data: []byte(`"again"`)}, func(err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	close(release)
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(got) != fmt.Sprint([]string{a + `/"block"`, b + `/"again"`, b + `/"nested"`}) {
		t.Fatalf("delivered %v", got)
	}
}
