package backbone

import (
	"hash/fnv"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/feedgate/feedgate/codec"
)

// DeliverFunc receives every message of every channel exactly once per
// dedup window. Calls for one channel never overlap and arrive in publish
// order per origin edge. It must not block: it runs under the channel's
// delivery lock.
type DeliverFunc = func(m *codec.Message)

// DoneFunc reports the outcome of a publish: nil once the backbone has
// accepted the message (and it has been delivered locally), or an *codec.Error
// (CodeBackboneUnavailable, CodePublishTimeout) if it was not accepted. It is
// called exactly once, never under a backbone lock.
type DoneFunc = func(err error)

// DedupConfig bounds the dedup cache. Zero values mean the defaults.
type DedupConfig struct {
	// Size is the most message keys remembered (default 262144). At 1,000
	// msg/s that is over four minutes of traffic.
	Size int
	// Window is how long a key is remembered (default 10 minutes: longer
	// than the ack deadline plus redelivery backoff of an ordered
	// subscription under normal operation).
	Window time.Duration
}

const (
	defaultDedupSize   = 1 << 18
	defaultDedupWindow = 10 * time.Minute
	// numStripes spreads channels over independent delivery locks; 64 keeps
	// contention negligible on small machines and costs 64 small maps.
	numStripes = 64
)

// Stats are cumulative counters, safe to read at any time.
type Stats struct {
	Delivered     atomic.Uint64 // messages handed to the DeliverFunc
	Duplicates    atomic.Uint64 // messages dropped by the dedup cache
	Published     atomic.Uint64 // publishes accepted by the backbone
	PublishErrors atomic.Uint64 // publishes refused or timed out
	Malformed     atomic.Uint64 // backbone messages that failed to decode (dropped and acked)
}

// core is the delivery machinery shared by Relay and Local.
type core struct {
	log     *slog.Logger
	now     func() time.Time
	deliver atomic.Pointer[DeliverFunc]
	stripes [numStripes]stripe
	stats   Stats
}

type stripe struct {
	mu      sync.Mutex // guards the fields below
	dedup   *dedupCache
	pending map[string]*pendingQueue // channel -> publishes awaiting acceptance, in publish order
}

type pendingPub struct {
	m        *codec.Message
	done     DoneFunc
	finished bool
	err      error
}

type pendingQueue struct{ items []*pendingPub }

func (c *core) init(cfg DedupConfig, log *slog.Logger, now func() time.Time) {
	if cfg.Size <= 0 {
		cfg.Size = defaultDedupSize
	}
	if cfg.Window <= 0 {
		cfg.Window = defaultDedupWindow
	}
	if log == nil {
		log = slog.Default()
	}
	if now == nil {
		now = time.Now
	}
	c.log, c.now = log, now
	per := (cfg.Size + numStripes - 1) / numStripes
	for i := range c.stripes {
		c.stripes[i].dedup = newDedupCache(per, cfg.Window)
		c.stripes[i].pending = make(map[string]*pendingQueue)
	}
}

func (c *core) setDeliver(f DeliverFunc) { c.deliver.Store(&f) }

func (c *core) stripeFor(channel string) *stripe {
	h := fnv.New32a()
	h.Write([]byte(channel))
	return &c.stripes[h.Sum32()%numStripes]
}

// deliverLocked hands m to the DeliverFunc unless it is a duplicate.
// st.mu must be held.
func (c *core) deliverLocked(st *stripe, m *codec.Message) {
	if !st.dedup.add(m.DedupKey(), c.now()) {
		c.stats.Duplicates.Add(1)
		return
	}
	c.stats.Delivered.Add(1)
	if f := c.deliver.Load(); f != nil {
		(*f)(m)
	}
}

// enqueueLocked appends a publish to its channel's queue. st.mu must be held.
func (c *core) enqueueLocked(st *stripe, m *codec.Message, done DoneFunc) *pendingPub {
	q := st.pending[m.Channel]
	if q == nil {
		q = &pendingQueue{}
		st.pending[m.Channel] = q
	}
	p := &pendingPub{m: m, done: done}
	q.items = append(q.items, p)
	return p
}

// complete records the backbone's answer for p and, in publish order,
// delivers locally every accepted message at the head of its channel's queue
// and reports every finished publish to its publisher.
func (c *core) complete(st *stripe, p *pendingPub, err error) {
	st.mu.Lock()
	p.finished, p.err = true, err
	q := st.pending[p.m.Channel]
	var ready []*pendingPub
	for len(q.items) > 0 && q.items[0].finished {
		h := q.items[0]
		q.items[0] = nil
		q.items = q.items[1:]
		if h.err == nil {
			c.stats.Published.Add(1)
			c.deliverLocked(st, h.m)
		} else {
			c.stats.PublishErrors.Add(1)
		}
		ready = append(ready, h)
	}
	if len(q.items) == 0 {
		delete(st.pending, p.m.Channel)
	}
	st.mu.Unlock()
	for _, h := range ready {
		h.done(h.err)
	}
}
