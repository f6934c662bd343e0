package backbone

import (
	"cmp"
	"crypto/rand"
	"encoding/base32"
	"hash/fnv"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/feedgate/feedgate/codec"
)

// DeliverFunc receives every message of every channel exactly once per
// dedup window. Calls for one channel never overlap. Per origin, messages
// come in Seq order: a message whose Prev is not the last Seq delivered from
// its origin follows a gap that could not be filled within the gap wait (the
// gateway tells the channel's subscribers). It is called without any
// backbone lock held, but it holds up its channel's later deliveries and
// publish reports while it runs: it must not block.
type DeliverFunc = func(m *codec.Message)

// DoneFunc reports the outcome of a publish: nil once the backbone has
// accepted the message (and it has been delivered locally), or an *codec.Error
// (CodeBackboneUnavailable, CodePublishTimeout) if it was not accepted. It is
// called exactly once, never under a backbone lock, in publish order per
// channel.
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

// OrderConfig bounds how long a message that arrives ahead of its origin's
// missing predecessor is held back. Zero values mean the defaults.
type OrderConfig struct {
	// GapWait is how long a missing predecessor is waited for (redelivery
	// usually fills it) before the messages held behind it are delivered
	// with the gap, and the gateway signals the loss (default 15s: longer
	// than the 10s ack deadline after which Pub/Sub redelivers what a broken
	// stream had leased).
	GapWait time.Duration
	// MaxHeld bounds the messages held per channel and origin; past it the
	// oldest are released at once, with the gap (default 10000).
	MaxHeld int
}

const (
	defaultDedupSize   = 1 << 18
	defaultDedupWindow = 10 * time.Minute
	defaultGapWait     = 15 * time.Second
	defaultMaxHeld     = 10000
	// numStripes spreads channels over independent locks; 64 keeps
	// contention negligible on small machines and costs 64 small maps.
	numStripes = 64
	// sweepEvery is how many receptions on a stripe pass between sweeps of
	// its idle channel states.
	sweepEvery = 4096
)

// Stats are cumulative counters, safe to read at any time.
type Stats struct {
	Delivered      atomic.Uint64 // messages handed to the DeliverFunc
	Duplicates     atomic.Uint64 // messages dropped by the dedup cache
	Published      atomic.Uint64 // publishes accepted by the backbone
	PublishErrors  atomic.Uint64 // publishes refused or timed out
	Malformed      atomic.Uint64 // backbone messages that failed to decode (dropped and acked)
	Gaps           atomic.Uint64 // gaps in an origin's sequence given up after the gap wait (signalled to subscribers)
	Reorders       atomic.Uint64 // messages that arrived ahead of a missing predecessor and were held back
	Filled         atomic.Uint64 // held messages released in order because the predecessor arrived
	Late           atomic.Uint64 // copies dropped because their origin's sequence had already moved past them (after a gap)
	Retries        atomic.Uint64 // publishes of an ID already accepted or in flight (acked, not sent again)
	Beacons        atomic.Uint64 // beacons received from origins (their last accepted Seq per channel)
	Stalls         atomic.Uint64 // times a channel was owed messages (by a beacon) for longer than the stall bound
	StreamRestarts atomic.Uint64 // Receive streams restarted: after a reconnection, a stall or a silent subscription
}

// core is the delivery machinery shared by Relay and Local.
//
// Lock order: a stripe's mu is the only backbone lock held while core code
// runs, and it is never held while calling out (DeliverFunc, DoneFunc, the
// Pub/Sub SDK's blocking calls). Relay.healthMu is a leaf lock.
type core struct {
	origin  string // this process's origin name in positions
	log     *slog.Logger
	now     func() time.Time
	order   OrderConfig
	deliver atomic.Pointer[DeliverFunc]
	stripes [numStripes]stripe
	stats   Stats
	dedupN  atomic.Int64 // keys in all stripes' dedup caches
	window  time.Duration
	// resume, if set, is called (under the channel's stripe lock) when a
	// channel's failure streak is over.
	resume func(channel string)
	// stopped: the backbone is closing; gap waits no longer fire.
	stopped atomic.Bool
}

