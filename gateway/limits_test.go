package gateway_test

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/feedgate/feedgate/auth"
	"github.com/feedgate/feedgate/backbone"
	"github.com/feedgate/feedgate/client"
	"github.com/feedgate/feedgate/codec"
	"github.com/feedgate/feedgate/gateway"
	"github.com/feedgate/feedgate/internal/edgetest"
)

// fakeClock is a clock that moves only when told: rate limits are tested
// without the wall clock.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// wantCode fails unless err is an *codec.Error with code want.
func wantCode(tb testing.TB, what string, err error, want codec.Code) *codec.Error {
	tb.Helper()
	var e *codec.Error
	if !errors.As(err, &e) || e.Code != want {
		tb.Fatalf("%s: got %v, want %s (%d)", what, err, want, int(want))
	}
	return e
}

const (
	keyA = "a:aaaaaaaaaaaaaaaaaaaa"
	keyB = "b:bbbbbbbbbbbbbbbbbbbb"
)

func mustStatic(tb testing.TB, keys ...string) *auth.Static {
	tb.Helper()
	a, err := auth.NewStatic(keys)
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

// TestPublishRateLimitPerConnection: a publish over the connection's rate
// is nacked rate_limited (retryable, with the message's id); later
// publishes on that channel are refused until that id is published again
// (the ordering rule), and after the wait it goes through.
func TestPublishRateLimitPerConnection(t *testing.T) {
	clk := newFakeClock()
	e := edgetest.MustStartEdge(t, gateway.Config{Now: clk.Now, Limits: gateway.Limits{PublishPerConn: gateway.Rate{PerSecond: 1, Burst: 3}}}, nil)
	pub := edgetest.MustDial(t, e.URL, client.Options{})
	edgetest.MustAttach(t, pub, "odds:1", codec.AttachOptions{})
	publish := func(id string) error {
		_, err := pub.Publish(edgetest.Ctx10(t), "odds:1", []byte(`1`), client.PublishOptions{ID: id})
		return err
	}
	for i := range 3 {
		if err := publish(fmt.Sprint("m", i)); err != nil {
			t.Fatalf("publish %d within the burst: %v", i, err)
		}
	}
	re := wantCode(t, "4th publish", publish("m3"), codec.CodeRateLimited)
	if !re.Code.Retryable() || !strings.Contains(re.Message, "retry in 1s") || re.RetryAfter != time.Second {
		t.Fatalf("refusal %q, RetryAfter %v: want retryable, with the wait (1s)", re.Message, re.RetryAfter)
	}
	// The next one would overtake m3: refused by the ordering rule.
	be := wantCode(t, "publish behind the refused one", publish("m4"), codec.CodeBackboneUnavailable)
	if !strings.Contains(be.Message, `"m3"`) {
		t.Fatalf("ordering refusal %q does not name m3", be.Message)
	}
	// Retrying m3 before the wait is refused again, and keeps the block.
	wantCode(t, "m3 retried too early", publish("m3"), codec.CodeRateLimited)
	wantCode(t, "m4 still behind m3", publish("m4"), codec.CodeBackboneUnavailable)
	clk.Advance(time.Second)
	if err := publish("m3"); err != nil {
		t.Fatalf("m3 after the wait: %v", err)
	}
	clk.Advance(time.Second)
	if err := publish("m4"); err != nil {
		t.Fatalf("m4 after m3: %v", err)
	}
	for i := range 5 {
		if m := edgetest.NextMessage(t, pub); m.ID != fmt.Sprint("m", i) {
			t.Fatalf("message %d: got %q: out of order", i, m.ID)
		}
	}
	st := e.Srv.Stats()
	if st.Refused[gateway.RefusedPublishConn] != 2 || st.Refused[gateway.RefusedPublishKey] != 0 || st.BadFrames != 0 {
		t.Fatalf("refused %v, bad frames %d: want 2 publish_rate_conn, no bad frames", st.Refused, st.BadFrames)
	}
}

// TestPublishRateLimitAssignsID: a rate-limited publish without an id gets
// one in its nack, the id that lifts the ordering block.
func TestPublishRateLimitAssignsID(t *testing.T) {
	clk := newFakeClock()
	e := edgetest.MustStartEdge(t, gateway.Config{Now: clk.Now, Limits: gateway.Limits{PublishPerConn: gateway.Rate{PerSecond: 1, Burst: 1}}}, nil)
	ws := edgetest.MustDialRaw(t, e.URL)
	send := func(s string) map[string]any {
		t.Helper()
		if err := ws.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
			t.Fatal(err)
		}
		return readReply(t, ws)
	}
	if r := send(`{"type":"attach","ref":1,"channel":"c","options":{"publish_only":true}}`); r["type"] != "attached" {
		t.Fatalf("attach: %v", r)
	}
	if r := send(`{"type":"publish","ref":2,"channel":"c","data":1}`); r["type"] != "ack" {
		t.Fatalf("first publish: %v", r)
	}
	r := send(`{"type":"publish","ref":3,"channel":"c","data":2}`)
	id, _ := r["id"].(string)
	if r["type"] != "nack" || r["code"] != float64(codec.CodeRateLimited) || id == "" || r["ref"] != float64(3) || r["retry_after"] != float64(1000) {
		t.Fatalf("second publish: %v, want a rate_limited nack with an id and retry_after 1000", r)
	}
	clk.Advance(time.Second)
	if r := send(`{"type":"publish","ref":4,"channel":"c","data":3}`); r["type"] != "nack" || r["code"] != float64(codec.CodeBackboneUnavailable) {
		t.Fatalf("publish overtaking %s: %v, want refused", id, r)
	}
	if r := send(fmt.Sprintf(`{"type":"publish","ref":5,"channel":"c","id":%q,"data":2}`, id)); r["type"] != "ack" || r["id"] != id {
		t.Fatalf("retry of %s: %v", id, r)
	}
}

