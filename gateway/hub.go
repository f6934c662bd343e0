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

// hub maps channels to their subscribers.
type hub struct {
	shards    [hubShards]hubShard
	delivered atomic.Uint64 // frames enqueued to subscribers
}

type hubShard struct {
	mu       sync.Mutex // guards channels
	channels map[string]*channelSubs
}

// channelSubs is one channel's subscribers. Attach and detach are O(1) map
// updates; fan-out iterates a slice snapshot, rebuilt at most once per
// message and only after membership changed. (A copy-on-write slice made
// each attach O(n), and n subscribers dropping at once O(n²).)
type channelSubs struct {
	mu      sync.Mutex // guards the fields below
	members map[*conn]codec.AttachOptions
	snap    []subscription // nil when stale
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
	cs := s.channels[channel]
	if cs == nil {
		cs = &channelSubs{members: make(map[*conn]codec.AttachOptions)}
		s.channels[channel] = cs
	}
	cs.mu.Lock()
	cs.members[c] = opts
	cs.snap = nil
	cs.mu.Unlock()
	s.mu.Unlock()
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
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if _, ok := cs.members[c]; !ok {
		return
	}
	delete(cs.members, c)
	cs.snap = nil
	if len(cs.members) == 0 {
		delete(s.channels, channel)
	}
}

// subscribers returns a snapshot of channel's subscribers; the caller may
// iterate it without locks (it is never modified).
func (h *hub) subscribers(channel string) []subscription {
	s := h.shard(channel)
	s.mu.Lock()
	cs := s.channels[channel]
	s.mu.Unlock()
	if cs == nil {
		return nil
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.snap == nil {
		cs.snap = make([]subscription, 0, len(cs.members))
		for c, o := range cs.members {
			cs.snap = append(cs.snap, subscription{c: c, opts: o})
		}
	}
	return cs.snap
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