type stripe struct {
	mu    sync.Mutex // guards the fields below
	dedup *dedupCache
	chans map[string]*chanState
	ops   int // receptions since the last sweep
}

// chanState is one channel's state in a stripe.
type chanState struct {
	name string
	// Publishing (this edge as origin).
	pending []*pendingPub // publishes awaiting their outcome, in publish order
	nextSeq uint64        // Seq of this origin's next publish
	prev    uint64        // Prev of this origin's next publish
	// accepted is the Seq of this origin's last accepted publish, at
	// acceptedAt: what its beacons announce.
	accepted   uint64
	acceptedAt time.Time
	// failing is set when a publish failed, and cleared once no publish is
	// pending and every refusal has been reported to its publisher:
	// meanwhile new publishes are refused, so nothing accepted overtakes a
	// failure before its publisher could know of it.
	failing    bool
	unreported int  // refusals queued in outbox, not yet reported
	waiting    bool // a Relay goroutine collects pending outcomes

	// Receiving, per origin.
	origins map[string]*originState

	// Hand-off to the gateway, outside the stripe lock.
	outbox   []outItem
	draining bool // a goroutine is emptying outbox
	lastUse  time.Time
}

// originState follows one origin's sequence on one channel.
type originState struct {
	last  uint64 // highest Seq delivered (or given up)
	held  []held // arrived ahead of a missing predecessor, by Seq
	timer *time.Timer
	at    time.Time // last message from this origin
	// owed is the highest Seq the origin's beacons announced beyond last,
	// since owedSince: messages this edge should have and has not.
	owed      uint64
	owedSince time.Time
}

type held struct {
	m  *codec.Message
	at time.Time
}

// outItem is a delivery, a publish report, or a delivery then its report.
type outItem struct {
	m *codec.Message
	p *pendingPub
}

type pendingPub struct {
	m     *codec.Message
	done  DoneFunc
	retry bool // its ID was already accepted: reported, not delivered
	// of, on a retry of a publish still in flight (same ID), is that
	// publish: this one is not sent; it ends with its outcome, and is
	// reported in its own place in the queue.
	of       *pendingPub
	finished bool
	err      error
	res      publishResult
}

// publishResult is the outcome of a send, as the Pub/Sub SDK gives it.
type publishResult interface {
	Ready() <-chan struct{}
}

func (c *core) init(cfg DedupConfig, order OrderConfig, log *slog.Logger, now func() time.Time) {
	c.origin = newOrigin()
	if cfg.Size <= 0 {
		cfg.Size = defaultDedupSize
	}
	if cfg.Window <= 0 {
		cfg.Window = defaultDedupWindow
	}
	if order.GapWait <= 0 {
		order.GapWait = defaultGapWait
	}
	if order.MaxHeld <= 0 {
		order.MaxHeld = defaultMaxHeld
	}
	if log == nil {
		log = slog.Default()
	}
	if now == nil {
		now = time.Now
	}
	c.log, c.now, c.order, c.window = log, now, order, cfg.Window
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
		cs = &chanState{name: channel}
		st.chans[channel] = cs
	}
	return cs
}

// sweepLocked forgets the state of channels that hold nothing: no publish
// in flight, nothing held or queued, and no message from any origin within
// the dedup window (a copy older than that could not be recognised anyway).
// Channels this edge published on keep their sequence numbers.
func (c *core) sweepLocked(st *stripe, now time.Time) {
	for name, cs := range st.chans {
		if len(cs.pending) > 0 || cs.waiting || cs.draining || len(cs.outbox) > 0 {
			continue
		}
		for o, os := range cs.origins {
			if len(os.held) == 0 && now.Sub(os.at) > c.window {
				delete(cs.origins, o)
			}
		}
		if len(cs.origins) == 0 && cs.nextSeq == 0 {
			delete(st.chans, name)
		}
	}
}

// stampLocked gives m this origin's next position on its channel.
func (c *core) stampLocked(cs *chanState, m *codec.Message) {
	cs.nextSeq++
	m.Origin, m.Seq, m.Prev = c.origin, cs.nextSeq, cs.prev
	cs.prev = m.Seq
}

