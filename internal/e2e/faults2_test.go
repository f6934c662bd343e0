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
	common := append([]string{"-backbone", "pubsub", "-pubsub-project", project, "-pubsub-prefix", prefix, "-pubsub-shards", "2", "-log-level", "warn"}, extra...)
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

// TestStalledSubscriber: one subscriber stops reading. It is dropped when
// its queue overflows; the other subscribers' latency is measured with and
// without it (figures, not assertions: timing is the machine's business).
func TestStalledSubscriber(t *testing.T) {
	run := func(t *testing.T, stalled bool) string {
		e := edgetest.MustStartEdge(t, gateway.Config{SendQueueBytes: 256 << 10, SocketSendBuffer: 32 << 10}, nil)
		channels := []string{"stall"}
		_, trackers := subscribe(t, 50, []string{e.URL}, channels)
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
		const n = 1000
		// 1 KB payloads: 1 MB in all, far beyond the stalled subscriber's
		// queue and socket buffers.
		published := publishTicksPadded(t, pub, channels, n, 500, 1000, nil)
		waitAll(t, pub, trackers, n, 60*time.Second)
		f := sumFigures(published, expectedOf(trackers, n))
		name := "stalled-subscriber/without"
		if stalled {
			name = "stalled-subscriber/with"
			// The edge closed the stalled connection: reading it now ends
			// in an error once what the kernel held is consumed.
			stalledWS.SetReadDeadline(time.Now().Add(20 * time.Second))
			for {
				if _, _, err := stalledWS.ReadMessage(); err != nil {
					if ne, ok := err.(net.Error); ok && ne.Timeout() {
						t.Fatal("the stalled subscriber was not disconnected")
					}
					break
				}
			}
		}
		lat := percentiles(f.latencies)
		// Under the race detector the others may fall behind too; they are
		// dropped, resume, and lose nothing: the figures say how many.
		f.log(t, name, fmt.Sprintf("slow_consumers_dropped=%d latency of the others %s", e.Srv.Stats().SlowConsumers, lat))
		return lat
	}
	without := run(t, false)
	with := run(t, true)
	t.Logf("others' latency without a stalled subscriber: %s", without)
	t.Logf("others' latency with a stalled subscriber:    %s", with)
}
