package gateway_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/feedgate/feedgate/gateway"
	"github.com/feedgate/feedgate/internal/edgetest"
)

// Review of "a replay has room of its own in the send queue" (a1db3b0).

// reviewMaxFrame is the largest frame readUntil read.
var reviewMaxFrame int

// readUntil reads frames (JSON or msgpack, decoded into a map) from a fast
// reader until it has wantAttached attached replies and wantMsgs message
// frames, or the connection ends. It returns what it counted and, if the
// connection ended, the close code and the disconnect frame.
func readUntil(t *testing.T, ws *websocket.Conn, binary bool, wantAttached, wantMsgs int) (attached, msgs int, closeCode int, disc map[string]any) {
	t.Helper()
	for attached < wantAttached || msgs < wantMsgs {
		_ = ws.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, b, err := ws.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return attached, msgs, ce.Code, disc
			}
			t.Fatalf("read after %d attached, %d messages: %v", attached, msgs, err)
		}
		reviewMaxFrame = max(reviewMaxFrame, len(b))
		var f map[string]any
		if binary {
			err = msgpack.Unmarshal(b, &f)
		} else {
			err = json.Unmarshal(b, &f)
		}
		if err != nil {
			t.Fatalf("frame %.80q: %v", b, err)
		}
		switch f["type"] {
		case "attached":
			attached++
		case "message":
			msgs++
		case "disconnect":
			disc = f
		}
	}
	return attached, msgs, 0, disc
}

// TestReplaysOfManyChannelsAreNotSlowConsumer: a fan's app follows
// many channels; after a burst (or a reconnect) it re-attaches all of them
// with rewind (or resume) in one go, as §14.3 tells it to, and reads as fast
// as loopback allows. Each replay is within history; together they exceed
// the per-connection replay allowance (HistorySize × MaxFrameSize), and the
// replay frames past it counted against SendQueueBytes as live ones: the
// client was ended as slow_consumer (4101, reconnect: true) before it could
// read, and the same happened on every retry (2 of 2 runs). Now the reader
// holds an attach that replays while more than half the allowance is
// taken. protocol.md §11 says "A replay
// (rewind, resume) does not make a client a slow consumer"; replay.go says
// the allowance holds "several smaller ones at once (a client re-attaching
// its channels with resume)".
//
// Scaled down (HistorySize 100: allowance 6.25 MiB; 64 channels × 100
// messages of ~2 KB = 13 MB). With the defaults the same happens from 33
// channels of 1000 odds markets of 2 KB (2 MB each against 64 MiB).
func TestReplaysOfManyChannelsAreNotSlowConsumer(t *testing.T) {
	const channels, depth = 64, 100
	e := edgetest.MustStartEdge(t, gateway.Config{HistorySize: depth}, nil)
	for k := range channels {
		fillChannel(t, e.API, fmt.Sprintf("odds:event%d", k), 0, depth, 2000)
	}
	for try := range 2 {
		ws := edgetest.MustDialRaw(t, e.URL)
		for k := range channels {
			if err := ws.WriteJSON(map[string]any{"type": "attach", "ref": k + 1, "channel": fmt.Sprintf("odds:event%d", k), "options": map[string]any{"rewind": depth}}); err != nil {
				t.Fatal(err)
			}
		}
		att, msgs, code, disc := readUntil(t, ws, false, channels, channels*depth)
		if code != 0 || att != channels || msgs != channels*depth {
			t.Fatalf("try %d: %d channels rewinding %d each (every replay within history): %d of %d attached, %d of %d messages, then close %d %v (slow consumers %d)",
				try, channels, depth, att, channels, msgs, channels*depth, code, disc, e.Srv.Stats().SlowConsumers)
		}
		ws.Close()
	}
}