// receive takes one message from the backbone: dedup, per-origin order,
// then the hand-off to the gateway outside the lock.
func (c *core) receive(m *codec.Message) {
	st := c.stripeFor(m.Channel)
	st.mu.Lock()
	cs := st.chanLocked(m.Channel)
	c.acceptLocked(st, cs, m, nil)
	if st.ops++; st.ops >= sweepEvery {
		st.ops = 0
		c.sweepLocked(st, c.now())
	}
	run := claimLocked(cs)
	st.mu.Unlock()
	if run {
		c.drain(st, cs)
	}
}

// acceptLocked queues m for delivery unless it is a duplicate, a late copy,
// or ahead of a missing predecessor (then it is held until the predecessor
// comes or the gap wait ends). p, if set, is m's own publish: its report
// follows m's delivery (or comes alone if m was already delivered).
func (c *core) acceptLocked(st *stripe, cs *chanState, m *codec.Message, p *pendingPub) {
	now := c.now()
	cs.lastUse = now
	if !st.dedup.add(m.DedupKey(), now) {
		c.stats.Duplicates.Add(1)
		if p != nil {
			cs.outbox = append(cs.outbox, outItem{p: p})
		}
		return
	}
	if cs.origins == nil {
		cs.origins = make(map[string]*originState)
	}
	os := cs.origins[m.Origin]
	if os == nil {
		// An origin new to this edge (or forgotten) starts where it is: its
		// earlier messages, if any, predate this edge's interest.
		os = &originState{last: m.Prev}
		cs.origins[m.Origin] = os
	}
	os.at = now
	switch {
	case m.Seq <= os.last:
		// Behind a gap that was given up: delivering it now would reorder.
		c.stats.Late.Add(1)
		c.log.Warn("backbone: late copy dropped (its gap was already reported)", "channel", m.Channel, "origin", m.Origin, "seq", m.Seq, "last", os.last)
	case m.Prev <= os.last:
		c.emitLocked(cs, os, m, p)
		c.releaseLocked(st, cs, os, m.Origin, now, false)
		return
	default:
		c.stats.Reorders.Add(1)
		i, _ := slices.BinarySearchFunc(os.held, m.Seq, func(h held, s uint64) int { return cmp.Compare(h.m.Seq, s) })
		os.held = slices.Insert(os.held, i, held{m: m, at: now})
		if len(os.held) > c.order.MaxHeld {
			c.releaseLocked(st, cs, os, m.Origin, now, true)
		} else {
			c.armLocked(st, cs, os, m.Origin, now)
		}
	}
	if p != nil {
		cs.outbox = append(cs.outbox, outItem{p: p})
	}
}

func (c *core) emitLocked(cs *chanState, os *originState, m *codec.Message, p *pendingPub) {
	if m.Prev > os.last {
		c.stats.Gaps.Add(1)
		c.log.Warn("backbone: gap in an origin's sequence not filled within the gap wait; subscribers are told", "channel", m.Channel, "origin", m.Origin, "last", os.last, "prev", m.Prev, "seq", m.Seq, "gap_wait", c.order.GapWait.String())
	}
	os.last = m.Seq
	if os.owed <= os.last {
		os.owed, os.owedSince = 0, time.Time{}
	}
	c.stats.Delivered.Add(1)
	cs.outbox = append(cs.outbox, outItem{m: m, p: p})
}

// releaseLocked delivers held messages that now follow in order, and, with
// force or once the head has waited for the gap wait, those behind a gap;
// then the gap wait of the new head (if any) is armed afresh.
func (c *core) releaseLocked(st *stripe, cs *chanState, os *originState, origin string, now time.Time, force bool) {
	released := false
	for len(os.held) > 0 {
		h := os.held[0]
		switch {
		case h.m.Seq <= os.last:
			c.stats.Late.Add(1)
		case h.m.Prev <= os.last:
			c.stats.Filled.Add(1)
			c.emitLocked(cs, os, h.m, nil)
		case force || now.Sub(h.at) >= c.order.GapWait:
			force = false
			c.emitLocked(cs, os, h.m, nil)
		default:
			if released {
				c.rearmLocked(st, cs, os, origin, now)
			}
			return
		}
		released = true
		os.held[0] = held{}
		os.held = os.held[1:]
	}
	if os.timer != nil {
		os.timer.Stop()
		os.timer = nil
	}
}

