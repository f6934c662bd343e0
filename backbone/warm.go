package backbone

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/api/iterator"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/feedgate/feedgate/codec"
)

// Warming history at start (docs/operations.md, "A restarted edge resumes
// its clients"). A starting edge replays what the shard topics retain of
// the last RelayConfig.WarmHistory, so that the gateway's history holds it
// and a client whose edge restarted resumes instead of losing continuity.
//
// How: for each shard, a replay subscription of its own (unordered: Google's
// emulator does not implement Seek on ordered subscriptions, and the order
// is restored here), seeked back to the window's start. What it brings that
// was published before the replay began is collected, sorted by publish
// time (per channel and origin, the order it was published in), and handed
// to the core as if received; the replay subscriptions are then deleted
// and the edge's own ordered subscriptions, which exist since NewRelay,
// start receiving: what both brought is dropped as a duplicate. The replay
// is over when every replay subscription has brought a message published
// after it began (each edge's own beacons see to that, the first right at
// Start) and nothing older for warmQuiet. Until then the edge is not
// healthy, and the gateway holds attaches (Warmed).
//
// What the gateway counts on: that every message published since the
// window's start reaches it. A replayed message that arrived after the
// replay was over is gone with the replay subscription, but the core's
// per-origin order check sees the hole it leaves at the origin's next
// message and signals it; a resume from before it answers lost. So a late
// straggler costs a signalled loss, never a silent one, unless it was the
// whole of an origin's messages on a channel. Warmed reports the window only
// when the seek succeeded on topics retaining it; a replayed message that
// came without its payload (pstest's Seek drops them) voids it.

// warmQuiet is how long no replayed message must have arrived before the
// replay counts as over: the emulator and Pub/Sub hand out a backlog far
// faster than one message every two seconds.
const warmQuiet = 2 * time.Second

// warmSkew is how far past the replay's start (this edge's clock) a
// replayed message's publish time (Pub/Sub's clock) may be and still be
// kept: the clocks may differ by that much, and a message published just
// before this edge's subscriptions existed would otherwise be neither
// replayed nor received. What the live subscriptions bring too is dropped
// by the dedup cache.
const warmSkew = 5 * time.Second

// maxWarmMessages bounds what a replay holds (about 50 MB of typical odds
// messages). Past it the oldest quarter is dropped, and the window starts
// after them: the replay then vouches for less time, never for messages
// it dropped.
const maxWarmMessages = 100_000

type warmup struct {
	from    time.Time     // the window's start, zero when there is no replay
	start   time.Time     // when the replay began: older messages are replayed ones
	subs    []string      // the replay subscriptions, one per shard
	fresh   []atomic.Bool // per replay subscription: brought a message published after start
	lastOld atomic.Int64  // Unix ns when a replayed message last arrived
	// allFresh is when over first saw every replay subscription fresh
	// (Unix ns): the quiet period counts from it too, so that a replay
	// whose fresh messages come before its old ones is not over at once.
	allFresh atomic.Int64
	broken   atomic.Bool // a replayed message came without its payload

	mu  sync.Mutex // guards got and cut
	got []warmMsg
	cut time.Time // messages published at or before it were dropped (see maxWarmMessages)

	done   chan struct{} // closed when the replay is over (or abandoned)
	result time.Time     // set before done is closed: from, or zero
}

type warmMsg struct {
	at time.Time // Pub/Sub's publish time
	m  codec.Message
}

// retention returns the message retention of shard k's topic (0 without).
func (r *Relay) retention(ctx context.Context, k int) (time.Duration, error) {
	t, err := r.client.TopicAdminClient.GetTopic(ctx, &pubsubpb.GetTopicRequest{Topic: r.subTopics[k]})
	if err != nil {
		return 0, err
	}
	if t.MessageRetentionDuration == nil {
		return 0, nil
	}
	return t.MessageRetentionDuration.AsDuration(), nil
}

// renameSubscriptions gives this process subscriptions of its own,
// "<prefix>-<k>-<EdgeID>_<origin>", when the topics retain what the replay
// needs, and deletes those a previous process with this EdgeID left
// ("<prefix>-<k>-<EdgeID>" and "<prefix>-<k>-<EdgeID>_*": '_' cannot occur
// in an EdgeID, so no other edge's match). Reusing them would hold up the
// ordering keys of what the dead process had leased until the leases
// expired; with Google's emulator even a subscription deleted and created
// again under the same name stayed stuck on those keys (seen: 30 s and
// more). The replay brings what they held, as far as the window covers.
// Without retention the names stay, and a restart reuses them (waiting for
// the leases).
func (r *Relay) renameSubscriptions(ctx context.Context) {
	for k := range r.subTopics {
		if ret, err := r.retention(ctx, k); err != nil || ret <= 0 {
			return
		}
	}
	for k, base := range r.subNames {
		it := r.client.TopicAdminClient.ListTopicSubscriptions(ctx, &pubsubpb.ListTopicSubscriptionsRequest{Topic: r.subTopics[k]})
		for {
			name, err := it.Next()
			if err != nil {
				if !errors.Is(err, iterator.Done) {
					r.log.Warn("backbone: cannot list the topic's subscriptions; a previous process's may be left to expire", "topic", r.subTopics[k], "err", err)
				}
				break
			}
			if name != base && !strings.HasPrefix(name, base+"_") {
				continue
			}
			err = r.client.SubscriptionAdminClient.DeleteSubscription(ctx, &pubsubpb.DeleteSubscriptionRequest{Subscription: name})
			if err != nil && !isNotFound(err) {
				r.log.Warn("backbone: cannot delete a subscription a previous process with this edge ID left; it expires by itself", "subscription", name, "err", err)
				continue
			}
			r.log.Info("backbone: deleted a subscription a previous process with this edge ID left; the replay brings what it held", "subscription", name)
		}
		r.subNames[k] = base + "_" + r.origin
	}
}

