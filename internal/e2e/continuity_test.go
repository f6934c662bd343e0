package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/feedgate/feedgate/client"
	"github.com/feedgate/feedgate/codec"
	"github.com/feedgate/feedgate/gateway"
	"github.com/feedgate/feedgate/internal/edgetest"
	"github.com/feedgate/feedgate/internal/pubsubtest"
)

// subscribe starts n sessions, subscriber i attached to channels[i%len],
// each with its own tracker draining its messages.
func subscribe(t *testing.T, n int, urls []string, channels []string) ([]*client.Session, map[*tracker]string) {
	t.Helper()
	sessions := make([]*client.Session, n)
	trackers := make(map[*tracker]string, n)
	var wg sync.WaitGroup
	for i := range n {
		s := client.NewSession(client.SessionOptions{
			URLs:       urls,
			Options:    client.Options{Format: codec.Format(i % 2), Buffer: 1 << 12},
			MinBackoff: 20 * time.Millisecond,
			MaxBackoff: time.Second,
			Logger:     quietLog(),
		})
		t.Cleanup(func() { s.Close() })
		sessions[i] = s
		tr := newTracker()
		ch := channels[i%len(channels)]
		trackers[tr] = ch
		go func() {
			for m := range s.Messages() {
				tr.add(m)
			}
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := s.Attach(ctx, ch, codec.AttachOptions{}); err != nil {
				t.Errorf("subscriber %d attach: %v", i, err)
			}
		}()
	}
	wg.Wait()
	return sessions, trackers
}

// publishTicks publishes perChannel messages on every channel, round robin,
// paced to rate messages per second, from one session; it returns how many
// were acknowledged.
func publishTicks(t *testing.T, pub *client.Session, channels []string, perChannel int, rate float64, during func(i int)) int {
	t.Helper()
	return publishTicksPadded(t, pub, channels, perChannel, rate, 0, during)
}

