package gateway_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/feedgate/feedgate/backbone"
	"github.com/feedgate/feedgate/client"
	"github.com/feedgate/feedgate/codec"
	"github.com/feedgate/feedgate/gateway"
	"github.com/feedgate/feedgate/internal/edgetest"
)

func TestSlowConsumerDroppedOthersUnaffected(t *testing.T) {
	e := edgetest.MustStartEdge(t, gateway.Config{SendQueueBytes: 256 << 10}, nil)
	fast := edgetest.MustDial(t, e.URL, client.Options{Buffer: 1 << 14})
	edgetest.MustAttach(t, fast, "feed", codec.AttachOptions{})
	// The stalled subscriber attaches, then never reads again.
	stalled := edgetest.MustDialRaw(t, e.URL)
	if err := stalled.WriteMessage(websocket.TextMessage, []byte(`{"type":"attach","ref":1,"channel":"feed"}`)); err != nil {
		t.Fatal(err)
	}
	// Read the attached reply, so the subscription surely exists; then stop.
	if _, b, err := stalled.ReadMessage(); err != nil || !strings.Contains(string(b), `"attached"`) {
		t.Fatalf("stalled subscriber's attach: %s %v", b, err)
	}
	pub := edgetest.MustDial(t, e.URL, client.Options{})
	edgetest.MustAttach(t, pub, "feed", codec.AttachOptions{PublishOnly: true})
	payload := []byte(`"` + strings.Repeat("o", 16<<10) + `"`)
	const n = 1000 // 16 MB: far beyond loopback socket buffers and the queue limit
	for i := range n {
		if _, err := pub.Publish(edgetest.Ctx10(t), "feed", payload, client.PublishOptions{ID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		if m := edgetest.NextMessage(t, fast); m.ID != fmt.Sprint(i) {
			t.Fatalf("fast subscriber: message %d has id %s", i, m.ID)
		}
	}
	edgetest.WaitFor(t, "stalled subscriber dropped", func() bool { return e.Srv.Stats().SlowConsumers == 1 })
	if st := e.Srv.Stats(); st.Ends[gateway.EndSlowConsumer] != 1 || st.Dropped[gateway.EndSlowConsumer] == 0 {
		t.Fatalf("ends %v, dropped %v: want one slow_consumer end and its queue counted as dropped", st.Ends, st.Dropped)
	}
}

// BenchmarkBroadcast measures fan-out of one message to N subscribers over
// real loopback connections through the real write path (encode once,
// enqueue per subscriber, coalesced writev). Each op is one message to all N
// subscribers; it waits until every subscriber has read it.
func BenchmarkBroadcast(b *testing.B) {
	for _, n := range []int{100, 1000, 5000} {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			bb := backbone.NewLocal(backbone.LocalConfig{})
			e := edgetest.MustStartEdge(b, gateway.Config{}, bb)
			var received atomic.Int64
			for range n {
				ws := edgetest.MustDialRaw(b, e.URL)
				if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"attach","ref":1,"channel":"bench"}`)); err != nil {
					b.Fatal(err)
				}
				go func() {
					for {
						_, r, err := ws.NextReader()
						if err != nil {
							return
						}
						buf := make([]byte, 0, 512)
						for {
							k, err := r.Read(buf[:cap(buf)])
							if k == 0 || err != nil {
								break
							}
						}
						received.Add(1)
					}
				}()
			}
			// Wait until every attach is answered (n attached frames).
			edgetest.WaitFor(b, "attached replies", func() bool { return received.Load() == int64(n) })
			received.Store(0)
			payload := []byte(`{"market":"1x2","sel":[{"id":1,"p":1.95},{"id":2,"p":3.4},{"id":3,"p":4.1}],"pad":"` + strings.Repeat("x", 200) + `"}`)
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				bb.Publish(&codec.Message{Channel: "bench", ID: fmt.Sprint(i), Data: payload, Time: 1}, func(error) {})
			}
			want := int64(b.N) * int64(n)
			for received.Load() < want {
				time.Sleep(100 * time.Microsecond)
			}
			el := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(want)/el.Seconds(), "deliveries/s")
		})
	}
}

// TestStuckWriteDropped: a client that stops reading while its queue stays
// under the limit is dropped once one write has made no progress for
// WriteTimeout.
func TestStuckWriteDropped(t *testing.T) {
	e := edgetest.MustStartEdge(t, gateway.Config{WriteTimeout: 300 * time.Millisecond, SendQueueBytes: 64 << 20, SocketSendBuffer: 16 << 10}, nil)
	stuck := edgetest.MustDialRaw(t, e.URL)
	if err := stuck.WriteMessage(websocket.TextMessage, []byte(`{"type":"attach","ref":1,"channel":"w"}`)); err != nil {
		t.Fatal(err)
	}
	if _, b, err := stuck.ReadMessage(); err != nil || !strings.Contains(string(b), `"attached"`) {
		t.Fatalf("attach: %s %v", b, err)
	}
	stuck.NetConn().(*net.TCPConn).SetReadBuffer(4096)
	pub := edgetest.MustDial(t, e.URL, client.Options{})
	edgetest.MustAttach(t, pub, "w", codec.AttachOptions{PublishOnly: true})
	payload := []byte(`"` + strings.Repeat("w", 16<<10) + `"`)
	for range 200 { // 3 MB: more than the kernel holds for it
		if _, err := pub.Publish(edgetest.Ctx10(t), "w", payload, client.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	edgetest.WaitFor(t, "stuck writer dropped", func() bool { return e.Srv.Stats().WriteTimeouts == 1 })
	if s := e.Srv.Stats().SlowConsumers; s != 0 {
		t.Fatalf("dropped as a slow consumer (%d), not by the write watchdog", s)
	}
}

// mustStallClient connects a raw client, attaches it to ch, reads the
// attached reply and then never reads again, with a small receive buffer.
func mustStallClient(tb testing.TB, url, ch string) *websocket.Conn {
	tb.Helper()
	ws := edgetest.MustDialRaw(tb, url)
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"attach","ref":1,"channel":"`+ch+`"}`)); err != nil {
		tb.Fatal(err)
	}
	if _, b, err := ws.ReadMessage(); err != nil || !strings.Contains(string(b), `"attached"`) {
		tb.Fatalf("attach: %s %v", b, err)
	}
	ws.NetConn().(*net.TCPConn).SetReadBuffer(4096)
	return ws
}

// mustFill publishes n messages of 16 KiB on ch, each acknowledged.
func mustFill(tb testing.TB, pub *client.Client, ch string, n int) {
	tb.Helper()
	payload := []byte(`"` + strings.Repeat("f", 16<<10) + `"`)
	for range n {
		if _, err := pub.Publish(edgetest.Ctx10(tb), ch, payload, client.PublishOptions{}); err != nil {
			tb.Fatal(err)
		}
	}
}

// connGoroutines counts goroutines running a connection's reader (run) or
// its blocking writer (writeLoop); not the flushers, shared by all.
func connGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte("gateway.(*conn).run(")) || bytes.Contains(g, []byte("gateway.(*conn).writeLoop(")) {
			count++
		}
	}
	return count
}

