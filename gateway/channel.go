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
	members map[*conn]*member
	snap    []*member // members as a slice for fan-out; nil when stale
	hist    []*entry
	origins map[string]*originState
	newest  int64             // highest origin time delivered (Unix ms)
	forgot  int64             // highest origin time of a message this channel state no longer accounts for
	named   map[string]uint64 // scratch for tokenLocked
	serial  uint64            // messages delivered so far (history cursors)
	lastUse time.Time         // last delivery, attach or detach
	dead    bool              // swept from the hub: attach must look again
}

// member is one subscriber of the channel.
type member struct {
	c    *conn
	opts codec.AttachOptions
	// pend, for a subscriber that resumed from a position this edge had
	// not reached yet (it lags the edge the client came from), says what
	// the subscriber has: messages in it are skipped when they arrive, and
	// the subscriber's frames carry its own position until the edge has
	// caught up. nil for everyone else.
	pend *pending
}

// entry is one delivered message in history, with the channel's position
// after it and its frames, encoded once per format when first needed.
type entry struct {
	m        *codec.Message
	serial   uint64 // 1 for the channel's first message on this edge
	pos      string
	prevTime int64 // origin time of m's predecessor (Seq m.Prev) as delivered here; -1: not delivered just before m
	late     bool  // m arrived at or below the channel's watermark
	at       time.Time
	frames   [codec.NumFormats][]byte
}

func newChannel(name string, h *hub) *channel {
	return &channel{name: name, h: h, members: make(map[*conn]*member), origins: map[string]*originState{},
		named: map[string]uint64{}, forgot: h.swept.Load(), lastUse: h.now()}
}

// encodeLocked encodes fr in format f as a complete WebSocket frame, or
// returns nil (and logs) if it does not encode.
func (ch *channel) encodeLocked(fr *codec.Frame, f codec.Format) []byte {
	payload, err := f.Encode(fr)
	if err != nil {
		// Publishes are validated for both formats at ingress; a
		// message from the backbone that does not convert is logged.
		ch.h.logEncode(&fr.Msg, f, err)
		return nil
	}
	return appendFrame(make([]byte, 0, len(payload)+10), dataOpcode(f), payload)
}

// frameLocked returns e's frame in format f, encoding it the first time.
func (ch *channel) frameLocked(e *entry, f codec.Format) []byte {
	if e.frames[f] == nil {
		e.frames[f] = ch.encodeLocked(&codec.Frame{Type: codec.FrameMessage, Channel: e.m.Channel, Msg: *e.m, Pos: e.pos}, f)
	}
	return e.frames[f]
}

// lostFrame is a continuity frame: messages before the next one are lost.
func lostFrame(channel, pos string) *codec.Frame {
	return &codec.Frame{Type: codec.FrameContinuity, Channel: channel, Continuity: codec.ContinuityLost, Pos: pos}
}

// deliver appends m to history and enqueues it to every subscriber. It
// returns the number of subscribers.
//
// The backbone hands over each origin's messages in Seq order. When m's
// predecessor (m.Prev) is not the last message this edge delivered from a
// known origin, the predecessor could not be had: every subscriber gets a
// continuity frame right before m, and no resume replays across the gap.
func (ch *channel) deliver(m *codec.Message) int {
	now := ch.h.now()
	ch.mu.Lock()
	defer ch.mu.Unlock()
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
	var lost [codec.NumFormats][]byte
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
	e := &entry{m: m, serial: ch.serial, prevTime: prevTime, late: late, at: now}
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
			ch.deliverPendingLocked(mb, e)
			continue
		}
		f := mb.c.format
		if gap {
			if lost[f] == nil {
				lost[f] = ch.encodeLocked(lostFrame(ch.name, lostPos), f)
			}
			mb.c.enqueue(lost[f])
		}
		if b := ch.frameLocked(e, f); b != nil {
			mb.c.enqueue(b)
		}
	}
	return len(ch.snap)
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
	for i, e := range replay {
		var b []byte
		if own != nil {
			b = ch.encodeLocked(&codec.Frame{Type: codec.FrameMessage, Channel: e.m.Channel, Msg: *e.m, Pos: own[i]}, c.format)
		} else {
			b = ch.frameLocked(e, c.format)
		}
		if b != nil {
			c.enqueue(b)
		}
	}
	if opts.PublishOnly {
		ch.removeLocked(c)
		return true
	}
	ch.members[c] = &member{c: c, opts: opts, pend: pend}
	ch.snap = nil
	return true
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
// no subscribers, no history, and no activity for idleFor; and the highest
// origin time it accounts for.
func (ch *channel) sweep(now time.Time, idleFor time.Duration) (newest int64, dead bool) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	ch.trimLocked(now)
	ch.dead = len(ch.members) == 0 && len(ch.hist) == 0 && now.Sub(ch.lastUse) > idleFor
	return max(ch.newest, ch.forgot), ch.dead
}
