package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/feedgate/feedgate/auth"
	"github.com/feedgate/feedgate/client"
	"github.com/feedgate/feedgate/codec"
	"github.com/feedgate/feedgate/gateway"
	"github.com/feedgate/feedgate/internal/edgetest"
	"github.com/feedgate/feedgate/internal/oddsfeed"
)

const testKey = "pub:0123456789abcdef0123"

func mustEdge(t *testing.T) *edgetest.Edge {
	t.Helper()
	a, err := auth.NewStatic([]string{testKey})
	if err != nil {
		t.Fatal(err)
	}
	return edgetest.MustStartEdge(t, gateway.Config{Authorizer: a}, nil)
}

func mustOptions(t *testing.T, args ...string) options {
	t.Helper()
	o, err := parseFlags(args, func(string) (string, bool) { return "", false }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// TestEndToEnd publishes a small feed with goals, suspensions and
// settlements (new markets on new channels) through a real edge, over both
// transports, and checks with a subscriber on every channel the feed will
// use that each update arrives once, in order, with its id, its kind as
// name and its payload byte for byte.
func TestEndToEnd(t *testing.T) {
	for _, transport := range []string{"http", "ws"} {
		t.Run(transport, func(t *testing.T) {
			e := mustEdge(t)
			const count = 2000
			o := mustOptions(t, "-edge", e.API, "-key", testKey, "-transport", transport, "-events", "3", "-markets", "6",
				"-rate", "5000", "-count", "2000", "-burst", "0.01", "-suspend", "0.02", "-settle", "0.01", "-workers", "3", "-progress", "0")
			o.feed.GoalSuspendSteps, o.feed.SuspendSteps = 150, 60

			// The same feed, run ahead, names every channel the command
			// will publish on (the documents differ only in their stamps).
			ahead, err := oddsfeed.New(o.feed)
			if err != nil {
				t.Fatal(err)
			}
			channels := map[string]bool{}
			kinds := map[oddsfeed.Kind]int{}
			for _, u := range ahead.Take(count, time.Now()) {
				channels[u.Channel] = true
				kinds[u.Kind]++
			}
			for k := range oddsfeed.NumKinds {
				if kinds[oddsfeed.Kind(k)] == 0 {
					t.Fatalf("the sample has no %v update: %v", oddsfeed.Kind(k), kinds)
				}
			}
			sub := edgetest.MustDial(t, e.URL, client.Options{Buffer: 2 * count})
			for ch := range channels {
				edgetest.MustAttach(t, sub, ch, codec.AttachOptions{})
			}
			t.Logf("%d channels, kinds %v", len(channels), kinds)

			var mu sync.Mutex
			sent := map[string][]job{}
			h := &hooks{generated: func(j job) {
				mu.Lock()
				defer mu.Unlock()
				sent[j.u.Channel] = append(sent[j.u.Channel], j)
			}}
			sum, err := run(edgetest.Ctx10(t), o, io.Discard, h)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			sum.print(&out)
			t.Log("\n" + out.String())
			if !sum.clean() || sum.Acked != count || len(sum.Refused) != 0 || sum.Unconfirmed != 0 {
				t.Fatalf("summary %+v", sum)
			}
			got := map[string][]client.Message{}
			for n := 0; n < count; n++ {
				m := edgetest.NextMessage(t, sub)
				got[m.Channel] = append(got[m.Channel], m)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(got) != len(sent) {
				t.Fatalf("messages on %d channels, published on %d", len(got), len(sent))
			}
			for ch, js := range sent {
				ms := got[ch]
				if len(ms) != len(js) {
					t.Fatalf("%s: %d messages, %d published", ch, len(ms), len(js))
				}
				for i, j := range js {
					m := ms[i]
					if m.ID != j.id || m.Name != j.u.Kind.String() || !bytes.Equal(m.Data, j.u.Payload) {
						t.Fatalf("%s message %d: got id %q name %q\n%s\nwant id %q name %q\n%s", ch, i, m.ID, m.Name, m.Data, j.id, j.u.Kind, j.u.Payload)
					}
				}
			}
		})
	}
}

// TestWrongKey: an edge that refuses the key refuses every update. Over
// HTTP each is counted as refused (unauthorized); over WebSocket the
// connection is refused and the run ends with that error.
func TestWrongKey(t *testing.T) {
	e := mustEdge(t)
	t.Run("http", func(t *testing.T) {
		o := mustOptions(t, "-edge", e.API, "-key", "pub:wrong-secret-0123456789", "-rate", "5000", "-count", "300", "-progress", "0")
		sum, err := run(edgetest.Ctx10(t), o, io.Discard, nil)
		if err != nil {
			t.Fatal(err)
		}
		if sum.clean() || sum.Acked != 0 || sum.Refused["unauthorized"] != 300 || sum.Generated != 300 {
			t.Fatalf("summary %+v", sum)
		}
	})
	t.Run("ws", func(t *testing.T) {
		o := mustOptions(t, "-edge", e.URL, "-transport", "ws", "-key", "pub:wrong-secret-0123456789", "-rate", "5000", "-count", "300", "-progress", "0")
		sum, err := run(edgetest.Ctx10(t), o, io.Discard, nil)
		if err == nil || !strings.Contains(err.Error(), "unauthorized") {
			t.Fatalf("run: %v, want the edge's unauthorized", err)
		}
		if sum.Acked != 0 || sum.clean() {
			t.Fatalf("summary %+v", sum)
		}
	})
}

// TestDuration: -duration bounds a run and the rate paces it.
func TestDuration(t *testing.T) {
	e := mustEdge(t)
	o := mustOptions(t, "-edge", e.API, "-key", testKey, "-rate", "400", "-duration", "500ms", "-progress", "0")
	start := time.Now()
	sum, err := run(context.Background(), o, io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	el := time.Since(start)
	// At most rate x duration (+ one step) can be generated, whatever the
	// machine's speed; at least one step is.
	if sum.Generated == 0 || sum.Generated > 400*el.Nanoseconds()/1e9+40 || !sum.clean() {
		t.Fatalf("generated %d in %v: %+v", sum.Generated, el, sum)
	}
	if el < 500*time.Millisecond {
		t.Fatalf("returned after %v, before -duration", el)
	}
}

func TestFlags(t *testing.T) {
	env := func(k string) (string, bool) {
		if k == "ODDSFEED_KEY" {
			return "pub:from-the-environment-0", true
		}
		return "", false
	}
	o, err := parseFlags(nil, env, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.key != "pub:from-the-environment-0" || o.transport != "http" || o.workers != 8 || o.feed.Events != 200 || !strings.HasPrefix(o.idPrefix, "sim1-") {
		t.Fatalf("defaults %+v", o)
	}
	o, err = parseFlags([]string{"-key", "a:b", "-transport", "ws", "-burst", "0"}, env, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.key != "a:b" || o.workers != 15 || o.feed.BurstProb >= 0 {
		t.Fatalf("flag over environment, ws workers for 6000 markets, no bursts: %+v", o)
	}
	for _, args := range [][]string{
		{"-rate", "0"}, {"-rate", "-1"}, {"-transport", "udp"}, {"-count", "-1"}, {"-timeout", "0"},
		{"-events", "-3"}, {"-max-selections", "1"}, {"-burst", "0.7", "-settle", "0.5"}, {"stray"},
	} {
		if _, err := parseFlags(args, env, io.Discard); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
	for _, edge := range []string{"ftp://x", "://", "http://"} {
		if _, err := httpBase(edge); err == nil {
			t.Errorf("-edge %q accepted", edge)
		}
	}
}
