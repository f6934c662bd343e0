package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/feedgate/feedgate/gateway"
	"github.com/feedgate/feedgate/internal/edgetest"
	"github.com/feedgate/feedgate/internal/oddsfeed"
)

// wireCounter counts the bytes read from a connection.
type wireCounter struct {
	net.Conn
	n atomic.Int64
}

func (c *wireCounter) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// dialCounted opens a raw WebSocket connection that offers permessage-deflate
// if offer, and reports whether the edge accepted it.
func dialCounted(t *testing.T, url, format string, offer bool) (*websocket.Conn, *wireCounter, bool) {
	t.Helper()
	var wc *wireCounter
	d := websocket.Dialer{
		EnableCompression: offer,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			wc = &wireCounter{Conn: c}
			return wc, nil
		},
	}
	ws, resp, err := d.DialContext(edgetest.Ctx10(t), url+"/v1/ws?format="+format, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	return ws, wc, strings.Contains(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate")
}

// TestDeflate: with Config.Deflate, a client that offers permessage-deflate
// gets compressed message frames (fewer bytes on the wire than the same
// stream uncompressed for full frames in both formats, never more for
// deltas: a frame deflate does not shrink goes plain), which its
// WebSocket library inflates to exactly what an uncompressed subscriber
// gets; a client that does not offer it, or any client of an edge without
// Deflate, gets plain frames.
func TestDeflate(t *testing.T) {
	feed, err := oddsfeed.New(oddsfeed.Config{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	var docs [][]byte
	for i := range 40 {
		docs = append(docs, feed.Move(i%3, time.Unix(1_800_000_000+int64(i), 0)).Payload)
	}
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprintf("deflate=%v", on), func(t *testing.T) {
			e := edgetest.MustStartEdge(t, gateway.Config{Authorizer: mustStatic(t), Deflate: on}, nil)
			type sub struct {
				name   string
				ws     *websocket.Conn
				wire   *wireCounter
				format string
				delta  bool
				offer  bool
				got    bool // permessage-deflate negotiated
			}
			var subs []*sub
			for _, format := range []string{"json", "msgpack"} {
				for _, delta := range []bool{false, true} {
					for _, offer := range []bool{false, true} {
						s := &sub{name: fmt.Sprintf("%s delta=%v offer=%v", format, delta, offer), format: format, delta: delta, offer: offer}
						s.ws, s.wire, s.got = dialCounted(t, e.URL, format, offer)
						if s.got != (on && offer) {
							t.Fatalf("%s: permessage-deflate negotiated %v, want %v", s.name, s.got, on && offer)
						}
						attach := map[string]any{"type": "attach", "ref": 1, "channel": "odds:deflate"}
						if delta {
							attach["options"] = map[string]any{"delta": "vcdiff"}
						}
						writeFrame(t, s.ws, format, attach)
						if fr := readFrame(t, s.ws, format); fr["type"] != "attached" {
							t.Fatalf("%s: attach answered %v", s.name, fr)
						}
						s.wire.n.Store(0)
						subs = append(subs, s)
					}
				}
			}
			for i, d := range docs {
				if code, body := httpPublish(t, e.API+"/v1/channels/odds:deflate/messages", "", fmt.Sprintf(`{"id":"m%d","data":%s}`, i, d)); code != 200 {
					t.Fatalf("publish: %d %s", code, body)
				}
			}
			// Every subscriber gets every message: ids in order; the data of
			// the full subscribers equal the published documents (delta ones
			// carry deltas, checked by the delta tests; here only their bytes).
			wire := map[string]int64{}
			for _, s := range subs {
				for i := range docs {
					fr := readFrame(t, s.ws, s.format)
					if fr["type"] != "message" || fr["id"] != fmt.Sprintf("m%d", i) {
						t.Fatalf("%s: frame %d is %v", s.name, i, fr)
					}
					if !s.delta {
						if got, _ := json.Marshal(fr["data"]); !jsonSame(got, docs[i]) {
							t.Fatalf("%s: message %d data %s, want %s", s.name, i, got, docs[i])
						}
					}
				}
				wire[s.name] = s.wire.n.Load()
			}
			for _, s := range subs {
				if !s.offer {
					continue
				}
				plain := wire[strings.Replace(s.name, "offer=true", "offer=false", 1)]
				t.Logf("%s: %d bytes on the wire, %d without deflate", s.name, wire[s.name], plain)
				switch {
				case s.got && !s.delta && wire[s.name] >= plain:
					t.Errorf("%s: compressed stream took %d bytes, the plain one %d", s.name, wire[s.name], plain)
				case s.got && wire[s.name] > plain:
					// A frame that deflate does not shrink goes plain.
					t.Errorf("%s: compressed stream took %d bytes, more than the plain one's %d", s.name, wire[s.name], plain)
				case !s.got && wire[s.name] != plain:
					t.Errorf("%s: without deflate %d bytes, the other plain stream %d", s.name, wire[s.name], plain)
				}
			}
		})
	}
}

func jsonSame(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return string(ja) == string(jb)
}

func writeFrame(t *testing.T, ws *websocket.Conn, format string, fr map[string]any) {
	t.Helper()
	var err error
	if format == "msgpack" {
		b, _ := msgpack.Marshal(fr)
		err = ws.WriteMessage(websocket.BinaryMessage, b)
	} else {
		b, _ := json.Marshal(fr)
		err = ws.WriteMessage(websocket.TextMessage, b)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func readFrame(t *testing.T, ws *websocket.Conn, format string) map[string]any {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, b, err := ws.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	fr := map[string]any{}
	if format == "msgpack" {
		err = msgpack.Unmarshal(b, &fr)
	} else {
		err = json.Unmarshal(b, &fr)
	}
	if err != nil {
		t.Fatalf("frame %q: %v", b, err)
	}
	return fr
}