// readReply reads frames until one that is not a heartbeat.
func readReply(tb testing.TB, ws *websocket.Conn) map[string]any {
	tb.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, b, err := ws.ReadMessage()
		if err != nil {
			tb.Fatalf("read: %v", err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			tb.Fatalf("frame %q: %v", b, err)
		}
		if m["type"] != "heartbeat" {
			return m
		}
	}
}

// TestPublishRateLimitPerKey: a key's connections share its publish rate,
// HTTP batches included (counted per message, 429 with Retry-After);
// another key is not affected.
func TestPublishRateLimitPerKey(t *testing.T) {
	clk := newFakeClock()
	e := edgetest.MustStartEdge(t, gateway.Config{
		Now: clk.Now, Authorizer: mustStatic(t, keyA, keyB), MaxBatch: 3,
		Limits: gateway.Limits{PublishPerConn: gateway.Rate{PerSecond: -1}, PublishPerKey: gateway.Rate{PerSecond: 2, Burst: 3}},
	}, nil)
	dial := func(key string) *client.Client {
		c := edgetest.MustDial(t, e.URL, client.Options{APIKey: key})
		edgetest.MustAttach(t, c, "odds:1", codec.AttachOptions{PublishOnly: true})
		return c
	}
	a1, a2, b := dial(keyA), dial(keyA), dial(keyB)
	pub := func(c *client.Client, id string) error {
		_, err := c.Publish(edgetest.Ctx10(t), "odds:1", []byte(`1`), client.PublishOptions{ID: id})
		return err
	}
	if err := pub(a1, "a1"); err != nil {
		t.Fatal(err)
	}
	if err := pub(a2, "a2"); err != nil {
		t.Fatal(err)
	}
	post := func(key, body string) (*http.Response, map[string]any) {
		req, _ := http.NewRequestWithContext(edgetest.Ctx10(t), "POST", e.API+"/v1/channels/odds:1/messages", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		b, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("body %q: %v", b, err)
		}
		return resp, m
	}
	// One token left: a batch of two is refused whole.
	resp, m := post(keyA, `{"messages":[{"id":"h1","data":1},{"id":"h2","data":2}]}`)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("batch over the key's rate: %d Retry-After %q %v, want 429 Retry-After 1", resp.StatusCode, resp.Header.Get("Retry-After"), m)
	}
	if ee, _ := m["error"].(map[string]any); ee["name"] != "rate_limited" || ee["code"] != float64(codec.CodeRateLimited) || ee["retry_after"] != float64(500) {
		t.Fatalf("body %v", m)
	}
	if err := pub(a1, "a3"); err != nil {
		t.Fatalf("the last token: %v", err)
	}
	wantCode(t, "a2 over its key's rate", pub(a2, "a4"), codec.CodeRateLimited)
	if err := pub(b, "b1"); err != nil {
		t.Fatalf("another key: %v", err)
	}
	if resp, m := post(keyB, `{"messages":[{"id":"hb1","data":1},{"id":"hb2","data":2}]}`); resp.StatusCode != 200 {
		t.Fatalf("another key's batch: %d %v", resp.StatusCode, m)
	}
	clk.Advance(time.Second) // two tokens back
	if resp, m := post(keyA, `{"messages":[{"id":"h1","data":1},{"id":"h2","data":2}]}`); resp.StatusCode != 200 {
		t.Fatalf("batch after the wait: %d %v", resp.StatusCode, m)
	}
	st := e.Srv.Stats()
	if st.Refused[gateway.RefusedPublishKey] != 2 || st.Refused[gateway.RefusedPublishConn] != 0 {
		t.Fatalf("refused %v", st.Refused)
	}
	// The refused batch published nothing: the history holds h1 and h2
	// once each, after a1..a3 and b1, hb1, hb2.
	resp2, err := http.Get(e.API + "/v1/channels/odds:1/history")
	if err != nil {
		t.Fatal(err)
	}
	var h struct{ Messages []struct{ ID string } }
	_ = json.NewDecoder(resp2.Body).Decode(&h)
	resp2.Body.Close()
	var ids []string
	for _, m := range h.Messages {
		ids = append(ids, m.ID)
	}
	if got := strings.Join(ids, ","); got != "h2,h1,hb2,hb1,b1,a3,a2,a1" {
		t.Fatalf("history %s", got)
	}
}

