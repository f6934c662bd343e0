package backbone

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

func TestDedupCache(t *testing.T) {
	var total atomic.Int64
	a := newDedupCache(100, time.Minute, &total)
	b := newDedupCache(100, time.Minute, &total)
	now := time.Unix(1000, 0)
	t.Run("duplicates within the window", func(t *testing.T) {
		if !a.add("x", now) || a.add("x", now.Add(time.Second)) {
			t.Fatal("second add of x was not a duplicate")
		}
		if !a.has("x", now.Add(59*time.Second)) {
			t.Fatal("x forgotten within the window")
		}
	})
	t.Run("age bound", func(t *testing.T) {
		if a.has("x", now.Add(61*time.Second)) {
			t.Fatal("x remembered past the window")
		}
		if !a.add("x", now.Add(62*time.Second)) {
			t.Fatal("x after the window is not new")
		}
	})
	t.Run("count bound shared by stripes", func(t *testing.T) {
		now := now.Add(2 * time.Minute)
		for i := range 30 {
			b.add(fmt.Sprint("b", i), now)
		}
		// A hot stripe may use the whole remaining budget...
		for i := range 200 {
			a.add(fmt.Sprint("a", i), now)
		}
		if got := total.Load(); got != 100 {
			t.Fatalf("total %d keys, want the bound 100", got)
		}
		if a.len() != 70 || b.len() != 30 {
			t.Fatalf("stripes hold %d and %d keys, want 70 and 30", a.len(), b.len())
		}
		// ...evicting its own oldest keys first.
		if a.has("a0", now) || !a.has("a199", now) || !b.has("b0", now) {
			t.Fatal("wrong keys evicted")
		}
	})
}
