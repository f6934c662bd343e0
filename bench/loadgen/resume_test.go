package loadgen

import (
	"bytes"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/feedgate/feedgate/bench/peer"
)

func TestPositionExtract(t *testing.T) {
	msg := `{"type":"message","channel":"c","id":"x","data":{"ts":1,"seq":2,"ci":0,"pad":"pos"},"time":5,"pos":"1.wq7tz2kd-2s"}`
	if got := posToken([]byte(msg), false); string(got) != "1.wq7tz2kd-2s" {
		t.Fatalf("json pos %q", got)
	}
	mp, err := jsonToMsgpack(nil, []byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	if got := posToken(mp, true); string(got) != "1.wq7tz2kd-2s" {
		t.Fatalf("msgpack pos %q", got)
	}
	att := `{"type":"attached","ref":3,"channel":"c","options":{"resume":"1.ab-1"},"pos":"1.ab-5","continuity":"resumed"}`
	mp, _ = jsonToMsgpack(nil, []byte(att))
	for _, c := range []struct {
		u   []byte
		bin bool
	}{{[]byte(att), false}, {mp, true}} {
		if got := posToken(c.u, c.bin); string(got) != "1.ab-5" {
			t.Fatalf("attached pos %q (binary %v)", got, c.bin)
		}
		if got := continuityOf(c.u, c.bin); string(got) != "resumed" {
			t.Fatalf("continuity %q (binary %v)", got, c.bin)
		}
	}
	long := bytes.Repeat([]byte("a"), 40) // str8 in msgpack
	mp, _ = jsonToMsgpack(nil, []byte(`{"pos":"`+string(long)+`"}`))
	if got := posToken(mp, true); !bytes.Equal(got, long) {
		t.Fatalf("str8 pos %q", got)
	}
	if posToken([]byte(`{"type":"heartbeat","time":5}`), false) != nil {
		t.Fatal("a heartbeat has a pos")
	}
	reply := []byte(`{"id":2,"subscribe":{"recoverable":true,"epoch":"Ab","publications":[{"data":{"ts":1,"seq":7,"ci":0},"offset":8},{"data":{"ts":1,"seq":8,"ci":0},"offset":9}],"recovered":true,"offset":7,"positioned":true,"was_recovering":true}}`)
	if off, ok := peerOffsetMax(reply); !ok || off != 9 {
		t.Fatalf("peer offset %d %v", off, ok)
	}
	if off, ok := peerOffsetLast([]byte(`{"push":{"channel":"c","pub":{"data":{"ts":1,"seq":8,"ci":0},"offset":12}}}`)); !ok || off != 12 {
		t.Fatalf("push offset %d %v", off, ok)
	}
}

// resumeRoundTrip drops every subscriber, publishes while they are away and
// reconnects them with resume: nothing may be lost or repeated.
func resumeRoundTrip(t *testing.T, tg Target) {
	t.Helper()
	const nsubs = 40
	channels := []string{"rt:a", "rt:b"}
	r, err := NewReader(tg, len(channels))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.EnableResume()
	subs := make([]*Sub, nsubs)
	for i := range subs {
		subs[i] = NewSub(i, []int32{int32(i % 2)})
	}
	if cr := Connect(r, subs, channels, 8, nsubs, 10*time.Second); cr.Attached != nsubs {
		t.Fatalf("attached %d of %d: %s", cr.Attached, nsubs, cr.FirstErr)
	}
	pub, err := NewWSPublisher(tg, channels, []int{0, 1}, Padded(200))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	seq, sent := make([]int64, 2), make([]int64, 2)
	pick := func(i int64) int { return int(i % 2) }
	burst := func() {
		Drive([]Publisher{pub}, seq, sent, Schedule{Rate: 200, Dur: 200 * time.Millisecond, Pick: pick})
	}
	wait := func(want int64) Stats {
		deadline := time.Now().Add(10 * time.Second)
		for r.Peek().Received < want && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		return r.Peek()
	}
	burst()
	wait((sent[0] + sent[1]) * nsubs / 2)
	c0 := r.Continuity()
	if n := r.DropAll(); n != nsubs {
		t.Fatalf("dropped %d", n)
	}
	burst() // nobody listens
	if cr := Connect(r, subs, channels, 8, nsubs, 10*time.Second); cr.Attached != nsubs {
		t.Fatalf("re-attached %d of %d: %s (%+v, stats %+v)", cr.Attached, nsubs, cr.FirstErr, cr, r.Peek())
	}
	burst()
	// One more burst, as a barrier: anything extra the resume sends (a
	// duplicate) comes before it on its channel and shows in the counts,
	// where a quiet period would only catch what came soon enough.
	burst()
	want := (sent[0] + sent[1]) * nsubs / 2
	st := wait(want)
	cont := r.Continuity().Sub(c0)
	if st.Received != want || st.Dups != 0 || st.Reorders != 0 || st.Errors != 0 || st.Unexpected != 0 {
		t.Fatalf("sent %d: received %d of %d, %+v", sent[0]+sent[1], st.Received, want, st)
	}
	if cont != (Continuity{Resumed: nsubs}) {
		t.Fatalf("continuity %+v", cont)
	}
}

func TestPeerRecover(t *testing.T) {
	node, h, err := peer.New(peer.Options{HistorySize: 1000, HistoryTTL: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer node.Shutdown(t.Context())
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	defer srv.Close()
	resumeRoundTrip(t, Target{Name: "peer", Kind: Peer, Addr: ln.Addr().String()})
}

// TestEdgeResume runs the round trip against our edge when FEEDGATE_EDGE
// names a built cmd/edge binary (go build -o /tmp/edge ./cmd/edge from the
// repository root).
func TestEdgeResume(t *testing.T) {
	addr := startEdge(t)
	for _, f := range []string{"json", "msgpack"} {
		t.Run(f, func(t *testing.T) { resumeRoundTrip(t, Target{Name: "ours-" + f, Kind: Ours, Addr: addr, Format: f}) })
	}
}
