package client_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/feedgate/feedgate/auth"
	"github.com/feedgate/feedgate/client"
	"github.com/feedgate/feedgate/codec"
	"github.com/feedgate/feedgate/gateway"
	"github.com/feedgate/feedgate/internal/edgetest"
)

func mustSession(t *testing.T, o client.SessionOptions) *client.Session {
	t.Helper()
	if o.Logger == nil {
		o.Logger = quietLog()
	}
	if o.MinBackoff == 0 {
		o.MinBackoff = 10 * time.Millisecond
	}
	s := client.NewSession(o)
	t.Cleanup(func() { s.Close() })
	return s
}

func mustPublish(t *testing.T, c *client.Client, channel string, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if _, err := c.Publish(edgetest.Ctx10(t), channel, []byte(strconv.Itoa(i)), client.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

func expectSeq(t *testing.T, ch <-chan client.Message, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		select {
		case m, ok := <-ch:
			if !ok {
				t.Fatalf("closed before message %d", i)
			}
			if string(m.Data) != strconv.Itoa(i) {
				t.Fatalf("got %s, want %d", m.Data, i)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("message %d did not come", i)
		}
	}
}

// TestSubscriptionsIndependent: a handler that blocks does not hold up
// another subscription of the same session; once it returns, its
// subscription gets every message once and in order, the ones that did
// not fit its buffer fetched again from the edge's history.
func TestSubscriptionsIndependent(t *testing.T) {
	e := edgetest.MustStartEdge(t, gateway.Config{}, nil)
	s := mustSession(t, client.SessionOptions{URLs: []string{e.URL}})
	release := make(chan struct{})
	slowGot := make(chan client.Message, 100)
	var events []client.ContinuityEvent
	var mu sync.Mutex
	slow, err := s.Subscribe(edgetest.Ctx10(t), "slow", client.SubscribeOptions{
		Buffer: 4,
		OnMessage: func(m client.Message) {
			<-release
			slowGot <- m
		},
		OnContinuity: func(e client.ContinuityEvent) {
			mu.Lock()
			events = append(events, e)
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	fast, err := s.Subscribe(edgetest.Ctx10(t), "fast", client.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Subscribe(edgetest.Ctx10(t), "fast", client.SubscribeOptions{}); !errors.Is(err, client.ErrSubscribed) {
		t.Fatalf("second subscription to a channel: %v, want ErrSubscribed", err)
	}
	pub := edgetest.MustDial(t, e.URL, client.Options{})
	edgetest.MustAttach(t, pub, "slow", codec.AttachOptions{PublishOnly: true})
	edgetest.MustAttach(t, pub, "fast", codec.AttachOptions{PublishOnly: true})
	mustPublish(t, pub, "slow", 0, 30)
	mustPublish(t, pub, "fast", 0, 30)
	expectSeq(t, fast.Messages(), 0, 30) // while slow's handler is blocked
	edgetest.WaitFor(t, "slow's buffer to overflow", func() bool { return slow.Stats().Dropped > 0 })
	close(release)
	expectSeq(t, slowGot, 0, 30)
	st := slow.Stats()
	if st.Delivered != 30 || st.Resyncs == 0 || st.Lost != 0 {
		t.Errorf("slow subscription stats %+v", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) < 2 || events[0].Cause != client.CauseAttach || events[1].Cause != client.CauseResync || events[1].Continuity != codec.ContinuityResumed {
		t.Errorf("continuity events %+v: want the attach, then resumed resyncs", events)
	}
}

// TestDetach: after Detach, the subscription's channel is closed and its
// messages go nowhere; the channel can be subscribed again.
func TestDetach(t *testing.T) {
	e := edgetest.MustStartEdge(t, gateway.Config{}, nil)
	s := mustSession(t, client.SessionOptions{URLs: []string{e.URL}})
	sub, err := s.Subscribe(edgetest.Ctx10(t), "d", client.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pub := edgetest.MustDial(t, e.URL, client.Options{})
	edgetest.MustAttach(t, pub, "d", codec.AttachOptions{PublishOnly: true})
	mustPublish(t, pub, "d", 0, 1)
	expectSeq(t, sub.Messages(), 0, 1)
	if err := sub.Detach(edgetest.Ctx10(t)); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-sub.Messages(); ok {
		t.Fatal("a message after Detach")
	}
	<-sub.Done()
	if err := sub.Err(); err != nil {
		t.Errorf("Err after Detach: %v", err)
	}
	mustPublish(t, pub, "d", 1, 2)
	again, err := s.Subscribe(edgetest.Ctx10(t), "d", client.SubscribeOptions{Rewind: 1})
	if err != nil {
		t.Fatal(err)
	}
	expectSeq(t, again.Messages(), 1, 2)
	if err := s.Detach(edgetest.Ctx10(t), "d"); err != nil {
		t.Fatal(err)
	}
	<-again.Done()
}

// TestStateEventsOnDrain: an edge drains; the session reports it with the
// edge's code and reason, moves to the next edge, and re-attaches there.
func TestStateEventsOnDrain(t *testing.T) {
	a := edgetest.MustStartEdge(t, gateway.Config{}, nil)
	b := edgetest.MustStartEdge(t, gateway.Config{}, nil)
	events := make(chan client.StateEvent, 100)
	conts := make(chan client.ContinuityEvent, 10)
	s := mustSession(t, client.SessionOptions{URLs: []string{a.URL, b.URL},
		OnState: func(e client.StateEvent) { events <- e }})
	if _, err := s.Subscribe(edgetest.Ctx10(t), "s", client.SubscribeOptions{
		OnContinuity: func(e client.ContinuityEvent) { conts <- e },
	}); err != nil {
		t.Fatal(err)
	}
	next := func(want client.State, url string) client.StateEvent {
		t.Helper()
		select {
		case e := <-events:
			if e.State != want || e.URL != url {
				t.Fatalf("got %v, want %v %s", e, want, url)
			}
			return e
		case <-time.After(10 * time.Second):
			t.Fatalf("no %v event", want)
		}
		return client.StateEvent{}
	}
	next(client.StateConnecting, a.URL)
	next(client.StateConnected, a.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go a.Srv.Shutdown(ctx)
	if d := next(client.StateDisconnected, a.URL); d.Code != codec.CodeGoingAway || !d.Reconnect || d.Reason == "" {
		t.Errorf("disconnected event %+v: want going_away, reconnecting", d)
	}
	next(client.StateConnecting, b.URL)
	next(client.StateConnected, b.URL)
	for _, want := range []client.ContinuityCause{client.CauseAttach, client.CauseReconnect} {
		select {
		case e := <-conts:
			if e.Cause != want {
				t.Fatalf("continuity event %+v, want cause %v", e, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no %v continuity event", want)
		}
	}
	s.Close()
	if e := next(client.StateClosed, ""); e.Err != nil {
		t.Errorf("closed with %v", e.Err)
	}
}

// TestHistory pages through a channel's history, newest first.
func TestHistory(t *testing.T) {
	e := edgetest.MustStartEdge(t, gateway.Config{}, nil)
	s := mustSession(t, client.SessionOptions{URLs: []string{e.URL}})
	if _, err := s.Attach(edgetest.Ctx10(t), "h:1/x", codec.AttachOptions{PublishOnly: true}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := s.Publish(edgetest.Ctx10(t), "h:1/x", []byte(strconv.Itoa(i)), client.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	var o client.HistoryOptions
	for pages := 0; ; pages++ {
		o.Limit = 2
		p, err := s.History(edgetest.Ctx10(t), "h:1/x", o)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range p.Messages {
			if m.Channel != "h:1/x" || m.ID == "" || m.Pos == "" || m.Time == 0 {
				t.Errorf("history message %+v", m)
			}
			got = append(got, string(m.Data))
		}
		if p.Next == "" {
			break
		}
		if pages > 5 {
			t.Fatal("too many pages")
		}
		o.Before = p.Next
	}
	if fmt.Sprint(got) != "[4 3 2 1 0]" {
		t.Errorf("history %v, want [4 3 2 1 0]", got)
	}
	_, err := s.History(edgetest.Ctx10(t), "h", client.HistoryOptions{Limit: 5000})
	if !errors.Is(err, codec.ErrBadRequest) {
		t.Errorf("limit 5000: %v, want bad_request", err)
	}
}

// TestCredentialsBeforeEachConnect: the session asks for credentials
// before every attempt; a refused key is replaced by the next one asked.
func TestCredentialsBeforeEachConnect(t *testing.T) {
	a, err := auth.NewStatic([]string{"feed1:0123456789abcdef"})
	if err != nil {
		t.Fatal(err)
	}
	e := edgetest.MustStartEdge(t, gateway.Config{Authorizer: a}, nil)
	var calls atomic.Int32
	s := mustSession(t, client.SessionOptions{URLs: []string{e.URL},
		Credentials: func(context.Context) (client.Credentials, error) {
			if calls.Add(1) == 1 {
				return client.Credentials{APIKey: "feed1:expired-secret-000"}, nil
			}
			return client.Credentials{APIKey: "feed1:0123456789abcdef"}, nil
		}})
	if _, err := s.Attach(edgetest.Ctx10(t), "k", codec.AttachOptions{PublishOnly: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Publish(edgetest.Ctx10(t), "k", []byte(`1`), client.PublishOptions{}); err != nil {
		t.Fatalf("publish with the refreshed key: %v", err)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("credentials asked %d times, want 2 (one refused attempt, one connection)", n)
	}
}

// TestRefusedUpgradeCode: when the edge refuses the upgrade (a wrong API
// key), Dial's error carries the edge's code, and a session's
// disconnected event says it, instead of Code 0 and a bare "bad handshake".
// A refusal that sending the same again cannot turn ends the session once
// every URL gave it (before, the session retried a wrong key forever,
// every 5 s, and its application never learnt that it was over).
func TestRefusedUpgradeCode(t *testing.T) {
	a, err := auth.NewStatic([]string{"feed1:0123456789abcdef"})
	if err != nil {
		t.Fatal(err)
	}
	e1 := edgetest.MustStartEdge(t, gateway.Config{Authorizer: a}, nil)
	e2 := edgetest.MustStartEdge(t, gateway.Config{Authorizer: a}, nil)
	_, err = client.Dial(edgetest.Ctx10(t), e1.URL, client.Options{APIKey: "feed1:wrong-secret-00000"})
	var ce *codec.Error
	if !errors.As(err, &ce) || ce.Code != codec.CodeUnauthorized {
		t.Fatalf("Dial with a wrong key: %v, want an error with code %v", err, codec.CodeUnauthorized)
	}
	var (
		mu     sync.Mutex
		events []client.StateEvent
	)
	s := mustSession(t, client.SessionOptions{URLs: []string{e1.URL, e2.URL}, Options: client.Options{APIKey: "feed1:wrong-secret-00000"},
		MinBackoff: time.Millisecond,
		OnState: func(ev client.StateEvent) {
			mu.Lock()
			events = append(events, ev)
			mu.Unlock()
		}})
	defer s.Close()
	select {
	case <-s.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("a session refused by every edge for good did not end within 10s")
	}
	if err := s.Err(); !errors.As(err, &ce) || ce.Code != codec.CodeUnauthorized {
		t.Fatalf("Err: %v, want the edge's refusal with code %v", err, codec.CodeUnauthorized)
	}
	edgetest.WaitFor(t, "the closed event", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(events) > 0 && events[len(events)-1].State == client.StateClosed
	})
	mu.Lock()
	defer mu.Unlock()
	var got []string
	for _, ev := range events {
		switch ev.State {
		case client.StateConnected:
			t.Fatalf("connected with a wrong key: %v", ev)
		case client.StateDisconnected:
			if ev.Code != codec.CodeUnauthorized {
				t.Fatalf("disconnected event %+v, want code %v", ev, codec.CodeUnauthorized)
			}
			got = append(got, fmt.Sprintf("%s reconnect=%v", ev.URL, ev.Reconnect))
		}
	}
	want := []string{e1.URL + " reconnect=true", e2.URL + " reconnect=false"}
	if !slices.Equal(got, want) {
		t.Fatalf("disconnected events %q, want %q (each edge tried once, then the end)", got, want)
	}
}

// TestRetryableRefusalReconnects: an edge that refuses for now
// (edge_full) is tried again until it admits the session.
func TestRetryableRefusalReconnects(t *testing.T) {
	e := edgetest.MustStartEdge(t, gateway.Config{Limits: gateway.Limits{MaxConnections: 1}}, nil)
	hog := edgetest.MustDial(t, e.URL, client.Options{})
	// The edge counts a connection once its handshake is done: until then
	// another one could take the place and the hog be closed instead.
	edgetest.WaitFor(t, "the hog connection counted", func() bool { return e.Srv.Stats().Connections == 1 })
	refused := make(chan struct{})
	var once sync.Once
	s := mustSession(t, client.SessionOptions{URLs: []string{e.URL}, MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		OnState: func(ev client.StateEvent) {
			if ev.State == client.StateDisconnected && ev.Code == codec.CodeEdgeFull && ev.Reconnect {
				once.Do(func() { close(refused) })
			}
		}})
	defer s.Close()
	select {
	case <-refused:
	case <-s.Done():
		t.Fatalf("session ended on edge_full: %v", s.Err())
	case <-time.After(10 * time.Second):
		t.Fatal("no edge_full refusal within 10s")
	}
	hog.Close()
	if _, err := s.Attach(edgetest.Ctx10(t), "a", codec.AttachOptions{}); err != nil {
		t.Fatalf("attach once the edge had room: %v", err)
	}
}

// TestAttachAgain: Session.Attach on a channel it attached before
// replaces the options (as before Subscribe existed); Subscribe on it is
// refused.
func TestAttachAgain(t *testing.T) {
	e := edgetest.MustStartEdge(t, gateway.Config{}, nil)
	s := mustSession(t, client.SessionOptions{URLs: []string{e.URL}})
	for range 2 {
		if _, err := s.Attach(edgetest.Ctx10(t), "a", codec.AttachOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Subscribe(edgetest.Ctx10(t), "a", client.SubscribeOptions{}); !errors.Is(err, client.ErrSubscribed) {
		t.Fatalf("Subscribe on an attached channel: %v, want ErrSubscribed", err)
	}
	pub := edgetest.MustDial(t, e.URL, client.Options{})
	edgetest.MustAttach(t, pub, "a", codec.AttachOptions{PublishOnly: true})
	mustPublish(t, pub, "a", 0, 3)
	expectSeq(t, s.Messages(), 0, 3)
}

// TestPublishWaitsRetryAfter: a Session publish nacked rate_limited is
// retried once the edge's retry_after has passed, not every MinBackoff:
// one refusal per message over the burst. Before, at 2 publishes/s, each
// refused message was retried every 100 ms, refused about five times, and
// each early retry counted against the connection's error budget.
func TestPublishWaitsRetryAfter(t *testing.T) {
	e := edgetest.MustStartEdge(t, gateway.Config{Limits: gateway.Limits{PublishPerConn: gateway.Rate{PerSecond: 2, Burst: 1}}}, nil)
	s := mustSession(t, client.SessionOptions{URLs: []string{e.URL}})
	defer s.Close()
	if _, err := s.Attach(edgetest.Ctx10(t), "c", codec.AttachOptions{PublishOnly: true}); err != nil {
		t.Fatal(err)
	}
	const n = 3
	for i := range n {
		if _, err := s.Publish(edgetest.Ctx10(t), "c", []byte(strconv.Itoa(i)), client.PublishOptions{}); err != nil {
			t.Fatalf("publish %d: %v (session: %v)", i, err, s.Err())
		}
	}
	// The edge's clock and the session's timer may let a message through
	// without a refusal on a slow machine, never with more than one.
	if got := e.Srv.Stats().Refused[gateway.RefusedPublishConn]; got > n-1 {
		t.Fatalf("%d rate refusals for %d publishes over a burst of 1, want at most %d (one each, then a retry after retry_after)", got, n, n-1)
	}
}
