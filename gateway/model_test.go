package gateway_test

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/feedgate/feedgate/codec"
	"github.com/feedgate/feedgate/gateway"
	"github.com/feedgate/feedgate/internal/edgetest"
)

// TestResumeModel drives several edges, each a real Server on loopback fed
// by a backbone of the test's own (fanout), with messages from origins that
// start and stop, as real origins would stamp them (Origin, Seq, Prev with
// holes for refused publishes, origin time), each edge seeing its own
// interleaving of origins and its own lag, and now and then losing a
// message for good. Subscribers on raw WebSocket connections, in both
// formats, drop and resume on random edges. Every frame each subscriber
// receives is compared with a model of what it must receive:
//
//   - on resume, `resumed` and exactly the messages it lacks that the edge
//     has delivered, in the edge's order, when the edge's history holds all
//     of them and each follows on its predecessor; otherwise `lost` and no
//     replay;
//   - live, every message it lacks, in the edge's order, none it has, and a
//     continuity frame right before one whose predecessor it lacks;
//   - every position it is given (message and attached pos) is exactly the
//     set of messages it has: the model parses the token and compares.
//
// The backbone keeps the lateness bound the edges assume (a message reaches
// every edge before any edge delivers a message a minute of origin time
// newer), as docs/protocol.md §7.5 requires of a real one.
func TestResumeModel(t *testing.T) {
	// 101 once found replayed positions that lacked a message the
	// subscriber had (lost for good on the edge it resumed on).
	seeds := []uint64{20261130, 101}
	if s := os.Getenv("MODEL_SEED"); s != "" { // to explore: MODEL_SEED=n go test -run TestResumeModel
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("MODEL_SEED: %v", err)
		}
		seeds = []uint64{n}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Logf("seed %d (set MODEL_SEED to run another)", seed)
			m := newModel(t, seed, 3, 30)
			m.run(1500)
			t.Logf("%d messages from %d origins; %d deliveries to edges, %d lost for good on one edge; %d attaches: %d fresh, %d resumed (%d ahead of their edge), %d lost (at most %d of them where the client lacked nothing the edge could not send); %d continuity frames expected mid-stream; %d frames checked",
				len(m.pub), m.origins, m.deliveries, m.dropped, m.attaches, m.fresh, m.resumed, m.ahead, m.lostResumes, m.conservative, m.midLost, m.checked)
			if m.origins < 20 || m.resumed < 50 || m.lostResumes < 5 || m.midLost < 3 || m.ahead < 5 {
				t.Fatalf("the run did not exercise enough: %d origins, %d resumed (%d ahead), %d lost, %d continuity frames", m.origins, m.resumed, m.ahead, m.lostResumes, m.midLost)
			}
		})
	}
}

// modelT0 is the origin time of the first step, Unix ms: past the edges'
// start by more than the lateness bound.
var modelT0 = time.Now().Add(2 * time.Minute).UnixMilli()

const (
	modelStep   = 3000   // origin time between publishes, ms
	modelLate   = 60_000 // the edges' lateness bound, ms
	modelDrop   = 0.02   // chance that a publish makes one edge lose the origin's previous message
	modelSubs   = 6
	modelMaxLag = 30 // steps a dropped subscriber stays away at most
)

// fanout is one edge's backbone: the test calls deliver as it chooses.
type fanout struct {
	deliver func(*codec.Message)
	started chan struct{}
}

func (b *fanout) Start(_ context.Context, d func(*codec.Message)) error {
	b.deliver = d
	close(b.started)
	return nil
}
func (b *fanout) Publish(*codec.Message, func(error)) {
	panic("not used: the model feeds the edges itself")
}
func (b *fanout) Close(context.Context) error { return nil }

type model struct {
	t     *testing.T
	rng   *rand.Rand
	hsize int

	pub     []*codec.Message // every message, in publish (and origin time) order
	byPos   map[string]int   // origin/seq -> index in pub
	active  []*morigin
	origins int
	newest  int64 // highest origin time delivered on any edge

	edges []*medge
	subs  []*msub

	deliveries, dropped, attaches, fresh, resumed, ahead, lostResumes, midLost, checked int
	conservative                                                                        int // resumes lost by the one rule the edge cannot do better on
}

