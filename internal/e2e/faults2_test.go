package e2e

import (
	"context"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/feedgate/feedgate/client"
	"github.com/feedgate/feedgate/codec"
	"github.com/feedgate/feedgate/gateway"
	"github.com/feedgate/feedgate/internal/edgetest"
	"github.com/feedgate/feedgate/internal/pubsubtest"
)

// bestServer is Google's emulator when installed (it carries hundreds of
// ordered messages per second), else pstest (about 10 per ordering key).
func bestServer(t *testing.T) pubsubtest.Server {
	starts := pubsubtest.Servers(t)
	srv := starts[len(starts)-1](t)
	t.Logf("backbone server: %s", srv.Name)
	return srv
}

func channelNames(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s:%d", prefix, i)
	}
	return out
}

// twoEdgeProcs starts edge processes A and B on one Pub/Sub server.
func twoEdgeProcs(t *testing.T, prefix string, extra ...string) (a, b *edgeProc) {
	bin := mustBuildEdge(t)
	srv := bestServer(t)
	env := []string{"PUBSUB_EMULATOR_HOST=" + srv.Addr}
	common := append([]string{"-backbone", "pubsub", "-pubsub-project", project, "-pubsub-prefix", prefix, "-pubsub-shards", "2", "-log-level", "warn"}, append(srv.EdgeArgs(), extra...)...)
	a = mustStartEdgeProc(t, bin, env, append(common, "-edge-id", prefix+"-a")...)
	b = mustStartEdgeProc(t, bin, env, append(common, "-edge-id", prefix+"-b")...)
	return a, b
}

// TestEdgeKilled: 500 subscribers on edge A, a publisher on edge B on 20
// channels; edge A is killed with SIGKILL mid-stream. The subscribers
// reconnect to B and resume: nothing lost, nothing repeated.
func TestEdgeKilled(t *testing.T) {
	a, b := twoEdgeProcs(t, "killed")
	channels := channelNames("killed", 20)
	const subscribers, perChannel = 500, 40
	_, trackers := subscribe(t, subscribers, []string{a.url, b.url}, channels)
	pub := client.NewSession(client.SessionOptions{URLs: []string{b.url}, Logger: quietLog()})
	defer pub.Close()
	killedAt := 0
	published := publishTicks(t, pub, channels, perChannel, 150, func(i int) {
		if i == perChannel*len(channels)/3 {
			if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killedAt = i
		}
	})
	waitAll(t, pub, trackers, perChannel, 90*time.Second)
	f := sumFigures(published, expectedOf(trackers, perChannel))
	f.log(t, "edge-killed", fmt.Sprintf("killed_after=%d latency %s", killedAt, percentiles(f.latencies)))
}

// TestDrain: SIGTERM edge A under load; its clients are told to reconnect
// elsewhere, spread over the drain period, and resume on B with nothing
// lost; A exits cleanly.
func TestDrain(t *testing.T) {
	a, b := twoEdgeProcs(t, "drain", "-drain-period", "2s")
	channels := channelNames("drain", 10)
	const subscribers, perChannel = 200, 60
	sessions, trackers := subscribe(t, subscribers, []string{a.url, b.url}, channels)
	pub := client.NewSession(client.SessionOptions{URLs: []string{b.url}, Logger: quietLog()})
	defer pub.Close()
	published := publishTicks(t, pub, channels, perChannel, 150, func(i int) {
		if i == perChannel*len(channels)/4 {
			if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
		}
	})
	select {
	case err := <-a.exited:
		if err != nil {
			t.Fatalf("edge A exited with %v", err)
		}
		a.exited <- err
	case <-time.After(30 * time.Second):
		t.Fatal("edge A did not exit after SIGTERM")
	}
	waitAll(t, pub, trackers, perChannel, 60*time.Second)
	f := sumFigures(published, expectedOf(trackers, perChannel))
	moved := 0
	for _, s := range sessions {
		moved += s.Stats().Connects - 1
	}
	f.log(t, "drain", fmt.Sprintf("reconnections=%d latency %s", moved, percentiles(f.latencies)))
	if moved < subscribers {
		t.Errorf("%d reconnections for %d subscribers that started on the draining edge", moved, subscribers)
	}
}

