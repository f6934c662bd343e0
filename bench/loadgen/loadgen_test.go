package loadgen

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/feedgate/feedgate/internal/oddsfeed"
)

func TestFrameRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 65535, 65536, 70000} {
		p := bytes.Repeat([]byte{'x'}, n)
		// A client frame is masked; parseFrame unmasks tolerantly.
		b := appendClientFrame(nil, opText, p)
		var f frame
		if k := parseFrame(b, &f); k != len(b) || f.op != opText || !f.fin || !bytes.Equal(f.payload, p) {
			t.Fatalf("n=%d: consumed %d of %d, op %d, payload ok %v", n, k, len(b), f.op, bytes.Equal(f.payload, p))
		}
		if n > 0 {
			b = appendClientFrame(nil, opText, p)
			if k := parseFrame(b[:len(b)-1], &f); k != 0 {
				t.Fatalf("n=%d: incomplete frame consumed %d", n, k)
			}
		}
	}
}

func TestExtract(t *testing.T) {
	cases := []struct {
		name   string
		in     []byte
		binary bool
		want   sample
	}{
		{"json ours", []byte(`{"type":"message","channel":"c","data":{"ts":1795400376651741469,"seq":7,"ci":3,"pad":"x"},"time":1}`), false, sample{1795400376651741469, 7, 3}},
		{"json reordered keys", []byte(`{"data":{"ci":3,"pad":"x","seq":7,"ts":12}}`), false, sample{12, 7, 3}},
		{"json exponent", []byte(`{"ts":1.5e+3,"seq":7,"ci":3}`), false, sample{1500, 7, 3}},
		{"msgpack int64", []byte("\x83\xa2ts\xd3\x00\x00\x00\x00\x00\x00\x01\x00\xa3seq\x07\xa2ci\xcc\x03"), true, sample{256, 7, 3}},
		{"msgpack float", []byte("\x83\xa2ts\xcb\x40\x59\x00\x00\x00\x00\x00\x00\xa3seq\xcd\x01\x00\xa2ci\x00"), true, sample{100, 256, 0}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := extract(c.in, c.binary)
			if !ok || got != c.want {
				t.Fatalf("extract = %v, %v; want %v", got, ok, c.want)
			}
		})
	}
	if _, ok := extract([]byte(`{"type":"heartbeat","time":5}`), false); ok {
		t.Fatal("a heartbeat parsed as a message")
	}
}

// TestOddsPayload: the simulator's documents with the head the reader
// extracts, in JSON and converted to msgpack; the k-th payload of a channel
// is the same document whatever the order of the calls across channels.
func TestOddsPayload(t *testing.T) {
	mk := func() Payload {
		feed, err := oddsfeed.New(oddsfeed.Config{Events: 2, MarketsPerEvent: 3, Seed: 42})
		if err != nil {
			t.Fatal(err)
		}
		return Odds(feed)
	}
	a, b := mk(), mk()
	var pa [][]byte
	for seq := int64(1); seq <= 20; seq++ {
		for ci := 0; ci < 6; ci++ {
			p := a(nil, 1000+seq, seq, ci)
			if ci == 4 {
				pa = append(pa, p)
			}
			var doc struct {
				TS, Seq, CI int64
				MarketID    string `json:"market_id"`
				Selections  []oddsfeed.Selection
			}
			if err := json.Unmarshal(p, &doc); err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			if doc.TS != 1000+seq || doc.Seq != seq || doc.CI != int64(ci) || doc.MarketID == "" || len(doc.Selections) < 2 {
				t.Fatalf("seq %d ci %d: %s", seq, ci, p)
			}
			for _, bin := range []bool{false, true} {
				in := p
				if bin {
					var err error
					if in, err = jsonToMsgpack(nil, p); err != nil {
						t.Fatal(err)
					}
				}
				if s, ok := extract(in, bin); !ok || s != (sample{1000 + seq, seq, int64(ci)}) {
					t.Fatalf("binary %v: extract %v %v from %s", bin, s, ok, p)
				}
			}
		}
	}
	for seq := int64(1); seq <= 20; seq++ { // channel 4 alone this time
		if p := b(nil, 1000+seq, seq, 4); !bytes.Equal(p, pa[seq-1]) {
			t.Fatalf("message %d of channel 4 depends on the other channels:\n%s\n%s", seq, p, pa[seq-1])
		}
	}
}

