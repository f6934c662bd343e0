package gateway_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/feedgate/feedgate/gateway"
	"github.com/feedgate/feedgate/internal/edgetest"
)

// fillChannel publishes messages from..to-1 of about size bytes on channel
// over HTTP (batches of 250): ids m<i>, payloads carrying seq i.
func fillChannel(t *testing.T, api, channel string, from, to, size int) {
	t.Helper()
	pad := strings.Repeat("x", size)
	for done := from; done < to; {
		k := min(250, to-done)
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

// replayReader is a raw subscriber that reads as fast as it can.
type replayReader struct {
	t  *testing.T
	ws *websocket.Conn
}

func attachReader(t *testing.T, url, channel string, opts map[string]any) *replayReader {
	t.Helper()
	ws := edgetest.MustDialRaw(t, url)
	t.Cleanup(func() { ws.Close() })
	if err := ws.WriteJSON(map[string]any{"type": "attach", "ref": 1, "channel": channel, "options": opts}); err != nil {
		t.Fatal(err)
	}
	r := &replayReader{t: t, ws: ws}
	if f := r.next(); f.Type != "attached" {
		t.Fatalf("attach: %+v", f)
	}
	return r
}

type replayFrame struct {
	Type string
	Code int
	Data struct{ Seq int }
}

// next returns the next frame other than a heartbeat.
func (r *replayReader) next() replayFrame {
	r.t.Helper()
	for {
		_ = r.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, b, err := r.ws.ReadMessage()
		if err != nil {
			r.t.Fatalf("read: %v", err)
		}
		var f replayFrame
		if err := json.Unmarshal(b, &f); err != nil {
			r.t.Fatalf("frame %q: %v", b, err)
		}
		if f.Type != "heartbeat" {
			return f
		}
	}
}

// expect reads messages seq from..to-1, in order, and nothing else.
func (r *replayReader) expect(what string, from, to int) {
	r.t.Helper()
	for want := from; want < to; want++ {
		f := r.next()
		if f.Type != "message" || f.Data.Seq != want {
			r.t.Fatalf("%s: got %s (code %d, seq %d), want message %d (%d of %d read)", what, f.Type, f.Code, f.Data.Seq, want, want-from, to-from)
		}
	}
}

// TestMaximalRewindReachesFastReader: a fan's app attaches with rewind
// 1000 (the protocol's maximum) to an odds channel whose history holds
// 1000 markets of ~2 KB: 2 MB, twice the send queue. A client reading as
// fast as it can gets every message of the replay, then live messages, in
// order; every time it attaches so.
//
// Before: the replay was queued at once, under the channel's lock, against
// the 1 MiB send queue, which it overflowed before the client could read:
// slow_consumer (4101) after 0–220 of the 1000 messages, the attached
// reply dropped, and the same again on every reconnect (once the frames
// were prepared, the enqueue is instant).
func TestMaximalRewindReachesFastReader(t *testing.T) {
	e := edgetest.MustStartEdge(t, gateway.Config{}, nil)
	fillChannel(t, e.API, "odds:hot", 0, 1000, 2000)
	next := 1000
	for try := range 3 {
		r := attachReader(t, e.URL, "odds:hot", map[string]any{"rewind": 1000})
		r.expect(fmt.Sprintf("try %d, replay", try), next-1000, next)
		fillChannel(t, e.API, "odds:hot", next, next+300, 2000)
		r.expect(fmt.Sprintf("try %d, live", try), next, next+300)
		next += 300
	}
	if n := e.Srv.Stats().SlowConsumers; n != 0 {
		t.Fatalf("%d slow consumers", n)
	}
}

// TestResumeAfterBurstCatchesUp: a subscriber on a hot odds channel loses
// its connection; while it is away 1000 markets of ~2 KB are published
// (10 s at 100 msg/s). It resumes from its last position (protocol.md
// §14.3) and gets all of them, then live messages, in order.
//
// Before: the replay overflowed the send queue at once (slow_consumer,
// reconnect: true) and, the position not having moved, every retry did the
// same: it never resumed although history covered the gap.
func TestResumeAfterBurstCatchesUp(t *testing.T) {
	e := edgetest.MustStartEdge(t, gateway.Config{}, nil)
	next := 0
	for try := range 3 {
		// The subscriber's position, then it goes away for the burst.
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
		fillChannel(t, e.API, "odds:hot", next, next+1000, 2000)
		sub := attachReader(t, e.URL, "odds:hot", map[string]any{"resume": pos})
		sub.expect(fmt.Sprintf("try %d, replay", try), next, next+1000)
		next += 1000
		fillChannel(t, e.API, "odds:hot", next, next+100, 2000)
		sub.expect(fmt.Sprintf("try %d, live", try), next, next+100)
		next += 100
	}
}

// TestStalledReplayReaderIsSlowConsumer: a client that attaches with a
// maximal rewind and then reads nothing is still disconnected as a slow
// consumer once live traffic behind its replay passes the send queue's
// bound: the replay's allowance does not extend to live messages.
func TestStalledReplayReaderIsSlowConsumer(t *testing.T) {
	e := edgetest.MustStartEdge(t, gateway.Config{SocketSendBuffer: 16 << 10, WriteTimeout: time.Hour}, nil)
	fillChannel(t, e.API, "odds:hot", 0, 1000, 2000)
	ws := edgetest.MustDialRaw(t, e.URL)
	ws.NetConn().(*net.TCPConn).SetReadBuffer(4096)
	if err := ws.WriteJSON(map[string]any{"type": "attach", "ref": 1, "channel": "odds:hot", "options": map[string]any{"rewind": 1000}}); err != nil {
		t.Fatal(err)
	}
	// It reads nothing. The replay (2 MB) is admitted whole.
	next := 1000
	fillChannel(t, e.API, "odds:hot", next, next+100, 2000)
	next += 100
	if n := e.Srv.Stats().SlowConsumers; n != 0 {
		t.Fatalf("a replay and 200 KB of live messages behind it: %d slow consumers, want none yet", n)
	}
	// Live traffic past the send queue's bound (1 MiB) ends it.
	edgetest.WaitFor(t, "the stalled reader to be dropped as a slow consumer", func() bool {
		fillChannel(t, e.API, "odds:hot", next, next+100, 2000)
		next += 100
		return e.Srv.Stats().SlowConsumers == 1
	})
	if next > 1000+1200 {
		t.Fatalf("dropped only after %d live messages of 2 KB: the live traffic was not bounded by the send queue", next-1000)
	}
}