// TestAttachRateLimit: attaches over the connection's or the key's rate
// get an error frame rate_limited; the connection goes on.
func TestAttachRateLimit(t *testing.T) {
	clk := newFakeClock()
	e := edgetest.MustStartEdge(t, gateway.Config{
		Now: clk.Now, Authorizer: mustStatic(t, keyA),
		Limits: gateway.Limits{AttachPerConn: gateway.Rate{PerSecond: 1, Burst: 2}, AttachPerKey: gateway.Rate{PerSecond: 1, Burst: 3}},
	}, nil)
	attach := func(c *client.Client, ch string) error {
		return c.Attach(edgetest.Ctx10(t), ch, codec.AttachOptions{})
	}
	t.Run("per connection", func(t *testing.T) {
		c := edgetest.MustDial(t, e.URL, client.Options{})
		for _, ch := range []string{"a", "b"} {
			if err := attach(c, ch); err != nil {
				t.Fatal(err)
			}
		}
		wantCode(t, "third attach", attach(c, "c"), codec.CodeRateLimited)
		clk.Advance(time.Second)
		if err := attach(c, "c"); err != nil {
			t.Fatalf("after the wait: %v", err)
		}
	})
	t.Run("per key", func(t *testing.T) {
		k1 := edgetest.MustDial(t, e.URL, client.Options{APIKey: keyA})
		k2 := edgetest.MustDial(t, e.URL, client.Options{APIKey: keyA})
		for _, ch := range []string{"a", "b"} {
			if err := attach(k1, ch); err != nil {
				t.Fatal(err)
			}
		}
		if err := attach(k2, "a"); err != nil {
			t.Fatal(err)
		}
		wantCode(t, "the key's fourth attach", attach(k2, "b"), codec.CodeRateLimited)
	})
	st := e.Srv.Stats()
	if st.Refused[gateway.RefusedAttachConn] != 1 || st.Refused[gateway.RefusedAttachKey] != 1 {
		t.Fatalf("refused %v", st.Refused)
	}
}