// rearmLocked replaces os's timer by one for its current head.
func (c *core) rearmLocked(st *stripe, cs *chanState, os *originState, origin string, now time.Time) {
	if os.timer != nil {
		os.timer.Stop()
		os.timer = nil
	}
	c.armLocked(st, cs, os, origin, now)
}

// armLocked starts the gap wait of os's head if no timer runs. A timer
// that fires after it was replaced or stopped (it may already be waiting
// for the lock) does nothing.
func (c *core) armLocked(st *stripe, cs *chanState, os *originState, origin string, now time.Time) {
	if os.timer != nil || len(os.held) == 0 || c.stopped.Load() {
		return
	}
	wait := c.order.GapWait - now.Sub(os.held[0].at)
	var t *time.Timer
	t = time.AfterFunc(max(wait, 0), func() {
		st.mu.Lock()
		if os.timer != t || c.stopped.Load() {
			st.mu.Unlock()
			return
		}
		os.timer = nil
		c.releaseLocked(st, cs, os, origin, c.now(), false)
		c.armLocked(st, cs, os, origin, c.now())
		run := claimLocked(cs)
		st.mu.Unlock()
		if run {
			c.drain(st, cs)
		}
	})
	os.timer = t
}

// stopTimers stops every gap wait; no timer fires after it returns
// (stopped makes one already waiting for its lock do nothing).
func (c *core) stopTimers() {
	c.stopped.Store(true)
	for i := range c.stripes {
		st := &c.stripes[i]
		st.mu.Lock()
		for _, cs := range st.chans {
			for _, os := range cs.origins {
				if os.timer != nil {
					os.timer.Stop()
					os.timer = nil
				}
			}
		}
		st.mu.Unlock()
	}
}

// oweLocked records that origin announced Seq seq on cs: if this edge has
// delivered less of it and holds nothing at or beyond it, the messages are
// owed, and it reports true. An origin this edge has not received from on
// the channel owes it nothing (its earlier messages predate this edge).
func (c *core) oweLocked(cs *chanState, origin string, seq uint64, now time.Time) bool {
	os := cs.origins[origin]
	if os == nil || os.last >= seq {
		return false
	}
	if n := len(os.held); n > 0 && os.held[n-1].m.Seq >= seq {
		return false // the gap wait covers it
	}
	if os.owed < seq {
		os.owed = seq
	}
	if os.owedSince.IsZero() {
		os.owedSince = now
	}
	return true
}

// owedSinceLocked returns the earliest time since which cs has been owed
// messages by some origin, or the zero time.
func owedSinceLocked(cs *chanState) time.Time {
	var t time.Time
	for _, os := range cs.origins {
		if os.owed > os.last && (t.IsZero() || os.owedSince.Before(t)) {
			t = os.owedSince
		}
	}
	return t
}

// claimLocked reports whether the caller must drain cs's outbox: there is
// something in it and no other goroutine is draining it.
func claimLocked(cs *chanState) bool {
	if cs.draining || len(cs.outbox) == 0 {
		return false
	}
	cs.draining = true
	return true
}