type morigin struct {
	name      string
	next      uint64 // Seq of the next publish
	last      uint64 // Seq of the last accepted message (Prev of the next)
	published int
}

type queued struct {
	i   int   // index in pub
	due int64 // origin time by which it (or, for a lost predecessor, it) must be delivered
}

type medge struct {
	e       *edgetest.Edge
	bb      *fanout
	queues  map[string][]queued // per origin, in Seq order
	deliv   []int               // indexes delivered, in order
	claim   []bool              // what the edge's position counts in: delivered, and lost messages it delivered past
	gap     map[int]bool        // delivered without its predecessor delivered just before
	lastSeq map[string]uint64
	subs    map[*msub]bool
}

type mframe struct {
	kind  string // "attached:<continuity>", "m" or "lost"
	i     int    // message index, for "m"
	claim []bool // the subscriber's set after this frame (attached and "m")
}

type msub struct {
	id     int
	format codec.Format
	conn   *mconn // nil while away
	edge   *medge
	has    []bool   // what the subscriber has, as the model sees it
	want   []mframe // frames expected on this connection
	pos    string   // the last position it was given
	away   int      // steps until it comes back
	ref    uint64
}

// mconn is one WebSocket connection of a subscriber.
type mconn struct {
	ws     *websocket.Conn
	mu     sync.Mutex
	frames []codec.Frame // frames received (reader goroutine)
	rerr   error
}

func (c *mconn) received() ([]codec.Frame, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.frames), c.rerr
}

func newModel(t *testing.T, seed uint64, nedges, hsize int) *model {
	m := &model{t: t, rng: rand.New(rand.NewPCG(seed, seed)), hsize: hsize, byPos: map[string]int{}}
	for range nedges {
		bb := &fanout{started: make(chan struct{})}
		e := edgetest.MustStartEdge(t, gateway.Config{HistorySize: hsize, HistoryAge: time.Hour, HeartbeatInterval: time.Hour}, bb)
		<-bb.started
		m.edges = append(m.edges, &medge{e: e, bb: bb, queues: map[string][]queued{}, gap: map[int]bool{}, lastSeq: map[string]uint64{}, subs: map[*msub]bool{}})
	}
	for range 2 {
		m.startOrigin()
	}
	for i := range modelSubs {
		s := &msub{id: i, format: codec.Format(i % 2)}
		m.subs = append(m.subs, s)
		m.attach(s, m.edges[m.rng.IntN(len(m.edges))], "")
	}
	return m
}

func (m *model) startOrigin() {
	m.origins++
	m.active = append(m.active, &morigin{name: fmt.Sprintf("o%03d", m.origins), next: 1})
}

func (m *model) run(steps int) {
	for step := range steps {
		if len(m.active) < 4 && m.rng.Float64() < 0.08 {
			m.startOrigin()
		}
		if len(m.active) > 1 && m.rng.Float64() < 0.08 {
			k := m.rng.IntN(len(m.active))
			m.active = slices.Delete(m.active, k, k+1) // that process has ended
		}
		m.publish(step)
		for _, e := range m.edges {
			for range m.rng.IntN(3) {
				m.deliverOne(e)
			}
		}
		for _, s := range m.subs {
			switch {
			case s.conn != nil && m.rng.Float64() < 0.05:
				m.drop(s)
				s.away = 1 + m.rng.IntN(modelMaxLag)
			case s.conn == nil:
				if s.away--; s.away <= 0 {
					m.attach(s, m.edges[m.rng.IntN(len(m.edges))], s.pos)
				}
			}
		}
	}
	for _, s := range m.subs {
		if s.conn != nil {
			m.drop(s)
		}
	}
}