// startWarm sets up the replay: replay subscriptions seeked back over the
// window. Start then runs replay if there is one; otherwise it is over.
func (r *Relay) startWarm(ctx context.Context) {
	w := &warmup{start: r.now(), done: make(chan struct{})}
	r.warm = w
	window := r.cfg.WarmHistory
	if window > 0 {
		sctx, cancel := context.WithTimeout(ctx, 5*r.cfg.CheckTimeout)
		window = r.seekAll(sctx, w, window)
		cancel()
	}
	if window <= 0 {
		r.deleteWarmSubs(w)
		w.finish(time.Time{})
		return
	}
	w.from = w.start.Add(-window)
	w.fresh = make([]atomic.Bool, len(w.subs))
	r.log.Info("backbone: replaying the shard topics to warm this edge's history", "window", window.String())
}

// seekAll creates the replay subscriptions and seeks them to the window's
// start, the window cut to the shortest topic retention. It returns the
// window it seeked over, or 0.
func (r *Relay) seekAll(ctx context.Context, w *warmup, window time.Duration) time.Duration {
	for k := range r.subTopics {
		ret, err := r.retention(ctx, k)
		if err != nil {
			r.log.Warn("backbone: cannot read the topic's message retention; history starts empty", "topic", r.subTopics[k], "err", err)
			return 0
		}
		if ret <= 0 {
			r.log.Warn("backbone: the topic retains no messages (message_retention_duration); a restarted edge's history starts empty and its clients' resumes may answer lost", "topic", r.subTopics[k])
			return 0
		}
		window = min(window, ret)
	}
	for k, name := range r.subNames {
		wname := name + "-replay"
		_, err := r.client.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
			Name:               wname,
			Topic:              r.subTopics[k],
			AckDeadlineSeconds: int32(r.cfg.AckDeadline / time.Second),
			// Left behind by an edge that dies while replaying: gone after
			// a day, holding at most 10 minutes (the service's minimums).
			ExpirationPolicy:         &pubsubpb.ExpirationPolicy{Ttl: durationpb.New(24 * time.Hour)},
			MessageRetentionDuration: durationpb.New(10 * time.Minute),
		})
		if err != nil && !isAlreadyExists(err) {
			r.log.Warn("backbone: cannot create a replay subscription; history starts empty", "subscription", wname, "err", err)
			return 0
		}
		w.subs = append(w.subs, wname)
		_, err = r.client.SubscriptionAdminClient.Seek(ctx, &pubsubpb.SeekRequest{
			Subscription: wname,
			Target:       &pubsubpb.SeekRequest_Time{Time: timestamppb.New(w.start.Add(-window))},
		})
		if err != nil {
			r.log.Warn("backbone: seek failed; history starts empty", "subscription", wname, "err", err)
			return 0
		}
	}
	return window
}

// replay receives from the replay subscriptions until the replay is over,
// then hands what it collected to the core, in publish order.
func (r *Relay) replay(ctx context.Context, w *warmup) {
	rctx, stop := context.WithCancel(ctx)
	var recv sync.WaitGroup
	for i, name := range w.subs {
		sub := r.client.Subscriber(name)
		sub.ReceiveSettings.NumGoroutines = 1
		sub.ReceiveSettings.MaxOutstandingMessages = 10000
		recv.Go(func() {
			err := sub.Receive(rctx, func(_ context.Context, pm *pubsub.Message) {
				w.note(i, pm)
				pm.Ack()
			})
			if err != nil && rctx.Err() == nil {
				r.log.Warn("backbone: replay receive ended", "subscription", name, "err", err)
				w.broken.Store(true)
			}
		})
	}
	result := r.waitReplay(ctx, w)
	stop()
	recv.Wait()
	r.deleteWarmSubs(w)
	if !result.IsZero() {
		w.mu.Lock()
		got, cut := w.got, w.cut
		w.got = nil
		w.mu.Unlock()
		if cut.After(result) {
			// Too many to hold: the window starts after what was dropped.
			result = cut.Add(time.Nanosecond)
			r.log.Warn("backbone: the replay brought more than it may hold; its oldest messages were dropped", "max", maxWarmMessages, "from", result.UTC().Format(time.RFC3339Nano))
		}
		sortWarm(got)
		for i := range got {
			r.receive(&got[i].m)
		}
		r.log.Info("backbone: history warmed", "messages", len(got), "from", result.UTC().Format(time.RFC3339),
			"took", time.Since(w.start).Round(time.Millisecond).String())
	}
	w.finish(result)
}

