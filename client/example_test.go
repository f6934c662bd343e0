package client_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/feedgate/feedgate/auth"
	"github.com/feedgate/feedgate/backbone"
	"github.com/feedgate/feedgate/client"
	"github.com/feedgate/feedgate/codec"
	"github.com/feedgate/feedgate/gateway"
)

// A session subscribes a channel and reads its messages from a channel.
func ExampleSession_Subscribe() {
	url, stop := startExampleEdge() // e.g. "wss://edge.example.com"
	defer stop()

	s := client.NewSession(client.SessionOptions{URLs: []string{url}})
	defer s.Close()
	ctx := context.Background()
	sub, err := s.Subscribe(ctx, "odds:match-1", client.SubscribeOptions{})
	if err != nil {
		panic(err)
	}
	if _, err := s.Publish(ctx, "odds:match-1", []byte(`{"home":1.95}`), client.PublishOptions{Name: "price"}); err != nil {
		panic(err)
	}
	m := <-sub.Messages()
	fmt.Println(m.Channel, m.Name, string(m.Data))
	// Output: odds:match-1 price {"home":1.95}
}

// A subscription with handlers: messages and continuity events arrive in
// order on the subscription's goroutine. On a lost continuity the
// application refetches the channel's state.
func ExampleSession_Subscribe_handlers() {
	url, stop := startExampleEdge()
	defer stop()

	s := client.NewSession(client.SessionOptions{URLs: []string{url}})
	defer s.Close()
	ctx := context.Background()
	done := make(chan struct{})
	_, err := s.Subscribe(ctx, "odds:match-2", client.SubscribeOptions{
		Buffer: 1024, // past it: dropped, then fetched again from the edge
		OnMessage: func(m client.Message) {
			fmt.Println("message", string(m.Data))
			if string(m.Data) == "3" {
				close(done)
			}
		},
		OnContinuity: func(e client.ContinuityEvent) {
			if e.Continuity == codec.ContinuityLost {
				fmt.Println("refetch the state of", e.Channel)
				return
			}
			fmt.Println(e.Cause, e.Continuity)
		},
	})
	if err != nil {
		panic(err)
	}
	for _, d := range []string{"1", "2", "3"} {
		if _, err := s.Publish(ctx, "odds:match-2", []byte(d), client.PublishOptions{}); err != nil {
			panic(err)
		}
	}
	<-done
	// Output:
	// attach fresh
	// message 1
	// message 2
	// message 3
}

// History pages through what the edge holds of a channel, newest first.
func ExampleSession_History() {
	url, stop := startExampleEdge()
	defer stop()

	s := client.NewSession(client.SessionOptions{URLs: []string{url}})
	defer s.Close()
	ctx := context.Background()
	if _, err := s.Attach(ctx, "scores", codec.AttachOptions{PublishOnly: true}); err != nil {
		panic(err)
	}
	for _, d := range []string{`"1-0"`, `"1-1"`, `"2-1"`} {
		if _, err := s.Publish(ctx, "scores", []byte(d), client.PublishOptions{}); err != nil {
			panic(err)
		}
	}
	o := client.HistoryOptions{Limit: 2}
	for {
		page, err := s.History(ctx, "scores", o)
		if err != nil {
			panic(err)
		}
		for _, m := range page.Messages {
			fmt.Println(string(m.Data))
		}
		if page.Next == "" {
			break
		}
		o.Before = page.Next
	}
	// Output:
	// "2-1"
	// "1-1"
	// "1-0"
}

// Connection state events, and credentials obtained before every
// connection attempt (for capability tokens that expire).
func ExampleSessionOptions() {
	url, stop := startExampleEdge()
	defer stop()

	s := client.NewSession(client.SessionOptions{
		URLs: []string{url},
		Credentials: func(ctx context.Context) (client.Credentials, error) {
			return client.Credentials{Token: exampleToken()}, nil // e.g. from your auth service
		},
		OnState: func(e client.StateEvent) {
			fmt.Println(e.State) // with e.URL; on disconnected, e.Code and e.Reason
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.Attach(ctx, "news", codec.AttachOptions{}); err != nil {
		panic(err)
	}
	s.Close()
	// Output:
	// connecting
	// connected
	// closed
}

// A single connection, without reconnection: for tests and tools.
func ExampleDial() {
	url, stop := startExampleEdge()
	defer stop()

	ctx := context.Background()
	c, err := client.Dial(ctx, url, client.Options{Format: codec.FormatMsgpack})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	a, err := c.AttachInfo(ctx, "odds:match-3", codec.AttachOptions{})
	if err != nil {
		panic(err)
	}
	fmt.Println("attached:", a.Continuity)
	id, err := c.Publish(ctx, "odds:match-3", []byte(`[1,2]`), client.PublishOptions{ID: "m-1"})
	if err != nil {
		panic(err)
	}
	m := <-c.Messages()
	fmt.Println(id, m.ID, string(m.Data))
	// Output:
	// attached: fresh
	// m-1 m-1 [1,2]
}

// exampleSigner stands for an identity service that signs capability
// tokens (HS256 here; Ed25519 or ES256 keep the secret off the edges).
var exampleSigner, _ = auth.NewHMACSigner("example", []byte("an-example-secret-of-32-bytes-or-more"), "example-auth", "feedgate")

// exampleToken is a fresh 10-minute token for "news", as an identity
// service would issue it.
func exampleToken() string {
	c, err := auth.ParseCapability([]byte(`{"news":["subscribe"]}`))
	if err != nil {
		panic(err)
	}
	tok, _, err := exampleSigner.Sign(auth.TokenSpec{Subject: "reader-1", Capability: c, TTL: 10 * time.Minute}, time.Now())
	if err != nil {
		panic(err)
	}
	return tok
}

// startExampleEdge runs an edge with the in-process backbone on loopback:
// open to clients without credentials, as NewStatic(nil), and verifying
// exampleSigner's tokens.
func startExampleEdge() (url string, stop func()) {
	v, err := auth.NewVerifier(auth.VerifierConfig{Keys: []auth.Key{exampleSigner.VerifyKey()}, Issuer: "example-auth", Audience: "feedgate"})
	if err != nil {
		panic(err)
	}
	a, err := auth.New(auth.Config{Verifier: v, Anonymous: auth.All, AnonymousPublish: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := gateway.New(gateway.Config{Authorizer: a, Logger: logger, DrainPeriod: 10 * time.Millisecond}, backbone.NewLocal(backbone.LocalConfig{}))
	if err != nil {
		panic(err)
	}
	ln, err := gateway.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), ln) }()
	return "ws://" + ln.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			panic(err)
		}
		if err := <-served; err != nil {
			panic(err)
		}
	}
}