// publish makes the next message of a random active origin. Now and then
// the publish before it was refused (a hole in Seq that Prev skips), and
// now and then one edge loses the origin's previous message for good.
func (m *model) publish(step int) {
	o := m.active[m.rng.IntN(len(m.active))]
	if o.published > 0 && m.rng.Float64() < 0.1 {
		o.next++ // refused: never delivered anywhere
	}
	msg := &codec.Message{Channel: "c", Origin: o.name, Seq: o.next, Prev: o.last, Time: modelT0 + int64(step)*modelStep}
	msg.ID = fmt.Sprintf("%s-%d", o.name, msg.Seq)
	msg.Data = []byte(`"` + msg.ID + `"`)
	o.last, o.next = o.next, o.next+1
	o.published++
	i := len(m.pub)
	m.pub = append(m.pub, msg)
	m.byPos[msg.ID] = i
	for _, s := range m.subs {
		s.has = append(s.has, false)
	}
	for _, e := range m.edges {
		e.claim = append(e.claim, false)
	}
	lose := -1
	if msg.Prev != 0 && m.pub[m.byPos[fmt.Sprintf("%s-%d", o.name, msg.Prev)]].Prev != 0 && m.rng.Float64() < modelDrop {
		lose = m.rng.IntN(len(m.edges))
	}
	for k, e := range m.edges {
		q := e.queues[o.name]
		due := msg.Time
		if k == lose && len(q) > 0 {
			// The edge loses the previous message (still on its way to
			// it); this one, the first that reveals the gap, must come
			// in time for the lost one.
			due = q[len(q)-1].due
			q = q[:len(q)-1]
			m.dropped++
		}
		e.queues[o.name] = append(q, queued{i, due})
	}
}

// deliverOne delivers the next message of a random origin to e, after
// whatever the lateness bound requires every edge to have first.
func (m *model) deliverOne(e *medge) {
	var names []string
	for o, q := range e.queues {
		if len(q) > 0 {
			names = append(names, o)
		}
	}
	if len(names) == 0 {
		return
	}
	slices.Sort(names)
	o := names[m.rng.IntN(len(names))]
	q := e.queues[o][0]
	e.queues[o] = e.queues[o][1:]
	m.deliverAt(e, q)
}

// deliverAt delivers q, which has left e's queue, once every edge has
// every message due a lateness bound before it. (Nothing after q in its
// own queue is due that early.)
func (m *model) deliverAt(e *medge, q queued) {
	if t := m.pub[q.i].Time; t > m.newest {
		m.newest = t
		m.flush(t - modelLate)
	}
	m.deliver(e, q.i)
}

// flush delivers, on every edge, every queued message due at or before
// bound, the earliest due first.
func (m *model) flush(bound int64) {
	for {
		var be *medge
		var bo string
		for _, e := range m.edges {
			for o, qs := range e.queues {
				if len(qs) == 0 || qs[0].due > bound {
					continue
				}
				if be == nil || cmp.Or(cmp.Compare(qs[0].due, be.queues[bo][0].due), cmp.Compare(qs[0].i, be.queues[bo][0].i)) < 0 {
					be, bo = e, o
				}
			}
		}
		if be == nil {
			return
		}
		q := be.queues[bo][0]
		be.queues[bo] = be.queues[bo][1:]
		m.deliverAt(be, q)
	}
}

// deliver hands message i to edge e and records what each of e's
// subscribers must receive.
func (m *model) deliver(e *medge, i int) {
	msg := m.pub[i]
	m.deliveries++
	last, known := e.lastSeq[msg.Origin]
	if msg.Prev != 0 && (!known || msg.Prev != last) {
		e.gap[i] = true
	}
	if known && msg.Prev > last {
		// What the edge missed in between, its position counts in once it
		// has delivered past it.
		for j := range m.pub[:i] {
			if p := m.pub[j]; p.Origin == msg.Origin && p.Seq > last && p.Seq < msg.Seq {
				e.claim[j] = true
			}
		}
	}
	e.lastSeq[msg.Origin] = msg.Seq
	e.deliv = append(e.deliv, i)
	e.claim[i] = true
	for s := range e.subs {
		if s.has[i] {
			continue // the edge it came from delivered it
		}
		if p := m.pred(i); p >= 0 && !s.has[p] {
			s.want = append(s.want, mframe{kind: "lost"})
			m.midLost++
			copy(s.has, e.claim)
		}
		s.has[i] = true
		s.want = append(s.want, mframe{kind: "m", i: i, claim: slices.Clone(s.has)})
	}
	e.bb.deliver(msg)
}

// pred is the index of message i's predecessor, or -1 for none.
func (m *model) pred(i int) int {
	msg := m.pub[i]
	if msg.Prev == 0 {
		return -1
	}
	return m.byPos[fmt.Sprintf("%s-%d", msg.Origin, msg.Prev)]
}

