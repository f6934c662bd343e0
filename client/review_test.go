package client_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/feedgate/feedgate/auth"
	"github.com/feedgate/feedgate/client"
	"github.com/feedgate/feedgate/codec"
	"github.com/feedgate/feedgate/gateway"
	"github.com/feedgate/feedgate/internal/edgetest"
)

// TestCloseWhileHandlerPublishes: a handler republishes what it
// receives (a derived feed) and another goroutine closes the session.
// The package doc: handlers "may call the session's methods"; Close
// "waits for every handler to return". The handler's Publish must then
// fail (ErrClosed) so the handler returns and Close ends. Session.current
// waited for s.done or a new connection, never for s.ctx: s.done is closed
// only after every handler returned, so Publish (and Close) waited for the
// handler's ctx, for ever with context.Background (fixed: current ends on
// the session's end).
func TestCloseWhileHandlerPublishes(t *testing.T) {
	e := edgetest.MustStartEdge(t, gateway.Config{}, nil)
	pub := edgetest.MustDial(t, e.URL, client.Options{})
	edgetest.MustAttach(t, pub, "in", codec.AttachOptions{PublishOnly: true})
	s := mustSession(t, client.SessionOptions{URLs: []string{e.URL}})
	if _, err := s.Attach(edgetest.Ctx10(t), "out", codec.AttachOptions{PublishOnly: true}); err != nil {
		t.Fatal(err)
	}
	in := make(chan struct{})
	res := make(chan error, 1)
	_, err := s.Subscribe(edgetest.Ctx10(t), "in", client.SubscribeOptions{OnMessage: func(client.Message) {
		select {
		case <-in:
			return
		default:
		}
		close(in)
		for {
			// Bounded only so that the test ends: an application would
			// use its own long-lived ctx.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := s.Publish(ctx, "out", []byte(`1`), client.PublishOptions{})
			cancel()
			if err != nil {
				res <- err
				return
			}
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pub.Publish(edgetest.Ctx10(t), "in", []byte(`0`), client.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	<-in
	start := time.Now()
	s.Close()
	took := time.Since(start)
	err = <-res
	if !errors.Is(err, client.ErrClosed) || took > 2*time.Second {
		t.Fatalf("Close took %v; the handler's Publish returned %v; want Close within 2s and ErrClosed", took.Round(time.Millisecond), err)
	}
}

// TestRefusedForGoodOnlyInARow: edge 1 refuses the session's key
// (it has not got it yet: keys are per edge), edge 2 accepts it. The
// session connects to edge 2; when that connection drops, edge 1 refuses
// again. The package doc ends a session only "when every URL refused its
// upgrade, in a row": here edge 2 accepted in between. Session.run did not
// reset its count of refusals on a successful connection, so the second
// refusal by edge 1 ended the session (Err unauthorized) although edge 2
// still served it.
func TestRefusedForGoodOnlyInARow(t *testing.T) {
	a1, err := auth.NewStatic([]string{"other:0123456789abcdef"})
	if err != nil {
		t.Fatal(err)
	}
	a2, err := auth.NewStatic([]string{"feed1:0123456789abcdef"})
	if err != nil {
		t.Fatal(err)
	}
	e1 := edgetest.MustStartEdge(t, gateway.Config{Authorizer: a1}, nil)
	// No heartbeats from edge 2: the session takes it for dead after
	// DeadAfter and drops the connection itself (like a flaky network).
	e2 := edgetest.MustStartEdge(t, gateway.Config{Authorizer: a2, HeartbeatInterval: time.Hour}, nil)
	s := mustSession(t, client.SessionOptions{URLs: []string{e1.URL, e2.URL}, Options: client.Options{APIKey: "feed1:0123456789abcdef"},
		MinBackoff: time.Millisecond, DeadAfter: 200 * time.Millisecond})
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().Connects < 3 {
		select {
		case <-s.Done():
			t.Fatalf("session ended after %d connection(s) to edge 2: %v", s.Stats().Connects, s.Err())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections within 10s, want 3", s.Stats().Connects)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
