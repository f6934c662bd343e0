// Package edgetest has helpers for tests that run edges on loopback and
// talk to them with the Go client or raw WebSocket connections.
package edgetest

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/feedgate/feedgate/auth"
	"github.com/feedgate/feedgate/backbone"
	"github.com/feedgate/feedgate/client"
	"github.com/feedgate/feedgate/codec"
	"github.com/feedgate/feedgate/gateway"
)

// Edge is a running Server on loopback.
type Edge struct {
	Srv *gateway.Server
	URL string // ws://127.0.0.1:port
	API string // http://127.0.0.1:port
}

// MustStartEdge starts a Server on 127.0.0.1:0 with bb, or the in-process
// backbone if bb is nil, and stops it at the end of the test; it owns bb
// from then on and closes it after the server stopped.
func MustStartEdge(tb testing.TB, cfg gateway.Config, bb gateway.Backbone) *Edge {
	tb.Helper()
	if bb == nil {
		bb = backbone.NewLocal(backbone.LocalConfig{})
	}
	if cfg.Authorizer == nil {
		a, err := auth.NewStatic(nil)
		if err != nil {
			tb.Fatal(err)
		}
		cfg.Authorizer = a
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.DrainPeriod == 0 {
		cfg.DrainPeriod = 50 * time.Millisecond // tests stop edges often
	}
	srv, err := gateway.New(cfg, bb)
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := gateway.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(context.Background(), ln) }()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			tb.Errorf("shutdown: %v", err)
		}
		if err := <-errc; err != nil {
			tb.Errorf("serve: %v", err)
		}
		if err := bb.Close(ctx); err != nil {
			tb.Errorf("backbone close: %v", err)
		}
	})
	addr := ln.Addr().String()
	return &Edge{Srv: srv, URL: "ws://" + addr, API: "http://" + addr}
}

// MustDial connects a client and closes it at the end of the test.
func MustDial(tb testing.TB, url string, o client.Options) *client.Client {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, url, o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// Ctx10 is a context that ends after 10s or with the test.
func Ctx10(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

func MustAttach(tb testing.TB, c *client.Client, channel string, o codec.AttachOptions) {
	tb.Helper()
	if err := c.Attach(Ctx10(tb), channel, o); err != nil {
		tb.Fatalf("attach %q: %v", channel, err)
	}
}

// NextMessage waits for the next message on c.
func NextMessage(tb testing.TB, c *client.Client) client.Message {
	tb.Helper()
	select {
	case m, ok := <-c.Messages():
		if !ok {
			tb.Fatalf("connection closed while waiting for a message (disconnect: %v)", c.Disconnect())
		}
		return m
	case <-time.After(10 * time.Second):
		tb.Fatal("no message within 10s")
	}
	return client.Message{}
}

// NextError waits for the next unsolicited error frame on c.
func NextError(tb testing.TB, c *client.Client) *codec.Error {
	tb.Helper()
	select {
	case e := <-c.Errors():
		return e
	case <-time.After(10 * time.Second):
		tb.Fatal("no error frame within 10s")
	}
	return nil
}

// WaitFor polls cond until it holds or the deadline passes.
func WaitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	WaitForWithin(tb, what, 10*time.Second, cond)
}

// WaitForWithin is WaitFor with a bound of its own.
func WaitForWithin(tb testing.TB, what string, within time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// MustDialRaw opens a WebSocket connection that the test drives by hand
// (it never answers heartbeats and reads only when told to).
func MustDialRaw(tb testing.TB, url string) *websocket.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := websocket.Dialer{NetDialContext: (&net.Dialer{}).DialContext}
	ws, _, err := d.DialContext(ctx, url+"/v1/ws", nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ws.Close() })
	return ws
}
