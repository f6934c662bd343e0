package gateway_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/feedgate/feedgate/auth"
	"github.com/feedgate/feedgate/backbone"
	"github.com/feedgate/feedgate/client"
	"github.com/feedgate/feedgate/codec"
	"github.com/feedgate/feedgate/gateway"
)

// edge is a running Server on loopback.
type edge struct {
	srv *gateway.Server
	url string // ws://127.0.0.1:port
	api string // http://127.0.0.1:port
}

// MustStartEdge starts a Server with the in-process backbone (unless cfg
// says otherwise) on 127.0.0.1:0 and stops it at the end of the test.
func MustStartEdge(tb testing.TB, cfg gateway.Config, bb gateway.Backbone) *edge {
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
	srv, err := gateway.New(cfg, bb)
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
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
	})
	addr := ln.Addr().String()
	return &edge{srv: srv, url: "ws://" + addr, api: "http://" + addr}
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

func ctx10(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

func MustAttach(tb testing.TB, c *client.Client, channel string, o codec.AttachOptions) {
	tb.Helper()
	if err := c.Attach(ctx10(tb), channel, o); err != nil {
		tb.Fatalf("attach %q: %v", channel, err)
	}
}

// nextMessage waits for the next message on c.
func nextMessage(tb testing.TB, c *client.Client) codec.Message {
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
	return codec.Message{}
}

// nextError waits for the next unsolicited error frame on c.
func nextError(tb testing.TB, c *client.Client) *codec.Error {
	tb.Helper()
	select {
	case e := <-c.Errors():
		return e
	case <-time.After(10 * time.Second):
		tb.Fatal("no error frame within 10s")
	}
	return nil
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
