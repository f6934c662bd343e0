package gateway

import (
	"hash/fnv"
	"sync"
	"sync/atomic"

	"github.com/feedgate/feedgate/codec"
)

// hubShards spreads channels over independent locks so that attaches on
// different channels do not contend; 256 is plenty for tens of thousands of
// channels on a few cores.
const hubShards = 256

// hub maps channels to their subscribers. Fan-out reads a channel's
// subscriber list without locking (an immutable slice swapped on change);
// attach and detach copy it under the shard lock.
type hub struct {
	shards [hubShards]hubShard
	// Stats.
	delivered atomic.Uint64 // frames enqueued to subscribers
}

type hubShard struct {
	mu       sync.Mutex // guards channels
	channels map[string]*channelSubs
}

// channelSubs is one channel's subscribers.
type channelSubs struct {
	subs atomic.Pointer[[]subscription] // immutable snapshot
}

// subscription is one connection's interest in one channel, with the
// options it attached with (the seam for per-subscriber deltas).
type subscription struct {
	c    *conn
	opts codec.AttachOptions
}

func newHub() *hub {
	h := &hub{}
	for i := range h.shards {
		h.shards[i].channels = make(map[string]*channelSubs)
	}
	return h
}

func (h *hub) shard(channel string) *hubShard {
	f := fnv.New32a()
	f.Write([]byte(channel))
	return &h.shards[f.Sum32()%hubShards]
}

// add subscribes c to channel, replacing an earlier subscription of c.
func (h *hub) add(channel string, c *conn, opts codec.AttachOptions) {
	s := h.shard(channel)
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.channels[channel]
	if cs == nil {
		cs = &channelSubs{}
		s.channels[channel] = cs
	}
	var old []subscription
	if p := cs.subs.Load(); p != nil {
		old = *p
	}
	next := make([]subscription, 0, len(old)+1)
	for _, sub := range old {
		if sub.c != c {
			next = append(next, sub)
		}
	}
	next = append(next, subscription{c: c, opts: opts})
	cs.subs.Store(&next)
}

// remove unsubscribes c from channel; it is a no-op if c is not subscribed.
func (h *hub) remove(channel string, c *conn) {
	s := h.shard(channel)
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.channels[channel]
	if cs == nil {
		return
	}
	old := *cs.subs.Load()
	next := make([]subscription, 0, len(old))
	for _, sub := range old {
		if sub.c != c {
			next = append(next, sub)
		}
	}
	if len(next) == 0 {
		delete(s.channels, channel)
		return
	}
	cs.subs.Store(&next)
}

func (h *hub) subscribers(channel string) []subscription {
	s := h.shard(channel)
	s.mu.Lock()
	cs := s.channels[channel]
	s.mu.Unlock()
	if cs == nil {
		return nil
	}
	return *cs.subs.Load()
}

// deliver fans m out to the channel's subscribers: it encodes m at most once
// per wire format, as a complete WebSocket frame, and enqueues those same
// bytes on every subscriber's send queue. It never blocks on a subscriber.
func (h *hub) deliver(m *codec.Message, log func(format codec.Format, err error)) {
	subs := h.subscribers(m.Channel)
	if len(subs) == 0 {
		return
	}
	var frames [codec.NumFormats][]byte
	var failed [codec.NumFormats]bool
	for _, sub := range subs {
		f := sub.c.format
		if frames[f] == nil {
			if failed[f] {
				continue
			}
			payload, err := f.EncodeMessage(m)
			if err != nil {
				failed[f] = true
				log(f, err)
				continue
			}
			frames[f] = appendFrame(make([]byte, 0, len(payload)+10), dataOpcode(f), payload)
		}
		sub.c.enqueue(frames[f])
	}
	h.delivered.Add(uint64(len(subs)))
}

func dataOpcode(f codec.Format) byte {
	if f.Binary() {
		return opBinary
	}
	return opText
}
