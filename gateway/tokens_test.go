package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/feedgate/feedgate/client"
	"github.com/feedgate/feedgate/codec"
	"github.com/feedgate/feedgate/gateway"
	"github.com/feedgate/feedgate/internal/edgetest"
)

// tokenEdge is an edge with edgetest.TokenAuth on a fake clock.
type tokenEdge struct {
	*edgetest.Edge
	ta    edgetest.TokenAuth
	clock *edgetest.Clock
	log   *edgetest.SyncBuffer
}

func startTokenEdge(t *testing.T) *tokenEdge {
	t.Helper()
	clock := edgetest.NewClock(time.Now())
	log := &edgetest.SyncBuffer{}
	logger := slog.New(slog.NewJSONHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ta := edgetest.MustTokenAuth(t, clock.Now, logger)
	e := edgetest.MustStartEdge(t, gateway.Config{
		Authorizer: ta.Authorizer,
		Logger:     logger,
		Now:        clock.Now,
		// Heartbeats and idle checks run on the fake clock too: keep them
		// out of the way of its jumps.
		HeartbeatInterval: time.Hour,
		Auth:              gateway.AuthConfig{CheckInterval: 5 * time.Millisecond, ExpiryWarning: 30 * time.Second, ExpiryGrace: 5 * time.Second},
	}, nil)
	return &tokenEdge{Edge: e, ta: ta, clock: clock, log: log}
}

func (e *tokenEdge) token(t *testing.T, subject, capability string, ttl time.Duration) (string, string) {
	return e.ta.Token(t, subject, capability, ttl, e.clock.Now())
}

// upgradeCode dials with a token in the query and returns the refusal's
// HTTP status and code (0, 0 if the upgrade succeeded).
func upgradeCode(t *testing.T, e *tokenEdge, header http.Header, token string) (int, codec.Code) {
	t.Helper()
	u := e.URL + "/v1/ws"
	if token != "" {
		u += "?token=" + url.QueryEscape(token)
	}
	ws, resp, err := websocket.DefaultDialer.Dial(u, header)
	if err == nil {
		ws.Close()
		return 0, 0
	}
	if resp == nil {
		t.Fatalf("dial: %v", err)
	}
	defer resp.Body.Close()
	var body struct {
		Error struct{ Code int } `json:"error"`
	}
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("refusal body %q: %v", b, err)
	}
	return resp.StatusCode, codec.Code(body.Error.Code)
}

func TestTokenConnect(t *testing.T) {
	e := startTokenEdge(t)
	good, _ := e.token(t, "alice", `{"odds:*":["subscribe"]}`, 10*time.Minute)
	expired, _ := e.ta.Token(t, "alice", `{"odds:*":["subscribe"]}`, time.Minute, e.clock.Now().Add(-time.Hour))
	future, _ := e.ta.Token(t, "alice", `{"odds:*":["subscribe"]}`, time.Minute, e.clock.Now().Add(time.Hour))
	parts := strings.Split(good, ".")
	forged := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
	for _, tc := range []struct {
		name   string
		header http.Header
		token  string
		status int
		code   codec.Code
	}{
		{"token in the query", nil, good, 0, 0},
		{"token in the header", http.Header{"Authorization": {"Bearer " + good}}, "", 0, 0},
		{"API key", http.Header{"Authorization": {"Bearer " + edgetest.PublisherKey}}, "", 0, 0},
		{"no credentials", nil, "", 401, codec.CodeUnauthorized},
		{"forged signature", nil, forged, 401, codec.CodeTokenInvalid},
		{"alg none", nil, "eyJhbGciOiJub25lIn0." + parts[1] + ".", 401, codec.CodeTokenInvalid},
		{"expired", nil, expired, 401, codec.CodeTokenExpired},
		{"not yet valid", nil, future, 401, codec.CodeTokenNotYetValid},
		{"garbage", nil, "a.b.c", 401, codec.CodeTokenInvalid},
		{"header and query", http.Header{"Authorization": {"Bearer " + edgetest.PublisherKey}}, good, 401, codec.CodeUnauthorized},
		{"wrong API key", http.Header{"Authorization": {"Bearer pub:wrong-secret-000000"}}, "", 401, codec.CodeUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, code := upgradeCode(t, e, tc.header, tc.token)
			if status != tc.status || code != tc.code {
				t.Errorf("upgrade: HTTP %d code %d, want %d %d", status, code, tc.status, tc.code)
			}
		})
	}
	t.Run("oversized token is refused before parsing", func(t *testing.T) {
		// Over the 4 KiB request head the HTTP server refuses it (431);
		// within it, on an auth frame, the verifier's cap does (4017).
		// The edge answers 431 and closes without reading the rest, so the
		// dialer may see its write reset instead (protocol.md §16).
		ws, resp, err := websocket.DefaultDialer.Dial(e.URL+"/v1/ws?token="+good+strings.Repeat("A", 5000), nil)
		switch {
		case err == nil:
			ws.Close()
			t.Error("an oversized token in the query connected")
		case resp != nil && resp.StatusCode != 431:
			t.Errorf("oversized token in the query: HTTP %d, want 431", resp.StatusCode)
		case resp == nil && !strings.Contains(err.Error(), "reset"):
			t.Errorf("oversized token in the query: %v", err)
		}
		c := edgetest.MustDial(t, e.URL, client.Options{Token: good})
		if err := c.Authorize(edgetest.Ctx10(t), good+strings.Repeat("A", 5000)); !hasCode(err, codec.CodeTokenTooLarge) {
			t.Errorf("oversized token in an auth frame: %v", err)
		}
	})
}

