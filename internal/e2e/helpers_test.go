package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/feedgate/feedgate/backbone"
	"github.com/feedgate/feedgate/client"
	"github.com/feedgate/feedgate/codec"
	"github.com/feedgate/feedgate/gateway"
	"github.com/feedgate/feedgate/internal/edgetest"
	"github.com/feedgate/feedgate/internal/pubsubtest"
)

const project = "test"

// relayEdge is an in-process edge on the Pub/Sub backbone.
type relayEdge struct {
	*edgetest.Edge
	relay *backbone.Relay
	id    string
}

func relayConfig(srv pubsubtest.Server, edgeID, prefix string) backbone.RelayConfig {
	return backbone.RelayConfig{
		Project:        project,
		EmulatorHost:   srv.Addr,
		TopicPrefix:    prefix,
		Shards:         2,
		EdgeID:         edgeID,
		CreateTopics:   true,
		PublishTimeout: 2 * time.Second,
		Logger:         testLogger(),
	}
}

// testLogger discards logs unless FEEDGATE_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("FEEDGATE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func mustStartRelayEdge(tb testing.TB, cfg backbone.RelayConfig) *relayEdge {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := backbone.NewRelay(ctx, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	e := edgetest.MustStartEdge(tb, gateway.Config{}, r)
	return &relayEdge{Edge: e, relay: r, id: cfg.EdgeID}
}

// payload is what the scenario's publishers send.
type payload struct {
	Pub int `json:"pub"`
	Seq int `json:"seq"`
}

// fanInScenario: 3 publishers spread over the edges publish k messages on
// each of 5 channels; on every edge a JSON and a msgpack subscriber attach
// all 5 channels. Every subscriber must get every message exactly once, in
// each publisher's order.
//
// Each publisher then publishes one more message on each channel, as a
// barrier: whatever an edge still had to send on that publisher's channel
// (a late duplicate) comes before it, and so fails the order check, where
// a quiet period afterwards would only catch what came soon enough.
func fanInScenario(t *testing.T, urls []string, k int, wait time.Duration) {
	channels := []string{"match:1:odds", "match:2:odds", "match:3:odds", "match:4:odds", "match:5:odds"}
	type sub struct {
		c    *client.Client
		name string
	}
	var subs []sub
	for ei, u := range urls {
		for _, f := range []codec.Format{codec.FormatJSON, codec.FormatMsgpack} {
			c := edgetest.MustDial(t, u, client.Options{Format: f, Buffer: 1 << 14})
			for _, ch := range channels {
				edgetest.MustAttach(t, c, ch, codec.AttachOptions{})
			}
			subs = append(subs, sub{c, fmt.Sprintf("edge%d/%v", ei, f)})
		}
	}
	const publishers = 3
	var wg sync.WaitGroup
	for p := range publishers {
		c := edgetest.MustDial(t, urls[p%len(urls)], client.Options{})
		for _, ch := range channels {
			edgetest.MustAttach(t, c, ch, codec.AttachOptions{PublishOnly: true})
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range k + 1 { // the last one is the barrier
				for _, ch := range channels {
					data, _ := json.Marshal(payload{Pub: p, Seq: s})
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					_, err := c.Publish(ctx, ch, data, client.PublishOptions{})
					cancel()
					if err != nil {
						t.Errorf("publisher %d: %v", p, err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	total := publishers * (k + 1) * len(channels)
	for _, s := range subs {
		next := map[string]int{} // channel/pub -> next expected seq
		seen := map[string]bool{}
		deadline := time.After(wait)
		for got := 0; got < total; got++ {
			var m client.Message
			select {
			case m = <-s.c.Messages():
			case <-deadline:
				t.Fatalf("%s: got %d of %d messages within %v", s.name, got, total, wait)
			}
			if seen[m.ID] {
				t.Fatalf("%s: duplicate message %s", s.name, m.ID)
			}
			seen[m.ID] = true
			var pl payload
			if err := json.Unmarshal(m.Data, &pl); err != nil {
				t.Fatalf("%s: data %s: %v", s.name, m.Data, err)
			}
			key := fmt.Sprintf("%s/%d", m.Channel, pl.Pub)
			if pl.Seq != next[key] {
				t.Fatalf("%s: %s: got seq %d, want %d (out of order or lost)", s.name, key, pl.Seq, next[key])
			}
			next[key]++
		}
	}
	t.Logf("%d subscribers on %d edges each got all %d messages once, in publisher order", len(subs), len(urls), total)
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