// publishTicksPadded is publishTicks with pad bytes of padding per message.
func publishTicksPadded(t *testing.T, pub *client.Session, channels []string, perChannel int, rate float64, pad int, during func(i int)) int {
	t.Helper()
	for _, ch := range channels {
		if _, err := pub.Attach(edgetest.Ctx10(t), ch, codec.AttachOptions{PublishOnly: true}); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	n := 0
	for seq := range perChannel {
		for _, ch := range channels {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			_, err := pub.Publish(ctx, ch, tickDataPadded(0, seq, pad), client.PublishOptions{})
			cancel()
			if err != nil {
				t.Fatalf("publish %s/%d: %v", ch, seq, err)
			}
			n++
			if during != nil {
				during(n)
			}
			if d := time.Until(start.Add(time.Duration(float64(n) / rate * float64(time.Second)))); d > 0 {
				time.Sleep(d)
			}
		}
	}
	return n
}

// waitCount waits until every tracker has want messages on its channel,
// and fails the test if one has not within the given time.
func waitCount(t *testing.T, trackers map[*tracker]string, want int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for tr, ch := range trackers {
		for tr.count(ch) < want {
			if time.Now().After(deadline) {
				t.Fatalf("a subscriber of %s has %d of %d messages after %v", ch, tr.count(ch), want, within)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// publisher is a client.Client or a client.Session.
type publisher interface {
	Publish(ctx context.Context, channel string, data []byte, o client.PublishOptions) (string, error)
}

// waitAll waits until every tracker has want messages on its channel (the
// figures then tell what is missing). Then, through pub, it publishes a
// marker on every channel and waits until every tracker has its channel's:
// anything the edge still had to send on a channel before it (a late
// duplicate, a replay) has arrived by then and shows in the figures.
func waitAll(t *testing.T, pub publisher, trackers map[*tracker]string, want int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for tr, ch := range trackers {
		for tr.count(ch) < want && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	marked := map[string]bool{}
	for _, ch := range trackers {
		if marked[ch] {
			continue
		}
		marked[ch] = true
		data, _ := json.Marshal(tick{Marker: true, TS: time.Now().UnixNano()})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := pub.Publish(ctx, ch, data, client.PublishOptions{})
		cancel()
		if err != nil {
			t.Fatalf("publish the marker on %s: %v", ch, err)
		}
	}
	deadline = time.Now().Add(30 * time.Second)
	missing := 0
	for tr, ch := range trackers {
		for !tr.marked(ch) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if !tr.marked(ch) {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d subscribers did not get the marker within 30s", missing, len(trackers))
	}
}

func expectedOf(trackers map[*tracker]string, want int) map[*tracker]int {
	out := make(map[*tracker]int, len(trackers))
	for tr := range trackers {
		out[tr] = want
	}
	return out
}

// TestFlakyNetwork: 200 subscribers reach an edge through a proxy that
// cuts connections at random; 10,000 messages on 10 channels. Every
// subscriber reconnects, resumes, and gets every message of its channel
// once and in order.
func TestFlakyNetwork(t *testing.T) {
	e := edgetest.MustStartEdge(t, gateway.Config{}, nil)
	proxy := pubsubtest.MustStartProxy(t, e.URL[len("ws://"):])
	channels := make([]string, 10)
	for i := range channels {
		channels[i] = fmt.Sprintf("flaky:%d", i)
	}
	const subscribers, perChannel = 200, 1000
	_, trackers := subscribe(t, subscribers, []string{"ws://" + proxy.Addr}, channels)
	pub := client.NewSession(client.SessionOptions{URLs: []string{e.URL}, Logger: quietLog()})
	defer pub.Close()

	cuts := 0
	published := publishTicks(t, pub, channels, perChannel, 2000, func(i int) {
		if i%200 == 0 { // every 0.1s: cut a tenth of the connections
			cuts += proxy.Cut(subscribers / 10)
		}
	})
	waitAll(t, pub, trackers, perChannel, 60*time.Second)
	f := sumFigures(published, expectedOf(trackers, perChannel))
	f.log(t, "flaky-network", fmt.Sprintf("connections_cut=%d latency %s", cuts, percentiles(f.latencies)))
	if cuts < subscribers {
		t.Errorf("only %d connections were cut: the test did not exercise reconnection", cuts)
	}
}

// TestDeadEdgeDetected: the path to the edge goes silent without closing
// (a dead host, a black-holed network). The session notices the silence
// after DeadAfter, reconnects to its next URL and resumes: nothing lost.
func TestDeadEdgeDetected(t *testing.T) {
	// The edge's own idle timeout stays out of the way: only the client's
	// silence detection can end the frozen connection. Heartbeats every
	// 250 ms keep the healthy path from ever being quiet for DeadAfter
	// (with the default 20 s, the session left a healthy edge too once the
	// messages stopped, if the test was slow to check).
	e := edgetest.MustStartEdge(t, gateway.Config{HeartbeatInterval: 250 * time.Millisecond, IdleTimeout: time.Minute}, nil)
	proxy := pubsubtest.MustStartProxy(t, e.URL[len("ws://"):])
	s := client.NewSession(client.SessionOptions{
		URLs:      []string{"ws://" + proxy.Addr, e.URL},
		DeadAfter: time.Second,
		Logger:    quietLog(),
	})
	defer s.Close()
	if _, err := s.Attach(edgetest.Ctx10(t), "dead", codec.AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	tr := newTracker()
	go func() {
		for m := range s.Messages() {
			tr.add(m)
		}
	}()
	pub := client.NewSession(client.SessionOptions{URLs: []string{e.URL}, Logger: quietLog()})
	defer pub.Close()
	published := publishTicks(t, pub, []string{"dead"}, 100, 50, func(i int) {
		if i == 20 {
			proxy.Freeze()
		}
	})
	waitAll(t, pub, map[*tracker]string{tr: "dead"}, 100, 30*time.Second)
	f := sumFigures(published, map[*tracker]int{tr: 100})
	f.log(t, "dead-edge", fmt.Sprintf("connects=%d", s.Stats().Connects))
	if s.Stats().Connects != 2 {
		t.Errorf("session connected %d times, want 2 (the silent edge must be left)", s.Stats().Connects)
	}
}
