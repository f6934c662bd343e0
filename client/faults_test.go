package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/feedgate/feedgate/client"
	"github.com/feedgate/feedgate/codec"
	"github.com/feedgate/feedgate/gateway"
	"github.com/feedgate/feedgate/internal/edgetest"
)

// TestHistoryWithToken: a subscriber authenticated with a capability
// token (the normal case for an app) that allows history reads the
// channel's history with Session.History. The package doc says
// SessionOptions.Credentials' result replaces APIKey and Token "for that
// connection and for History"; protocol §16.2 takes a token as
// Authorization: Bearer. Before, History sent only an API key, and a
// token-authenticated app got unauthorized (4010).
func TestHistoryWithToken(t *testing.T) {
	ta := edgetest.MustTokenAuth(t, nil, nil)
	e := edgetest.MustStartEdge(t, gateway.Config{Authorizer: ta.Authorizer}, nil)
	tok, _ := ta.Token(t, "fan-1", `{"odds:*":["subscribe","history"]}`, time.Hour, time.Now())

	pub := edgetest.MustDial(t, e.URL, client.Options{APIKey: edgetest.PublisherKey})
	edgetest.MustAttach(t, pub, "odds:m1", codec.AttachOptions{PublishOnly: true})
	if _, err := pub.Publish(edgetest.Ctx10(t), "odds:m1", []byte(`1`), client.PublishOptions{}); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		o    client.SessionOptions
	}{
		{"Options.Token", client.SessionOptions{Options: client.Options{Token: tok}}},
		{"Credentials", client.SessionOptions{Credentials: func(context.Context) (client.Credentials, error) {
			return client.Credentials{Token: tok}, nil
		}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.URLs = []string{e.URL}
			s := mustSession(t, tc.o)
			if _, err := s.Subscribe(edgetest.Ctx10(t), "odds:m1", client.SubscribeOptions{}); err != nil {
				t.Fatalf("subscribe with the token: %v", err)
			}
			p, err := s.History(edgetest.Ctx10(t), "odds:m1", client.HistoryOptions{})
			if err != nil {
				t.Fatalf("History with a token allowing history: %v", err)
			}
			if len(p.Messages) != 1 {
				t.Fatalf("history has %d messages, want 1", len(p.Messages))
			}
		})
	}
}

