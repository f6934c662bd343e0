package gateway

import (
	"sync"
	"time"

	"github.com/feedgate/feedgate/codec"
)

// channel is one channel's state on this edge. Its lock orders everything
// that touches the channel's stream: delivering a message (history append
// and enqueueing to subscribers), attaching (attached reply, replay,
// subscription) and detaching. So no message is lost or repeated at the
// seam between replay and live, none follows detached, and all
// subscribers of the channel see the same order.
//
// Positions (docs/protocol.md §7): the channel knows, per origin, the last
// Seq it delivered and the origin times of its messages; the watermark
// trails the newest origin time delivered by the lateness bound. A token
// names the origins with a message newer than the watermark; an origin is
// forgotten once none of its messages is in history and its newest is
// originKeep behind the watermark.
type channel struct {
	name string
	h    *hub

	mu      sync.Mutex // guards the fields below
	members map[subscriber]*member
	snap    []*member // members as a slice for fan-out; nil when stale
	hist    []*entry
	origins map[string]*originState
	newest  int64             // highest origin time delivered (Unix ms)
	forgot  int64             // highest origin time of a message this channel state no longer accounts for
	named   map[string]uint64 // scratch for tokenLocked
	serial  uint64            // messages delivered so far (history cursors)
	last    *entry            // the last message delivered: the next one's delta base
	lastUse time.Time         // last delivery, attach or detach
	dead    bool              // swept from the hub: attach and deliver must look again
}

// member is one subscriber of the channel, with its delta and conflation
// state.
type member struct {
	sub  subscriber
	v    variant // the variant of full frames it takes
	opts codec.AttachOptions
	// delta: it asked for deltas. base is the serial of the last message
	// it was sent on this attachment (so it holds that payload), 0 for
	// none: it gets a message's delta frame only if base is the message's
	// delta base.
	delta bool
	base  uint64
	// cf is its conflation state, nil if it did not ask for conflation.
	cf *conflater
	// pend, for a subscriber that resumed from a position this edge had
	// not reached yet (it lags the edge the client came from), says what
	// the subscriber has: messages in it are skipped when they arrive, and
	// the subscriber's frames carry its own position until the edge has
	// caught up. nil for everyone else.
	pend *pending
}

// entry is one delivered message in history, with the channel's position
// after it and its frames, prepared once per variant when first needed
// (variant.go, delta.go).
type entry struct {
	m        *codec.Message
	serial   uint64 // 1 for the channel's first message on this edge
	pos      string
	prevTime int64 // origin time of m's predecessor (Seq m.Prev) as delivered here; -1: not delivered just before m
	late     bool  // m arrived at or below the channel's watermark
	at       time.Time
	// base is the message delivered before it on this edge, the source of
	// its deltas; nil once that has left history (so that entries do not
	// chain the whole past).
	base   *entry
	cross  []crossDelta // deltas against older bases, for conflated subscribers (delta.go)
	frames [numVariants][]byte
	tried  uint8                    // bit v: frames[v] was prepared (it may be nil)
	wire   [codec.NumFormats][]byte // m.Data as each format carries it, once converted
	key    string                   // conflation key value, for the field keyName
	keyed  bool                     // key is set
	keyFor string                   // the field name key was taken for
}

func newChannel(name string, h *hub) *channel {
	return &channel{name: name, h: h, members: make(map[subscriber]*member), origins: map[string]*originState{},
		named: map[string]uint64{}, forgot: h.swept.Load(), lastUse: h.now()}
}

// encodeLocked encodes fr as a prepared frame of variant v, or returns nil
// (and logs) if it does not encode.
func (ch *channel) encodeLocked(fr *codec.Frame, v variant) []byte {
	f := v.format()
	payload, err := f.Encode(fr)
	if err != nil {
		// Publishes are validated for both formats at ingress; a
		// message from the backbone that does not convert is logged.
		ch.h.logEncode(&fr.Msg, f, err)
		return nil
	}
	return prepare(v, payload)
}

// lostFrame is a continuity frame: messages before the next one are lost.
func lostFrame(channel, pos string) *codec.Frame {
	return &codec.Frame{Type: codec.FrameContinuity, Channel: channel, Continuity: codec.ContinuityLost, Pos: pos}
}

