package e2e

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/feedgate/feedgate/client"
	"github.com/feedgate/feedgate/codec"
	"github.com/feedgate/feedgate/internal/edgetest"
	"github.com/feedgate/feedgate/internal/pubsubtest"
)

// TestFaultNetworkCut (issue 7, item 2): edge B's path to Pub/Sub is cut
// for 2 s while a publisher on edge A sends 100 msg/s on one channel.
// Messages whose stream broke are redelivered after the ack deadline; edge
// B holds back what arrives ahead of them, within its gap wait, so its
// subscribers get every message once and in order, or are told of a loss.
func TestFaultNetworkCut(t *testing.T) {
	srv := bestServer(t)
	proxy := pubsubtest.MustStartProxy(t, srv.Addr)
	proxied := srv
	proxied.Addr = proxy.Addr
	a := mustStartRelayEdge(t, relayConfig(srv, "cut-a", "cut"))
	cfgB := relayConfig(proxied, "cut-b", "cut")
	b := mustStartRelayEdge(t, cfgB)
	const ch, total, rate = "cut:1", 600, 100.0
	var subs []*client.Client
	for _, u := range []string{a.URL, b.URL} {
		for _, f := range []codec.Format{codec.FormatJSON, codec.FormatMsgpack} {
			c := edgetest.MustDial(t, u, client.Options{Format: f, Buffer: total + 100})
			edgetest.MustAttach(t, c, ch, codec.AttachOptions{})
			subs = append(subs, c)
		}
	}
	pub := edgetest.MustDial(t, a.URL, client.Options{})
	edgetest.MustAttach(t, pub, ch, codec.AttachOptions{PublishOnly: true})
	// The publisher goes on at the same rate until every subscriber has
	// the first total messages (a feed does not stop for a cut); what it
	// publishes beyond is not counted.
	stop := make(chan struct{})
	published := make(chan int, 1)
	var retries atomic.Int64
	go func() {
		start := time.Now()
		s := 0
		defer func() { published <- s }()
		for ; ; s++ {
			select {
			case <-stop:
				return
			default:
			}
			if s == total/3 {
				proxy.Down()
				time.AfterFunc(2*time.Second, proxy.Up)
			}
			// A refusal the protocol calls retryable (edge A's Pub/Sub
			// publish timing out on a busy machine) is retried with the same
			// id, as protocol.md §10 tells publishers to; anything else fails.
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			var err error
			for {
				_, err = pub.Publish(ctx, ch, fmt.Appendf(nil, `{"seq":%d}`, s), client.PublishOptions{ID: fmt.Sprint("m", s)})
				var ce *codec.Error
				if err == nil || !errors.As(err, &ce) || !ce.Code.Retryable() || ctx.Err() != nil {
					break
				}
				retries.Add(1)
			}
			cancel()
			if err != nil {
				t.Errorf("publish %d: %v", s, err)
				return
			}
			if d := time.Until(start.Add(time.Duration(float64(s+1) / rate * float64(time.Second)))); d > 0 {
				time.Sleep(d)
			}
		}
	}()
	f := faultFigures{published: total}
	stall := time.Duration(0)
	for i, c := range subs {
		var o orderCheck
		last := time.Now()
		// Bounded: a stuck stream is restarted within about two ack
		// deadlines (the reconnection, then beacons), and a gap is filled
		// or given up and signalled within the gap wait after that.
		deadline := time.After(12 * defaultGapWaitForTests)
		for o.next < total {
			select {
			case m := <-c.Messages():
				o.add(t, m.Data)
				if now := time.Now(); now.Sub(last) > stall {
					stall = now.Sub(last)
				}
				last = time.Now()
			case <-deadline:
				st := b.relay.Stats()
				t.Fatalf("subscriber %d: %d of %d messages; edge B delivered %d held %d filled %d gaps %d late %d dups %d, healthy: %v, restarts %d", i, o.next, total,
					st.Delivered.Load(), st.Reorders.Load(), st.Filled.Load(), st.Gaps.Load(), st.Late.Load(), st.Duplicates.Load(), b.relay.Healthy(), st.StreamRestarts.Load())
			}
		}
		f.delivered += o.delivered
		f.duplicated += o.dups
		f.reordered += o.reorder
		f.lost += o.next - (o.delivered - o.dups)
	}
	close(stop)
	t.Logf("published %d in all", <-published)
	st := b.relay.Stats()
	f.check(t, "network-cut", fmt.Sprintf("publish_retries=%d cut=2s longest_stall=%v edge_b: held=%d filled=%d gaps=%d late=%d duplicates=%d",
		retries.Load(), stall.Round(time.Millisecond), st.Reorders.Load(), st.Filled.Load(), st.Gaps.Load(), st.Late.Load(), st.Duplicates.Load()))
}

// defaultGapWaitForTests is the edges' gap wait in these tests (the
// default).
const defaultGapWaitForTests = 15 * time.Second
