package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/feedgate/feedgate/backbone"
	"github.com/feedgate/feedgate/client"
	"github.com/feedgate/feedgate/codec"
	"github.com/feedgate/feedgate/gateway"
	"github.com/feedgate/feedgate/internal/edgetest"
	"github.com/feedgate/feedgate/internal/pubsubtest"
)

// startTokenRelayEdge is an edge with edgetest.TokenAuth on a shared
// backbone: every such edge verifies the same tokens.
func startTokenRelayEdge(t *testing.T, srv pubsubtest.Server, id, prefix string) (*edgetest.Edge, edgetest.TokenAuth) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := backbone.NewRelay(ctx, relayConfig(srv, id, prefix))
	if err != nil {
		t.Fatal(err)
	}
	ta := edgetest.MustTokenAuth(t, nil, nil)
	e := edgetest.MustStartEdge(t, gateway.Config{Authorizer: ta.Authorizer, Logger: testLogger()}, r)
	return e, ta
}

// TestRevocationAcrossEdges: a token and a key revoked on edge A lose
// access on edge B within seconds (connections closed with revoked, new
// use refused), other clients are untouched, and an edge started later
// learns the list from the others.
func TestRevocationAcrossEdges(t *testing.T) {
	for _, start := range pubsubtest.Servers(t) {
		srv := start(t)
		t.Run(srv.Name, func(t *testing.T) {
			prefix := "revoke-" + srv.Name
			a, ta := startTokenRelayEdge(t, srv, "edge-a", prefix)
			b, _ := startTokenRelayEdge(t, srv, "edge-b", prefix)
			now := time.Now()
			alice, aliceID := ta.Token(t, "alice", `{"odds:*":["subscribe"]}`, 30*time.Minute, now)
			bob, _ := ta.Token(t, "bob", `{"odds:*":["subscribe"]}`, 30*time.Minute, now)
			cAlice := edgetest.MustDial(t, b.URL, client.Options{Token: alice})
			cBob := edgetest.MustDial(t, b.URL, client.Options{Token: bob})
			edgetest.MustAttach(t, cAlice, "odds:1", codec.AttachOptions{})
			edgetest.MustAttach(t, cBob, "odds:1", codec.AttachOptions{})
			pubB := edgetest.MustDial(t, b.URL, client.Options{APIKey: edgetest.PublisherKey})

			start := time.Now()
			revoke(t, a.API, `{"token_id":"`+aliceID+`"}`)
			waitClosed(t, cAlice, codec.CodeRevoked)
			t.Logf("token revoked on A closed its connection on B after %v", time.Since(start).Round(time.Millisecond))
			if code := upgrade(t, b.URL, alice); code != codec.CodeRevoked {
				t.Errorf("the revoked token on B: code %d, want revoked", code)
			}
			if err := cBob.Attach(edgetest.Ctx10(t), "odds:2", codec.AttachOptions{}); err != nil {
				t.Errorf("another client on B: %v", err)
			}

			start = time.Now()
			revoke(t, a.API, `{"key_id":"pub"}`)
			waitClosed(t, pubB, codec.CodeRevoked)
			t.Logf("key revoked on A closed its connection on B after %v", time.Since(start).Round(time.Millisecond))

			// An edge that starts now learns both from A and B.
			c, _ := startTokenRelayEdge(t, srv, "edge-c", prefix)
			start = time.Now()
			edgetest.WaitForWithin(t, "edge C to refuse the revoked token", 30*time.Second, func() bool {
				return upgrade(t, c.URL, alice) == codec.CodeRevoked
			})
			t.Logf("a new edge refused the revoked token %v after it started", time.Since(start).Round(time.Millisecond))
			if code := upgrade(t, c.URL, bob); code != 0 {
				t.Errorf("edge C refuses an unrevoked token: %d", code)
			}
			if code := upgradeKey(t, c.URL, edgetest.PublisherKey); code != codec.CodeRevoked {
				t.Errorf("edge C: the revoked key: code %d", code)
			}
		})
	}
}

func revoke(t *testing.T, api, body string) {
	t.Helper()
	req, _ := http.NewRequest("POST", api+"/v1/revocations", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+edgetest.AdminKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("revoke %s: HTTP %d %s", body, resp.StatusCode, b)
	}
}

func waitClosed(t *testing.T, c *client.Client, code codec.Code) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the connection is still open 30 s after the revocation")
	}
	if d := c.Disconnect(); d == nil || d.Code != code {
		t.Errorf("disconnect %v, want code %d", d, code)
	}
}

// upgrade connects with token and returns the refusal's code (0: connected).
func upgrade(t *testing.T, wsURL, token string) codec.Code {
	t.Helper()
	return dialCode(t, wsURL+"/v1/ws?token="+url.QueryEscape(token), nil)
}

func upgradeKey(t *testing.T, wsURL, key string) codec.Code {
	t.Helper()
	return dialCode(t, wsURL+"/v1/ws", http.Header{"Authorization": {"Bearer " + key}})
}

func dialCode(t *testing.T, u string, h http.Header) codec.Code {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(u, h)
	if err == nil {
		ws.Close()
		return 0
	}
	if resp == nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var body struct {
		Error struct{ Code int } `json:"error"`
	}
	_ = json.Unmarshal(b, &body)
	return codec.Code(body.Error.Code)
}
