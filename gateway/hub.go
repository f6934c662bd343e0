package gateway

import (
	"hash/fnv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/feedgate/feedgate/codec"
)

// hubShards spreads channels over independent locks so that attaches on
// different channels do not contend; 256 is plenty for tens of thousands of
// channels on a few cores.
const hubShards = 256

// hub maps channels to their state: subscribers, history and position.
type hub struct {
	shards    [hubShards]hubShard
	histCount int           // history bound per channel, in messages
	histAge   time.Duration // history bound per channel, in age
	now       func() time.Time
	logEncode func(m *codec.Message, f codec.Format, err error)
	delivered atomic.Uint64              // frames enqueued to subscribers
	gaps      atomic.Uint64              // messages delivered after a predecessor that never came (continuity frames to the channel)
	broken    atomic.Uint64              // continuity frames to one resumed subscriber whose missing messages this edge cannot send
	late      atomic.Uint64              // messages that arrived at or below their channel's watermark
	prepared  [numVariants]atomic.Uint64 // message frames encoded, per variant
	deltas    atomic.Uint64              // delta frames queued
	deltaFull atomic.Uint64              // full frames queued to delta subscribers
	conflated atomic.Uint64              // messages superseded for a conflated subscriber
	// started is the time, Unix ms, from which the hub has every message
	// published: when it started, or earlier once the backbone replayed a
	// window from before that (warmedFrom).
	started atomic.Int64
	// swept is the highest origin time delivered on a channel this hub
	// has forgotten: a new channel state cannot vouch for anything before.
	swept atomic.Int64
}

type hubShard struct {
	mu       sync.Mutex // guards channels
	channels map[string]*channel
}

func newHub(histCount int, histAge time.Duration, now func() time.Time, logEncode func(*codec.Message, codec.Format, error)) *hub {
	h := &hub{histCount: histCount, histAge: histAge, now: now, logEncode: logEncode}
	h.started.Store(now().UnixMilli())
	for i := range h.shards {
		h.shards[i].channels = make(map[string]*channel)
	}
	return h
}

func (h *hub) shard(name string) *hubShard {
	f := fnv.New32a()
	f.Write([]byte(name))
	return &h.shards[f.Sum32()%hubShards]
}

// get returns a channel's state, creating it if create is set.
func (h *hub) get(name string, create bool) *channel {
	s := h.shard(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := s.channels[name]
	if ch == nil && create {
		ch = newChannel(name, h)
		s.channels[name] = ch
	}
	return ch
}

// deliver records m in its channel's history and fans it out: encoded at
// most once per wire format, as a complete WebSocket frame whose bytes are
// shared by every subscriber. It never blocks on a subscriber.
func (h *hub) deliver(m *codec.Message) int {
	for {
		// The sweep may forget the channel between the lookup and the
		// delivery taking its lock: look again, like attach.
		if n, ok := h.get(m.Channel, true).deliver(m); ok {
			h.delivered.Add(uint64(n))
			return n
		}
	}
}

// sweep drops expired history, and forgets channels that have had no
// subscriber and no message for idleFor.
func (h *hub) sweep(idleFor time.Duration) {
	now := h.now()
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.Lock()
		for name, ch := range s.channels {
			if newest, dead := ch.sweep(now, idleFor); dead {
				delete(s.channels, name)
				for old := h.swept.Load(); newest > old && !h.swept.CompareAndSwap(old, newest); old = h.swept.Load() {
				}
			}
		}
		s.mu.Unlock()
	}
}

func dataOpcode(f codec.Format) byte {
	if f.Binary() {
		return opBinary
	}
	return opText
}
