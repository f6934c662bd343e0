package gateway_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/feedgate/feedgate/gateway"
	"github.com/feedgate/feedgate/internal/edgetest"
)

// TestProbeResumeFromFutureTokenSilencesChannel: a client resumes with a
// token that parses (§7.2 grammar) but whose watermark lies far in the
// future: a corrupted store, a token minted by a client with a bad clock
// or the position of an edge whose clock is years ahead. The edge answers
// "resumed" and then skips every live message of the channel for that
// subscriber, for ever (it waits to "catch up" with a watermark it will
// never reach): the subscriber gets nothing and is told nothing. A
// position no edge can have issued (watermark beyond now + the lateness
// bound) should be refused (bad_request) or answered lost.
func TestProbeResumeFromFutureTokenSilencesChannel(t *testing.T) {
	e := edgetest.MustStartEdge(t, gateway.Config{Authorizer: mustStatic(t, keyA)}, nil)
	ws := edgetest.MustDialRaw(t, e.URL)
	_ = ws.WriteJSON(map[string]any{"type": "attach", "ref": 1, "channel": "odds:f", "options": map[string]any{"resume": "2.zzzzzzzzzzzz"}})
	r := readReply(t, ws)
	if r["type"] != "attached" {
		t.Logf("attach refused: %v (acceptable)", r)
		return
	}
	t.Logf("attached: %v", r)
	for i := range 5 {
		req, _ := http.NewRequest("POST", e.API+"/v1/channels/odds:f/messages", strings.NewReader(`{"data":{"n":1}}`))
		req.Header.Set("Authorization", "Bearer "+keyA)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		_ = i
	}
	_ = ws.SetReadDeadline(time.Now().Add(2 * time.Second))
	for {
		_, b, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("continuity %v for a token from year ~150,000,000, then none of the 5 messages published after the attach, and no continuity frame (%v)", r["continuity"], err)
		}
		var f map[string]any
		_ = json.Unmarshal(b, &f)
		if f["type"] == "message" || f["type"] == "continuity" {
			return
		}
	}
}
