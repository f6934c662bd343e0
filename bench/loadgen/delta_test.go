package loadgen

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/feedgate/feedgate/bench/peer"
	"github.com/feedgate/feedgate/internal/oddsfeed"
)

// deltaRun subscribes 30 delta subscribers to two odds channels of tg,
// publishes odds documents through a recording publisher and returns what
// the reader saw, once every message reached every subscriber (or 10 s
// passed). check is the record the reader compares with; nil means the
// publisher's own.
func deltaRun(t *testing.T, tg Target, check func(*Published) *Published) (Stats, int64, *Reader) {
	t.Helper()
	const nsubs = 30
	channels := []string{"odds:d:m1", "odds:d:m2"}
	r, err := NewReader(tg, len(channels))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	rec := NewPublished()
	given := rec
	if check != nil {
		given = check(rec)
	}
	r.EnableDelta(channels, given)
	subs := make([]*Sub, nsubs)
	for i := range subs {
		subs[i] = NewSub(i, []int32{int32(i % 2)})
	}
	if cr := Connect(r, subs, channels, 8, nsubs, 10*time.Second); cr.Attached != nsubs {
		t.Fatalf("attached %d of %d: %s", cr.Attached, nsubs, cr.FirstErr)
	}
	feed, err := oddsfeed.New(oddsfeed.Config{Events: 1, MarketsPerEvent: 2, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := NewWSPublisher(tg, channels, []int{0, 1}, rec.Record(Odds(feed)))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	seq, sent := make([]int64, 2), make([]int64, 2)
	Drive([]Publisher{pub}, seq, sent, Schedule{Rate: 200, Dur: 400 * time.Millisecond, Pick: func(i int64) int { return int(i % 2) }})
	want := (sent[0] + sent[1]) * nsubs / 2
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if st := r.Peek(); st.Received >= want || st.DeltaErrors > 0 && check != nil {
			break
		}
	}
	return r.Peek(), sent[0] + sent[1], r
}

// checkDeltas asserts a clean delta run: everything delivered once, most
// of it as deltas, every message rebuilt once and equal to the published
// payload.
func checkDeltas(t *testing.T, tg Target) {
	t.Helper()
	st, sent, r := deltaRun(t, tg, nil)
	want := sent * 15
	if st.Received != want || st.Dups != 0 || st.Reorders != 0 || st.Unexpected != 0 || st.Errors != 0 {
		t.Fatalf("sent %d: received %d of %d: %+v", sent, st.Received, want, st)
	}
	if st.DeltaErrors != 0 {
		t.Fatalf("%d delta errors, first: %s", st.DeltaErrors, r.DeltaErr())
	}
	// The first message of each subscription comes in full; odds moves
	// after it are small changes, sent as deltas.
	if st.DeltaFrames < want/2 {
		t.Fatalf("only %d of %d deliveries were deltas", st.DeltaFrames, want)
	}
	if st.DeltaChecked != sent {
		t.Fatalf("rebuilt and checked %d messages, %d were published", st.DeltaChecked, sent)
	}
}

// TestPeerFossil runs fossil-delta subscribers against a Centrifuge peer in
// delta mode.
func TestPeerFossil(t *testing.T) {
	tg := startDeltaPeer(t)
	checkDeltas(t, tg)
}

// TestEdgeDelta runs VCDIFF subscribers against our edge in both formats
// when FEEDGATE_EDGE names a built cmd/edge.
func TestEdgeDelta(t *testing.T) {
	addr := startEdge(t)
	for _, f := range []string{"json", "msgpack"} {
		t.Run(f, func(t *testing.T) {
			checkDeltas(t, Target{Name: "ours-" + f, Kind: Ours, Addr: addr, Format: f, Delta: "vcdiff"})
		})
	}
}

// TestDeltaCheckFails gives the reader a record of other payloads than
// those published: the check must say so.
func TestDeltaCheckFails(t *testing.T) {
	other := func(*Published) *Published {
		p := NewPublished()
		feed, err := oddsfeed.New(oddsfeed.Config{Events: 1, MarketsPerEvent: 2, Seed: 8})
		if err != nil {
			t.Fatal(err)
		}
		pay := p.Record(Odds(feed))
		for seq := int64(1); seq <= 200; seq++ {
			pay(nil, 1, seq, 0)
			pay(nil, 1, seq, 1)
		}
		return p
	}
	st, _, r := deltaRun(t, startDeltaPeer(t), other)
	if st.DeltaErrors == 0 || !strings.Contains(r.DeltaErr(), "differs from the published one") {
		t.Fatalf("a wrong record went unnoticed: %d errors, first %q", st.DeltaErrors, r.DeltaErr())
	}
}

func startDeltaPeer(t *testing.T) Target {
	t.Helper()
	node, h, err := peer.New(peer.Options{Delta: true})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close(); node.Shutdown(t.Context()) })
	return Target{Name: "peer-fossil", Kind: Peer, Addr: ln.Addr().String(), Delta: "fossil"}
}
