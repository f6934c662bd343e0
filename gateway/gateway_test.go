package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/feedgate/feedgate/auth"
	"github.com/feedgate/feedgate/client"
	"github.com/feedgate/feedgate/codec"
	"github.com/feedgate/feedgate/gateway"
	"github.com/feedgate/feedgate/internal/edgetest"
)

func TestFanOutBothFormats(t *testing.T) {
	e := edgetest.MustStartEdge(t, gateway.Config{}, nil)
	pub := edgetest.MustDial(t, e.URL, client.Options{})
	edgetest.MustAttach(t, pub, "odds:1", codec.AttachOptions{PublishOnly: true})
	var subs []*client.Client
	for i := 0; i < 6; i++ {
		c := edgetest.MustDial(t, e.URL, client.Options{Format: codec.Format(i % 2)})
		edgetest.MustAttach(t, c, "odds:1", codec.AttachOptions{})
		edgetest.MustAttach(t, c, "odds:2", codec.AttachOptions{})
		subs = append(subs, c)
	}
	const n = 200
	ids := make([]string, n)
	for i := range n {
		id, err := pub.Publish(edgetest.Ctx10(t), "odds:1", fmt.Appendf(nil, `{"seq":%d,"price":1.5,"sel":"<Home & Away>"}`, i), client.PublishOptions{Name: "price"})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	for si, c := range subs {
		for i := range n {
			m := edgetest.NextMessage(t, c)
			want := fmt.Sprintf(`{"price":1.5,"sel":"<Home & Away>","seq":%d}`, i)
			if si%2 == 0 {
				// JSON subscribers get the bytes as published (no HTML escaping).
				want = fmt.Sprintf(`{"seq":%d,"price":1.5,"sel":"<Home & Away>"}`, i)
			}
			if m.Channel != "odds:1" || m.ID != ids[i] || m.Name != "price" || string(m.Data) != want || m.Time == 0 {
				t.Fatalf("subscriber %d message %d: got %+v data %s, want id %s data %s", si, i, m, m.Data, ids[i], want)
			}
		}
	}
	// So does the history endpoint.
	resp, err := http.Get(e.API + "/v1/channels/odds:1/history?limit=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if h := resp.Header.Get("X-Content-Type-Options"); h != "nosniff" {
		t.Fatalf("history response X-Content-Type-Options %q, want nosniff", h)
	}
	if want := fmt.Sprintf(`"data":{"seq":%d,"price":1.5,"sel":"<Home & Away>"}`, n-1); !strings.Contains(string(body), want) {
		t.Fatalf("history: %s, want it to contain %s", body, want)
	}
	// The publisher attached publish-only: it received nothing. Barrier:
	// an attached reply keeps its place behind every frame queued before
	// it, and the client files frames in order, so anything sent earlier
	// is in Messages() once the attach returns.
	edgetest.MustAttach(t, pub, "barrier", codec.AttachOptions{PublishOnly: true})
	select {
	case m := <-pub.Messages():
		t.Fatalf("publish-only attach received %+v", m)
	default:
	}
}

func TestDetachStopsDelivery(t *testing.T) {
	e := edgetest.MustStartEdge(t, gateway.Config{}, nil)
	c := edgetest.MustDial(t, e.URL, client.Options{})
	edgetest.MustAttach(t, c, "a", codec.AttachOptions{})
	edgetest.MustAttach(t, c, "b", codec.AttachOptions{})
	if _, err := c.Publish(edgetest.Ctx10(t), "a", []byte(`1`), client.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Detach(edgetest.Ctx10(t), "a"); err != nil {
		t.Fatal(err)
	}
	if got := edgetest.NextMessage(t, c); got.Channel != "a" {
		t.Fatalf("got %+v", got)
	}
	// Publishing on a detached channel is refused; b still works and its
	// message is the next one: nothing of a arrives after detached.
	if _, err := c.Publish(edgetest.Ctx10(t), "a", []byte(`2`), client.PublishOptions{}); !hasCode(err, codec.CodeNotAttached) {
		t.Fatalf("publish after detach: %v", err)
	}
	if _, err := c.Publish(edgetest.Ctx10(t), "b", []byte(`3`), client.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := edgetest.NextMessage(t, c); got.Channel != "b" || string(got.Data) != "3" {
		t.Fatalf("got %+v", got)
	}
	if err := c.Detach(edgetest.Ctx10(t), "a"); !hasCode(err, codec.CodeNotAttached) {
		t.Fatalf("second detach: %v", err)
	}
}

func hasCode(err error, c codec.Code) bool {
	e, ok := err.(*codec.Error)
	return ok && e.Code == c
}

func TestBadInput(t *testing.T) {
	e := edgetest.MustStartEdge(t, gateway.Config{MaxFrameSize: 1024, MaxChannelsPerConn: 3, MaxErrors: 100}, nil)
	// A bystander on the same edge must see nothing of it.
	bystander := edgetest.MustDial(t, e.URL, client.Options{})
	edgetest.MustAttach(t, bystander, "calm", codec.AttachOptions{})

	for _, f := range []codec.Format{codec.FormatJSON, codec.FormatMsgpack} {
		t.Run(f.String(), func(t *testing.T) {
			c := edgetest.MustDial(t, e.URL, client.Options{Format: f})
			raw := func(b []byte, code codec.Code) {
				t.Helper()
				if err := c.SendRaw(b, f.Binary()); err != nil {
					t.Fatal(err)
				}
				if got := edgetest.NextError(t, c); got.Code != code {
					t.Fatalf("sent %q: got %v, want code %v", b, got, code)
				}
			}
			if f == codec.FormatJSON {
				raw([]byte(`{"type":"attach",`), codec.CodeBadFrame)
				raw([]byte(`"attach"`), codec.CodeBadFrame)
				raw([]byte(`{"type":"subscribe","channel":"x"}`), codec.CodeUnknownType)
				raw([]byte(`{"type":"message","channel":"x"}`), codec.CodeUnknownType)
			} else {
				raw([]byte{0x81, 0xa4, 't'}, codec.CodeBadFrame)
				raw([]byte{0x93, 1, 2, 3}, codec.CodeBadFrame)
				raw([]byte{0x81, 0xa4, 't', 'y', 'p', 'e', 0xa3, 'f', 'o', 'o'}, codec.CodeUnknownType)
			}
			big, _ := f.Encode(&codec.Frame{Type: codec.FramePublish, Channel: "x", Msg: codec.Message{Data: []byte(`"` + strings.Repeat("x", 2000) + `"`)}})
			raw(big, codec.CodeFrameTooLarge)

			ctx := edgetest.Ctx10(t)
			for _, tc := range []struct {
				name string
				do   func() error
				code codec.Code
			}{
				{"invalid channel", func() error { return c.Attach(ctx, "no spaces", codec.AttachOptions{}) }, codec.CodeInvalidChannel},
				{"too long channel", func() error { return c.Attach(ctx, strings.Repeat("c", 129), codec.AttachOptions{}) }, codec.CodeInvalidChannel},
				{"publish unattached", func() error {
					_, err := c.Publish(ctx, "never", []byte(`1`), client.PublishOptions{})
					return err
				}, codec.CodeNotAttached},
				{"publish bad channel", func() error {
					_, err := c.Publish(ctx, "bad channel", []byte(`1`), client.PublishOptions{})
					return err
				}, codec.CodeInvalidChannel},
				{"too many channels", func() error {
					for _, ch := range []string{"c1", "c2", "c3"} {
						if err := c.Attach(ctx, ch, codec.AttachOptions{}); err != nil {
							return err
						}
					}
					return c.Attach(ctx, "c4", codec.AttachOptions{})
				}, codec.CodeTooManyChannels},
				{"publish without data", func() error {
					_, err := c.Publish(ctx, "c1", nil, client.PublishOptions{})
					return err
				}, codec.CodeBadRequest},
			} {
				if err := tc.do(); !hasCode(err, tc.code) {
					t.Errorf("%s: got %v, want code %v", tc.name, err, tc.code)
				}
			}
			// After all that, the connection still works.
			if _, err := c.Publish(ctx, "c1", []byte(`{"ok":true}`), client.PublishOptions{}); err != nil {
				t.Fatalf("publish after bad input: %v", err)
			}
			if m := edgetest.NextMessage(t, c); m.Channel != "c1" {
				t.Fatalf("got %+v", m)
			}
		})
	}
	// Barrier: the bystander's attach reply comes behind anything queued
	// for it before (and fails if it was disconnected).
	edgetest.MustAttach(t, bystander, "barrier", codec.AttachOptions{PublishOnly: true})
	select {
	case m := <-bystander.Messages():
		t.Fatalf("bystander received %+v", m)
	case e := <-bystander.Errors():
		t.Fatalf("bystander got error %v", e)
	case <-bystander.Done():
		t.Fatal("bystander was disconnected")
	default:
	}
}

func TestGarbageDisconnects(t *testing.T) {
	e := edgetest.MustStartEdge(t, gateway.Config{MaxErrors: 5}, nil)
	bystander := edgetest.MustDial(t, e.URL, client.Options{})
	edgetest.MustAttach(t, bystander, "calm", codec.AttachOptions{})
	c := edgetest.MustDial(t, e.URL, client.Options{})
	for i := 0; i < 20; i++ {
		if err := c.SendRaw([]byte("garbage"), false); err != nil {
			break // the edge may already have closed the connection
		}
	}
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("garbage sender still connected")
	}
	if d := c.Disconnect(); d == nil || d.Code != codec.CodeTooManyErrors {
		t.Fatalf("disconnect reason %v, want too_many_errors", d)
	}
	if _, err := bystander.Publish(edgetest.Ctx10(t), "calm", []byte(`1`), client.PublishOptions{}); err != nil {
		t.Fatalf("bystander publish: %v", err)
	}
	if m := edgetest.NextMessage(t, bystander); string(m.Data) != "1" {
		t.Fatalf("bystander got %+v", m)
	}
}

func TestPublishNeedsKey(t *testing.T) {
	a, err := auth.NewStatic([]string{"feed1:0123456789abcdef"})
	if err != nil {
		t.Fatal(err)
	}
	e := edgetest.MustStartEdge(t, gateway.Config{Authorizer: a}, nil)
	sub := edgetest.MustDial(t, e.URL, client.Options{})
	edgetest.MustAttach(t, sub, "c", codec.AttachOptions{})
	if _, err := sub.Publish(edgetest.Ctx10(t), "c", []byte(`1`), client.PublishOptions{}); !hasCode(err, codec.CodeUnauthorized) {
		t.Fatalf("subscriber publish: %v", err)
	}
	if _, err := client.Dial(edgetest.Ctx10(t), e.URL, client.Options{APIKey: "feed1:wrong-secret-0000"}); err == nil {
		t.Fatal("dial with a wrong key succeeded")
	}
	pub := edgetest.MustDial(t, e.URL, client.Options{APIKey: "feed1:0123456789abcdef"})
	edgetest.MustAttach(t, pub, "c", codec.AttachOptions{PublishOnly: true})
	if _, err := pub.Publish(edgetest.Ctx10(t), "c", []byte(`2`), client.PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	if m := edgetest.NextMessage(t, sub); string(m.Data) != "2" {
		t.Fatalf("got %+v", m)
	}
	// HTTP: no key, wrong key, right key.
	for _, tc := range []struct {
		key  string
		want int
	}{{"", 401}, {"feed1:nope-nope-nope-nope", 401}, {"feed1:0123456789abcdef", 200}} {
		if got, body := httpPublish(t, e.API+"/v1/channels/c/messages", tc.key, `{"data":3}`); got != tc.want {
			t.Errorf("HTTP publish with key %q: status %d (%s), want %d", tc.key, got, body, tc.want)
		}
	}
}

func httpPublish(tb testing.TB, url, key, body string) (int, string) {
	tb.Helper()
	req, _ := http.NewRequestWithContext(edgetest.Ctx10(tb), "POST", url, strings.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHTTPBatchPublish(t *testing.T) {
	e := edgetest.MustStartEdge(t, gateway.Config{}, nil)
	sub := edgetest.MustDial(t, e.URL, client.Options{Format: codec.FormatMsgpack})
	edgetest.MustAttach(t, sub, "mk/1", codec.AttachOptions{})
	status, body := httpPublish(t, e.API+"/v1/channels/mk/1/messages", "", `{"messages":[{"data":{"p":1}},{"id":"x-2","name":"price","data":{"p":2}},{"data":[3]}]}`)
	if status != 200 {
		t.Fatalf("status %d: %s", status, body)
	}
	var res struct{ Results []struct{ ID string } }
	if err := json.Unmarshal([]byte(body), &res); err != nil || len(res.Results) != 3 || res.Results[1].ID != "x-2" {
		t.Fatalf("body %s (%v)", body, err)
	}
	for i, want := range []string{`{"p":1}`, `{"p":2}`, `[3]`} {
		m := edgetest.NextMessage(t, sub)
		if string(m.Data) != want || m.ID != res.Results[i].ID {
			t.Fatalf("message %d: %+v data %s", i, m, m.Data)
		}
	}
	for _, tc := range []struct{ path, body string }{
		{"/v1/channels/bad%20name/messages", `{"data":1}`},
		{"/v1/channels/ok/messages", `{"data":}`},
		{"/v1/channels/ok/messages", `{"name":"no data"}`},
	} {
		if status, body := httpPublish(t, e.API+tc.path, "", tc.body); status != 400 || !bytes.Contains([]byte(body), []byte(`"code":40`)) {
			t.Errorf("%s %s: status %d body %s", tc.path, tc.body, status, body)
		}
	}
}

func TestHealthAndReady(t *testing.T) {
	e := edgetest.MustStartEdge(t, gateway.Config{}, nil)
	for _, p := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(e.API + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
	}
}

func TestShutdownTellsClients(t *testing.T) {
	e := edgetest.MustStartEdge(t, gateway.Config{}, nil)
	c := edgetest.MustDial(t, e.URL, client.Options{})
	edgetest.MustAttach(t, c, "x", codec.AttachOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go e.Srv.Shutdown(ctx)
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("client not disconnected by shutdown")
	}
	if d := c.Disconnect(); d == nil || d.Code != codec.CodeGoingAway {
		t.Fatalf("disconnect %v, want going_away", d)
	}
}

func TestIdleClientDropped(t *testing.T) {
	e := edgetest.MustStartEdge(t, gateway.Config{HeartbeatInterval: 100 * time.Millisecond, IdleTimeout: 2 * time.Second}, nil)
	// The Go client answers heartbeats: it stays.
	live := edgetest.MustDial(t, e.URL, client.Options{})
	// A raw connection that never sends anything is dropped.
	silent := edgetest.MustDialRaw(t, e.URL)
	edgetest.WaitFor(t, "silent connection dropped", func() bool { return e.Srv.Stats().IdleDrops == 1 })
	_ = silent
	// The live client still gets answers: its connection outlived the
	// silent one's idle timeout.
	edgetest.MustAttach(t, live, "still-here", codec.AttachOptions{PublishOnly: true})
	if got := e.Srv.Stats().IdleDrops; got != 1 {
		t.Fatalf("%d connections dropped as idle, want only the silent one", got)
	}
}
