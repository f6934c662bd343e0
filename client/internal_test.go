package client

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/feedgate/feedgate/auth"
	"github.com/feedgate/feedgate/backbone"
	"github.com/feedgate/feedgate/codec"
	"github.com/feedgate/feedgate/gateway"
)

// These tests see the session's insides, so they cannot use
// internal/edgetest (it imports this package); startEdge is its
// MustStartEdge in short.

func startEdge(t *testing.T, cfg gateway.Config) (*gateway.Server, string) {
	t.Helper()
	a, err := auth.NewStatic(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Authorizer = a
	cfg.Logger = quiet()
	cfg.DrainPeriod = 50 * time.Millisecond
	srv, err := gateway.New(cfg, backbone.NewLocal(backbone.LocalConfig{}))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := gateway.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(context.Background(), ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-errc; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return srv, "ws://" + ln.Addr().String()
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func ctx10(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func mustPublisher(t *testing.T, url, channel string) func(data string) {
	t.Helper()
	pub, err := Dial(ctx10(t), url, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close() })
	if err := pub.Attach(ctx10(t), channel, codec.AttachOptions{PublishOnly: true}); err != nil {
		t.Fatal(err)
	}
	return func(data string) {
		t.Helper()
		if _, err := pub.Publish(ctx10(t), channel, []byte(data), PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSlowApplicationKeepsConnection: nobody reads Session.Messages for
// many idle timeouts. The reader must go on answering heartbeats (it used
// to block behind the application, and the edge dropped a healthy
// connection as idle); once the application reads again it gets every
// message once, in order: what did not fit the buffer was fetched again.
func TestSlowApplicationKeepsConnection(t *testing.T) {
	srv, url := startEdge(t, gateway.Config{HeartbeatInterval: 25 * time.Millisecond, IdleTimeout: 500 * time.Millisecond})
	s := NewSession(SessionOptions{URLs: []string{url}, Options: Options{Buffer: 4}, Logger: quiet()})
	defer s.Close()
	if _, err := s.Attach(ctx10(t), "slow", codec.AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	publish := mustPublisher(t, url, "slow")
	const n = 50
	for i := range n {
		publish(strconv.Itoa(i))
	}
	s.mu.Lock()
	c := s.conn
	s.mu.Unlock()
	// 60 frames read while the application sleeps: heartbeats for at least
	// 3 idle timeouts, each answered (or the edge would have dropped us).
	seen, last := 0, c.LastReceived()
	waitFor(t, "heartbeats read while the application is stalled", func() bool {
		if r := c.LastReceived(); r.After(last) {
			seen, last = seen+1, r
		}
		return seen >= 60
	})
	if d := srv.Stats().IdleDrops; d != 0 {
		t.Fatalf("edge dropped %d idle connections", d)
	}
	for i := range n {
		select {
		case m := <-s.Messages():
			if string(m.Data) != strconv.Itoa(i) {
				t.Fatalf("message %d: got %s", i, m.Data)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("message %d did not come", i)
		}
	}
	st := s.Stats()
	if st.Connects != 1 {
		t.Errorf("connected %d times, want 1", st.Connects)
	}
	if st.Dropped == 0 || st.Resyncs == 0 || st.LostContinuity != 0 {
		t.Errorf("stats %+v: want drops fetched again by resyncs, without loss", st)
	}
}

// TestContinuityFrameSurfaced: the edge's mid-stream continuity frame
// reaches the subscription in stream order, like a lost continuity on a
// re-attach: after the messages before it, before those after it, with the
// position moved on. The codec does not decode the frame yet; the test
// hands it to the session as the read loop would.
func TestContinuityFrameSurfaced(t *testing.T) {
	_, url := startEdge(t, gateway.Config{})
	var told []Attached
	got := make(chan string, 10)
	s := NewSession(SessionOptions{URLs: []string{url}, Logger: quiet(),
		OnAttached: func(ch string, a Attached) { told = append(told, a) }})
	defer s.Close()
	sub, err := s.Subscribe(ctx10(t), "c", SubscribeOptions{
		OnMessage: func(m Message) { got <- "message " + string(m.Data) },
		OnContinuity: func(e ContinuityEvent) {
			got <- fmt.Sprintf("%s %s %s", e.Cause, e.Continuity, e.Pos)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	publish := mustPublisher(t, url, "c")
	next := func(want string) {
		t.Helper()
		select {
		case g := <-got:
			if g != want {
				t.Fatalf("got %q, want %q", g, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no %q", want)
		}
	}
	next("attach fresh 2.0")
	publish("1")
	next("message 1")
	s.mu.Lock()
	gen := s.gen
	s.mu.Unlock()
	s.continuityFrame(gen, &codec.Frame{Channel: "c", Continuity: codec.ContinuityLost, Pos: "1.zzzzzzzz-5"})
	if p := sub.Pos(); p != "1.zzzzzzzz-5" {
		t.Errorf("position %q after the loss, want the frame's", p)
	}
	publish("2")
	next("edge lost 1.zzzzzzzz-5")
	next("message 2")
	if st := s.Stats(); st.LostContinuity != 1 {
		t.Errorf("LostContinuity %d, want 1", st.LostContinuity)
	}
	if len(told) != 1 || told[0].Continuity != codec.ContinuityLost {
		t.Errorf("OnAttached told %v, want one loss", told)
	}
}

func expectData(t *testing.T, ch <-chan Message, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		select {
		case m := <-ch:
			if string(m.Data) != strconv.Itoa(i) {
				t.Fatalf("got %s, want %d", m.Data, i)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("message %d did not come", i)
		}
	}
}

// TestReconnectResumes: the connection drops under a subscription; the
// session reconnects and resumes after the last message buffered: the
// messages published meanwhile come once, in order.
func TestReconnectResumes(t *testing.T) {
	_, url := startEdge(t, gateway.Config{})
	events := make(chan ContinuityEvent, 10)
	s := NewSession(SessionOptions{URLs: []string{url}, MinBackoff: 10 * time.Millisecond, Logger: quiet()})
	defer s.Close()
	sub, err := s.Subscribe(ctx10(t), "r", SubscribeOptions{OnContinuity: func(e ContinuityEvent) { events <- e }})
	if err != nil {
		t.Fatal(err)
	}
	publish := mustPublisher(t, url, "r")
	for i := range 5 {
		publish(strconv.Itoa(i))
	}
	expectData(t, sub.Messages(), 0, 5)
	s.mu.Lock()
	c := s.conn
	s.mu.Unlock()
	_ = c.ws.UnderlyingConn().Close() // the network drops
	for i := 5; i < 10; i++ {
		publish(strconv.Itoa(i))
	}
	expectData(t, sub.Messages(), 5, 10)
	for _, want := range []ContinuityEvent{
		{Channel: "r", Continuity: codec.ContinuityFresh, Cause: CauseAttach},
		{Channel: "r", Continuity: codec.ContinuityResumed, Cause: CauseReconnect},
	} {
		var e ContinuityEvent
		select {
		case e = <-events:
		default:
			t.Fatalf("no event %+v before the messages after it", want)
		}
		e.Pos = ""
		if e != want {
			t.Errorf("event %+v, want %+v", e, want)
		}
	}
	// The replay may come before the new connection is counted: it counts
	// once every channel is re-attached.
	waitFor(t, "the second connection counted", func() bool { return s.Stats().Connects == 2 })
	if st := s.Stats(); st.LostContinuity != 0 {
		t.Errorf("stats %+v, want no loss", st)
	}
}

// TestOverflowBeyondHistory: the application falls so far behind that the
// edge's history no longer holds what its subscription dropped; the
// resync says so (lost), and the stream goes on from the edge's position.
func TestOverflowBeyondHistory(t *testing.T) {
	_, url := startEdge(t, gateway.Config{HistorySize: 5})
	s := NewSession(SessionOptions{URLs: []string{url}, Logger: quiet()})
	defer s.Close()
	release := make(chan struct{})
	entered := make(chan struct{}, 100)
	got := make(chan string, 100)
	sub, err := s.Subscribe(ctx10(t), "o", SubscribeOptions{
		Buffer: 2,
		OnMessage: func(m Message) {
			entered <- struct{}{}
			<-release
			got <- string(m.Data)
		},
		OnContinuity: func(e ContinuityEvent) { got <- fmt.Sprintf("%s %s", e.Cause, e.Continuity) },
	})
	if err != nil {
		t.Fatal(err)
	}
	publish := mustPublisher(t, url, "o")
	publish("0")
	<-entered // the handler holds 0: 1 and 2 fill the buffer, the rest is dropped
	for i := 1; i < 20; i++ {
		publish(strconv.Itoa(i))
	}
	waitFor(t, "17 messages dropped", func() bool { return sub.Stats().Dropped == 17 })
	close(release)
	next := func() string {
		t.Helper()
		select {
		case g := <-got:
			return g
		case <-time.After(10 * time.Second):
			t.Fatal("nothing more delivered")
		}
		return ""
	}
	if g := next(); g != "attach fresh" {
		t.Fatalf("got %q first", g)
	}
	// History (5 messages) no longer holds 3, the first dropped.
	for _, want := range []string{"0", "1", "2", "resync lost"} {
		if g := next(); g != want {
			t.Fatalf("got %q, want %q", g, want)
		}
	}
	publish("20")
	if g := next(); g != "20" {
		t.Fatalf("after the loss got %q, want the next live message", g)
	}
	if st := sub.Stats(); st.Lost != 1 || st.Resyncs != 1 {
		t.Errorf("stats %+v", st)
	}
}
