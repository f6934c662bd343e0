package gateway_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/feedgate/feedgate/codec"
	"github.com/feedgate/feedgate/codec/vcdiff"
	"github.com/feedgate/feedgate/gateway"
	"github.com/feedgate/feedgate/internal/edgetest"
	"github.com/feedgate/feedgate/internal/oddsfeed"
)

// TestDeflateVariantsRebuild: on a -deflate edge, subscribers of every
// variant (json|msgpack × full|delta × deflate offered or not × conflated
// by key or not) on one channel rebuild, byte for byte, the wire payload
// the edge computes for the published message (codec.Format.WireData), and
// every delta names the base they hold (protocol.md §6.1, §1.4). A client
// that did not negotiate deflate would fail ReadMessage on an RSV1 frame.
func TestDeflateVariantsRebuild(t *testing.T) {
	feed, err := oddsfeed.New(oddsfeed.Config{Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	e := edgetest.MustStartEdge(t, gateway.Config{Authorizer: mustStatic(t), Deflate: true}, nil)
	type sub struct {
		name    string
		ws      *websocket.Conn
		f       codec.Format
		id      string
		base    []byte
		deltas  int
		conflat bool
	}
	var subs []*sub
	for _, format := range []string{"json", "msgpack"} {
		for _, delta := range []bool{false, true} {
			for _, offer := range []bool{false, true} {
				for _, conflate := range []bool{false, true} {
					s := &sub{name: fmt.Sprintf("%s delta=%v offer=%v conflate=%v", format, delta, offer, conflate), conflat: conflate}
					s.f, _ = codec.ParseFormat(format)
					s.ws, _, _ = dialCounted(t, e.URL, format, offer)
					opts := map[string]any{}
					if delta {
						opts["delta"] = "vcdiff"
					}
					if conflate {
						opts["conflate"] = "100ms"
						opts["conflate_key"] = "market_id"
					}
					writeFrame(t, s.ws, format, map[string]any{"type": "attach", "ref": 1, "channel": "odds:probe", "options": opts})
					if fr := readFrame(t, s.ws, format); fr["type"] != "attached" {
						t.Fatalf("%s: attach answered %v", s.name, fr)
					}
					subs = append(subs, s)
				}
			}
		}
	}
	published := map[string][]byte{}
	var order []string
	for i := range 30 {
		d := feed.Move(i%3, time.Unix(1_800_000_000+int64(i), 0)).Payload
		id := fmt.Sprintf("m%d", i)
		published[id] = d
		order = append(order, id)
		if code, body := httpPublish(t, e.API+"/v1/channels/odds:probe/messages", "", fmt.Sprintf(`{"id":%q,"data":%s}`, id, d)); code != 200 {
			t.Fatalf("publish: %d %s", code, body)
		}
	}
	last := order[len(order)-1]
	for _, s := range subs {
		for {
			_ = s.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, b, err := s.ws.ReadMessage()
			if err != nil {
				t.Fatalf("%s: read: %v", s.name, err)
			}
			fr, err := s.f.Decode(b)
			if err != nil {
				t.Fatalf("%s: decode: %v", s.name, err)
			}
			if fr.Type != codec.FrameMessage {
				t.Fatalf("%s: unexpected %v frame", s.name, fr.Type)
			}
			wire := fr.Wire
			if fr.Delta != nil {
				s.deltas++
				if s.base == nil || fr.Base != s.id || fr.BaseCRC != crc32.ChecksumIEEE(s.base) {
					t.Fatalf("%s: delta of %s names base %s/%08x, holds %s/%08x", s.name, fr.Msg.ID, fr.Base, fr.BaseCRC, s.id, crc32.ChecksumIEEE(s.base))
				}
				if wire, err = vcdiff.Decode(s.base, fr.Delta, codec.MaxDeltaPayload); err != nil {
					t.Fatalf("%s: delta of %s: %v", s.name, fr.Msg.ID, err)
				}
			}
			want, err := s.f.WireData(compact(t, published[fr.Msg.ID]))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(wire, want) {
				t.Fatalf("%s: payload of %s differs from the edge's wire bytes\n got %q\nwant %q", s.name, fr.Msg.ID, wire, want)
			}
			s.id, s.base = fr.Msg.ID, wire
			if fr.Msg.ID == last {
				break
			}
		}
		t.Logf("%s: %d deltas", s.name, s.deltas)
	}
}

func compact(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	if err := jsonCompact(&buf, b); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var jsonCompact = json.Compact