// deliver appends m to history and enqueues it to every subscriber. It
// returns the number of subscribers; ok is false, and nothing is done, if
// the channel was swept from the hub meanwhile (the caller looks again).
//
// The backbone hands over each origin's messages in Seq order. When m's
// predecessor (m.Prev) is not the last message this edge delivered from a
// known origin, the predecessor could not be had: every subscriber gets a
// continuity frame right before m, and no resume replays across the gap.
func (ch *channel) deliver(m *codec.Message) (n int, ok bool) {
	now := ch.h.now()
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.dead {
		return 0, false
	}
	ch.lastUse = now
	st := ch.origins[m.Origin]
	gap, prevTime := false, int64(-1)
	switch {
	case st == nil:
		st = &originState{}
		ch.origins[m.Origin] = st
	case m.Prev > st.seq:
		gap = true
	case m.Prev == st.seq:
		prevTime = st.lastTime
	}
	var lost [numVariants][]byte
	var lostPos string
	if gap {
		ch.h.gaps.Add(1)
		lostPos = ch.tokenLocked()
	}
	late := ch.newest > 0 && m.Time <= ch.watermarkLocked()
	if late {
		ch.h.late.Add(1)
	}
	if m.Seq > st.seq {
		st.seq, st.lastTime = m.Seq, m.Time
	}
	st.maxTime = max(st.maxTime, m.Time)
	st.inHist++
	ch.newest = max(ch.newest, m.Time)
	ch.serial++
	e := &entry{m: m, serial: ch.serial, prevTime: prevTime, late: late, at: now, base: ch.last}
	ch.last = e
	ch.hist = append(ch.hist, e)
	ch.trimLocked(now)
	e.pos = ch.tokenLocked() // after the trim: it forgets what left history for good
	if ch.snap == nil {
		ch.snap = make([]*member, 0, len(ch.members))
		for _, mb := range ch.members {
			ch.snap = append(ch.snap, mb)
		}
	}
	for _, mb := range ch.snap {
		if mb.pend != nil {
			ch.deliverPendingLocked(mb, e, now)
			continue
		}
		if gap {
			v := mb.v
			if lost[v] == nil {
				lost[v] = ch.encodeLocked(lostFrame(ch.name, lostPos), v)
			}
			// What follows a gap is sent in full.
			mb.base = 0
			if mb.cf != nil {
				ch.conflateLostLocked(mb, lost[v], now)
			} else {
				mb.sub.enqueue(lost[v])
			}
		}
		if mb.cf != nil {
			ch.conflateLocked(mb, e, now, nil)
			continue
		}
		ch.sendLocked(mb, e)
	}
	return len(ch.snap), true
}

// trimLocked drops history beyond the count and age bounds.
func (ch *channel) trimLocked(now time.Time) {
	drop := max(0, len(ch.hist)-ch.h.histCount)
	limit := now.Add(-ch.h.histAge)
	for drop < len(ch.hist) && ch.hist[drop].at.Before(limit) {
		drop++
	}
	if drop > 0 {
		for _, e := range ch.hist[:drop] {
			if st := ch.origins[e.m.Origin]; st != nil {
				st.inHist--
			}
		}
		clear(ch.hist[:drop])
		ch.hist = ch.hist[drop:]
		// The oldest message left no longer keeps its base alive.
		if len(ch.hist) > 0 {
			ch.hist[0].base = nil
		} else if ch.last != nil {
			ch.last.base = nil
		}
	}
}