// TestRateLimitHammering: a client that keeps publishing after rate
// refusals gets as many refusals free as its rate allows, then each counts
// against the error budget: it is disconnected (too_many_errors) on the
// 11th counted one. The clock does not move: the arithmetic is exact.
func TestRateLimitHammering(t *testing.T) {
	clk := newFakeClock()
	e := edgetest.MustStartEdge(t, gateway.Config{Now: clk.Now, Limits: gateway.Limits{PublishPerConn: gateway.Rate{PerSecond: 1, Burst: 2}}}, nil)
	c := edgetest.MustDial(t, e.URL, client.Options{})
	edgetest.MustAttach(t, c, "c", codec.AttachOptions{PublishOnly: true})
	pub := func(i int) error {
		_, err := c.Publish(edgetest.Ctx10(t), "c", []byte(`1`), client.PublishOptions{ID: fmt.Sprint("m", i)})
		return err
	}
	// 2 accepted, 2 refused free (the allowance's burst), 10 counted: the
	// connection lives on.
	for i := range 14 {
		err := pub(i)
		if i < 2 {
			if err != nil {
				t.Fatal(err)
			}
			continue
		}
		var ce *codec.Error
		if !errors.As(err, &ce) || !ce.Code.Retryable() {
			t.Fatalf("publish %d: %v, want a retryable nack", i, err)
		}
	}
	if d := c.Disconnect(); d != nil {
		t.Fatalf("disconnected after 10 counted refusals: %v", d)
	}
	// The 11th counted refusal is answered, then the client is disconnected.
	if err := pub(14); err == nil {
		t.Fatal("15th publish accepted")
	}
	edgetest.WaitFor(t, "the disconnect", func() bool { return c.Disconnect() != nil })
	if d := c.Disconnect(); d.Code != codec.CodeTooManyErrors {
		t.Fatalf("disconnect %v, want too_many_errors", d)
	}
	if st := e.Srv.Stats(); st.Ends[gateway.EndTooManyErrors] != 1 || st.BadFrames != 0 {
		t.Fatalf("ends %v, bad frames %d", st.Ends, st.BadFrames)
	}
}

// dialStatus upgrades with headers h and returns the HTTP refusal's status
// and decoded JSON error, or 101 on success (the connection then closes at
// the end of the test).
func dialStatus(tb testing.TB, url string, h http.Header) (int, codec.Code, *websocket.Conn) {
	tb.Helper()
	ws, resp, err := websocket.DefaultDialer.DialContext(edgetest.Ctx10(tb), url+"/v1/ws", h)
	if err == nil {
		tb.Cleanup(func() { ws.Close() })
		return resp.StatusCode, 0, ws
	}
	if resp == nil {
		tb.Fatalf("dial: %v", err)
	}
	defer resp.Body.Close()
	var body struct {
		Error struct {
			Code int
			Name string
		}
	}
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &body); err != nil || resp.Header.Get("Content-Type") != "application/json" {
		tb.Fatalf("refusal %d body %q: not the JSON error", resp.StatusCode, b)
	}
	if codec.Code(body.Error.Code).String() != body.Error.Name {
		tb.Fatalf("refusal body %q: name does not match code", b)
	}
	return resp.StatusCode, codec.Code(body.Error.Code), nil
}

