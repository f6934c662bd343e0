package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/feedgate/feedgate/client"
	"github.com/feedgate/feedgate/codec"
	"github.com/feedgate/feedgate/gateway"
	"github.com/feedgate/feedgate/internal/edgetest"
)

// edgetest.SyncBuffer is a bytes.Buffer safe for one writer and a polling reader.
func waitFor(t *testing.T, s *edgetest.SyncBuffer, what string) {
	t.Helper()
	edgetest.WaitFor(t, what, func() bool { return strings.Contains(s.String(), what) })
}

func publish(t *testing.T, url, channel, data string) {
	t.Helper()
	pub := edgetest.MustDial(t, url, client.Options{})
	edgetest.MustAttach(t, pub, channel, codec.AttachOptions{PublishOnly: true})
	if _, err := pub.Publish(edgetest.Ctx10(t), channel, []byte(data), client.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestWatchMovesOnWhenEdgeDrains: the edge watch is connected to drains
// (disconnect 4102, reconnect: true); watch used to exit with status 1,
// it must reconnect to the next edge and go on printing.
func TestWatchMovesOnWhenEdgeDrains(t *testing.T) {
	a := edgetest.MustStartEdge(t, gateway.Config{}, nil)
	b := edgetest.MustStartEdge(t, gateway.Config{}, nil)
	var stdout, stderr edgetest.SyncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ended := make(chan error, 1)
	go func() {
		ended <- run(ctx, []string{a.URL, b.URL}, []string{"w"}, "msgpack", client.Credentials{}, &stdout, &stderr)
	}()

	waitFor(t, &stderr, "attached w")
	publish(t, a.URL, "w", `{"n":1}`)
	waitFor(t, &stdout, `"data":{"n":1}`)

	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	go a.Srv.Shutdown(sctx)
	waitFor(t, &stderr, "going_away (4102)")
	waitFor(t, &stderr, "connected "+b.URL)
	// The edges share no backbone: b knows nothing of a's positions.
	waitFor(t, &stderr, "w: continuity lost on reconnect")
	publish(t, b.URL, "w", `{"n":2}`)
	waitFor(t, &stdout, `"data":{"n":2}`)

	select {
	case err := <-ended:
		t.Fatalf("watch ended before it was stopped: %v\n%s", err, stderr.String())
	default:
	}
	cancel()
	select {
	case err := <-ended:
		if err != nil {
			t.Fatalf("watch: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch did not stop")
	}
	if n := strings.Count(stdout.String(), "\n"); n != 2 {
		t.Errorf("printed %d lines, want 2:\n%s", n, stdout.String())
	}
}