// TestBackboneOutage: Pub/Sub unreachable from both edges for 10 s while a
// publisher keeps publishing: publishes are nacked, never acknowledged and
// lost; the subscriptions recover when it returns; order holds.
func TestBackboneOutage(t *testing.T) {
	srv := pubsubtest.MustStartPstest(t)
	proxy := pubsubtest.MustStartProxy(t, srv.Addr)
	proxied := srv
	proxied.Addr = proxy.Addr
	a := mustStartRelayEdge(t, relayConfig(proxied, "edge-a", "outage10"))
	b := mustStartRelayEdge(t, relayConfig(proxied, "edge-b", "outage10"))
	channels := channelNames("o10", 5)
	_, trackers := subscribe(t, 20, []string{b.URL}, channels)
	pub := edgetest.MustDial(t, a.URL, client.Options{})
	for _, ch := range channels {
		edgetest.MustAttach(t, pub, ch, codec.AttachOptions{PublishOnly: true})
	}
	const perChannel = 60
	nacks, published := 0, 0
	start := time.Now()
	down := false
	for seq := range perChannel {
		for _, ch := range channels {
			id := fmt.Sprintf("%s-%d", ch, seq)
			for {
				switch el := time.Since(start); {
				case !down && el > 2*time.Second && el < 12*time.Second:
					proxy.Down()
					down = true
				case down && el >= 12*time.Second:
					proxy.Up()
					down = false
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err := pub.Publish(ctx, ch, tickData(0, seq), client.PublishOptions{ID: id})
				cancel()
				if err == nil {
					break
				}
				e, ok := err.(*codec.Error)
				if !ok || !e.Code.Retryable() {
					t.Fatalf("publish: %v", err)
				}
				nacks++
				time.Sleep(200 * time.Millisecond)
			}
			published++
			time.Sleep(10 * time.Millisecond)
		}
	}
	if down {
		proxy.Up()
	}
	waitAll(t, pub, trackers, perChannel, 90*time.Second)
	f := sumFigures(published, expectedOf(trackers, perChannel))
	st := b.relay.Stats()
	f.log(t, "backbone-outage", fmt.Sprintf("outage=10s nacks=%d gaps_reported=%d reorders_reported=%d", nacks, st.Gaps.Load(), st.Reorders.Load()))
	if nacks == 0 {
		t.Error("no publish was nacked: the outage did not happen")
	}
	// Refused publishes leave holes in the origin's Seq that its later
	// messages' Prev skips: no loss may be reported where there was none.
	if st.Gaps.Load() != 0 || st.Reorders.Load() != 0 {
		t.Errorf("edge B reported %d gaps and %d reorders, want none", st.Gaps.Load(), st.Reorders.Load())
	}
}

// TestStalledSubscriber: one subscriber stops reading. It is dropped as a
// slow consumer when its queue overflows, and it alone: the others get
// every message. Their latency is measured with and without it (figures,
// not assertions: timing is the machine's business).
//
// Nothing here may depend on the machine's speed. The publisher waits for
// the others to catch up every window messages, so however starved of CPU
// their readers are, no more than a window (~55 KB) waits in their queues,
// well below SendQueueBytes: the stalled subscriber, whose queue takes
// everything, is the only one that can overflow. The write watchdog and the
// idle timeout are out of the way: on a slow run they used to close the
// stalled connection before its queue filled, and the test passed without
// seeing the queue bound at work.
func TestStalledSubscriber(t *testing.T) {
	const (
		queue  = 128 << 10
		n      = 500 // 1 KB payloads: 500 KB in all, far beyond the stalled queue and socket buffers
		window = 50  // messages the others may be behind: well within queue
	)
	run := func(t *testing.T, stalled bool) string {
		e := edgetest.MustStartEdge(t, gateway.Config{
			SendQueueBytes:   queue,
			SocketSendBuffer: 32 << 10,
			WriteTimeout:     time.Hour,
			IdleTimeout:      time.Hour,
		}, nil)
		channels := []string{"stall"}
		_, trackers := subscribe(t, 20, []string{e.URL}, channels)
		var stalledWS *websocket.Conn
		if stalled {
			// A small receive buffer, so the kernel does not absorb megabytes
			// on the stalled subscriber's behalf.
			d := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
				if err == nil {
					err = c.(*net.TCPConn).SetReadBuffer(4096)
				}
				return c, err
			}}
			ws, _, err := d.DialContext(edgetest.Ctx10(t), e.URL+"/v1/ws", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ws.Close()
			stalledWS = ws
			if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"attach","ref":1,"channel":"stall"}`)); err != nil {
				t.Fatal(err)
			}
			if _, b, err := ws.ReadMessage(); err != nil || !strings.Contains(string(b), "attached") {
				t.Fatalf("stalled attach: %s %v", b, err)
			}
		}
		pub := client.NewSession(client.SessionOptions{URLs: []string{e.URL}, Logger: quietLog()})
		defer pub.Close()
		published := publishTicksPadded(t, pub, channels, n, 500, 1000, func(i int) {
			if i%window == 0 {
				waitCount(t, trackers, i, 60*time.Second)
			}
		})
		waitAll(t, pub, trackers, n, 60*time.Second)
		f := sumFigures(published, expectedOf(trackers, n))
		lat := percentiles(f.latencies)
		drops := e.Srv.Stats().SlowConsumers
		f.log(t, "stalled-subscriber/"+t.Name()[strings.LastIndex(t.Name(), "/")+1:], fmt.Sprintf("slow_consumers_dropped=%d latency of the others %s", drops, lat))
		want := uint64(0)
		if stalled {
			want = 1
		}
		if drops != want {
			t.Fatalf("%d connections dropped as slow consumers, want %d", drops, want)
		}
		if stalled {
			// The edge closed the stalled connection: reading it now gives
			// what the kernel held, then the disconnect and the close.
			stalledWS.SetReadDeadline(time.Now().Add(60 * time.Second))
			for {
				_, _, err := stalledWS.ReadMessage()
				if err == nil {
					continue
				}
				if !websocket.IsCloseError(err, int(codec.CodeSlowConsumer)) {
					t.Fatalf("the stalled subscriber's connection ended with %v, want a close with %d (slow consumer)", err, codec.CodeSlowConsumer)
				}
				break
			}
		}
		return lat
	}
	var without, with string
	t.Run("without", func(t *testing.T) { without = run(t, false) })
	t.Run("with", func(t *testing.T) { with = run(t, true) })
	t.Logf("others' latency without a stalled subscriber: %s", without)
	t.Logf("others' latency with a stalled subscriber:    %s", with)
}