// drain hands cs's outbox to the gateway and the publishers, in order,
// without the stripe lock, until it is empty. One goroutine at a time
// drains a channel, so calls for one channel never overlap. Once the last
// refusal of a failure streak is reported, the channel accepts publishes
// again (and Relay resumes its ordering key).
func (c *core) drain(st *stripe, cs *chanState) {
	f := c.deliver.Load()
	reported := 0
	for {
		st.mu.Lock()
		cs.unreported -= reported
		reported = 0
		if cs.failing && len(cs.pending) == 0 && cs.unreported == 0 {
			cs.failing = false
			// Under the lock: a resume that came late could otherwise undo
			// the pause of a failure streak begun meanwhile.
			if c.resume != nil {
				c.resume(cs.name)
			}
		}
		items := cs.outbox
		cs.outbox = nil
		if len(items) == 0 {
			cs.draining = false
		}
		st.mu.Unlock()
		if len(items) == 0 {
			return
		}
		for _, it := range items {
			if it.m != nil && f != nil {
				(*f)(it.m)
			}
			if it.p != nil {
				it.p.done(it.p.err)
				if it.p.err != nil {
					reported++
				}
			}
		}
	}
}

// publishAction says what Publish must do after enqueueLocked.
type publishAction int

const (
	sendIt  publishAction = iota // send the new pending publish
	settled                      // p is finished: a retry of an accepted ID, or refused behind a failure
	joined                       // the ID is in flight: p ends with that publish's outcome
)

// enqueueLocked appends m to its channel's publish queue and stamps it,
// unless its ID was already accepted (a publisher's retry is acknowledged,
// in order, without being sent, numbered or delivered again) or is in
// flight (the retry ends with that publish's outcome, but is reported in its
// own place, after the publishes made between the two), or an earlier publish on
// the channel failed and the channel still refuses (then it is refused, in
// order). st.mu must be held.
func (c *core) enqueueLocked(st *stripe, cs *chanState, m *codec.Message, done DoneFunc) (*pendingPub, publishAction) {
	for _, p := range cs.pending {
		if p.m.ID == m.ID && p.of == nil {
			c.stats.Retries.Add(1)
			j := &pendingPub{m: m, done: done, of: p}
			cs.pending = append(cs.pending, j)
			return j, joined
		}
	}
	p := &pendingPub{m: m, done: done}
	cs.pending = append(cs.pending, p)
	switch {
	case st.dedup.has(m.DedupKey(), c.now()):
		c.stats.Retries.Add(1)
		p.finished, p.retry = true, true
		return p, settled
	case cs.failing:
		p.finished, p.err = true, errEarlierFailed
		return p, settled
	}
	c.stampLocked(cs, m)
	return p, sendIt
}

// errEarlierFailed refuses a publish queued behind a failure.
var errEarlierFailed = codec.Errorf(codec.CodeBackboneUnavailable, "an earlier publish on this channel failed; publish again from the first refused message")

// finishLocked records p's outcome. A failure makes the channel refuse new
// publishes (see chanState.failing), and lowers the next Prev so receivers
// do not mistake refused messages for lost ones.
func (c *core) finishLocked(cs *chanState, p *pendingPub, err error) {
	p.finished, p.err = true, err
	if err != nil {
		cs.failing = true
		cs.prev = min(cs.prev, p.m.Prev)
	}
}

// completeLocked moves the finished publishes at the head of cs's queue to
// the outbox, in publish order: accepted ones are delivered locally, then
// reported; refused ones are reported.
func (c *core) completeLocked(st *stripe, cs *chanState) {
	for len(cs.pending) > 0 && (cs.pending[0].finished || cs.pending[0].of != nil) {
		h := cs.pending[0]
		cs.pending[0] = nil
		cs.pending = cs.pending[1:]
		if h.of != nil {
			// The publish it joined is ahead of it in the queue, so it has
			// finished and gone: accepted, this is reported as a retry;
			// refused, as a refusal in its place.
			h.finished, h.err, h.retry, h.of = true, h.of.err, h.of.err == nil, nil
			if h.err != nil {
				cs.unreported++
			}
			cs.outbox = append(cs.outbox, outItem{p: h})
			continue
		}
		switch {
		case h.retry:
			cs.outbox = append(cs.outbox, outItem{p: h})
		case h.err == nil:
			c.stats.Published.Add(1)
			cs.accepted, cs.acceptedAt = h.m.Seq, c.now()
			c.acceptLocked(st, cs, h.m, h)
		default:
			c.stats.PublishErrors.Add(1)
			cs.unreported++
			cs.outbox = append(cs.outbox, outItem{p: h})
		}
	}
}