func bearer(key string) http.Header {
	h := http.Header{}
	h.Set("Authorization", "Bearer "+key)
	return h
}

// TestConnectionCapPerKey: a key holds at most ConnsPerKey connections;
// the next upgrade is refused with 429 too_many_connections until one of
// them ends. Other keys and connections without a key are not counted.
func TestConnectionCapPerKey(t *testing.T) {
	e := edgetest.MustStartEdge(t, gateway.Config{Authorizer: mustStatic(t, keyA, keyB), Limits: gateway.Limits{ConnsPerKey: 2}}, nil)
	var held []*websocket.Conn
	for range 2 {
		st, _, ws := dialStatus(t, e.URL, bearer(keyA))
		if st != http.StatusSwitchingProtocols {
			t.Fatalf("connection within the cap: %d", st)
		}
		held = append(held, ws)
	}
	// A connection is counted once its upgrade handler ran, just after the
	// client saw the handshake.
	edgetest.WaitFor(t, "both connections to be counted", func() bool { return e.Srv.Stats().Connections == 2 })
	if st, code, _ := dialStatus(t, e.URL, bearer(keyA)); st != http.StatusTooManyRequests || code != codec.CodeTooManyConnections {
		t.Fatalf("third connection of a key: %d %v, want 429 too_many_connections", st, code)
	}
	if st, _, _ := dialStatus(t, e.URL, bearer(keyB)); st != http.StatusSwitchingProtocols {
		t.Fatalf("another key: %d", st)
	}
	for range 3 {
		if st, _, _ := dialStatus(t, e.URL, nil); st != http.StatusSwitchingProtocols {
			t.Fatalf("without a key: %d", st)
		}
	}
	held[0].Close()
	edgetest.WaitFor(t, "a slot of the key to free up", func() bool {
		ws, _, err := websocket.DefaultDialer.DialContext(edgetest.Ctx10(t), e.URL+"/v1/ws", bearer(keyA))
		if err != nil {
			return false
		}
		t.Cleanup(func() { ws.Close() })
		return true
	})
	if n := e.Srv.Stats().Refused[gateway.RefusedConnsPerKey]; n < 1 {
		t.Fatalf("conns_per_key refusals %d", n)
	}
}

// TestMaxConnections: past the edge's cap, upgrades get 503 edge_full.
func TestMaxConnections(t *testing.T) {
	e := edgetest.MustStartEdge(t, gateway.Config{Limits: gateway.Limits{MaxConnections: 2}}, nil)
	a := edgetest.MustDial(t, e.URL, client.Options{})
	edgetest.MustDial(t, e.URL, client.Options{})
	edgetest.WaitFor(t, "both connections to be counted", func() bool { return e.Srv.Stats().Connections == 2 })
	if st, code, _ := dialStatus(t, e.URL, nil); st != http.StatusServiceUnavailable || code != codec.CodeEdgeFull {
		t.Fatalf("over the cap: %d %v, want 503 edge_full", st, code)
	}
	a.Close()
	edgetest.WaitFor(t, "the closed connection to end", func() bool { return e.Srv.Stats().Connections == 1 })
	if st, _, _ := dialStatus(t, e.URL, nil); st != http.StatusSwitchingProtocols {
		t.Fatalf("after one left: %d", st)
	}
	if n := e.Srv.Stats().Refused[gateway.RefusedEdgeFull]; n != 1 {
		t.Fatalf("edge_full refusals %d", n)
	}
}

