package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/feedgate/feedgate/client"
	"github.com/feedgate/feedgate/codec"
	"github.com/feedgate/feedgate/internal/edgetest"
	"github.com/feedgate/feedgate/internal/pubsubtest"
)

// streamCheck follows a session subscriber's stream of {"seq":n} payloads,
// counting what is missing with and without a continuity signal before it.
type streamCheck struct {
	mu                                     sync.Mutex
	next                                   int
	delivered, dups, reorder, lost, signal int
	signalled                              bool // a loss was signalled since the last message
}

func (s *streamCheck) message(m client.Message) {
	var p struct{ Seq int }
	_ = json.Unmarshal(m.Data, &p)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delivered++
	switch {
	case p.Seq == s.next:
	case p.Seq < s.next:
		s.dups++
		return
	case s.signalled:
		s.signal += p.Seq - s.next
	default:
		s.lost += p.Seq - s.next
	}
	s.next = p.Seq + 1
	s.signalled = false
}

func (s *streamCheck) continuity(e client.ContinuityEvent) {
	if e.Continuity == codec.ContinuityLost {
		s.mu.Lock()
		s.signalled = true
		s.mu.Unlock()
	}
}

func (s *streamCheck) at() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.next
}

func readyz(url string) int {
	resp, err := http.Get(url + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestFaultBackboneRestarted (issue 7, item 4): Google's emulator is killed
// with SIGKILL under two edges and started again, empty, 5 s later. Both
// edges turn unready within seconds, create again by themselves what they
// may (topics, their subscriptions), turn ready again, and carry the stream
// on. A publisher retries each refused message (same id) before the next.
// Every acknowledged message reaches the subscriber on the other edge, in
// order, or is covered by a continuity signal.
func TestFaultBackboneRestarted(t *testing.T) {
	if !pubsubtest.EmulatorAvailable() {
		t.Skip("needs Google's Pub/Sub emulator (gcloud); pstest cannot be restarted on the same port with its state gone in the same way")
	}
	addr := fmt.Sprintf("127.0.0.1:%d", pubsubtest.FreePort(t))
	emu := pubsubtest.MustStartEmulatorAt(t, addr)
	srv := emu.Server()
	a := mustStartRelayEdge(t, relayConfig(srv, "bbr-a", "bbr"))
	b := mustStartRelayEdge(t, relayConfig(srv, "bbr-b", "bbr"))
	const ch = "bbr:1"

	var check streamCheck
	sess := client.NewSession(client.SessionOptions{URLs: []string{b.URL}, Logger: quietLog()})
	t.Cleanup(func() { sess.Close() })
	if _, err := sess.Subscribe(edgetest.Ctx10(t), ch, client.SubscribeOptions{OnMessage: check.message, OnContinuity: check.continuity}); err != nil {
		t.Fatal(err)
	}
	pub := edgetest.MustDial(t, a.URL, client.Options{})
	edgetest.MustAttach(t, pub, ch, codec.AttachOptions{PublishOnly: true})

	var mu sync.Mutex
	acked, nacks := 0, 0
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for s := 0; ; {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_, err := pub.Publish(ctx, ch, fmt.Appendf(nil, `{"seq":%d}`, s), client.PublishOptions{ID: fmt.Sprint("m", s)})
			cancel()
			mu.Lock()
			if err == nil {
				acked, s = s+1, s+1 // the next; a refused one is sent again
			} else {
				nacks++
			}
			mu.Unlock()
		}
	}()
	edgetest.WaitForWithin(t, "the stream flowing", 30*time.Second, func() bool { return check.at() >= 50 })

	emu.Kill()
	killed := time.Now()
	edgetest.WaitForWithin(t, "both edges unready", 60*time.Second, func() bool { return readyz(a.API) == 503 && readyz(b.API) == 503 })
	unready := time.Since(killed)
	time.Sleep(5 * time.Second) // the outage
	emu.Start()
	restarted := time.Now()
	edgetest.WaitForWithin(t, "both edges ready again", 90*time.Second, func() bool { return readyz(a.API) == 200 && readyz(b.API) == 200 })
	ready := time.Since(restarted)
	mu.Lock()
	resumedAt := acked
	mu.Unlock()
	edgetest.WaitForWithin(t, "publishing again", 60*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return acked >= resumedAt+100
	})
	close(stop)
	<-done
	mu.Lock()
	total := acked
	mu.Unlock()
	edgetest.WaitForWithin(t, "the subscriber on edge B up to date", 60*time.Second, func() bool { return check.at() >= total })

	check.mu.Lock()
	f := faultFigures{published: total, delivered: check.delivered, lost: check.lost, duplicated: check.dups, reordered: check.reorder, signalledLost: check.signal}
	check.mu.Unlock()
	f.check(t, "backbone-restarted", fmt.Sprintf("outage=5s nacks=%d unready_after_kill=%v ready_after_restart=%v edge_b: gaps=%d restarts=%d",
		nacks, unready.Round(time.Millisecond), ready.Round(time.Millisecond), b.relay.Stats().Gaps.Load(), b.relay.Stats().StreamRestarts.Load()))
}
