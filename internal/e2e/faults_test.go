package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"

	"github.com/feedgate/feedgate/client"
	"github.com/feedgate/feedgate/codec"
	"github.com/feedgate/feedgate/internal/edgetest"
	"github.com/feedgate/feedgate/internal/pubsubtest"
)

// TestRedeliveryIsDeduplicated makes Pub/Sub redeliver messages an edge
// has already received: the edge's acks are lost (pstest swallows them) and
// their ack deadline lapses (pstest's clock jumps past it). No subscriber
// sees anything twice, and order holds for what follows.
func TestRedeliveryIsDeduplicated(t *testing.T) {
	srv := pubsubtest.MustStartPstest(t)
	const prefix = "redeliver"
	a := mustStartRelayEdge(t, relayConfig(srv, "edge-a", prefix))
	b := mustStartRelayEdge(t, relayConfig(srv, "edge-b", prefix))
	sub := edgetest.MustDial(t, b.URL, client.Options{})
	pub := edgetest.MustDial(t, a.URL, client.Options{})
	channels := []string{"r:1", "r:2", "r:3"}
	for _, ch := range channels {
		edgetest.MustAttach(t, sub, ch, codec.AttachOptions{})
		edgetest.MustAttach(t, pub, ch, codec.AttachOptions{PublishOnly: true})
	}
	send := func(ch string, i int) {
		t.Helper()
		if _, err := pub.Publish(edgetest.Ctx10(t), ch, fmt.Appendf(nil, `{"i":%d}`, i), client.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(ch string, i int) {
		t.Helper()
		m := edgetest.NextMessage(t, sub)
		if want := fmt.Sprintf(`{"i":%d}`, i); m.Channel != ch || string(m.Data) != want {
			t.Fatalf("got %s %s, want %s %s", m.Channel, m.Data, ch, want)
		}
	}

	srv.Fake.DropAcks(t, "-edge-b")
	for _, ch := range channels {
		send(ch, 0)
		expect(ch, 0)
	}
	edgetest.WaitFor(t, "edge B's acks lost", func() bool { return srv.Fake.Dropped(t).Acks >= int64(len(channels)) })
	srv.Fake.DropAcks(t, "")
	before := b.relay.Stats().Duplicates.Load()
	// Move pstest's clock past the ack deadlines (which the client library
	// sets from what it measures), in steps, short of pstest's 10-minute
	// retention.
	redelivered := func() bool { return b.relay.Stats().Duplicates.Load() >= before+uint64(len(channels)) }
	for step := 1; step <= 4 && !redelivered(); step++ {
		srv.Fake.SetClockOffset(t, time.Duration(step)*2*time.Minute)
		for end := time.Now().Add(5 * time.Second); time.Now().Before(end) && !redelivered(); {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if !redelivered() {
		t.Fatalf("no redelivery to edge B: %d duplicates dropped", b.relay.Stats().Duplicates.Load()-before)
	}
	t.Logf("edge B dropped %d redelivered messages (%d acks lost)", b.relay.Stats().Duplicates.Load()-before, srv.Fake.Dropped(t).Acks)

	// What follows on the same ordering keys arrives once and in order:
	// the redelivered copies never reached the subscriber. The last round
	// is a barrier: a redelivered copy still on its way comes before it,
	// and fails the order check.
	for i := 1; i <= 4; i++ {
		for _, ch := range channels {
			send(ch, i)
		}
	}
	got := map[string]int{}
	for range 4 * len(channels) {
		m := edgetest.NextMessage(t, sub)
		got[m.Channel]++
		if want := fmt.Sprintf(`{"i":%d}`, got[m.Channel]); string(m.Data) != want {
			t.Fatalf("%s: got %s, want %s", m.Channel, m.Data, want)
		}
	}
}

// TestBackboneDown cuts the path between an edge and Pub/Sub: publishes are
// nacked with a clear code within a bounded time, never acknowledged; once
// the path is back, publishing on the same channels works again and the
// other edge receives exactly the acknowledged messages, in order.
func TestBackboneDown(t *testing.T) {
	srv := pubsubtest.MustStartPstest(t)
	proxy := pubsubtest.MustStartProxy(t, srv.Addr)
	const prefix = "outage"
	proxied := srv
	proxied.Addr = proxy.Addr
	a := mustStartRelayEdge(t, relayConfig(proxied, "edge-a", prefix))
	b := mustStartRelayEdge(t, relayConfig(srv, "edge-b", prefix))
	sub := edgetest.MustDial(t, b.URL, client.Options{})
	pub := edgetest.MustDial(t, a.URL, client.Options{})
	channels := []string{"o:1", "o:2"}
	for _, ch := range channels {
		edgetest.MustAttach(t, sub, ch, codec.AttachOptions{})
		edgetest.MustAttach(t, pub, ch, codec.AttachOptions{PublishOnly: true})
	}
	acked := map[string][]int{}
	seq := 0
	refused := map[string]int{} // the first refused seq per channel, until retried
	publish := func(ch string) error {
		// After a nack, the documented retry: the refused message again,
		// with the same id, before anything newer on the channel.
		s, ok := refused[ch]
		if !ok {
			seq++
			s = seq
		}
		// The bound: a publish must be answered (ack or nack) well within
		// this; a hang fails the test.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := pub.Publish(ctx, ch, fmt.Appendf(nil, `{"seq":%d}`, s), client.PublishOptions{ID: fmt.Sprint("m", s)})
		if err == nil {
			acked[ch] = append(acked[ch], s)
			delete(refused, ch)
		} else if !ok {
			refused[ch] = s
		}
		return err
	}
	for range 3 {
		for _, ch := range channels {
			if err := publish(ch); err != nil {
				t.Fatal(err)
			}
		}
	}

	ready := func() int {
		resp, err := http.Get(a.API + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := ready(); got != 200 {
		t.Fatalf("/readyz %d before the outage", got)
	}
	proxy.Down()
	for _, ch := range channels {
		began := time.Now()
		err := publish(ch)
		e, ok := err.(*codec.Error)
		if !ok || (e.Code != codec.CodePublishTimeout && e.Code != codec.CodeBackboneUnavailable) {
			t.Fatalf("publish with the backbone down: got %v, want a nack with publish_timeout or backbone_unavailable", err)
		}
		t.Logf("backbone down: %s nacked after %v: %v", ch, time.Since(began).Round(time.Millisecond), e)
	}

	// The edge that cannot reach Pub/Sub says it is not ready.
	if got := ready(); got != 503 {
		t.Fatalf("/readyz %d with the backbone unreachable, want 503", got)
	}
	proxy.Up()
	// Publishing works again once the client library has reconnected.
	for _, ch := range channels {
		edgetest.WaitFor(t, "publishing works again on "+ch, func() bool { return publish(ch) == nil })
	}
	for range 3 {
		for _, ch := range channels {
			if err := publish(ch); err != nil {
				t.Fatal(err)
			}
		}
	}
	edgetest.WaitFor(t, "ready again", func() bool { return ready() == 200 })
	// The last publish on each channel is a barrier: a refused message that
	// reached Pub/Sub after all would arrive before it.
	last := map[string]int{}
	for _, ch := range channels {
		if err := publish(ch); err != nil {
			t.Fatal(err)
		}
		last[ch] = seq
	}
	got := map[string][]int{}
	for len(last) > 0 {
		m := edgetest.NextMessage(t, sub)
		var p struct{ Seq int }
		if err := json.Unmarshal(m.Data, &p); err != nil {
			t.Fatal(err)
		}
		got[m.Channel] = append(got[m.Channel], p.Seq)
		if p.Seq == last[m.Channel] {
			delete(last, m.Channel)
		}
	}
	for _, ch := range channels {
		if fmt.Sprint(got[ch]) != fmt.Sprint(acked[ch]) {
			t.Errorf("%s: edge B received %v, want exactly the acknowledged %v in order", ch, got[ch], acked[ch])
		}
	}
	// The refused publishes left holes in edge A's sequence; their
	// successors' Prev skipped them, so edge B saw no loss.
	if g, r := b.relay.Stats().Gaps.Load(), b.relay.Stats().Reorders.Load(); g != 0 || r != 0 {
		t.Errorf("edge B reported %d gaps and %d reorders, want none", g, r)
	}
}

// TestSubscriptionRecreated: an edge whose subscriptions are deleted under
// it (by hand, or expired) creates them again and receives again.
func TestSubscriptionRecreated(t *testing.T) {
	srv := pubsubtest.MustStartPstest(t)
	const prefix = "recreate"
	a := mustStartRelayEdge(t, relayConfig(srv, "edge-a", prefix))
	cfg := relayConfig(srv, "edge-b", prefix)
	cfg.SubscriptionCheck = 200 * time.Millisecond
	b := mustStartRelayEdge(t, cfg)
	sub := edgetest.MustDial(t, b.URL, client.Options{})
	pub := edgetest.MustDial(t, a.URL, client.Options{})
	edgetest.MustAttach(t, sub, "rc", codec.AttachOptions{})
	edgetest.MustAttach(t, pub, "rc", codec.AttachOptions{PublishOnly: true})
	admin := pubsubtest.MustClient(t, srv, project).SubscriptionAdminClient
	for k := 0; k < 2; k++ {
		name := fmt.Sprintf("projects/%s/subscriptions/%s-%d-edge-b", project, prefix, k)
		if err := admin.DeleteSubscription(edgetest.Ctx10(t), &pubsubpb.DeleteSubscriptionRequest{Subscription: name}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; ; i++ {
		if _, err := pub.Publish(edgetest.Ctx10(t), "rc", fmt.Appendf(nil, `%d`, i), client.PublishOptions{}); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-sub.Messages():
			t.Logf("edge B receives again (message %s after %d publishes)", m.Data, i+1)
			return
		case <-time.After(500 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("edge B receives nothing 60s after its subscriptions were deleted")
		}
	}
}

// TestIdempotentPublishAcrossEdges: the same message ID published again,
// on the same edge or on another, is acknowledged and delivered once.
func TestIdempotentPublishAcrossEdges(t *testing.T) {
	srv := pubsubtest.MustStartPstest(t)
	const prefix = "idem"
	a := mustStartRelayEdge(t, relayConfig(srv, "edge-a", prefix))
	b := mustStartRelayEdge(t, relayConfig(srv, "edge-b", prefix))
	subs := []*client.Client{edgetest.MustDial(t, a.URL, client.Options{}), edgetest.MustDial(t, b.URL, client.Options{})}
	pubs := []*client.Client{edgetest.MustDial(t, a.URL, client.Options{}), edgetest.MustDial(t, b.URL, client.Options{})}
	for _, c := range subs {
		edgetest.MustAttach(t, c, "idem", codec.AttachOptions{})
	}
	for _, c := range pubs {
		edgetest.MustAttach(t, c, "idem", codec.AttachOptions{PublishOnly: true})
	}
	publish := func(p *client.Client, id, data string) {
		t.Helper()
		got, err := p.Publish(edgetest.Ctx10(t), "idem", []byte(data), client.PublishOptions{ID: id})
		if err != nil || got != id {
			t.Fatalf("publish %s: %q %v", id, got, err)
		}
	}
	publish(pubs[0], "order-1", `1`)
	// Both edges have it before the retries.
	for _, c := range subs {
		if m := edgetest.NextMessage(t, c); m.ID != "order-1" {
			t.Fatalf("got %s", m.ID)
		}
	}
	publish(pubs[0], "order-1", `1`) // retry on the same edge
	publish(pubs[1], "order-1", `1`) // retry on the other edge
	publish(pubs[1], "order-2", `2`)
	for i, c := range subs {
		if m := edgetest.NextMessage(t, c); m.ID != "order-2" {
			t.Fatalf("subscriber %d: after the retries got %s, want order-2 (a retry was delivered again)", i, m.ID)
		}
	}
	st := a.relay.Stats().Retries.Load() + b.relay.Stats().Retries.Load()
	if st != 2 {
		t.Fatalf("%d retries acknowledged without publishing, want 2", st)
	}
}

// TestRedeliveryStorm: the redelivery cascade of ordered subscriptions.
// Edge B's acks are lost while messages keep coming: Pub/Sub holds each
// ordering key behind its unacknowledged head and redelivers the head every
// time its ack deadline lapses (pstest's clock jumps past it, four times),
// then releases the rest once an ack gets through. No subscriber sees
// anything twice or out of order.
func TestRedeliveryStorm(t *testing.T) {
	srv := pubsubtest.MustStartPstest(t)
	const prefix = "storm"
	a := mustStartRelayEdge(t, relayConfig(srv, "edge-a", prefix))
	b := mustStartRelayEdge(t, relayConfig(srv, "edge-b", prefix))
	channels := channelNames("storm", 5)
	_, trackers := subscribe(t, 20, []string{b.URL}, channels)
	srv.Fake.DropAcks(t, "-edge-b")
	pub := client.NewSession(client.SessionOptions{URLs: []string{a.URL}, Logger: quietLog()})
	defer pub.Close()
	const perChannel = 20
	published := publishTicks(t, pub, channels, perChannel, 500, nil)

	base := b.relay.Stats().Duplicates.Load()
	var clock time.Duration // pstest's clock offset
	for round := 1; round <= 4; round++ {
		// Past the ack deadlines; four jumps stay within pstest's
		// 10-minute retention.
		clock += 2 * time.Minute
		srv.Fake.SetClockOffset(t, clock)
		edgetest.WaitFor(t, fmt.Sprintf("redelivery round %d", round), func() bool {
			return b.relay.Stats().Duplicates.Load() >= base+uint64(round*len(channels))
		})
	}
	srv.Fake.DropAcks(t, "")
	clock += time.Minute
	srv.Fake.SetClockOffset(t, clock)
	waitAll(t, pub, trackers, perChannel, 60*time.Second)
	f := sumFigures(published, expectedOf(trackers, perChannel))
	f.log(t, "redelivery-storm", fmt.Sprintf("redeliveries_dropped=%d acks_lost=%d", b.relay.Stats().Duplicates.Load()-base, srv.Fake.Dropped(t).Acks))
}