// TestOriginAllowList: with an allow-list, a browser page from another
// origin is refused (403 origin_not_allowed) before the handshake; allowed
// origins and clients that send no Origin connect.
func TestOriginAllowList(t *testing.T) {
	e := edgetest.MustStartEdge(t, gateway.Config{AllowedOrigins: []string{"https://odds.example.com", "https://*.example.net"}}, nil)
	for _, tc := range []struct {
		origin string
		want   int
	}{
		{"", 101},
		{"https://odds.example.com", 101},
		{"HTTPS://ODDS.Example.COM", 101},
		{"https://odds.example.com:443", 101},
		{"https://live.example.net", 101},
		{"https://a.b.example.net", 101},
		{"https://example.net", 403},
		{"https://odds.example.com.evil.com", 403},
		{"https://evil-odds.example.com", 403},
		{"https://odds.example.com:8443", 403},
		{"http://odds.example.com", 403},
		{"https://live.example.net.evil.com", 403},
		{"https://evilexample.net", 403},
		{"null", 403},
		{"https://odds.example.com/", 403},
		{"https://user@odds.example.com", 403},
		{"https://odds.example.com.", 403},
	} {
		t.Run(tc.origin, func(t *testing.T) {
			h := http.Header{}
			if tc.origin != "" {
				h.Set("Origin", tc.origin)
			}
			st, code, _ := dialStatus(t, e.URL, h)
			if st != tc.want || (st == 403 && code != codec.CodeOriginNotAllowed) {
				t.Fatalf("Origin %q: %d %v, want %d", tc.origin, st, code, tc.want)
			}
		})
	}
	if n := e.Srv.Stats().Refused[gateway.RefusedOrigin]; n != 11 {
		t.Fatalf("origin refusals %d, want 11", n)
	}
}

