package gateway_test

import (
	"crypto/ed25519"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/feedgate/feedgate/auth"
	"github.com/feedgate/feedgate/codec"
	"github.com/feedgate/feedgate/gateway"
	"github.com/feedgate/feedgate/internal/edgetest"
)

// probeAnonAuth is a production-like authorizer whose anonymous clients may
// subscribe to free:* (README: -anonymous-capability '{"free:*":["subscribe"]}')
// and whose tokens are Ed25519.
func probeAnonAuth(t *testing.T) (*auth.Authorizer, *auth.Signer) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := auth.NewEd25519Signer("probe-1", priv, "iss", "aud")
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier(auth.VerifierConfig{Keys: []auth.Key{signer.VerifyKey()}, Issuer: "iss", Audience: "aud", MaxTTL: 2 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	anon, err := auth.ParseCapability([]byte(`{"free:*":["subscribe"]}`))
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(auth.Config{Verifier: v, Signer: signer, Anonymous: anon})
	if err != nil {
		t.Fatal(err)
	}
	return a, signer
}

func probeToken(t *testing.T, s *auth.Signer, subject, capability string) string {
	t.Helper()
	c, err := auth.ParseCapability([]byte(capability))
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := s.Sign(auth.TokenSpec{Subject: subject, Capability: c, TTL: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestProbeAnonymousRenewBypassesSubjectConnCap: a subject at its
// connection cap (ConnsPerKey) opens more connections anonymously and
// renews each with its token (auth frame, protocol.md §4.5: "a connection
// without credentials may take any subject"). The renewed connections are
// never counted against the subject (§13: "Connections per API key or token
// subject ... 1,000"), so the cap does not hold.
func TestProbeAnonymousRenewBypassesSubjectConnCap(t *testing.T) {
	a, signer := probeAnonAuth(t)
	e := edgetest.MustStartEdge(t, gateway.Config{Authorizer: a, Limits: gateway.Limits{ConnsPerKey: 1}}, nil)
	tok := probeToken(t, signer, "alice", `{"odds:*":["subscribe"]}`)

	ws1, resp, err := websocket.DefaultDialer.DialContext(edgetest.Ctx10(t), e.URL+"/v1/ws?token="+url.QueryEscape(tok), nil)
	if err != nil {
		t.Fatalf("first connection of alice: %v (%v)", err, resp)
	}
	defer ws1.Close()
	edgetest.WaitFor(t, "alice's connection to be counted", func() bool { return e.Srv.Stats().Connections >= 1 })
	// The cap holds for a second token connection.
	if _, resp, err := websocket.DefaultDialer.DialContext(edgetest.Ctx10(t), e.URL+"/v1/ws?token="+url.QueryEscape(tok), nil); err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("second token connection of alice: err %v, want 429", err)
	}
	// Anonymous connections renewed to alice's token.
	renewed := 0
	for i := range 3 {
		ws, _, err := websocket.DefaultDialer.DialContext(edgetest.Ctx10(t), e.URL+"/v1/ws", nil)
		if err != nil {
			t.Fatalf("anonymous connection %d: %v", i, err)
		}
		defer ws.Close()
		if err := ws.WriteJSON(map[string]any{"type": "auth", "ref": 1, "token": tok}); err != nil {
			t.Fatal(err)
		}
		r := readReply(t, ws)
		if r["type"] == "ack" {
			renewed++
			// It now attaches as alice.
			_ = ws.WriteJSON(map[string]any{"type": "attach", "ref": 2, "channel": "odds:1"})
			if r := readReply(t, ws); r["type"] != "attached" {
				t.Fatalf("attach after renewal: %v", r)
			}
		}
	}
	if renewed > 0 {
		t.Fatalf("alice holds %d connections on the edge with ConnsPerKey 1: %d anonymous connections took her token by an auth frame without being counted", 1+renewed, renewed)
	}
}

// TestProbeAnonymousRenewBypassesSubjectPublishRate: a subject's publish
// rate (PublishPerKey, §13 "Publish rate per API key or token subject")
// is shared by its connections; a connection that renewed from anonymous
// to the subject's token publishes outside it.
func TestProbeAnonymousRenewBypassesSubjectPublishRate(t *testing.T) {
	a, signer := probeAnonAuth(t)
	clk := newFakeClock()
	e := edgetest.MustStartEdge(t, gateway.Config{Now: clk.Now, Authorizer: a, MaxBatch: 1, Limits: gateway.Limits{
		PublishPerConn: gateway.Rate{PerSecond: -1}, PublishPerKey: gateway.Rate{PerSecond: 1, Burst: 2},
	}}, nil)
	tok := probeToken(t, signer, "bob", `{"odds:*":["publish","subscribe"]}`)
	pubN := func(ws *websocket.Conn, n int) (acked, limited int) {
		for i := range n {
			_ = ws.WriteJSON(map[string]any{"type": "publish", "ref": 100 + i, "channel": "odds:1", "id": "m" + string(rune('a'+i)) + ws.LocalAddr().String(), "data": i})
			r := readReply(t, ws)
			switch {
			case r["type"] == "ack":
				acked++
			case r["code"] == float64(codec.CodeRateLimited):
				limited++
				return
			default:
				t.Fatalf("publish: %v", r)
			}
		}
		return
	}
	attach := func(ws *websocket.Conn) {
		_ = ws.WriteJSON(map[string]any{"type": "attach", "ref": 1, "channel": "odds:1", "options": map[string]any{"publish_only": true}})
		if r := readReply(t, ws); r["type"] != "attached" {
			t.Fatalf("attach: %v", r)
		}
	}
	ws1, _, err := websocket.DefaultDialer.DialContext(edgetest.Ctx10(t), e.URL+"/v1/ws?token="+url.QueryEscape(tok), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws1.Close()
	attach(ws1)
	if acked, limited := pubN(ws1, 5); acked != 2 || limited != 1 {
		t.Fatalf("token connection: %d acked, %d limited; want the burst of 2 then rate_limited", acked, limited)
	}
	ws2, _, err := websocket.DefaultDialer.DialContext(edgetest.Ctx10(t), e.URL+"/v1/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws2.Close()
	_ = ws2.WriteJSON(map[string]any{"type": "auth", "ref": 1, "token": tok})
	if r := readReply(t, ws2); r["type"] != "ack" {
		t.Fatalf("renewal: %v", r)
	}
	attach(ws2)
	// bob's bucket is empty (the clock has not moved): every publish of
	// bob's should be rate_limited.
	if acked, _ := pubN(ws2, 5); acked > 0 {
		t.Fatalf("bob's bucket is empty, yet his renewed connection published %d messages: it counts against no principal", acked)
	}
}

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
