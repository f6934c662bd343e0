package e2e

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/feedgate/feedgate/client"
	"github.com/feedgate/feedgate/codec"
	"github.com/feedgate/feedgate/internal/edgetest"
	"github.com/feedgate/feedgate/internal/oddsfeed"
	"github.com/feedgate/feedgate/internal/pubsubtest"
)

// recorder collects one subscriber's messages and checks each payload,
// as the application got it, against the published one byte for byte.
type recorder struct {
	t    *testing.T
	name string
	f    codec.Format
	want map[string][]byte // id -> payload as published (JSON)

	mu   sync.Mutex          // guards the fields below
	got  map[string][]string // channel -> ids in arrival order
	last map[string]string   // channel -> payload of the last message
	bad  []string
}

func newRecorder(t *testing.T, name string, f codec.Format, want map[string][]byte) *recorder {
	return &recorder{t: t, name: name, f: f, want: want, got: map[string][]string{}, last: map[string]string{}}
}

func (r *recorder) on(m client.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	want, ok := r.want[m.ID]
	if ok && r.f == codec.FormatMsgpack {
		w, _ := r.f.WireData(want)
		want, _ = r.f.DataFromWire(w) // msgpack subscribers get keys sorted
	}
	if !ok || !bytes.Equal(m.Data, want) {
		r.bad = append(r.bad, fmt.Sprintf("%s %s: %.100s, want %.100s", m.Channel, m.ID, m.Data, want))
	}
	r.got[m.Channel] = append(r.got[m.Channel], m.ID)
	r.last[m.Channel] = string(m.Data)
}

func (r *recorder) ids(channel string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got[channel]...)
}

func (r *recorder) has(channel, id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, x := range r.got[channel] {
		if x == id {
			return true
		}
	}
	return false
}

