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
type channel struct {
	name string
	h    *hub

	mu      sync.Mutex // guards the fields below
	members map[*conn]*member
	snap    []*member // members as a slice for fan-out; nil when stale
	hist    []*entry
	pos     codec.Position       // last Seq delivered per origin
	posAt   map[string]time.Time // when each origin in pos last delivered
	serial  uint64               // messages delivered so far (history cursors)
	lastUse time.Time            // last delivery, attach or detach
	dead    bool                 // swept from the hub: attach must look again
}

// member is one subscriber of the channel.
type member struct {
	c    *conn
	opts codec.AttachOptions
	// skip, for a subscriber that resumed from a position this edge had
	// not reached yet, holds that position: messages up to it were already
	// delivered (by another edge) and are skipped until the edge catches up.
	skip codec.Position
}

// maxOrigins bounds the origins a channel's position names. Every edge
// process that publishes on a channel is an origin (a restart makes a new
// one); the least recently active are forgotten past this, which only
// costs a resume from a token naming them its continuity.
const maxOrigins = 8

// entry is one delivered message in history, with the channel's position
// after it and its frames, encoded once per format when first needed.
type entry struct {
	m      *codec.Message
	serial uint64 // 1 for the channel's first message on this edge
	pos    string
	at     time.Time
	frames [codec.NumFormats][]byte
}

func newChannel(name string, h *hub) *channel {
	return &channel{name: name, h: h, members: make(map[*conn]*member), pos: codec.Position{}, posAt: map[string]time.Time{}, lastUse: h.now()}
}

// frameLocked returns e's frame in format f, encoding it the first time.
func (ch *channel) frameLocked(e *entry, f codec.Format) []byte {
	if e.frames[f] == nil {
		payload, err := f.Encode(&codec.Frame{Type: codec.FrameMessage, Channel: e.m.Channel, Msg: *e.m, Pos: e.pos})
		if err != nil {
			// Publishes are validated for both formats at ingress; a
			// message from the backbone that does not convert is logged.
			ch.h.logEncode(e.m, f, err)
			return nil
		}
		e.frames[f] = appendFrame(make([]byte, 0, len(payload)+10), dataOpcode(f), payload)
	}
	return e.frames[f]
}

// deliver appends m to history and enqueues it to every subscriber. It
// returns the number of subscribers.
func (ch *channel) deliver(m *codec.Message) int {
	now := ch.h.now()
	ch.mu.Lock()
	defer ch.mu.Unlock()
	ch.lastUse = now
	if m.Seq > ch.pos[m.Origin] {
		ch.pos[m.Origin] = m.Seq
	}
	ch.posAt[m.Origin] = now
	if len(ch.pos) > maxOrigins {
		ch.forgetOldestOriginLocked()
	}
	ch.serial++
	e := &entry{m: m, serial: ch.serial, pos: ch.pos.Token(), at: now}
	ch.hist = append(ch.hist, e)
	ch.trimLocked(now)
	if ch.snap == nil {
		ch.snap = make([]*member, 0, len(ch.members))
		for _, mb := range ch.members {
			ch.snap = append(ch.snap, mb)
		}
	}
	for _, mb := range ch.snap {
		if mb.skip != nil && mb.skipLocked(m) {
			continue
		}
		if f := ch.frameLocked(e, mb.c.format); f != nil {
			mb.c.enqueue(f)
		}
	}
	return len(ch.snap)
}

// skipLocked reports whether m was already delivered to the member before
// it resumed here, and drops the filter once every origin has caught up.
func (mb *member) skipLocked(m *codec.Message) bool {
	if m.Seq <= mb.skip[m.Origin] {
		return true
	}
	delete(mb.skip, m.Origin)
	if len(mb.skip) == 0 {
		mb.skip = nil
	}
	return false
}

func (ch *channel) forgetOldestOriginLocked() {
	oldest, at := "", time.Time{}
	for o, t := range ch.posAt {
		if oldest == "" || t.Before(at) {
			oldest, at = o, t
		}
	}
	delete(ch.pos, oldest)
	delete(ch.posAt, oldest)
}

// trimLocked drops history beyond the count and age bounds.
func (ch *channel) trimLocked(now time.Time) {
	drop := max(0, len(ch.hist)-ch.h.histCount)
	limit := now.Add(-ch.h.histAge)
	for drop < len(ch.hist) && ch.hist[drop].at.Before(limit) {
		drop++
	}
	if drop > 0 {
		clear(ch.hist[:drop])
		ch.hist = ch.hist[drop:]
	}
}

