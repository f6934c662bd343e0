package client

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/feedgate/feedgate/codec"
	"github.com/feedgate/feedgate/gateway"
)

// TestLaneKeepsOrder: once a publish on a channel is refused (rate_limited
// here), the publishes asked for meanwhile wait behind it and go, after
// it, in the order they were asked for; each is delivered once, and the
// edge refuses none of them for order (they were never sent before their
// turn).
func TestLaneKeepsOrder(t *testing.T) {
	srv, url := startEdge(t, gateway.Config{Limits: gateway.Limits{PublishPerConn: gateway.Rate{PerSecond: 20, Burst: 1}}})
	sub, err := Dial(ctx10(t), url, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Close() })
	if err := sub.Attach(ctx10(t), "o", codec.AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	s := NewSession(SessionOptions{URLs: []string{url}, Logger: quiet()})
	t.Cleanup(func() { s.Close() })
	if _, err := s.Attach(ctx10(t), "o", codec.AttachOptions{PublishOnly: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Publish(ctx10(t), "o", []byte(`0`), PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	queued := func() int {
		s.pmu.Lock()
		defer s.pmu.Unlock()
		if l := s.lanes["o"]; l != nil {
			return len(l.queue)
		}
		return 0
	}
	const n = 8
	errs := make(chan error, n)
	var ended atomic.Int64
	publish := func(i int) {
		_, err := s.Publish(ctx10(t), "o", []byte(strconv.Itoa(i)), PublishOptions{})
		ended.Add(1)
		errs <- err
	}
	// 1 is over the burst: refused, it waits its retry_after (50 ms) in
	// the lane's queue. 2… are asked for one after the other meanwhile:
	// each once the one before is queued or has ended (on a slow machine
	// the lane may have published some already; the order holds either
	// way).
	for i := 1; i < n; i++ {
		go publish(i)
		waitFor(t, "publish "+strconv.Itoa(i)+" queued or ended", func() bool { return int64(queued())+ended.Load() >= int64(i) })
	}
	for range n - 1 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		select {
		case m := <-sub.Messages():
			if string(m.Data) != strconv.Itoa(i) {
				t.Fatalf("message %d: got %s: out of order", i, m.Data)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("message %d did not come", i)
		}
	}
	st := srv.Stats()
	// Rate refusals: 1 (the first), and any of 2… that met an empty bucket
	// on its turn, once each; none refused for order.
	if r := st.Refused[gateway.RefusedPublishConn]; r < 1 || r > n-1 {
		t.Fatalf("%d rate refusals, want 1 to %d", r, n-1)
	}
	if st.BadFrames != 0 {
		t.Fatalf("%d refusals counted against the error budget, want 0", st.BadFrames)
	}
	s.pmu.Lock()
	lanes := len(s.lanes)
	s.pmu.Unlock()
	if lanes != 0 {
		t.Fatalf("%d lanes left after every publish ended, want 0", lanes)
	}
}