// TestLimitsConfig: limits that cannot work are refused at New.
func TestLimitsConfig(t *testing.T) {
	for name, cfg := range map[string]gateway.Config{
		"key burst below a batch": {MaxBatch: 100, Limits: gateway.Limits{PublishPerKey: gateway.Rate{PerSecond: 10, Burst: 50}}},
		"null origin":             {AllowedOrigins: []string{"null"}},
		"star origin":             {AllowedOrigins: []string{"*"}},
		"origin with a path":      {AllowedOrigins: []string{"https://a.example.com/app"}},
		"wildcard in the middle":  {AllowedOrigins: []string{"https://a.*.example.com"}},
	} {
		t.Run(name, func(t *testing.T) {
			cfg.Authorizer = mustStatic(t)
			if _, err := gateway.New(cfg, backbone.NewLocal(backbone.LocalConfig{})); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// TestConnectionCapRace: connections of one key racing past the check
// before the handshake are admitted only up to the cap; the others are
// refused with 429 before the handshake or, having raced past it, closed
// with close code 4528.
func TestConnectionCapRace(t *testing.T) {
	e := edgetest.MustStartEdge(t, gateway.Config{Authorizer: mustStatic(t, keyA), Limits: gateway.Limits{ConnsPerKey: 1}}, nil)
	const n = 20
	refused := make(chan string, n) // how each refused connection was told
	for range n {
		go func() {
			ws, resp, err := websocket.DefaultDialer.DialContext(t.Context(), e.URL+"/v1/ws", bearer(keyA))
			if err != nil {
				if resp != nil {
					resp.Body.Close()
					refused <- fmt.Sprint("HTTP ", resp.StatusCode)
				} else if t.Context().Err() == nil {
					refused <- err.Error()
				}
				return
			}
			defer ws.Close()
			for {
				_, _, err := ws.ReadMessage()
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					refused <- fmt.Sprint("close ", ce.Code)
					return
				}
				if err != nil {
					return // the test ended: this one was admitted
				}
			}
		}()
	}
	for range n - 1 {
		select {
		case how := <-refused:
			if how != "HTTP 429" && how != fmt.Sprint("close ", int(codec.CodeTooManyConnections)) {
				t.Fatalf("refused with %s", how)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("fewer than n-1 connections refused within 10s")
		}
	}
	edgetest.WaitFor(t, "the admitted connection to be counted", func() bool { return e.Srv.Stats().Connections == 1 })
	if st := e.Srv.Stats(); st.Refused[gateway.RefusedConnsPerKey] != n-1 {
		t.Fatalf("refused %d, want %d", st.Refused[gateway.RefusedConnsPerKey], n-1)
	}
	select {
	case how := <-refused:
		t.Fatalf("the %dth connection was refused too (%s)", n, how)
	default:
	}
}

// anonAuth is a production-like authorizer whose clients without
// credentials may subscribe to free:* (README: -anonymous-capability
// '{"free:*":["subscribe"]}') and whose tokens are Ed25519.
func anonAuth(t *testing.T) (*auth.Authorizer, *auth.Signer) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := auth.NewEd25519Signer("anon-1", priv, "iss", "aud")
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

func signToken(t *testing.T, s *auth.Signer, subject, capability string) string {
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

// TestRenewedSubjectCountsAgainstItsConnectionCap: a connection without
// credentials that renews to a subject's token (auth frame, protocol.md
// §4.5) counts against that subject's connection cap from then on: the
// renewal is refused with too_many_connections while the subject holds its
// cap (the connection stays anonymous), accepted once a slot is free, and
// the slot is the subject's until the connection ends.
//
// Before: the renewal replaced the credential but left the connection
// counted against no principal, so any number of anonymous connections
// took alice's token past ConnsPerKey 1.
func TestRenewedSubjectCountsAgainstItsConnectionCap(t *testing.T) {
	a, signer := anonAuth(t)
	e := edgetest.MustStartEdge(t, gateway.Config{Authorizer: a, Limits: gateway.Limits{ConnsPerKey: 1}}, nil)
	tok := signToken(t, signer, "alice", `{"odds:*":["subscribe"]}`)
	tokenHeader := bearer(tok)

	st, _, ws1 := dialStatus(t, e.URL, tokenHeader)
	if st != http.StatusSwitchingProtocols {
		t.Fatalf("first connection of alice: %d", st)
	}
	edgetest.WaitFor(t, "alice's connection to be counted", func() bool { return e.Srv.Stats().Connections == 1 })
	renew := func(ws *websocket.Conn) map[string]any {
		t.Helper()
		if err := ws.WriteJSON(map[string]any{"type": "auth", "ref": 1, "token": tok}); err != nil {
			t.Fatal(err)
		}
		return readReply(t, ws)
	}
	attach := func(ws *websocket.Conn, ref int, ch string) map[string]any {
		t.Helper()
		if err := ws.WriteJSON(map[string]any{"type": "attach", "ref": ref, "channel": ch}); err != nil {
			t.Fatal(err)
		}
		return readReply(t, ws)
	}
	for i := range 3 {
		st, _, ws := dialStatus(t, e.URL, nil)
		if st != http.StatusSwitchingProtocols {
			t.Fatalf("anonymous connection %d: %d", i, st)
		}
		if r := renew(ws); r["type"] != "error" || r["code"] != float64(codec.CodeTooManyConnections) || r["ref"] != float64(1) {
			t.Fatalf("renewal %d to alice's token while she holds her cap: %v, want error too_many_connections", i, r)
		}
		// The old (anonymous) credential stays in force.
		if r := attach(ws, 2, "free:1"); r["type"] != "attached" {
			t.Fatalf("anonymous attach after the refused renewal: %v", r)
		}
		if r := attach(ws, 3, "odds:1"); r["type"] != "error" || r["code"] == float64(codec.CodeTooManyConnections) {
			t.Fatalf("attach of alice's channel after the refused renewal: %v, want a refusal", r)
		}
	}
	if n := e.Srv.Stats().Refused[gateway.RefusedConnsPerKey]; n != 3 {
		t.Fatalf("conns_per_key refusals %d, want 3", n)
	}

	// Once alice's slot is free, a renewal takes it, and holds it.
	ws1.Close()
	st, _, ws2 := dialStatus(t, e.URL, nil)
	if st != http.StatusSwitchingProtocols {
		t.Fatalf("anonymous connection: %d", st)
	}
	edgetest.WaitFor(t, "alice's slot to free up", func() bool {
		r := renew(ws2)
		return r["type"] == "ack"
	})
	if r := attach(ws2, 2, "odds:1"); r["type"] != "attached" {
		t.Fatalf("attach as alice after the renewal: %v", r)
	}
	if st, code, _ := dialStatus(t, e.URL, tokenHeader); st != http.StatusTooManyRequests || code != codec.CodeTooManyConnections {
		t.Fatalf("token connection of alice while a renewed one holds her slot: %d %v, want 429 too_many_connections", st, code)
	}
	// The renewed connection gives alice's slot back when it ends.
	ws2.Close()
	edgetest.WaitFor(t, "the renewed connection's slot to free up", func() bool {
		ws, _, err := websocket.DefaultDialer.DialContext(edgetest.Ctx10(t), e.URL+"/v1/ws", tokenHeader)
		if err != nil {
			return false
		}
		t.Cleanup(func() { ws.Close() })
		return true
	})
}

// TestRenewedSubjectCountsAgainstItsPublishRate: a subject's publish rate
// (PublishPerKey) is shared by its connections, including one that renewed
// from anonymous to the subject's token.
//
// Before: the renewed connection published against no principal's bucket:
// 5 publishes acked while bob's bucket was empty.
func TestRenewedSubjectCountsAgainstItsPublishRate(t *testing.T) {
	a, signer := anonAuth(t)
	clk := newFakeClock()
	e := edgetest.MustStartEdge(t, gateway.Config{Now: clk.Now, Authorizer: a, MaxBatch: 1, Limits: gateway.Limits{
		PublishPerConn: gateway.Rate{PerSecond: -1}, PublishPerKey: gateway.Rate{PerSecond: 1, Burst: 2},
	}}, nil)
	tok := signToken(t, signer, "bob", `{"odds:*":["publish","subscribe"]}`)
	pubN := func(ws *websocket.Conn, n int) (acked, limited int) {
		t.Helper()
		for i := range n {
			_ = ws.WriteJSON(map[string]any{"type": "publish", "ref": 100 + i, "channel": "odds:1", "id": fmt.Sprintf("m%d-%s", i, ws.LocalAddr()), "data": i})
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
		t.Helper()
		_ = ws.WriteJSON(map[string]any{"type": "attach", "ref": 1, "channel": "odds:1", "options": map[string]any{"publish_only": true}})
		if r := readReply(t, ws); r["type"] != "attached" {
			t.Fatalf("attach: %v", r)
		}
	}
	_, _, ws1 := dialStatus(t, e.URL, bearer(tok))
	attach(ws1)
	if acked, limited := pubN(ws1, 5); acked != 2 || limited != 1 {
		t.Fatalf("token connection: %d acked, %d limited; want the burst of 2 then rate_limited", acked, limited)
	}
	_, _, ws2 := dialStatus(t, e.URL, nil)
	_ = ws2.WriteJSON(map[string]any{"type": "auth", "ref": 1, "token": tok})
	if r := readReply(t, ws2); r["type"] != "ack" {
		t.Fatalf("renewal: %v", r)
	}
	attach(ws2)
	// bob's bucket is empty (the clock has not moved).
	if acked, limited := pubN(ws2, 5); acked != 0 || limited != 1 {
		t.Fatalf("renewed connection of bob, whose bucket is empty: %d acked, %d limited; want rate_limited at once", acked, limited)
	}
	if n := e.Srv.Stats().Refused[gateway.RefusedPublishKey]; n != 2 {
		t.Fatalf("publish_rate_key refusals %d, want 2", n)
	}
	// A second later, bob's bucket holds one more, for either connection.
	clk.Advance(time.Second)
	if acked, limited := pubN(ws2, 2); acked != 1 || limited != 1 {
		t.Fatalf("after a second: %d acked, %d limited; want 1 then rate_limited", acked, limited)
	}
}