// attach answers c's attach and, unless publish-only, subscribes it, after
// replaying what the options ask for from history. It returns false, and
// does nothing, if the channel was swept from the hub meanwhile.
func (ch *channel) attach(c *conn, ref uint64, opts codec.AttachOptions) bool {
	now := ch.h.now()
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.dead {
		return false
	}
	ch.lastUse = now
	ch.trimLocked(now)
	replay, continuity, skip := ch.replayLocked(opts, now)
	c.send(&codec.Frame{Type: codec.FrameAttached, Ref: ref, Channel: ch.name, Options: opts, Continuity: continuity, Pos: ch.pos.Token()})
	for _, e := range replay {
		if f := ch.frameLocked(e, c.format); f != nil {
			c.enqueue(f)
		}
	}
	if opts.PublishOnly {
		ch.removeLocked(c)
		return true
	}
	ch.members[c] = &member{c: c, opts: opts, skip: skip}
	ch.snap = nil
	return true
}

// replayLocked picks the history a new attach must receive first, and the
// position whose messages the subscriber already has but this edge has not
// delivered yet (to skip when they arrive).
func (ch *channel) replayLocked(opts codec.AttachOptions, now time.Time) ([]*entry, codec.Continuity, codec.Position) {
	switch {
	case opts.Resume != "":
		// Already validated by the decoder.
		from, _ := codec.ParseToken(opts.Resume)
		return ch.resumeLocked(from)
	case opts.Rewind > 0:
		return ch.hist[max(0, len(ch.hist)-opts.Rewind):], codec.ContinuityFresh, nil
	case opts.RewindFor > 0:
		limit := now.Add(-opts.RewindFor)
		i := len(ch.hist)
		for i > 0 && !ch.hist[i-1].at.Before(limit) {
			i--
		}
		return ch.hist[i:], codec.ContinuityFresh, nil
	}
	return nil, codec.ContinuityFresh, nil
}

// resumeLocked returns every message in history after the position from,
// in order, and whether history covers the whole gap. For every origin this
// edge has delivered beyond from (those absent from from count as 0), the
// first of its messages after from must be in history and follow directly
// (its Prev at most from's Seq). An origin of from that this edge does not
// know (it started later, or forgot an idle channel or an old origin) cannot
// be vouched for. Anything else means messages were missed that the edge can
// no longer send: continuity is lost, and the client must refetch state.
// For origins where from is ahead of this edge (it lags behind the edge the
// client came from), the third result says what to skip when it arrives.
func (ch *channel) resumeLocked(from codec.Position) ([]*entry, codec.Continuity, codec.Position) {
	var replay []*entry
	first := map[string]bool{}
	lost := false
	for _, e := range ch.hist {
		o := e.m.Origin
		if e.m.Seq <= from[o] {
			continue
		}
		if !first[o] {
			first[o] = true
			if e.m.Prev > from[o] {
				lost = true
			}
		}
		replay = append(replay, e)
	}
	for o, last := range ch.pos {
		if last > from[o] && !first[o] {
			lost = true // its messages after from have left history
		}
	}
	var skip codec.Position
	for o, seq := range from {
		last, known := ch.pos[o]
		switch {
		case !known:
			lost = true
		case seq > last:
			if skip == nil {
				skip = codec.Position{}
			}
			skip[o] = seq
		}
	}
	if lost {
		// Send no partial replay: live messages follow from here.
		return nil, codec.ContinuityLost, nil
	}
	return replay, codec.ContinuityResumed, skip
}

// detach unsubscribes c; detached is queued after anything delivered before.
func (ch *channel) detach(c *conn, ref uint64) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	ch.lastUse = ch.h.now()
	ch.removeLocked(c)
	c.send(&codec.Frame{Type: codec.FrameDetached, Ref: ref, Channel: ch.name})
}

// remove unsubscribes c without a reply (connection gone).
func (ch *channel) remove(c *conn) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	ch.removeLocked(c)
}

func (ch *channel) removeLocked(c *conn) {
	if _, ok := ch.members[c]; ok {
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
// no subscribers, no history, and no activity for idleFor.
func (ch *channel) sweep(now time.Time, idleFor time.Duration) bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	ch.trimLocked(now)
	ch.dead = len(ch.members) == 0 && len(ch.hist) == 0 && now.Sub(ch.lastUse) > idleFor
	return ch.dead
}