func TestTokenCapabilityOnEveryOperation(t *testing.T) {
	e := startTokenEdge(t)
	tok, _ := e.token(t, "alice", `{"odds:football:*":["subscribe"],"odds:tennis:*":["subscribe","history","publish"]}`, 10*time.Minute)
	c := edgetest.MustDial(t, e.URL, client.Options{Token: tok})
	ctx := edgetest.Ctx10(t)
	for _, tc := range []struct {
		channel string
		opts    codec.AttachOptions
		code    codec.Code
	}{
		{"odds:football:m1", codec.AttachOptions{}, 0},
		{"odds:basketball:m1", codec.AttachOptions{}, codec.CodeForbidden}, // capability for another channel
		{"odds:football", codec.AttachOptions{}, codec.CodeForbidden},      // the prefix itself
		{"odds:football-admin", codec.AttachOptions{}, codec.CodeForbidden},
		{"ODDS:football:m1", codec.AttachOptions{}, codec.CodeForbidden},
		{"odds:football:m1", codec.AttachOptions{Rewind: 5}, codec.CodeForbidden},         // rewind reads history
		{"odds:football:m2", codec.AttachOptions{PublishOnly: true}, codec.CodeForbidden}, // publishing
		{"odds:tennis:m1", codec.AttachOptions{Rewind: 5}, 0},
		{"$feedgate:revocations", codec.AttachOptions{}, codec.CodeInvalidChannel},
	} {
		err := c.Attach(ctx, tc.channel, tc.opts)
		if tc.code == 0 && err != nil || tc.code != 0 && !hasCode(err, tc.code) {
			t.Errorf("attach %q %+v: %v, want code %d", tc.channel, tc.opts, err, tc.code)
		}
	}
	if _, err := c.Publish(ctx, "odds:football:m1", []byte(`1`), client.PublishOptions{}); !hasCode(err, codec.CodeForbidden) {
		t.Errorf("publish without the capability: %v", err)
	}
	if _, err := c.Publish(ctx, "odds:tennis:m1", []byte(`1`), client.PublishOptions{}); err != nil {
		t.Errorf("publish with the capability: %v", err)
	}
	// History over HTTP: the history operation, with the token as bearer.
	for ch, want := range map[string]int{"odds:tennis:m1": 200, "odds:football:m1": 403, "odds:golf:m1": 403} {
		req, _ := http.NewRequest("GET", e.API+"/v1/channels/"+ch+"/history", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("history of %s: HTTP %d, want %d", ch, resp.StatusCode, want)
		}
	}
	// HTTP publish with a key that may only subscribe.
	resp := post(t, e.API+"/v1/channels/odds:x/messages", edgetest.IssuerKey, `{"data":1}`)
	if resp.status != 403 {
		t.Errorf("HTTP publish with a subscribe-only key: %d", resp.status)
	}
}

