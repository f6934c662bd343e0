package gateway_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/feedgate/feedgate/gateway"
	"github.com/feedgate/feedgate/internal/edgetest"
)

// TestProbeNarrowingRenewalAfterSweepSendsNoDetached: a feed publisher's
// connection holds a publish_only attachment (it receives nothing, so the
// channel has no member on the edge) and publishes nothing for 30 minutes
// (a match later in the day). The edge forgets the idle channel. Then the
// publisher's token is renewed with a capability that no longer allows the
// channel. protocol.md §4.5: "Each attached channel it no longer allows
// (... publish for a publish_only attachment) is detached: an unsolicited
// detached frame". The edge drops the attachment silently instead: no
// detached frame, and the next publish gets not_attached out of the blue.
func TestProbeNarrowingRenewalAfterSweepSendsNoDetached(t *testing.T) {
	clock := edgetest.NewClock(time.Now())
	ta := edgetest.MustTokenAuth(t, clock.Now, nil)
	e := edgetest.MustStartEdge(t, gateway.Config{
		Authorizer: ta.Authorizer, Now: clock.Now,
		HeartbeatInterval: 20 * time.Millisecond, IdleTimeout: 24 * time.Hour, // the sweep runs with heartbeats
	}, nil)
	tok1, _ := ta.Token(t, "feed", `{"odds:*":["publish"]}`, time.Hour, clock.Now())
	ws, _, err := websocket.DefaultDialer.DialContext(edgetest.Ctx10(t), e.URL+"/v1/ws?token="+url.QueryEscape(tok1), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	_ = ws.WriteJSON(map[string]any{"type": "attach", "ref": 1, "channel": "odds:later", "options": map[string]any{"publish_only": true}})
	if r := readReply(t, ws); r["type"] != "attached" {
		t.Fatalf("attach: %v", r)
	}
	clock.Add(31 * time.Minute)
	// Two heartbeats: the sweep ran at least once after the clock moved.
	for hb := 0; hb < 2; {
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, b, err := ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), `"heartbeat"`) {
			hb++
		}
	}
	tok2, _ := ta.Token(t, "feed", `{"odds:other":["publish"]}`, time.Hour, clock.Now())
	_ = ws.WriteJSON(map[string]any{"type": "auth", "ref": 2, "token": tok2})
	var detached map[string]any
	for {
		r := readReply(t, ws)
		if r["type"] == "detached" {
			detached = r
			continue
		}
		if r["type"] != "ack" {
			t.Fatalf("renewal: %v", r)
		}
		break
	}
	_ = ws.WriteJSON(map[string]any{"type": "publish", "ref": 3, "channel": "odds:later", "data": 1})
	pubReply := readReply(t, ws)
	if detached == nil {
		t.Fatalf("narrowing renewal: no unsolicited detached for the publish_only attachment odds:later; the next publish got %v", pubReply)
	}
}