// openFDs counts the process's open file descriptors.
func openFDs(tb testing.TB) int {
	tb.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		tb.Skipf("cannot count file descriptors: %v", err)
	}
	return len(ents)
}

// TestClientsLeavingWithFullSocketLeaveNothing: clients that half-close or
// send Close and then stop reading, while the edge has far more queued for
// them than their sockets take, leave no goroutine and no socket behind.
// No timer ends them (the write timeout is far beyond the test's wait): the
// end of the reader ends the writer.
func TestClientsLeavingWithFullSocketLeaveNothing(t *testing.T) {
	e := edgetest.MustStartEdge(t, gateway.Config{WriteTimeout: 10 * time.Minute, SendQueueBytes: 64 << 20, SocketSendBuffer: 16 << 10}, nil)
	pub := edgetest.MustDial(t, e.URL, client.Options{})
	edgetest.MustAttach(t, pub, "leave", codec.AttachOptions{PublishOnly: true})
	edgetest.WaitFor(t, "publisher's connection counted", func() bool { return e.Srv.Stats().Connections == 1 })
	goroutines, fds := connGoroutines(), openFDs(t)

	const k = 6
	var clients []*websocket.Conn
	for range k {
		clients = append(clients, mustStallClient(t, e.URL, "leave"))
	}
	mustFill(t, pub, "leave", 150) // 2.4 MB each: far beyond their socket buffers
	for i, ws := range clients {
		var err error
		if i%2 == 0 {
			err = ws.NetConn().(*net.TCPConn).CloseWrite()
		} else {
			err = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(10*time.Second))
		}
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
	}
	// The clients' own sockets stay open (they never read): k more fds.
	edgetest.WaitFor(t, "connections, their goroutines and sockets gone", func() bool {
		return e.Srv.Stats().Connections == 1 && connGoroutines() <= goroutines && openFDs(t) <= fds+k
	})
	if st := e.Srv.Stats(); st.Ends[gateway.EndClientClosed] != k || st.Dropped[gateway.EndClientClosed] == 0 {
		t.Fatalf("ends %v, dropped %v: want %d client_closed ends, with what they did not take dropped", st.Ends, st.Dropped, k)
	}
}

// TestDrainEndsWithStalledClient: a client that stopped reading with its
// socket full does not hold a graceful shutdown until its deadline. The
// write timeout is far beyond the test, so only the drain's own bound can
// end that client; the bound asserted is the shutdown's deadline, far
// beyond the drain's (2 × 50 ms): the test fails only if the drain hangs.
func TestDrainEndsWithStalledClient(t *testing.T) {
	e := edgetest.MustStartEdge(t, gateway.Config{WriteTimeout: 10 * time.Minute, SendQueueBytes: 64 << 20, SocketSendBuffer: 16 << 10, DrainPeriod: 50 * time.Millisecond}, nil)
	mustStallClient(t, e.URL, "drain")
	pub := edgetest.MustDial(t, e.URL, client.Options{})
	edgetest.MustAttach(t, pub, "drain", codec.AttachOptions{PublishOnly: true})
	mustFill(t, pub, "drain", 150)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.Srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if st := e.Srv.Stats(); st.Connections != 0 || st.Ends[gateway.EndGoingAway] != 2 {
		t.Fatalf("%d connections left after shutdown, ends %v (want 2 going_away)", st.Connections, st.Ends)
	}
}
