package client_test

import (
	"bytes"
	"hash/crc32"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/feedgate/feedgate/client"
	"github.com/feedgate/feedgate/codec"
	"github.com/feedgate/feedgate/codec/vcdiff"
	"github.com/feedgate/feedgate/gateway"
	"github.com/feedgate/feedgate/internal/edgetest"
	"github.com/feedgate/feedgate/internal/oddsfeed"
)

func oddsDocs(t *testing.T, n int) [][]byte {
	t.Helper()
	feed, err := oddsfeed.New(oddsfeed.Config{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	var docs [][]byte
	for i := 0; i < n; i++ {
		docs = append(docs, feed.Move(0, time.Unix(1767225600, 0).Add(time.Duration(i)*time.Second)).Payload)
	}
	return docs
}

// asSeen is a payload as a subscriber in format f receives it (msgpack:
// the same value, keys sorted).
func asSeen(t *testing.T, f codec.Format, data []byte) []byte {
	t.Helper()
	w, err := f.WireData(data)
	if err != nil {
		t.Fatal(err)
	}
	out, err := f.DataFromWire(w)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDeltasApplied: with delta "vcdiff", a Client and a Session subscriber
// get every published payload byte for byte, while the edge sends deltas.
func TestDeltasApplied(t *testing.T) {
	docs := oddsDocs(t, 40)
	for _, f := range []codec.Format{codec.FormatJSON, codec.FormatMsgpack} {
		t.Run(f.String(), func(t *testing.T) {
			e := edgetest.MustStartEdge(t, gateway.Config{}, nil)
			c := edgetest.MustDial(t, e.URL, client.Options{Format: f})
			edgetest.MustAttach(t, c, "odds", codec.AttachOptions{Delta: codec.DeltaVCDIFF})
			s := mustSession(t, client.SessionOptions{URLs: []string{e.URL}, Options: client.Options{Format: f}})
			sub, err := s.Subscribe(edgetest.Ctx10(t), "odds", client.SubscribeOptions{Delta: codec.DeltaVCDIFF})
			if err != nil {
				t.Fatal(err)
			}
			pub := edgetest.MustDial(t, e.URL, client.Options{})
			edgetest.MustAttach(t, pub, "odds", codec.AttachOptions{PublishOnly: true})
			for _, d := range docs {
				if _, err := pub.Publish(edgetest.Ctx10(t), "odds", d, client.PublishOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			for i, d := range docs {
				want := asSeen(t, f, d)
				if m := edgetest.NextMessage(t, c); !bytes.Equal(m.Data, want) {
					t.Fatalf("client message %d: %.120s, want %.120s", i, m.Data, want)
				}
				select {
				case m := <-sub.Messages():
					if !bytes.Equal(m.Data, want) {
						t.Fatalf("session message %d: %.120s, want %.120s", i, m.Data, want)
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("session message %d did not come", i)
				}
			}
			if st := e.Srv.DeltaStats(); st.Deltas < uint64(2*(len(docs)-1)) {
				t.Fatalf("edge sent %d delta frames, want at least %d", st.Deltas, 2*(len(docs)-1))
			}
			if c.DeltaErrors() != 0 || sub.Stats().DeltaErrors != 0 {
				t.Fatalf("delta errors: client %d, session %d", c.DeltaErrors(), sub.Stats().DeltaErrors)
			}
		})
	}
}

// deltaEdge is a scripted edge: on the first attach it sends a full m1
// and a bad delta frame for m2 (corrupt); it expects the client to attach
// again resuming after m1, and then sends m2 in full and m3 as a good
// delta. It records the attaches it got.
func deltaEdge(t *testing.T, f codec.Format, docs [][]byte, corrupt func(*codec.Frame)) (url string, attaches chan codec.Frame) {
	t.Helper()
	attaches = make(chan codec.Frame, 4)
	stop := make(chan struct{})
	up := websocket.Upgrader{}
	wire := func(d []byte) []byte {
		w, err := f.WireData(d)
		if err != nil {
			t.Error(err)
		}
		return w
	}
	msg := func(i int) *codec.Frame {
		return &codec.Frame{Type: codec.FrameMessage, Channel: "c", Msg: codec.Message{ID: idOf(i), Data: docs[i], Time: 1}, Pos: "2.0_abc-" + idOf(i)[1:]}
	}
	delta := func(i int) *codec.Frame {
		fr := msg(i)
		fr.Msg.Data = nil
		fr.Delta = vcdiff.Encode(wire(docs[i-1]), wire(docs[i]))
		fr.Base, fr.BaseCRC = idOf(i-1), crc32.ChecksumIEEE(wire(docs[i-1]))
		return fr
	}
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
		send := func(fr *codec.Frame) {
			b, err := f.Encode(fr)
			if err == nil {
				err = ws.WriteMessage(typ, b)
			}
			if err != nil {
				t.Errorf("scripted edge: %v", err)
			}
		}
		go func() {
			<-stop
			ws.Close()
		}()
		n := 0
		for {
			_, b, err := ws.ReadMessage()
			if err != nil {
				return
			}
			fr, err := f.Decode(b)
			if err != nil || fr.Type != codec.FrameAttach {
				continue
			}
			attaches <- fr
			n++
			switch n {
			case 1:
				send(&codec.Frame{Type: codec.FrameAttached, Ref: fr.Ref, Channel: "c", Options: fr.Options, Pos: "2.0", Continuity: codec.ContinuityFresh})
				send(msg(0))
				bad := delta(1)
				corrupt(bad)
				send(bad)
				send(delta(2)) // applies to m2, which the client does not hold
			case 2:
				send(&codec.Frame{Type: codec.FrameAttached, Ref: fr.Ref, Channel: "c", Options: fr.Options, Pos: fr.Options.Resume, Continuity: codec.ContinuityResumed})
				send(msg(1))
				send(delta(2))
			}
		}
	}))
	t.Cleanup(func() { close(stop); srv.Close() })
	return "ws" + strings.TrimPrefix(srv.URL, "http"), attaches
}

func idOf(i int) string { return "m" + string(rune('1'+i)) }

// TestDeltaMismatchResyncs: a delta frame whose base is not the one the
// client holds (another id, another CRC) or that does not decode is never
// shown: the client attaches again with the position of the last message
// it took, and the application gets the edge's full message instead.
func TestDeltaMismatchResyncs(t *testing.T) {
	docs := oddsDocs(t, 3)
	for _, tc := range []struct {
		name    string
		corrupt func(*codec.Frame)
	}{
		{"wrong base id", func(fr *codec.Frame) { fr.Base = "m0" }},
		{"wrong crc", func(fr *codec.Frame) { fr.BaseCRC ^= 1 }},
		{"corrupt delta", func(fr *codec.Frame) { fr.Delta = fr.Delta[:len(fr.Delta)-3] }},
		{"copy out of range", func(fr *codec.Frame) {
			// A delta that copies from past the end of the source.
			fr.Delta = vcdiff.Encode(bytes.Repeat([]byte("x"), 2000), append(bytes.Repeat([]byte("x"), 1000), 'y'))
		}},
	} {
		for _, f := range []codec.Format{codec.FormatJSON, codec.FormatMsgpack} {
			check := func(t *testing.T, attaches chan codec.Frame, next func() client.Message, errs func() int) {
				t.Helper()
				for i := range docs {
					if m := next(); m.ID != idOf(i) || !bytes.Equal(m.Data, asSeen(t, f, docs[i])) {
						t.Fatalf("message %d: %s %.80s, want %s", i, m.ID, m.Data, idOf(i))
					}
				}
				<-attaches
				again := <-attaches
				if again.Options.Resume != "2.0_abc-1" || again.Options.Delta != codec.DeltaVCDIFF {
					t.Fatalf("re-attach options %+v: want resume after m1, with deltas", again.Options)
				}
				if n := errs(); n != 1 {
					t.Fatalf("%d delta errors, want 1", n)
				}
			}
			t.Run(tc.name+"/"+f.String()+"/client", func(t *testing.T) {
				url, attaches := deltaEdge(t, f, docs, tc.corrupt)
				c := edgetest.MustDial(t, url, client.Options{Format: f})
				edgetest.MustAttach(t, c, "c", codec.AttachOptions{Delta: codec.DeltaVCDIFF})
				check(t, attaches, func() client.Message { return edgetest.NextMessage(t, c) }, c.DeltaErrors)
			})
			t.Run(tc.name+"/"+f.String()+"/session", func(t *testing.T) {
				url, attaches := deltaEdge(t, f, docs, tc.corrupt)
				s := mustSession(t, client.SessionOptions{URLs: []string{url}, Options: client.Options{Format: f}})
				sub, err := s.Subscribe(edgetest.Ctx10(t), "c", client.SubscribeOptions{Delta: codec.DeltaVCDIFF})
				if err != nil {
					t.Fatal(err)
				}
				next := func() client.Message {
					select {
					case m := <-sub.Messages():
						return m
					case <-time.After(10 * time.Second):
						t.Fatal("no message")
					}
					return client.Message{}
				}
				check(t, attaches, next, func() int { return sub.Stats().DeltaErrors })
			})
		}
	}
}
