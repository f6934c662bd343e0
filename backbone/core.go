package backbone

import (
	"crypto/rand"
	"encoding/base32"
	"hash/fnv"
	"log/slog"
	"strings"
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
	// Size is the most message keys remembered by the edge, all channels
	// together (default 262144). At 1,000 msg/s that is over four minutes
	// of traffic.
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
	Gaps          atomic.Uint64 // messages whose predecessor from the same origin never arrived
	Reorders      atomic.Uint64 // new messages that arrived behind a later one of their origin
	Retries       atomic.Uint64 // publishes of an ID already accepted or in flight (acked, not sent again)
}

// core is the delivery machinery shared by Relay and Local.
type core struct {
	origin  string // this process's origin name in positions
	log     *slog.Logger
	now     func() time.Time
	deliver atomic.Pointer[DeliverFunc]
	stripes [numStripes]stripe
	stats   Stats
	dedupN  atomic.Int64 // keys in all stripes' dedup caches
}

type stripe struct {
	mu    sync.Mutex // guards the fields below
	dedup *dedupCache
	chans map[string]*chanState
}

// chanState is one channel's state in a stripe.
type chanState struct {
	pending []*pendingPub // publishes awaiting acceptance, in publish order
	nextSeq uint64        // Seq of this origin's next publish
	prev    uint64        // Prev of this origin's next publish
	// last is, per origin, the highest Seq received (loss detection).
	last map[string]uint64
}

type pendingPub struct {
	m        *codec.Message
	done     DoneFunc
	finished bool
	err      error
}

func (c *core) init(cfg DedupConfig, log *slog.Logger, now func() time.Time) {
	c.origin = newOrigin()
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
	for i := range c.stripes {
		c.stripes[i].dedup = newDedupCache(cfg.Size, cfg.Window, &c.dedupN)
		c.stripes[i].chans = make(map[string]*chanState)
	}
}

func (c *core) setDeliver(f DeliverFunc) { c.deliver.Store(&f) }

func (c *core) stripeFor(channel string) *stripe {
	h := fnv.New32a()
	h.Write([]byte(channel))
	return &c.stripes[h.Sum32()%numStripes]
}

// Origin is the name this backbone stamps on the messages it publishes:
// random per process, so positions never repeat across restarts.
func (c *core) Origin() string { return c.origin }

func newOrigin() string {
	var b [5]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return strings.ToLower(base32.StdEncoding.EncodeToString(b[:]))
}

func (st *stripe) chanLocked(channel string) *chanState {
	cs := st.chans[channel]
	if cs == nil {
		cs = &chanState{}
		st.chans[channel] = cs
	}
	return cs
}

// stampLocked gives m this origin's next position on its channel.
func (c *core) stampLocked(cs *chanState, m *codec.Message) {
	cs.nextSeq++
	m.Origin, m.Seq, m.Prev = c.origin, cs.nextSeq, cs.prev
	cs.prev = m.Seq
}

// trackLocked follows positions per origin to detect loss: every copy
// received (duplicates too) advances the origin's last Seq; a message whose
// Prev was never seen means a message was lost, and is reported.
func (c *core) trackLocked(cs *chanState, m *codec.Message, fresh bool) {
	if cs.last == nil {
		cs.last = make(map[string]uint64)
	}
	last, known := cs.last[m.Origin]
	switch {
	case m.Seq > last:
		if known && m.Prev > last || !known && m.Prev > 0 && c.origin == m.Origin {
			c.stats.Gaps.Add(1)
			c.log.Warn("backbone: gap in an origin's sequence: messages lost", "channel", m.Channel, "origin", m.Origin, "last", last, "prev", m.Prev, "seq", m.Seq)
		}
		cs.last[m.Origin] = m.Seq
	case fresh:
		c.stats.Reorders.Add(1)
		c.log.Warn("backbone: message behind its origin's sequence", "channel", m.Channel, "origin", m.Origin, "last", last, "seq", m.Seq)
	}
}

// deliverLocked hands m to the DeliverFunc unless it is a duplicate.
// st.mu must be held.
func (c *core) deliverLocked(st *stripe, m *codec.Message) {
	fresh := st.dedup.add(m.DedupKey(), c.now())
	c.trackLocked(st.chanLocked(m.Channel), m, fresh)
	if !fresh {
		c.stats.Duplicates.Add(1)
		return
	}
	c.stats.Delivered.Add(1)
	if f := c.deliver.Load(); f != nil {
		(*f)(m)
	}
}

// publishAction says what Publish must do after enqueueLocked.
type publishAction int

const (
	sendIt    publishAction = iota // send the new pending publish
	ackAtOnce                      // the ID was already accepted: call done(nil)
	joined                         // the ID is in flight: done joined that publish
)

// enqueueLocked stamps m and appends it to its channel's publish queue,
// unless its ID was already accepted or is in flight: a publisher's retry
// is acknowledged without being sent, numbered or delivered again.
// st.mu must be held.
func (c *core) enqueueLocked(st *stripe, m *codec.Message, done DoneFunc) (*pendingPub, publishAction) {
	cs := st.chanLocked(m.Channel)
	if st.dedup.has(m.DedupKey(), c.now()) {
		c.stats.Retries.Add(1)
		return nil, ackAtOnce
	}
	for _, p := range cs.pending {
		if p.m.ID == m.ID {
			c.stats.Retries.Add(1)
			prev := p.done
			p.done = func(err error) { prev(err); done(err) }
			return nil, joined
		}
	}
	c.stampLocked(cs, m)
	p := &pendingPub{m: m, done: done}
	cs.pending = append(cs.pending, p)
	return p, sendIt
}

// failedLocked records that p was not accepted: the origin's next message
// declares as its Prev the last Seq before p that may have been accepted
// (p's own Prev, which skips earlier refusals), so receivers do not mistake
// the refused ones for lost ones.
func (c *core) failedLocked(st *stripe, p *pendingPub) {
	cs := st.chanLocked(p.m.Channel)
	cs.prev = min(cs.prev, p.m.Prev)
}

// complete records the backbone's answer for p and, in publish order,
// delivers locally every accepted message at the head of its channel's queue
// and reports every finished publish to its publisher.
func (c *core) complete(st *stripe, p *pendingPub, err error) {
	st.mu.Lock()
	p.finished, p.err = true, err
	cs := st.chanLocked(p.m.Channel)
	var ready []*pendingPub
	for len(cs.pending) > 0 && cs.pending[0].finished {
		h := cs.pending[0]
		cs.pending[0] = nil
		cs.pending = cs.pending[1:]
		if h.err == nil {
			c.stats.Published.Add(1)
			c.deliverLocked(st, h.m)
		} else {
			c.stats.PublishErrors.Add(1)
		}
		ready = append(ready, h)
	}
	st.mu.Unlock()
	for _, h := range ready {
		h.done(h.err)
	}
}