// TestAbandonedPublishDoesNotBlockChannel: a publisher's Session.Publish
// is nacked rate_limited and the caller gives up (its context ends while
// the session waits retry_after). The edge now refuses every later
// publish on that channel on this connection until the refused id is
// published again, or the channel is re-attached (protocol §10). A later
// Publish of another message, with plenty of time and the rate allowing
// it again, succeeds: the session publishes the refused message in its
// place (its outcome was unknown to the caller), then the next. Before,
// the next publish was refused for order again and again until its 8 s
// ran out.
func TestAbandonedPublishDoesNotBlockChannel(t *testing.T) {
	e := edgetest.MustStartEdge(t, gateway.Config{Limits: gateway.Limits{PublishPerConn: gateway.Rate{PerSecond: 2, Burst: 1}}}, nil)
	var mu sync.Mutex
	var states []string
	var closed atomic.Bool
	s := mustSession(t, client.SessionOptions{URLs: []string{e.URL}, OnState: func(ev client.StateEvent) {
		mu.Lock()
		states = append(states, ev.String())
		mu.Unlock()
		if ev.State == client.StateClosed {
			closed.Store(true)
		}
	}})
	if _, err := s.Attach(edgetest.Ctx10(t), "c", codec.AttachOptions{PublishOnly: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Publish(edgetest.Ctx10(t), "c", []byte(`0`), client.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	// Over the burst: nacked rate_limited, retry_after ~500 ms; the caller
	// gives up after 50 ms.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	_, err := s.Publish(ctx, "c", []byte(`1`), client.PublishOptions{})
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("publish over the rate with 50ms: %v, want deadline exceeded", err)
	}
	start := time.Now()
	ctx, cancel = context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	_, err = s.Publish(ctx, "c", []byte(`2`), client.PublishOptions{})
	if err != nil {
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("next publish on the channel after %v: %v (session ended: %v, err %v; states %v)", time.Since(start).Round(time.Millisecond), err, closed.Load(), s.Err(), states)
	}
}

// TestCloseFromOnState: SessionOptions.OnState says "it may call the
// Session's methods" (no exception). An application that closes its
// session when the session says it will not reconnect (a wrong key)
// calls Close from OnState. Close must return, and Done close. Before, it
// deadlocked: shutdown waited for the OnState goroutine, which waited in
// Close.
func TestCloseFromOnState(t *testing.T) {
	ta := edgetest.MustTokenAuth(t, nil, nil)
	e := edgetest.MustStartEdge(t, gateway.Config{Authorizer: ta.Authorizer}, nil)
	closeReturned := make(chan struct{})
	var s *client.Session
	ready := make(chan struct{})
	s = client.NewSession(client.SessionOptions{
		URLs:    []string{e.URL},
		Options: client.Options{APIKey: "pub:wrong-secret-0000000000"},
		Logger:  quietLog(),
		OnState: func(ev client.StateEvent) {
			if ev.State == client.StateDisconnected && !ev.Reconnect {
				<-ready
				s.Close()
				close(closeReturned)
			}
		},
	})
	close(ready)
	select {
	case <-closeReturned:
	case <-time.After(5 * time.Second):
		t.Fatal("Close called from OnState did not return within 5s (deadlock: shutdown waits for the OnState goroutine, which waits in Close)")
	}
	select {
	case <-s.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("session not done")
	}
}

// TestCloseFromHandler: Close called from a subscription's handler
// returns at once, and the session ends once the handler returned.
// Before, it hung for ever (it waited for the handler calling it), and
// with it every other goroutine that called Close.
func TestCloseFromHandler(t *testing.T) {
	e := edgetest.MustStartEdge(t, gateway.Config{}, nil)
	s := client.NewSession(client.SessionOptions{URLs: []string{e.URL}, Logger: quietLog()})
	returned := make(chan any, 1)
	if _, err := s.Subscribe(edgetest.Ctx10(t), "h", client.SubscribeOptions{OnMessage: func(client.Message) {
		defer func() { returned <- recover() }()
		s.Close()
	}}); err != nil {
		t.Fatal(err)
	}
	pub := edgetest.MustDial(t, e.URL, client.Options{})
	edgetest.MustAttach(t, pub, "h", codec.AttachOptions{PublishOnly: true})
	if _, err := pub.Publish(edgetest.Ctx10(t), "h", []byte(`1`), client.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-returned:
		if r != nil {
			t.Fatalf("Close from OnMessage panicked: %v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close called from OnMessage did not return within 5s: the application hangs")
	}
	select {
	case <-s.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("session not done after Close from OnMessage")
	}
}

// TestNoGoroutinesAfterClose: a session that subscribed, published,
// read history, detached and closed leaves no goroutine behind.
func TestNoGoroutinesAfterClose(t *testing.T) {
	e := edgetest.MustStartEdge(t, gateway.Config{}, nil)
	pub := edgetest.MustDial(t, e.URL, client.Options{})
	edgetest.MustAttach(t, pub, "g", codec.AttachOptions{PublishOnly: true})
	// History's keep-alive connections are the transport's, not the
	// session's: closed below, before counting.
	tr := &http.Transport{}
	base := clientGoroutines()
	for range 3 {
		s := client.NewSession(client.SessionOptions{URLs: []string{e.URL}, Logger: quietLog(), OnState: func(client.StateEvent) {}, HTTPClient: &http.Client{Transport: tr}})
		got := make(chan struct{}, 10)
		sub, err := s.Subscribe(edgetest.Ctx10(t), "g", client.SubscribeOptions{Delta: codec.DeltaVCDIFF, OnMessage: func(client.Message) { got <- struct{}{} }})
		if err != nil {
			t.Fatal(err)
		}
		sub2, err := s.Subscribe(edgetest.Ctx10(t), "g2", client.SubscribeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_ = sub2
		mustPublish(t, pub, "g", 0, 2)
		<-got
		<-got
		if _, err := s.Publish(edgetest.Ctx10(t), "g", []byte(`9`), client.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.History(edgetest.Ctx10(t), "g", client.HistoryOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := sub.Detach(edgetest.Ctx10(t)); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	tr.CloseIdleConnections()
	// The edge's goroutines (fasthttp keeps idle workers) are in this
	// process too: count the client package's only.
	deadline := time.Now().Add(10 * time.Second)
	for n := clientGoroutines(); n > base; n = clientGoroutines() {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d client goroutines after Close, %d before:\n%s", n, base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// clientGoroutines counts the goroutines running code of package client
// (the test's own run package client_test).
func clientGoroutines() int {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "github.com/feedgate/feedgate/client.") {
			n++
		}
	}
	return n
}

// TestConcurrentPublishersOverRate: a provider publishes from a few
// goroutines on one channel through one Session, a little over its
// connection's rate. Each refused message waits its retry_after
// (protocol §10, §14.1: "a client that waits as told is never counted"),
// so every Publish should succeed and the session should live on. The
// publishes refused behind the first refusal ("an earlier publish on this
// channel was refused") carry no retry_after, and the session retries them
// on its own MinBackoff schedule, which the edge counts against the
// error budget. Before the session's per-channel lanes, the edge cut the
// publisher off (too_many_errors) in 5 of 5 runs.
func TestConcurrentPublishersOverRate(t *testing.T) {
	e := edgetest.MustStartEdge(t, gateway.Config{Limits: gateway.Limits{PublishPerConn: gateway.Rate{PerSecond: 5, Burst: 2}}}, nil)
	s := mustSession(t, client.SessionOptions{URLs: []string{e.URL}, MinBackoff: 100 * time.Millisecond}) // the default
	if _, err := s.Attach(edgetest.Ctx10(t), "c", codec.AttachOptions{PublishOnly: true}); err != nil {
		t.Fatal(err)
	}
	watcher := edgetest.MustDial(t, e.URL, client.Options{})
	edgetest.MustAttach(t, watcher, "c", codec.AttachOptions{})
	const workers, each = 8, 3
	errs := make(chan error, workers*each)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				_, err := s.Publish(ctx, "c", []byte(strconv.Itoa(w*100+i)), client.PublishOptions{})
				cancel()
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("publish: %v", err)
	}
	select {
	case <-s.Done():
		t.Fatalf("session ended: %v", s.Err())
	default:
	}
	if st := s.Stats(); st.Connects != 1 {
		t.Errorf("%d connections, want 1 (the edge dropped the publisher)", st.Connects)
	}
	// Each worker's messages arrive once each, in the worker's order.
	next := map[int]int{}
	for range workers * each {
		m := edgetest.NextMessage(t, watcher)
		v, _ := strconv.Atoi(string(m.Data))
		w, i := v/100, v%100
		if i != next[w] {
			t.Fatalf("worker %d: got message %d, want %d (lost, repeated or reordered)", w, i, next[w])
		}
		next[w]++
	}
}

// TestResubscribeWhileDetaching: one goroutine detaches a channel
// (the user left a match screen) while another subscribes it again (the
// user came back): a common UI race. Whenever Subscribe returns a
// subscription, that subscription must get the channel's messages.
// Before, Detach removed the subscription from the session before it sent
// its detach frame, so a Subscribe in between could send its attach first;
// the edge applied attach, detach, in that order, and the new
// subscription, live as far as the application could tell, never got a
// message (9 of 200 trials; in other runs the refused detaches of such
// subscriptions got the session cut off with too_many_errors). Now an
// attach of a channel waits for a detach of it in flight.
func TestResubscribeWhileDetaching(t *testing.T) {
	e := edgetest.MustStartEdge(t, gateway.Config{}, nil)
	s := mustSession(t, client.SessionOptions{URLs: []string{e.URL}})
	pub := edgetest.MustDial(t, e.URL, client.Options{})
	const trials = 200
	for i := range trials {
		ch := "r:" + strconv.Itoa(i)
		edgetest.MustAttach(t, pub, ch, codec.AttachOptions{PublishOnly: true})
		old, err := s.Subscribe(edgetest.Ctx10(t), ch, client.SubscribeOptions{})
		if err != nil {
			t.Fatalf("trial %d: subscribe: %v (session: %v)", i, err, s.Err())
		}
		go old.Detach(context.Background())
		var sub *client.Subscription
		for {
			sub, err = s.Subscribe(edgetest.Ctx10(t), ch, client.SubscribeOptions{})
			if errors.Is(err, client.ErrSubscribed) {
				runtime.Gosched()
				continue
			}
			if err != nil {
				t.Fatalf("trial %d: subscribe: %v (session: %v)", i, err, s.Err())
			}
			break
		}
		<-old.Done()
		// The old detach is answered (Done) and the new attach too
		// (Subscribe returned): a message published now reaches sub.
		mustPublish(t, pub, ch, 0, 1)
		select {
		case <-sub.Messages():
		case <-time.After(10 * time.Second):
			t.Fatalf("trial %d: the re-subscription made while the old one detached got no message in 10 s (Subscribe had returned it as live)", i)
		}
		if err := sub.Detach(edgetest.Ctx10(t)); err != nil {
			t.Fatalf("trial %d: detach: %v", i, err)
		}
	}
}

// TestDeltaOverflowPayloads: a delta subscription with a small buffer
// and a slow handler overflows and resyncs again and again while an odds
// market is repriced. Every message handed over must carry exactly the
// payload published under its ID, in publish order, none twice.
func TestDeltaOverflowPayloads(t *testing.T) {
	for _, f := range []codec.Format{codec.FormatJSON, codec.FormatMsgpack} {
		t.Run(f.String(), func(t *testing.T) {
			e := edgetest.MustStartEdge(t, gateway.Config{}, nil)
			const n = 300
			payload := func(i int) string {
				b := []byte(`{"market":"1x2","v":` + strconv.Itoa(i) + `,"sel":[`)
				for j := range 40 {
					if j > 0 {
						b = append(b, ',')
					}
					p := 100 + j
					if j == i%40 {
						p += i
					}
					b = append(b, `{"id":"s`+strconv.Itoa(j)+`","price":"`+strconv.Itoa(p)+`"}`...)
				}
				return string(append(b, "]}"...))
			}
			var mu sync.Mutex
			var got []string
			done := make(chan struct{})
			s := mustSession(t, client.SessionOptions{URLs: []string{e.URL}, Options: client.Options{Format: f}})
			_, err := s.Subscribe(edgetest.Ctx10(t), "d", client.SubscribeOptions{Delta: codec.DeltaVCDIFF, Buffer: 4, OnMessage: func(m client.Message) {
				time.Sleep(3 * time.Millisecond) // a slow screen
				mu.Lock()
				got = append(got, m.ID+"="+string(m.Data))
				if m.ID == "m"+strconv.Itoa(n-1) {
					close(done)
				}
				mu.Unlock()
			}})
			if err != nil {
				t.Fatal(err)
			}
			pub := edgetest.MustDial(t, e.URL, client.Options{})
			edgetest.MustAttach(t, pub, "d", codec.AttachOptions{PublishOnly: true})
			for i := range n {
				if _, err := pub.Publish(edgetest.Ctx10(t), "d", []byte(payload(i)), client.PublishOptions{ID: "m" + strconv.Itoa(i)}); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("last message not delivered")
			}
			mu.Lock()
			defer mu.Unlock()
			if len(got) != n {
				t.Errorf("%d messages delivered, want %d", len(got), n)
			}
			for i, g := range got {
				id, data, _ := strings.Cut(g, "=")
				var a, b any
				_ = json.Unmarshal([]byte(data), &a)
				_ = json.Unmarshal([]byte(payload(i)), &b)
				if id != "m"+strconv.Itoa(i) || !reflect.DeepEqual(a, b) {
					t.Fatalf("message %d: %.80s", i, g)
				}
			}
			t.Logf("stats %+v", s.Stats())
		})
	}
}

// TestCloseConcurrentWithCalls: Close while other goroutines
// Subscribe, Publish, Detach and read History. Every call returns, with
// ErrClosed once the session closes, Close returns, no race, no panic.
// Before, a call whose write met the closing socket returned the
// WebSocket library's "websocket: close sent" (most runs).
func TestCloseConcurrentWithCalls(t *testing.T) {
	e := edgetest.MustStartEdge(t, gateway.Config{}, nil)
	for round := range 30 {
		s := client.NewSession(client.SessionOptions{URLs: []string{e.URL}, Logger: quietLog(), OnState: func(client.StateEvent) {}})
		if _, err := s.Subscribe(edgetest.Ctx10(t), "x", client.SubscribeOptions{}); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for w := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					var err error
					switch w % 3 {
					case 0:
						var sub *client.Subscription
						sub, err = s.Subscribe(ctx, "c"+strconv.Itoa(w)+"-"+strconv.Itoa(i), client.SubscribeOptions{})
						if err == nil {
							err = sub.Detach(ctx)
						}
					case 1:
						_, err = s.Publish(ctx, "x", []byte(`1`), client.PublishOptions{})
					case 2:
						_, err = s.Attach(ctx, "l"+strconv.Itoa(i%3), codec.AttachOptions{})
					}
					cancel()
					if err != nil {
						if !errors.Is(err, client.ErrClosed) {
							t.Errorf("round %d worker %d: %v", round, w, err)
						}
						return
					}
				}
			}()
		}
		time.Sleep(time.Duration(round%5) * 5 * time.Millisecond)
		closed := make(chan struct{})
		go func() { s.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: Close did not return", round)
		}
		wg.Wait()
	}
}

// TestPublishAcrossSessionDroppedConnection: the session drops a
// connection itself (here: the edge went quiet for DeadAfter; also after
// a resync without an answer) while publishes are in flight. Each
// Publish must be sent again on the next connection (package doc:
// "publishes it again, with the same ID, when the connection is lost
// before the ack"), never fail with the WebSocket library's error.
func TestPublishAcrossSessionDroppedConnection(t *testing.T) {
	e := edgetest.MustStartEdge(t, gateway.Config{HeartbeatInterval: time.Hour}, nil)
	s := mustSession(t, client.SessionOptions{URLs: []string{e.URL}, DeadAfter: 40 * time.Millisecond})
	if _, err := s.Attach(edgetest.Ctx10(t), "p", codec.AttachOptions{PublishOnly: true}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var failed atomic.Int32
	var published atomic.Int32
	stop := time.Now().Add(5 * time.Second)
	for w := range 1 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(stop); i++ {
				_, err := s.Publish(edgetest.Ctx10(t), "p", []byte(strconv.Itoa(i)), client.PublishOptions{})
				if err != nil {
					if failed.Add(1) <= 3 {
						t.Errorf("worker %d publish %d: %v", w, i, err)
					}
					continue
				}
				published.Add(1)
				time.Sleep(time.Duration(38+i%13) * time.Millisecond) // around DeadAfter
			}
		}()
	}
	wg.Wait()
	t.Logf("%d published, %d failed, %d connections", published.Load(), failed.Load(), s.Stats().Connects)
}
