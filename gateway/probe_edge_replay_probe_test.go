package gateway_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/feedgate/feedgate/gateway"
	"github.com/feedgate/feedgate/internal/edgetest"
)

// probeFillChannel publishes n messages of about size bytes on channel over
// HTTP (batches of 250).
func probeFillChannel(t *testing.T, api, channel string, n, size int) {
	t.Helper()
	pad := strings.Repeat("x", size)
	for done := 0; done < n; {
		k := min(250, n-done)
		var b strings.Builder
		b.WriteString(`{"messages":[`)
		for i := range k {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"id":"m%d","data":{"market":"m1","seq":%d,"pad":%q}}`, done+i, done+i, pad)
		}
		b.WriteString(`]}`)
		resp, err := http.Post(api+"/v1/channels/"+channel+"/messages", "application/json", strings.NewReader(b.String()))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("publish: %d", resp.StatusCode)
		}
		done += k
	}
}

// probeAttachAndCount attaches with options, reads as fast as it can, and
// returns the number of message frames received before the connection
// ended or the wanted number arrived, and the disconnect frame if any.
func probeAttachAndCount(t *testing.T, url, channel string, opts map[string]any, want int) (got int, attached bool, disc map[string]any) {
	t.Helper()
	ws := edgetest.MustDialRaw(t, url)
	defer ws.Close()
	if err := ws.WriteJSON(map[string]any{"type": "attach", "ref": 1, "channel": channel, "options": opts}); err != nil {
		t.Fatal(err)
	}
	for got < want {
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, b, err := ws.ReadMessage()
		if err != nil {
			return got, attached, disc
		}
		var f map[string]any
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatalf("frame %q: %v", b, err)
		}
		switch f["type"] {
		case "attached":
			attached = true
		case "message":
			got++
		case "disconnect":
			disc = f
		}
	}
	return got, attached, disc
}

// TestProbeRewindWithinLimitsIsSlowConsumer: a fan's app attaches with
// rewind 1000 (the documented maximum, protocol.md §6) to an odds channel
// whose history holds 1000 markets of ~2 KB (README: "a 2 KB odds market").
// The replay is enqueued all at once under the channel's lock, overflows
// the 1 MiB send queue before the client can read anything, and the client
// — reading as fast as loopback allows — is disconnected as a slow consumer
// with everything queued dropped, the attached reply included. Reconnecting
// with the same attach (what §14.2 tells it to do) gives the same result
// again. Observed: the first try (frames not yet prepared) passes, the
// second (frames cached, the enqueue is instant) fails, 3 of 3 runs, after
// 0-220 of the 1000 messages.
func TestProbeRewindWithinLimitsIsSlowConsumer(t *testing.T) {
	e := edgetest.MustStartEdge(t, gateway.Config{}, nil)
	probeFillChannel(t, e.API, "odds:hot", 1000, 2000)
	for try := range 3 {
		got, attached, disc := probeAttachAndCount(t, e.URL, "odds:hot", map[string]any{"rewind": 1000}, 1000)
		if got != 1000 {
			t.Fatalf("try %d: rewind 1000 within the documented limits: attached=%v, %d of 1000 messages, then %v (slow consumers so far %d)",
				try, attached, got, disc, e.Srv.Stats().SlowConsumers)
		}
	}
}

// TestProbeResumeAfterBurstNeverCatchesUp: a subscriber on a hot odds
// channel loses its connection; while it is away ~1000 markets of ~2 KB are
// published (10 s at 100 msg/s). On reconnect it resumes from its last pos,
// as §14.3 says. The replay overflows the send queue at once: slow_consumer,
// frames dropped (attached included), reconnect:true. Its position has not
// moved, so every retry does the same: it never resumes although history
// covers the gap.
func TestProbeResumeAfterBurstNeverCatchesUp(t *testing.T) {
	e := edgetest.MustStartEdge(t, gateway.Config{}, nil)
	// The subscriber's position before the burst.
	ws := edgetest.MustDialRaw(t, e.URL)
	if err := ws.WriteJSON(map[string]any{"type": "attach", "ref": 1, "channel": "odds:hot"}); err != nil {
		t.Fatal(err)
	}
	r := readReply(t, ws)
	pos, _ := r["pos"].(string)
	if r["type"] != "attached" || pos == "" {
		t.Fatalf("attach: %v", r)
	}
	ws.Close()
	probeFillChannel(t, e.API, "odds:hot", 1000, 2000)
	for try := range 3 {
		got, attached, disc := probeAttachAndCount(t, e.URL, "odds:hot", map[string]any{"resume": pos}, 1000)
		if got != 1000 {
			t.Fatalf("try %d: resume over 1000 messages in history: attached=%v, %d of 1000 messages, then %v", try, attached, got, disc)
		}
	}
}