// attach connects s to e, resuming from token unless it is empty, and
// records what must come.
func (m *model) attach(s *msub, e *medge, token string) {
	m.attaches++
	s.edge, s.want = e, nil
	e.subs[s] = true
	cont := codec.ContinuityFresh
	var replay []int
	if token != "" {
		replay, cont = m.resume(s, e, token)
	}
	switch cont {
	case codec.ContinuityFresh:
		m.fresh++
		copy(s.has, e.claim)
	case codec.ContinuityLost:
		m.lostResumes++
		copy(s.has, e.claim)
	case codec.ContinuityResumed:
		m.resumed++
	}
	s.want = append(s.want, mframe{kind: "attached:" + string(cont), claim: slices.Clone(s.has)})
	for _, i := range replay {
		s.has[i] = true
		s.want = append(s.want, mframe{kind: "m", i: i, claim: slices.Clone(s.has)})
	}
	s.conn = m.dial(s, e)
	m.send(s, &codec.Frame{Type: codec.FrameAttach, Channel: "c", Options: codec.AttachOptions{Resume: token}})
	// Nothing is delivered until the edge has answered: the model's state
	// is the edge's at the attach.
	m.waitFor(s, 1)
}

// resume is the model's answer to a resume of s on e: the messages to
// replay and the continuity. The subscriber lacks, of what e delivered, the
// messages not in s.has; per origin they must all be in e's history, and
// each must follow on its predecessor (the first on one s has, the others
// on the one before). One more case is lost by design (docs/protocol.md
// §7.3): the first of an origin the token does not name, after a message
// the edge never delivered itself, since the edge cannot tell whether the
// watermark counts that message in.
func (m *model) resume(s *msub, e *medge, token string) ([]int, codec.Continuity) {
	tok, err := codec.ParseToken(token)
	if err != nil {
		m.t.Fatalf("sub %d holds a bad token %q: %v", s.id, token, err)
	}
	histFrom := max(0, len(e.deliv)-m.hsize)
	prevOf := map[string]int{} // per origin, the last message to replay so far
	var replay []int
	lost := false
	for k, i := range e.deliv {
		if s.has[i] {
			continue
		}
		msg := m.pub[i]
		p, started := prevOf[msg.Origin]
		switch {
		case k < histFrom:
			lost = true // left history
		case started && msg.Prev != m.pub[p].Seq:
			lost = true // the edge missed one in between
		case !started && m.pred(i) >= 0 && !s.has[m.pred(i)]:
			lost = true // its predecessor is missing
		case !started && e.gap[i] && tok.Seqs[msg.Origin] == 0:
			lost = true // by design, see above
			m.conservative++
		}
		prevOf[msg.Origin] = i
		replay = append(replay, i)
	}
	if lost {
		return nil, codec.ContinuityLost
	}
	for i, has := range s.has {
		if has && !e.claim[i] {
			m.ahead++ // it has what this edge has not delivered yet
			break
		}
	}
	return replay, codec.ContinuityResumed
}

// drop checks everything s received, and disconnects it.
func (m *model) drop(s *msub) {
	m.waitFor(s, len(s.want))
	// A barrier: the reply to a request queued after every frame so far.
	s.ref++
	m.send(s, &codec.Frame{Type: codec.FrameAttach, Ref: s.ref, Channel: "sync", Options: codec.AttachOptions{PublishOnly: true}})
	m.waitFor(s, len(s.want)+1)
	frames, _ := s.conn.received()
	if last := frames[len(frames)-1]; last.Type != codec.FrameAttached || last.Channel != "sync" {
		m.t.Fatalf("sub %d: %d frames, then %s on %q; want %d and the barrier\n%s", s.id, len(frames), last.Type, last.Channel, len(s.want), m.explain(s, frames))
	}
	m.check(s, frames[:len(frames)-1])
	s.conn.ws.Close()
	s.conn = nil
	delete(s.edge.subs, s)
}