type httpAnswer struct {
	status int
	body   []byte
}

func post(t *testing.T, u, key, body string) httpAnswer {
	t.Helper()
	req, _ := http.NewRequest("POST", u, strings.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return httpAnswer{resp.StatusCode, b}
}

func TestTokenEndpointHTTP(t *testing.T) {
	e := startTokenEdge(t)
	a := post(t, e.API+"/v1/tokens", edgetest.IssuerKey, `{"subject":"bob","ttl":300,"capability":{"odds:*":["subscribe","publish"]}}`)
	if a.status != 200 {
		t.Fatalf("POST /v1/tokens: %d %s", a.status, a.body)
	}
	var r struct {
		Token      string          `json:"token"`
		Capability json.RawMessage `json:"capability"`
	}
	if err := json.Unmarshal(a.body, &r); err != nil {
		t.Fatal(err)
	}
	if string(r.Capability) != `{"odds:*":["subscribe"]}` {
		t.Errorf("issued capability %s: never wider than the key's", r.Capability)
	}
	c := edgetest.MustDial(t, e.URL, client.Options{Token: r.Token})
	edgetest.MustAttach(t, c, "odds:1", codec.AttachOptions{})
	for name, tc := range map[string]struct {
		key, body string
		status    int
	}{
		"no key":        {"", `{"subject":"x"}`, 401},
		"a token":       {r.Token, `{"subject":"x"}`, 401},
		"ttl too long":  {edgetest.IssuerKey, `{"subject":"x","ttl":99999}`, 400},
		"nothing given": {edgetest.IssuerKey, `{"subject":"x","capability":{"scores:*":["subscribe"]}}`, 403},
	} {
		if got := post(t, e.API+"/v1/tokens", tc.key, tc.body); got.status != tc.status {
			t.Errorf("%s: HTTP %d %s, want %d", name, got.status, got.body, tc.status)
		}
	}
}

// TestHTTPEndpointsTakeTokensInTheHeaderOnly: a token is accepted in the
// token query parameter by GET /v1/ws alone (browsers cannot set headers
// on a WebSocket); the HTTP endpoints, whose clients can, refuse a token
// in the URL with 400 bad_request, since URLs end up in access logs
// (protocol.md §1.2, §16). The same token in the header is accepted.
//
// Before: every HTTP endpoint read ?token=, while §16.2 said the history
// endpoint took no token query parameter.
func TestHTTPEndpointsTakeTokensInTheHeaderOnly(t *testing.T) {
	e := startTokenEdge(t)
	tok, _ := e.token(t, "carol", `{"odds:*":["*"]}`, 10*time.Minute)
	do := func(method, path, body string, header bool, query string) httpAnswer {
		t.Helper()
		req, _ := http.NewRequest(method, e.API+path+query, strings.NewReader(body))
		if header {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return httpAnswer{resp.StatusCode, b}
	}
	q := "?token=" + url.QueryEscape(tok)
	for _, ep := range []struct{ method, path, body string }{
		{"GET", "/v1/channels/odds:1/history", ""},
		{"POST", "/v1/channels/odds:1/messages", `{"data":1}`},
		{"POST", "/v1/tokens", `{"subject":"x"}`},
		{"POST", "/v1/revocations", `{"subject":"x"}`},
	} {
		for _, header := range []bool{false, true} {
			a := do(ep.method, ep.path, ep.body, header, q)
			var body struct {
				Error struct{ Code int } `json:"error"`
			}
			if err := json.Unmarshal(a.body, &body); a.status != 400 || err != nil || codec.Code(body.Error.Code) != codec.CodeBadRequest {
				t.Errorf("%s %s with ?token= (header too: %v): %d %s, want 400 bad_request", ep.method, ep.path, header, a.status, a.body)
			}
		}
	}
	if a := do("GET", "/v1/channels/odds:1/history", "", true, "?limit=5"); a.status != 200 {
		t.Errorf("history with the token in the header: %d %s", a.status, a.body)
	}
	if a := do("POST", "/v1/channels/odds:1/messages", `{"data":1}`, true, ""); a.status != 200 {
		t.Errorf("publish with the token in the header: %d %s", a.status, a.body)
	}
	if st, code := upgradeCode(t, e, nil, tok); st != 0 {
		t.Errorf("WebSocket upgrade with ?token=: %d %v, want accepted", st, code)
	}
}

// TestRenewalKeepsStream renews a subscriber's token in place while
// messages flow on two channels: every attachment stays and no message is
// lost or reordered. A second renewal narrows the capability: the channel
// no longer allowed is detached with forbidden, the other goes on.
func TestRenewalKeepsStream(t *testing.T) {
	e := startTokenEdge(t)
	tok1, _ := e.token(t, "alice", `{"odds:*":["subscribe"]}`, 10*time.Minute)
	sub := edgetest.MustDial(t, e.URL, client.Options{Token: tok1})
	edgetest.MustAttach(t, sub, "odds:a", codec.AttachOptions{})
	edgetest.MustAttach(t, sub, "odds:b", codec.AttachOptions{})
	pub := edgetest.MustDial(t, e.URL, client.Options{APIKey: edgetest.PublisherKey})
	edgetest.MustAttach(t, pub, "odds:a", codec.AttachOptions{PublishOnly: true})
	edgetest.MustAttach(t, pub, "odds:b", codec.AttachOptions{PublishOnly: true})

	const n = 400
	published := make(chan error, 1)
	renewAt := make(chan struct{})
	go func() {
		for i := range n {
			if i == n/2 {
				close(renewAt)
			}
			for _, ch := range []string{"odds:a", "odds:b"} {
				if _, err := pub.Publish(context.Background(), ch, fmt.Appendf(nil, "%d", i), client.PublishOptions{}); err != nil {
					published <- err
					return
				}
			}
		}
		published <- nil
	}()
	<-renewAt
	e.clock.Add(time.Minute)
	tok2, _ := e.token(t, "alice", `{"odds:*":["subscribe"]}`, 10*time.Minute)
	if err := sub.Authorize(edgetest.Ctx10(t), tok2); err != nil {
		t.Fatalf("renewal: %v", err)
	}
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	next := map[string]int{"odds:a": 0, "odds:b": 0}
	for next["odds:a"] < n || next["odds:b"] < n {
		m := edgetest.NextMessage(t, sub)
		if want := fmt.Sprint(next[m.Channel]); string(m.Data) != want {
			t.Fatalf("%s: got %s, want %s (lost or reordered across the renewal)", m.Channel, m.Data, want)
		}
		next[m.Channel]++
	}

	// A renewal for another subject is refused; the old token stays.
	other, _ := e.token(t, "mallory", `{"*":["subscribe"]}`, 10*time.Minute)
	if err := sub.Authorize(edgetest.Ctx10(t), other); !hasCode(err, codec.CodeForbidden) {
		t.Errorf("renewal with another subject: %v", err)
	}
	// An invalid renewal is refused with its code; the connection goes on.
	if err := sub.Authorize(edgetest.Ctx10(t), "a.b.c"); !hasCode(err, codec.CodeTokenInvalid) {
		t.Errorf("renewal with garbage: %v", err)
	}

	// Narrowing: odds:b is no longer allowed.
	tok3, _ := e.token(t, "alice", `{"odds:a":["subscribe"]}`, 10*time.Minute)
	if err := sub.Authorize(edgetest.Ctx10(t), tok3); err != nil {
		t.Fatal(err)
	}
	if got := edgetest.NextError(t, sub); got.Code != codec.CodeForbidden {
		t.Errorf("narrowing: %v, want forbidden for the detached channel", got)
	}
	if _, err := pub.Publish(edgetest.Ctx10(t), "odds:b", []byte(`"after"`), client.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := pub.Publish(edgetest.Ctx10(t), "odds:a", []byte(`"after"`), client.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	if m := edgetest.NextMessage(t, sub); m.Channel != "odds:a" || string(m.Data) != `"after"` {
		t.Errorf("after narrowing got %s %s, want only odds:a's message", m.Channel, m.Data)
	}
	if err := sub.Attach(edgetest.Ctx10(t), "odds:b", codec.AttachOptions{}); !hasCode(err, codec.CodeForbidden) {
		t.Errorf("re-attach of the withdrawn channel: %v", err)
	}
}

// TestNarrowingRenewalDetachesForgottenChannel: a feed publisher's
// connection holds a publish_only attachment (it receives nothing, so the
// channel has no member on the edge) and publishes nothing for 30 minutes,
// so the edge forgets the idle channel. A renewal whose capability no
// longer allows the channel still detaches it with an unsolicited detached
// frame (no ref, forbidden), before the renewal's ack (protocol.md §4.5).
//
// Before: the withdrawal was sent only through the channel's state, which
// the edge had forgotten: the attachment was dropped silently, and the
// next publish got not_attached out of the blue.
func TestNarrowingRenewalDetachesForgottenChannel(t *testing.T) {
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
	// A heartbeat stamped with the moved clock comes from a tick that swept
	// the channels first, with that clock.
	swept := clock.Now().UnixMilli()
	for {
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		var f struct {
			Type string
			Time int64
		}
		if err := ws.ReadJSON(&f); err != nil {
			t.Fatal(err)
		}
		if f.Type == "heartbeat" && f.Time >= swept {
			break
		}
	}
	tok2, _ := ta.Token(t, "feed", `{"odds:other":["publish"]}`, time.Hour, clock.Now())
	_ = ws.WriteJSON(map[string]any{"type": "auth", "ref": 2, "token": tok2})
	if r := readReply(t, ws); r["type"] != "detached" || r["channel"] != "odds:later" || r["code"] != float64(codec.CodeForbidden) || r["ref"] != nil {
		t.Fatalf("narrowing renewal: %v, want an unsolicited detached forbidden for odds:later first", r)
	}
	if r := readReply(t, ws); r["type"] != "ack" || r["ref"] != float64(2) {
		t.Fatalf("renewal: %v, want its ack", r)
	}
	_ = ws.WriteJSON(map[string]any{"type": "publish", "ref": 3, "channel": "odds:later", "data": 1})
	if r := readReply(t, ws); r["type"] != "nack" || r["code"] != float64(codec.CodeNotAttached) {
		t.Fatalf("publish on the detached channel: %v, want nack not_attached", r)
	}
}

// TestTokenExpiry: a connection whose token nears expiry is warned, then
// disconnected after the grace period; another client is untouched, and a
// Session renews by itself on the warning.
func TestTokenExpiry(t *testing.T) {
	e := startTokenEdge(t)
	short, _ := e.token(t, "alice", `{"odds:*":["subscribe"]}`, time.Minute)
	long, _ := e.token(t, "bob", `{"odds:*":["subscribe"]}`, 10*time.Minute)
	c1 := edgetest.MustDial(t, e.URL, client.Options{Token: short})
	c2 := edgetest.MustDial(t, e.URL, client.Options{Token: long})
	edgetest.MustAttach(t, c1, "odds:1", codec.AttachOptions{})
	edgetest.MustAttach(t, c2, "odds:1", codec.AttachOptions{})
	sess := client.NewSession(client.SessionOptions{
		URLs: []string{e.URL},
		Credentials: func(context.Context) (client.Credentials, error) {
			tok, _ := e.token(t, "carol", `{"odds:*":["subscribe"]}`, time.Minute)
			return client.Credentials{Token: tok}, nil
		},
	})
	t.Cleanup(func() { sess.Close() })
	if _, err := sess.Attach(edgetest.Ctx10(t), "odds:1", codec.AttachOptions{}); err != nil {
		t.Fatal(err)
	}

	e.clock.Add(31 * time.Second) // within the 30 s warning of the short tokens
	if got := edgetest.NextError(t, c1); got.Code != codec.CodeTokenExpiring {
		t.Fatalf("warning: %v, want token_expiring", got)
	}
	edgetest.WaitFor(t, "the session's renewal", func() bool { return sess.Stats().Renewals == 1 })
	select {
	case e := <-c2.Errors():
		t.Fatalf("the long token's client was told %v", e)
	default:
	}

	e.clock.Add(35 * time.Second) // past expiry + 5 s grace
	select {
	case <-c1.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the expired client is still connected")
	}
	if d := c1.Disconnect(); d == nil || d.Code != codec.CodeTokenExpired {
		t.Errorf("disconnect: %v, want token_expired", d)
	}
	// The others go on: c2 and the session (renewed in place) receive.
	pub := edgetest.MustDial(t, e.URL, client.Options{APIKey: edgetest.PublisherKey})
	edgetest.MustAttach(t, pub, "odds:1", codec.AttachOptions{PublishOnly: true})
	if _, err := pub.Publish(edgetest.Ctx10(t), "odds:1", []byte(`7`), client.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	if m := edgetest.NextMessage(t, c2); string(m.Data) != "7" {
		t.Errorf("c2 got %s", m.Data)
	}
	select {
	case m := <-sess.Messages():
		if string(m.Data) != "7" {
			t.Errorf("session got %s", m.Data)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the renewed session got nothing")
	}
	if n := sess.Stats().Connects; n != 1 {
		t.Errorf("the session connected %d times; renewal must not reconnect", n)
	}
	// A fresh token connects again.
	fresh, _ := e.token(t, "alice", `{"odds:*":["subscribe"]}`, time.Minute)
	edgetest.MustDial(t, e.URL, client.Options{Token: fresh})
}

// TestRevokeOnOneEdge: revoking a token closes its connections with
// revoked and refuses it afterwards; other clients are untouched. Only an
// admin key may revoke.
func TestRevokeOnOneEdge(t *testing.T) {
	e := startTokenEdge(t)
	tok, jti := e.token(t, "alice", `{"odds:*":["subscribe"]}`, 10*time.Minute)
	other, _ := e.token(t, "bob", `{"odds:*":["subscribe"]}`, 10*time.Minute)
	c1 := edgetest.MustDial(t, e.URL, client.Options{Token: tok})
	c2 := edgetest.MustDial(t, e.URL, client.Options{Token: other})
	edgetest.MustAttach(t, c2, "odds:1", codec.AttachOptions{})
	if a := post(t, e.API+"/v1/revocations", edgetest.IssuerKey, `{"token_id":"`+jti+`"}`); a.status != 403 {
		t.Errorf("revoke with a key without admin: %d %s", a.status, a.body)
	}
	if a := post(t, e.API+"/v1/revocations", edgetest.AdminKey, `{"token_id":"`+jti+`"}`); a.status != 200 {
		t.Fatalf("revoke: %d %s", a.status, a.body)
	}
	select {
	case <-c1.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the revoked client is still connected")
	}
	if d := c1.Disconnect(); d == nil || d.Code != codec.CodeRevoked {
		t.Errorf("disconnect: %v, want revoked", d)
	}
	if status, code := upgradeCode(t, e, nil, tok); status != 401 || code != codec.CodeRevoked {
		t.Errorf("reconnect with the revoked token: %d %d", status, code)
	}
	if err := c2.Attach(edgetest.Ctx10(t), "odds:2", codec.AttachOptions{}); err != nil {
		t.Errorf("another client: %v", err)
	}
	// Revoking the publisher's key closes its connections too.
	pub := edgetest.MustDial(t, e.URL, client.Options{APIKey: edgetest.PublisherKey})
	if a := post(t, e.API+"/v1/revocations", edgetest.AdminKey, `{"key_id":"pub"}`); a.status != 200 {
		t.Fatalf("revoke key: %d %s", a.status, a.body)
	}
	select {
	case <-pub.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the revoked key's client is still connected")
	}
	if a := post(t, e.API+"/v1/channels/odds:1/messages", edgetest.PublisherKey, `{"data":1}`); a.status != 401 {
		t.Errorf("HTTP publish with a revoked key: %d %s", a.status, a.body)
	}

	// Nothing logged holds a secret or a token (the edge logs at debug).
	upgradeCode(t, e, nil, tok+"x")
	upgradeCode(t, e, http.Header{"Authorization": {"Bearer admin:wrong-secret-0123456789"}}, "")
	out := e.log.String()
	if !strings.Contains(out, `"level":"DEBUG"`) {
		t.Fatal("no debug log captured")
	}
	for _, s := range []string{tok, other, strings.Split(tok, ".")[2], "pub-secret-0123456789", "admin-secret-0123456789", "issuer-secret-01234567"} {
		if strings.Contains(out, s) {
			t.Errorf("the edge's log holds a secret or token: %q", s)
		}
	}
}