// attach answers c's attach and, unless publish-only, subscribes it, after
// replaying what the options ask for from history. It returns false, and
// does nothing, if the channel was swept from the hub meanwhile.
func (ch *channel) attach(c subscriber, ref uint64, opts codec.AttachOptions) bool {
	now := ch.h.now()
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.dead {
		return false
	}
	ch.lastUse = now
	ch.trimLocked(now)
	var (
		replay     []*entry
		own        []string // the subscriber's own position after each replayed entry, if not the entry's
		continuity = codec.ContinuityFresh
		pend       *pending
		pos        string
	)
	switch {
	case opts.Resume != "":
		from, _ := codec.ParseToken(opts.Resume) // already validated by the decoder
		replay, own, continuity, pend = ch.resumeLocked(from)
		if continuity == codec.ContinuityResumed {
			pos = from.Token() // the stream starts where the subscriber was
		}
	case opts.Rewind > 0:
		replay = ch.hist[max(0, len(ch.hist)-opts.Rewind):]
	case opts.RewindFor > 0:
		limit := now.Add(-opts.RewindFor)
		i := len(ch.hist)
		for i > 0 && !ch.hist[i-1].at.Before(limit) {
			i--
		}
		replay = ch.hist[i:]
	}
	if pos == "" {
		pos = ch.tokenLocked()
	}
	c.send(&codec.Frame{Type: codec.FrameAttached, Ref: ref, Channel: ch.name, Options: opts, Continuity: continuity, Pos: pos})
	if opts.PublishOnly {
		ch.removeLocked(c)
		return true
	}
	mb := &member{sub: c, v: c.wire(), opts: opts, pend: pend, delta: opts.Delta != ""}
	if opts.Conflate > 0 {
		mb.cf = &conflater{every: opts.Conflate, key: opts.ConflateKey}
		replay, own = ch.conflateReplayLocked(mb, replay, own)
		if len(replay) > 0 {
			mb.cf.nextAt = now.Add(opts.Conflate)
		}
	}
	// The replay: full frames for the first message and wherever the
	// subscriber lacks the base, delta frames along the rest.
	// They go under the replays' own allowance of the send queue
	// (replay.go).
	for i, e := range replay {
		var b []byte
		isDelta := false
		if own == nil {
			b, isDelta = ch.frameForLocked(mb, e)
		} else {
			b = ch.encodeLocked(&codec.Frame{Type: codec.FrameMessage, Channel: e.m.Channel, Msg: *e.m, Pos: own[i], Wire: ch.wireLocked(e, mb.v.format())}, mb.v)
		}
		if b == nil {
			mb.base = 0
			continue
		}
		c.enqueueReplay(b)
		ch.sentLocked(mb, e, isDelta)
	}
	if old := ch.members[c]; old != nil {
		old.stop()
	}
	ch.members[c] = mb
	ch.snap = nil
	return true
}

// detach unsubscribes c; detached is queued after anything delivered before.
func (ch *channel) detach(c subscriber, ref uint64) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	ch.lastUse = ch.h.now()
	ch.removeLocked(c)
	c.send(&codec.Frame{Type: codec.FrameDetached, Ref: ref, Channel: ch.name})
}

// remove unsubscribes c without a reply (connection gone).
func (ch *channel) remove(c subscriber) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	ch.removeLocked(c)
}

func (ch *channel) removeLocked(c subscriber) {
	if mb, ok := ch.members[c]; ok {
		mb.stop()
		delete(ch.members, c)
		ch.snap = nil
	}
}

// history returns up to limit messages delivered before the cursor before
// (0: from the newest), newest first. A page's last entry's serial is the
// cursor of the next page.
func (ch *channel) history(limit int, before uint64) []*entry {
	now := ch.h.now()
	ch.mu.Lock()
	defer ch.mu.Unlock()
	ch.trimLocked(now)
	end := len(ch.hist)
	if before > 0 {
		for end > 0 && ch.hist[end-1].serial >= before {
			end--
		}
	}
	out := make([]*entry, 0, min(limit, end))
	for i := end - 1; i >= 0 && len(out) < limit; i-- {
		out = append(out, ch.hist[i])
	}
	return out
}

// sweep trims history and reports whether the channel can be forgotten:
// no subscribers, no history, and no activity for idleFor; and the highest
// origin time it accounts for.
func (ch *channel) sweep(now time.Time, idleFor time.Duration) (newest int64, dead bool) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	ch.trimLocked(now)
	ch.dead = len(ch.members) == 0 && len(ch.hist) == 0 && now.Sub(ch.lastUse) > idleFor
	return max(ch.newest, ch.forgot), ch.dead
}