// TestDeltaCorrectness: the odds feed published through two edges sharing
// a Pub/Sub backbone, in both formats, to subscribers that take deltas
// and join, resume on the other edge, rewind, lag (their buffer overflows
// and they resync) and are conflated mid-stream: every payload each one
// rebuilds equals the published one byte for byte; the complete ones get
// every message once, in order; the conflated one ends on each market's
// latest document. pstest only: it carries enough for this.
func TestDeltaCorrectness(t *testing.T) {
	srv := pubsubtest.MustStartPstest(t)
	a := mustStartRelayEdge(t, relayConfig(srv, "edge-a", "delta"))
	b := mustStartRelayEdge(t, relayConfig(srv, "edge-b", "delta"))
	edges := []*relayEdge{a, b}

	feed, err := oddsfeed.New(oddsfeed.Config{Seed: 42, Events: 3, MarketsPerEvent: 2})
	if err != nil {
		t.Fatal(err)
	}
	const perPhase = 8
	slots := []int{0, 1, 2} // three markets: the channel of slot i
	var channels []string
	for _, i := range slots {
		channels = append(channels, feed.Channel(i))
	}
	// The whole stream is made first: id -> payload, and per phase the
	// updates to publish, market m through edge m%2 (both directions
	// cross the backbone).
	type update struct{ id, channel string }
	want := map[string][]byte{}    // id -> payload
	order := map[string][]string{} // channel -> ids in publish order
	var phases [3][]update
	step := 0
	for p := range phases {
		for range perPhase {
			for _, slot := range slots {
				u := feed.Move(slot, time.Unix(1767225600, 0).Add(time.Duration(step)*time.Second))
				step++
				id := fmt.Sprintf("u%d", step)
				want[id] = u.Payload
				phases[p] = append(phases[p], update{id, u.Channel})
			}
		}
	}
	pubs := make([]*client.Client, 2)
	for i, e := range edges {
		pubs[i] = edgetest.MustDial(t, e.URL, client.Options{})
		for _, ch := range channels {
			edgetest.MustAttach(t, pubs[i], ch, codec.AttachOptions{PublishOnly: true})
		}
	}
	published := 0
	publishPhase := func() {
		t.Helper()
		for i, u := range phases[published] {
			order[u.channel] = append(order[u.channel], u.id)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_, err := pubs[i%len(slots)%2].Publish(ctx, u.channel, want[u.id], client.PublishOptions{ID: u.id})
			cancel()
			if err != nil {
				t.Fatalf("publish %s: %v", u.id, err)
			}
		}
		published++
	}
	type subscriber struct {
		r   *recorder
		s   *client.Session
		sub []*client.Subscription
	}
	subscribe := func(name string, e *relayEdge, f codec.Format, o client.SubscribeOptions, buffer int, hold chan struct{}) *subscriber {
		t.Helper()
		r := newRecorder(t, name, f, want)
		s := client.NewSession(client.SessionOptions{URLs: []string{e.URL}, Options: client.Options{Format: f, Buffer: buffer}, Logger: quietLog(), MinBackoff: 10 * time.Millisecond})
		t.Cleanup(func() { s.Close() })
		o.OnMessage = func(m client.Message) {
			if hold != nil {
				<-hold
			}
			r.on(m)
		}
		sb := &subscriber{r: r, s: s}
		for _, ch := range channels {
			sub, err := s.Subscribe(edgetest.Ctx10(t), ch, o)
			if err != nil {
				t.Fatalf("%s: subscribe %s: %v", name, ch, err)
			}
			sb.sub = append(sb.sub, sub)
		}
		return sb
	}
	delta := client.SubscribeOptions{Delta: codec.DeltaVCDIFF}
	hold := make(chan struct{})

	fromStartA := subscribe("json on a", a, codec.FormatJSON, delta, 0, nil)
	fromStartB := subscribe("msgpack on b", b, codec.FormatMsgpack, delta, 0, nil)
	lagging := subscribe("lagging msgpack on a", a, codec.FormatMsgpack, delta, 2, hold)
	leaving := subscribe("leaving json on a", a, codec.FormatJSON, delta, 0, nil)
	conflated := subscribe("conflated json on b", b, codec.FormatJSON,
		client.SubscribeOptions{Delta: codec.DeltaVCDIFF, Conflate: codec.MinConflate, ConflateKey: "market_id"}, 0, nil)

	waitLast := func(s *subscriber, ids map[string]string) {
		t.Helper()
		edgetest.WaitForWithin(t, s.r.name+" has the phase's last messages", 60*time.Second, func() bool {
			for ch, id := range ids {
				if !s.r.has(ch, id) {
					return false
				}
			}
			return true
		})
	}
	lastIDs := func() map[string]string {
		m := map[string]string{}
		for ch, ids := range order {
			m[ch] = ids[len(ids)-1]
		}
		return m
	}

	// Phase 1.
	publishPhase()
	waitLast(leaving, lastIDs())
	var tokens []string
	for _, sub := range leaving.sub {
		tokens = append(tokens, sub.Pos())
	}
	leaving.s.Close() // it goes away, and comes back below on the other edge
	// Edge b lags a (pstest carries about 10 messages/s per channel): the
	// joiner's rewind counts from what b has, so let b have phase 1 first.
	waitLast(fromStartB, lastIDs())
	joining := subscribe("joining msgpack on b, rewind 5", b, codec.FormatMsgpack, client.SubscribeOptions{Delta: codec.DeltaVCDIFF, Rewind: 5}, 0, nil)

	// Phase 2.
	publishPhase()
	// The leaver resumes on edge b, from the positions edge a gave it.
	back := &subscriber{r: newRecorder(t, "resumed json on b", codec.FormatJSON, want)}
	back.s = client.NewSession(client.SessionOptions{URLs: []string{b.URL}, Options: client.Options{Format: codec.FormatJSON}, Logger: quietLog()})
	t.Cleanup(func() { back.s.Close() })
	for i, ch := range channels {
		_, err := back.s.Subscribe(edgetest.Ctx10(t), ch, client.SubscribeOptions{Delta: codec.DeltaVCDIFF, Resume: tokens[i], OnMessage: func(m client.Message) {
			back.r.on(m)
		}, OnContinuity: func(e client.ContinuityEvent) {
			if e.Continuity != codec.ContinuityResumed {
				t.Errorf("resume on edge b: %s %s", ch, e.Continuity)
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
	}

	// Phase 3.
	publishPhase()
	close(hold) // the lagging application catches up: its subscriptions resync
	last := lastIDs()
	for _, s := range []*subscriber{fromStartA, fromStartB, lagging, joining, back, conflated} {
		waitLast(s, last)
	}

	for _, s := range []*subscriber{fromStartA, fromStartB, lagging, joining, back, conflated, leaving} {
		s.r.mu.Lock()
		if len(s.r.bad) > 0 {
			t.Errorf("%s: %d payloads differ from the published ones, e.g. %s", s.r.name, len(s.r.bad), s.r.bad[0])
		}
		s.r.mu.Unlock()
	}
	equal := func(name string, got, want []string) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: got %v, want %v", name, got, want)
		}
	}
	for _, ch := range channels {
		all := order[ch]
		equal(fromStartA.r.name+" "+ch, fromStartA.r.ids(ch), all)
		equal(fromStartB.r.name+" "+ch, fromStartB.r.ids(ch), all)
		equal(lagging.r.name+" "+ch, lagging.r.ids(ch), all)
		// The leaver and its return make the stream once, nothing repeated.
		equal("leaver + return "+ch, append(leaving.r.ids(ch), back.r.ids(ch)...), all)
		// The joiner: the 5 before it joined (rewind), then everything.
		equal(joining.r.name+" "+ch, joining.r.ids(ch), all[perPhase-5:])
		// The conflated one: a subsequence, in order, ending on the latest.
		got := conflated.r.ids(ch)
		j := 0
		for _, id := range all {
			if j < len(got) && got[j] == id {
				j++
			}
		}
		if j != len(got) || got[len(got)-1] != all[len(all)-1] {
			t.Errorf("conflated %s: %v is not an in-order subsequence ending on %s", ch, got, all[len(all)-1])
		}
		t.Logf("%s: conflated subscriber got %d of %d", ch, len(got), len(all))
	}
	for _, e := range edges {
		st := e.Srv.DeltaStats()
		t.Logf("%s: %d delta frames, %d full frames to delta subscribers, %d conflated; prepared %v", e.id, st.Deltas, st.Full, st.Conflated, st.Prepared)
		if st.Deltas == 0 {
			t.Errorf("%s sent no delta frame", e.id)
		}
	}
	if n := lagging.sub[0].Stats().Dropped + lagging.sub[1].Stats().Dropped + lagging.sub[2].Stats().Dropped; n == 0 {
		t.Errorf("the lagging subscriber never overflowed: the test did not lag it")
	}
}
