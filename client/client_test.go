package client_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/feedgate/feedgate/client"
	"github.com/feedgate/feedgate/codec"
	"github.com/feedgate/feedgate/gateway"
	"github.com/feedgate/feedgate/internal/edgetest"
)

// TestCloseWhileReaderBlocked: the application stops reading Messages, the
// reader holds a message it cannot hand over, and Close must still return
// (it used to wait for a reader blocked on the full channel for ever).
func TestCloseWhileReaderBlocked(t *testing.T) {
	e := edgetest.MustStartEdge(t, gateway.Config{}, nil)
	sub, err := client.Dial(edgetest.Ctx10(t), e.URL, client.Options{Buffer: 1})
	if err != nil {
		t.Fatal(err)
	}
	edgetest.MustAttach(t, sub, "c", codec.AttachOptions{})
	pub := edgetest.MustDial(t, e.URL, client.Options{})
	edgetest.MustAttach(t, pub, "c", codec.AttachOptions{PublishOnly: true})
	publish := func(i int) {
		t.Helper()
		if _, err := pub.Publish(edgetest.Ctx10(t), "c", fmt.Appendf(nil, "%d", i), client.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// The first message fills the buffer; a frame read after it is one the
	// reader holds and cannot hand over.
	publish(0)
	edgetest.WaitFor(t, "first message buffered", func() bool { return len(sub.Messages()) == 1 })
	filled := sub.LastReceived()
	publish(1)
	edgetest.WaitFor(t, "second message read", func() bool { return sub.LastReceived().After(filled) })

	closed := make(chan error, 1)
	go func() { closed <- sub.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close hung with the reader blocked on the Messages channel")
	}
	if err := sub.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
}

// TestUnknownFrameTypesIgnored: frames of types this client does not know
// (a later protocol version's) are skipped, neither reported as errors nor
// ending the connection; the stream goes on. The edge sends no such frame
// yet, so a scripted WebSocket peer plays it.
func TestUnknownFrameTypesIgnored(t *testing.T) {
	for _, f := range []codec.Format{codec.FormatJSON, codec.FormatMsgpack} {
		t.Run(f.String(), func(t *testing.T) {
			url := startScriptedEdge(t, f, []*codec.Frame{
				{Type: codec.FrameAttached, Ref: 1, Channel: "c", Pos: "1.", Continuity: codec.ContinuityFresh},
			}, []map[string]any{
				{"type": "continuity", "channel": "c", "continuity": "lost", "pos": "1.abc-1"},
				{"type": "some_future_frame", "ref": 7},
				{"channel": "c"}, // no type at all
			}, []*codec.Frame{
				{Type: codec.FrameMessage, Channel: "c", Msg: codec.Message{ID: "m1", Data: []byte(`1`), Time: 1}, Pos: "1.abc-2"},
			})
			c := edgetest.MustDial(t, url, client.Options{Format: f})
			edgetest.MustAttach(t, c, "c", codec.AttachOptions{})
			if m := edgetest.NextMessage(t, c); m.ID != "m1" || m.Pos != "1.abc-2" {
				t.Fatalf("got %+v, want message m1", m)
			}
			select {
			case e := <-c.Errors():
				t.Fatalf("unknown frame reported as an error: %v", e)
			default:
			}
		})
	}
}

// startScriptedEdge serves one WebSocket connection: after the client's
// first frame it sends reply, then raw (maps encoded in format f), then
// after, and holds the connection open until the test ends.
func startScriptedEdge(t *testing.T, f codec.Format, reply []*codec.Frame, raw []map[string]any, after []*codec.Frame) string {
	t.Helper()
	stop := make(chan struct{})
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		typ := websocket.TextMessage
		if f.Binary() {
			typ = websocket.BinaryMessage
		}
		send := func(b []byte) {
			if err := ws.WriteMessage(typ, b); err != nil {
				t.Errorf("scripted edge: %v", err)
			}
		}
		if _, _, err := ws.ReadMessage(); err != nil {
			return
		}
		for _, fr := range reply {
			b, err := f.Encode(fr)
			if err != nil {
				t.Error(err)
			}
			send(b)
		}
		for _, m := range raw {
			send(encodeRaw(t, f, m))
		}
		for _, fr := range after {
			b, err := f.Encode(fr)
			if err != nil {
				t.Error(err)
			}
			send(b)
		}
		go func() { // answer the client's close, if any
			for {
				if _, _, err := ws.ReadMessage(); err != nil {
					return
				}
			}
		}()
		<-stop
	}))
	t.Cleanup(func() { close(stop); srv.Close() })
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

// TestTokenSent: Options.Token reaches the edge as the token query
// parameter, escaped, next to the format.
func TestTokenSent(t *testing.T) {
	got := make(chan string, 1)
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.URL.Query().Get("token") + " " + r.URL.Query().Get("format")
		if ws, err := up.Upgrade(w, r, nil); err == nil {
			ws.Close()
		}
	}))
	defer srv.Close()
	c, err := client.Dial(edgetest.Ctx10(t), "ws"+strings.TrimPrefix(srv.URL, "http"), client.Options{Token: "t 1&x=y", Format: codec.FormatMsgpack})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if g := <-got; g != "t 1&x=y msgpack" {
		t.Errorf("edge got %q", g)
	}
}
