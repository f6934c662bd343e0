package gateway_test

import (
	"context"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/feedgate/feedgate/auth"
	"github.com/feedgate/feedgate/backbone"
	"github.com/feedgate/feedgate/codec"
	"github.com/feedgate/feedgate/gateway"
	"github.com/feedgate/feedgate/internal/edgetest"
)

// slowStart is the in-process backbone with a Start that takes a while, as
// the Pub/Sub relay's does with the start-up replay on (Start seeks the
// replay subscriptions before it returns: up to 5 x CheckTimeout).
type slowStart struct {
	*backbone.Local
	started, release chan struct{}
}

func (b *slowStart) Start(ctx context.Context, deliver func(m *codec.Message)) error {
	close(b.started)
	<-b.release
	return b.Local.Start(ctx, deliver)
}

// TestShutdownDuringStart: an operator (or an embedding program) shuts the
// edge down while the backbone is still starting. Serve returns nil and
// nothing is served. Before, Shutdown returned at once and Serve then went
// on to serve HTTP for ever (/healthz 200): fasthttp's ShutdownWithContext
// does nothing when no listener is registered yet.
func TestShutdownDuringStart(t *testing.T) {
	a, err := auth.NewStatic(nil)
	if err != nil {
		t.Fatal(err)
	}
	bb := &slowStart{Local: backbone.NewLocal(backbone.LocalConfig{}), started: make(chan struct{}), release: make(chan struct{})}
	srv, err := gateway.New(gateway.Config{Authorizer: a, DrainPeriod: 50 * time.Millisecond}, bb)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := gateway.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(context.Background(), ln) }()
	<-bb.started
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	close(bb.release)
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		c := http.Client{Timeout: 2 * time.Second}
		status := "no answer"
		if resp, err := c.Get("http://" + ln.Addr().String() + "/healthz"); err == nil {
			status = resp.Status
			resp.Body.Close()
		}
		t.Fatalf("Serve has not returned 5s after Shutdown; /healthz answers: %s", status)
	}
}

// warming is the in-process backbone with a start-up replay that lasts
// until released, as the Pub/Sub relay's (gateway.Warmer); it records a
// publish that reaches it before.
type warming struct {
	*backbone.Local
	release chan struct{}
	early   atomic.Int32
}

func (b *warming) Warmed(ctx context.Context) time.Time {
	select {
	case <-b.release:
	case <-ctx.Done():
	}
	return time.Time{}
}

func (b *warming) PublishBatch(ms []*codec.Message, done func(i int, err error)) {
	select {
	case <-b.release:
	default:
		b.early.Add(1)
	}
	b.Local.PublishBatch(ms, done)
}

// TestPublishWaitsForWarmHistory: on a starting edge, an HTTP publish
// waits for the backbone's start-up replay, as attaches do (and so
// WebSocket publishes, which need one): a publish delivered before the
// replayed older messages would stand in history as the channel's latest.
// Before, it went to the backbone at once (with Google's emulator:
// history [p5 p4 p3 p2 p1 p6], internal/e2e TestWarmPublishDuringReplay).
func TestPublishWaitsForWarmHistory(t *testing.T) {
	bb := &warming{Local: backbone.NewLocal(backbone.LocalConfig{}), release: make(chan struct{})}
	e := edgetest.MustStartEdge(t, gateway.Config{}, bb)
	done := make(chan int, 1)
	go func() {
		resp, err := http.Post(e.API+"/v1/channels/c/messages", "application/json", strings.NewReader(`{"id":"p6","data":6}`))
		if err != nil {
			done <- -1
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	// The publish's handler waits for the replay (its goroutine is seen
	// blocked there); before the fix no handler ever waited.
	edgetest.WaitFor(t, "the HTTP publish waiting for the replay", func() bool {
		buf := make([]byte, 1<<20)
		for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			if strings.Contains(g, "(*Server).waitWarm") && strings.Contains(g, "(*Server).servePublish") {
				return true
			}
		}
		return false
	})
	close(bb.release)
	if code := <-done; code != http.StatusOK {
		t.Fatalf("HTTP publish after the replay: status %d", code)
	}
	if n := bb.early.Load(); n != 0 {
		t.Fatalf("%d publishes reached the backbone during the replay, want 0", n)
	}
}