func TestJSONToMsgpack(t *testing.T) {
	got, err := jsonToMsgpack(nil, []byte(`{"type":"attach","ref":1,"options":{"publish_only":true}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []byte("\x83\xa4type\xa6attach\xa3ref\x01\xa7options\x81\xacpublish_only\xc3")
	if !bytes.Equal(got, want) {
		t.Fatalf("got %q want %q", got, want)
	}
}

func TestTrack(t *testing.T) {
	var st Stats
	var tr chanTrack
	for _, seq := range []int64{1, 2, 4, 3, 3, 5, 100, 20} {
		tr.observe(seq, &st)
	}
	if st.Dups != 1 || st.Reorders != 2 {
		t.Fatalf("dups %d reorders %d; want 1 and 2", st.Dups, st.Reorders)
	}
}

func TestZipfSkew(t *testing.T) {
	for _, s := range []float64{1.0, 0.6} {
		z := NewZipf(2000, s, 1)
		counts := make([]int, 2000)
		for i := 0; i < 100000; i++ {
			counts[z.Next()]++
		}
		if counts[0] <= counts[10] || counts[10] <= counts[1000] {
			t.Fatalf("s=%.1f: counts not decreasing with rank: %d %d %d", s, counts[0], counts[10], counts[1000])
		}
		if got := z.Distinct(5); len(got) != 5 {
			t.Fatalf("Distinct(5) returned %d", len(got))
		}
	}
}

// TestAgainstPeer runs subscribers (opened by each dialer), a WebSocket
// publisher and the epoll reader against a real Centrifuge node on
// loopback.
func TestAgainstPeer(t *testing.T) {
	tg := startPeer(t)
	t.Run("epoll", func(t *testing.T) { againstPeer(t, tg, Connect) })
	t.Run("goroutines", func(t *testing.T) { againstPeer(t, tg, ConnectBlocking) })
}

func againstPeer(t *testing.T, tg Target, connect func(*Reader, []*Sub, []string, int, int64, time.Duration) ConnectResult) {
	channels := []string{"a", "b"}
	r, err := NewReader(tg, len(channels))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	subs := make([]*Sub, 50)
	for i := range subs {
		subs[i] = NewSub(i, []int32{int32(i % 2)})
	}
	cr := connect(r, subs, channels, 8, 50, 10*time.Second)
	if cr.Attached != 50 {
		t.Fatalf("attached %d of 50: %s", cr.Attached, cr.FirstErr)
	}
	feed, err := oddsfeed.New(oddsfeed.Config{Events: 1, MarketsPerEvent: 2, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := NewWSPublisher(tg, channels, []int{0, 1}, Odds(feed))
	if err != nil {
		t.Fatal(err)
	}
	seq, sent := make([]int64, 2), make([]int64, 2)
	dr := Drive([]Publisher{pub}, seq, sent, Schedule{Rate: 200, Dur: 500 * time.Millisecond, Pick: func(i int64) int { return int(i % 2) }})
	want := (sent[0] + sent[1]) * 25
	deadline := time.Now().Add(10 * time.Second)
	for r.Peek().Received < want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	w := r.Take()
	if w.Received != want || w.Dups != 0 || w.Reorders != 0 || w.Hist.TotalCount() != want {
		t.Fatalf("sent %d (drive %+v): received %d of %d, dups %d, reorders %d, hist %d",
			sent[0]+sent[1], dr, w.Received, want, w.Dups, w.Reorders, w.Hist.TotalCount())
	}
	pub.Close()
	if st := pub.Stats(); st.Acked != st.Sent || st.Errors != 0 {
		t.Fatalf("publisher stats %+v", st)
	}
	if n := r.DropAll(); n != 50 || r.Attached() != 0 {
		t.Fatalf("DropAll closed %d, attached now %d", n, r.Attached())
	}
}
