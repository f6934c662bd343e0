package e2e

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/feedgate/feedgate/backbone"
	"github.com/feedgate/feedgate/codec"
	"github.com/feedgate/feedgate/internal/edgetest"
	"github.com/feedgate/feedgate/internal/pubsubtest"
)

// TestJoinedRetryReportedInOrder: a publisher's retry of a message still in
// flight (same id) joins that publish's outcome, but is reported in its own
// place among the channel's publishes: after a publish made between the
// two, as backbone.Gateway's contract says (reported in call order). Before,
// it was reported right after the publish it joined, ahead of the one in
// between. Pub/Sub is unreachable (the proxy is down) while the three are
// made, so the first is in flight for certain.
func TestJoinedRetryReportedInOrder(t *testing.T) {
	srv := pubsubtest.MustStartPstest(t)
	proxy := pubsubtest.MustStartProxy(t, srv.Addr)
	proxied := srv
	proxied.Addr = proxy.Addr
	cfg := relayConfig(proxied, "joined", "joined")
	cfg.PublishTimeout = time.Minute // the outage below must not refuse them
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := backbone.NewRelay(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(context.Background()) })
	if err := r.Start(ctx, func(*codec.Message) {}); err != nil {
		t.Fatal(err)
	}
	proxy.Down()
	var mu sync.Mutex
	var order []string
	var errs []error
	publish := func(label, id string) {
		r.Publish(&codec.Message{Channel: "joined:1", ID: id, Data: []byte(`1`), Origin: "o", Time: time.Now().UnixMilli()}, func(err error) {
			mu.Lock()
			defer mu.Unlock()
			order = append(order, label)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", label, err))
			}
		})
	}
	publish("A", "a")
	publish("B", "b")
	publish("A again", "a")
	proxy.Up()
	edgetest.WaitForWithin(t, "the three outcomes", 90*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(order) == 3
	})
	mu.Lock()
	defer mu.Unlock()
	if len(errs) > 0 {
		t.Fatalf("refused: %v", errs)
	}
	if want := []string{"A", "B", "A again"}; !slices.Equal(order, want) {
		t.Fatalf("outcomes reported in the order %q, want the call order %q", order, want)
	}
}