// check compares the frames s received with the model's.
func (m *model) check(s *msub, frames []codec.Frame) {
	if len(frames) != len(s.want) {
		m.t.Fatalf("sub %d: %d frames, want %d\n%s", s.id, len(frames), len(s.want), m.explain(s, frames))
	}
	for k, fr := range frames {
		w := s.want[k]
		got := kindOf(fr)
		if got != w.kind || w.kind == "m" && fr.Msg.ID != m.pub[w.i].ID {
			m.t.Fatalf("sub %d frame %d: got %s, want %s\n%s", s.id, k, describe(fr), m.describeWant(w), m.explain(s, frames))
		}
		if fr.Type == codec.FrameContinuity {
			continue
		}
		claim := m.claimOf(s, fr.Pos)
		if !slices.Equal(claim[:len(w.claim)], w.claim) || slices.Contains(claim[len(w.claim):], true) {
			m.t.Fatalf("sub %d frame %d (%s): position %s counts in %s; the subscriber has %s", s.id, k, describe(fr), fr.Pos, m.ids(claim), m.ids(w.claim))
		}
		s.pos = fr.Pos
		m.checked++
	}
}

// claimOf is the set of messages a token counts in.
func (m *model) claimOf(s *msub, token string) []bool {
	p, err := codec.ParseToken(token)
	if err != nil || p.Overflow {
		m.t.Fatalf("sub %d was given token %q: %v", s.id, token, err)
	}
	out := make([]bool, len(m.pub))
	for i, msg := range m.pub {
		out[i] = p.Includes(msg.Origin, msg.Seq, msg.Time)
	}
	return out
}

func kindOf(fr codec.Frame) string {
	switch fr.Type {
	case codec.FrameAttached:
		return "attached:" + string(fr.Continuity)
	case codec.FrameMessage:
		return "m"
	case codec.FrameContinuity:
		if fr.Continuity == codec.ContinuityLost && fr.Channel == "c" {
			return "lost"
		}
	}
	return fr.Type.String()
}

func describe(fr codec.Frame) string {
	if fr.Type == codec.FrameMessage {
		return "m " + fr.Msg.ID
	}
	return kindOf(fr)
}

func (m *model) describeWant(w mframe) string {
	if w.kind == "m" {
		return "m " + m.pub[w.i].ID
	}
	return w.kind
}

func (m *model) ids(set []bool) string {
	var b strings.Builder
	for i, in := range set {
		if in && i < len(m.pub) {
			b.WriteString(m.pub[i].ID + " ")
		}
	}
	return b.String()
}

func (m *model) explain(s *msub, frames []codec.Frame) string {
	var b strings.Builder
	for k := range max(len(frames), len(s.want)) {
		got, want := "-", "-"
		if k < len(frames) {
			got = describe(frames[k])
		}
		if k < len(s.want) {
			want = m.describeWant(s.want[k])
		}
		fmt.Fprintf(&b, "  %3d got %-22s want %s\n", k, got, want)
	}
	return b.String()
}

func (m *model) dial(s *msub, e *medge) *mconn {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := websocket.Dialer{NetDialContext: (&net.Dialer{}).DialContext}
	ws, _, err := d.DialContext(ctx, e.e.URL+"/v1/ws?format="+s.format.String(), nil)
	if err != nil {
		m.t.Fatal(err)
	}
	m.t.Cleanup(func() { ws.Close() })
	c := &mconn{ws: ws}
	go func() {
		for {
			_, b, err := ws.ReadMessage()
			if err != nil {
				c.mu.Lock()
				c.rerr = err
				c.mu.Unlock()
				return
			}
			fr, err := s.format.Decode(b)
			c.mu.Lock()
			if err != nil {
				c.rerr = fmt.Errorf("frame %q does not decode: %w", b, err)
			}
			c.frames = append(c.frames, fr)
			c.mu.Unlock()
		}
	}()
	return c
}

func (m *model) send(s *msub, fr *codec.Frame) {
	m.t.Helper()
	b, err := s.format.Encode(fr)
	if err != nil {
		m.t.Fatal(err)
	}
	typ := websocket.TextMessage
	if s.format.Binary() {
		typ = websocket.BinaryMessage
	}
	if err := s.conn.ws.WriteMessage(typ, b); err != nil {
		m.t.Fatal(err)
	}
}

// waitFor waits until s has received n frames on its connection.
func (m *model) waitFor(s *msub, n int) {
	m.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		frames, rerr := s.conn.received()
		if len(frames) >= n {
			return
		}
		if rerr != nil || time.Now().After(deadline) {
			m.t.Fatalf("sub %d: %d frames of %d (read: %v)\n%s", s.id, len(frames), n, rerr, m.explain(s, frames))
		}
		time.Sleep(2 * time.Millisecond)
	}
}