// note records what a replayed message tells, and keeps it if it was
// published before the replay began.
func (w *warmup) note(i int, pm *pubsub.Message) {
	switch {
	case pm.ID == "" || pm.PublishTime.IsZero():
		w.broken.Store(true)
		return
	case !pm.PublishTime.Before(w.start):
		w.fresh[i].Store(true)
		if !pm.PublishTime.Before(w.start.Add(warmSkew)) {
			return
		}
		// Kept all the same: with Pub/Sub's clock ahead of this edge's,
		// it may have been published before this edge's subscriptions
		// existed. A copy the live subscription brings is a duplicate.
	default:
		w.lastOld.Store(time.Now().UnixNano())
	}
	if codec.IsBeacon(pm.Attributes) {
		return
	}
	m, err := codec.DecodeEnvelope(pm.Data, pm.Attributes)
	if err != nil {
		return // counted by the live subscription, which gets what is newer
	}
	w.keep(warmMsg{at: pm.PublishTime, m: m}, maxWarmMessages)
}

// keep holds a replayed message; past limit it drops the oldest quarter
// and moves cut past them.
func (w *warmup) keep(msg warmMsg, limit int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !msg.at.After(w.cut) {
		return // older than what was dropped already
	}
	w.got = append(w.got, msg)
	if len(w.got) >= limit {
		sortWarm(w.got)
		drop := len(w.got) / 4
		w.cut = w.got[drop-1].at
		for drop < len(w.got) && !w.got[drop].at.After(w.cut) {
			drop++ // same publish time as the last dropped: dropped too
		}
		w.got = slices.Delete(w.got, 0, drop)
	}
}

// sortWarm sorts replayed messages by publish time, which orders one
// origin's messages on a channel (they are published in order, on one
// ordering key); Seq breaks ties.
func sortWarm(got []warmMsg) {
	slices.SortStableFunc(got, func(a, b warmMsg) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return cmp.Compare(a.m.Seq, b.m.Seq)
	})
}

// waitReplay returns the window's start once the replay is over, or zero
// if it is abandoned: after WarmTimeout (from Start), a message without
// its payload, or ctx's end.
func (r *Relay) waitReplay(ctx context.Context, w *warmup) time.Time {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(r.cfg.WarmTimeout)
	for {
		select {
		case <-ctx.Done():
			return time.Time{}
		case <-tick.C:
		}
		switch {
		case w.broken.Load():
			r.log.Warn("backbone: the replay failed or brought messages without their payloads (pstest's Seek does); history is not warmed")
			return time.Time{}
		case w.over():
			return w.from
		case time.Now().After(deadline):
			r.log.Warn("backbone: the replay did not end in time; serving without it", "warm_timeout", r.cfg.WarmTimeout.String())
			return time.Time{}
		}
	}
}

func (w *warmup) over() bool {
	for i := range w.fresh {
		if !w.fresh[i].Load() {
			return false
		}
	}
	now := time.Now().UnixNano()
	w.allFresh.CompareAndSwap(0, now)
	return time.Duration(now-max(w.lastOld.Load(), w.allFresh.Load())) >= warmQuiet
}

func (w *warmup) finish(t time.Time) {
	w.result = t
	close(w.done)
}

// deleteWarmSubs deletes the replay subscriptions (best effort: they
// expire anyway).
func (r *Relay) deleteWarmSubs(w *warmup) {
	for _, name := range w.subs {
		ctx, cancel := context.WithTimeout(context.Background(), r.cfg.CheckTimeout)
		err := r.client.SubscriptionAdminClient.DeleteSubscription(ctx, &pubsubpb.DeleteSubscriptionRequest{Subscription: name})
		cancel()
		if err != nil && !isNotFound(err) {
			r.log.Warn("backbone: delete replay subscription", "subscription", name, "err", err)
		}
	}
}

// warming returns an error while the replay goes on.
func (r *Relay) warming() error {
	if r.warm == nil {
		return nil
	}
	select {
	case <-r.warm.done:
		return nil
	default:
		return fmt.Errorf("replaying the last %v of the shard topics to warm history", r.warm.start.Sub(r.warm.from))
	}
}

// Warmed blocks until the start-up replay is over or ctx ends, and returns
// the time from which this edge receives every message published: the
// start of the replayed window, or the zero time when there was no replay
// (WarmHistory 0, topics without retention, a failed seek), it was
// abandoned, or ctx ended first. Call it after Start.
func (r *Relay) Warmed(ctx context.Context) time.Time {
	select {
	case <-r.warm.done:
		return r.warm.result
	case <-ctx.Done():
		return time.Time{}
	}
}
