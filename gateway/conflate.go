package gateway

import (
	"encoding/json"
	"time"
)

// Conflation (docs/protocol.md §6.2). A conflated member gets at most one
// message per interval per conflation key, latest wins, in windows: a
// message that finds nothing pending and the window open is sent at once
// and opens a new window of one interval; messages that arrive inside a
// window are held, the latest per key replacing the one before it; when
// the window ends, the held messages are sent together, in channel order,
// and a new window opens. So a held message is always sent before, or
// together with, every later message of the channel, and the position a
// frame carries (the channel's, which counts superseded messages in) never
// claims a message that is still held: resuming from the last position a
// subscriber got replays what was held for it (conflated the same way).
//
// A conflated subscriber is never disconnected as a slow consumer for its
// conflated channels: a message its send queue has no room for stays held
// (and may be superseded) until the next window. Frames are shared, as for
// everyone: conflation decides which message, never encodes per subscriber.

// conflater is a member's conflation state; the channel's lock guards it.
type conflater struct {
	every   time.Duration
	key     string    // the payload's top-level field whose value is the conflation key; "" for one key
	nextAt  time.Time // the current window's end: nothing is sent before it
	held    []heldMsg // the latest message per key, in channel order
	timer   *time.Timer
	armed   bool // timer will fire
	stopped bool // the member left the channel
	// lost is a continuity frame that found no room in the send queue: it
	// goes first when there is, before anything held (a conflated
	// subscriber is not a slow consumer; a gap must not make it one).
	lost []byte
}

type heldMsg struct {
	e   *entry
	key string
	// own, if set, is e's frame for this subscriber alone (one that
	// resumed ahead of this edge: its positions are its own).
	own []byte
}

// stop ends mb's conflation timer; held messages are dropped (a detached
// or re-attached subscriber does not get them on this attachment).
func (mb *member) stop() {
	if cf := mb.cf; cf != nil {
		cf.stopped = true
		cf.held, cf.lost = nil, nil
		if cf.timer != nil {
			cf.timer.Stop()
		}
	}
}

// keyLocked returns e's conflation key for the field name: the raw JSON
// of the payload's top-level field name, or "" if the payload is not an
// object or has no such field. It is taken once per message (per name).
func (ch *channel) keyLocked(e *entry, name string) string {
	if name == "" {
		return ""
	}
	if !e.keyed || e.keyFor != name {
		e.key, e.keyed, e.keyFor = payloadKey(e.m.Data, name), true, name
	}
	return e.key
}

func payloadKey(data []byte, name string) string {
	var fields map[string]json.RawMessage
	if json.Unmarshal(data, &fields) != nil {
		return ""
	}
	return string(fields[name])
}

// conflateLocked handles the delivery of e to the conflated member mb.
// own, if set, is e's frame for mb alone (see heldMsg).
func (ch *channel) conflateLocked(mb *member, e *entry, now time.Time, own []byte) {
	cf := mb.cf
	if len(cf.held) == 0 && cf.lost == nil && !now.Before(cf.nextAt) {
		if ch.offerHeldLocked(mb, heldMsg{e: e, own: own}) {
			cf.nextAt = now.Add(cf.every)
			return
		}
		// No room: hold it for the next window.
		cf.nextAt = now.Add(cf.every)
	}
	k := ch.keyLocked(e, cf.key)
	for i, h := range cf.held {
		if h.key == k {
			copy(cf.held[i:], cf.held[i+1:])
			cf.held[len(cf.held)-1] = heldMsg{}
			cf.held = cf.held[:len(cf.held)-1]
			ch.h.conflated.Add(1)
			break
		}
	}
	cf.held = append(cf.held, heldMsg{e: e, key: k, own: own})
	ch.armLocked(mb, now)
}

// offerHeldLocked offers h's frame to mb if its queue has room.
func (ch *channel) offerHeldLocked(mb *member, h heldMsg) bool {
	if h.own == nil {
		return ch.offerLocked(mb, h.e)
	}
	if !mb.sub.offer(h.own) {
		return false
	}
	ch.sentLocked(mb, h.e, false)
	return true
}

// conflateLostLocked drops what mb holds and queues the continuity frame
// lost, now if its send queue has room, else first thing when it has.
func (ch *channel) conflateLostLocked(mb *member, lost []byte, now time.Time) {
	ch.conflateGapLocked(mb)
	cf := mb.cf
	if cf.lost == nil && mb.sub.offer(lost) {
		return
	}
	// The later frame stands for both: nothing was sent since the first.
	cf.lost = lost
	ch.armLocked(mb, now)
}

// conflateGapLocked drops what mb holds when the channel has a gap: the
// continuity frame tells the subscriber to refetch the channel's state,
// which supersedes everything before it.
func (ch *channel) conflateGapLocked(mb *member) {
	cf := mb.cf
	ch.h.conflated.Add(uint64(len(cf.held)))
	clear(cf.held)
	cf.held = cf.held[:0]
}

// armLocked makes sure mb's held messages are flushed when its window ends.
func (ch *channel) armLocked(mb *member, now time.Time) {
	cf := mb.cf
	if cf.armed || cf.stopped {
		return
	}
	cf.armed = true
	d := max(cf.nextAt.Sub(now), 0)
	if cf.timer == nil {
		cf.timer = time.AfterFunc(d, func() { ch.flushConflated(mb) })
	} else {
		cf.timer.Reset(d)
	}
}

// flushConflated sends mb's held messages at the end of its window, in
// channel order, as far as its send queue takes them.
func (ch *channel) flushConflated(mb *member) {
	now := ch.h.now()
	ch.mu.Lock()
	defer ch.mu.Unlock()
	cf := mb.cf
	cf.armed = false
	if cf.stopped || ch.members[mb.sub] != mb || len(cf.held) == 0 && cf.lost == nil {
		return
	}
	if now.Before(cf.nextAt) {
		ch.armLocked(mb, now) // the timer ran early on this clock
		return
	}
	cf.nextAt = now.Add(cf.every)
	if cf.lost != nil {
		if !mb.sub.offer(cf.lost) {
			ch.armLocked(mb, now)
			return
		}
		cf.lost = nil
	}
	sent := 0
	for sent < len(cf.held) && ch.offerHeldLocked(mb, cf.held[sent]) {
		sent++
	}
	n := copy(cf.held, cf.held[sent:])
	clear(cf.held[n:])
	cf.held = cf.held[:n]
	if len(cf.held) > 0 {
		ch.armLocked(mb, now)
	}
}

// conflateReplayLocked conflates a replay (rewind or resume) for mb: of
// each key, only the last message replayed is kept, in channel order.
// own, if set, is conflated alongside.
func (ch *channel) conflateReplayLocked(mb *member, replay []*entry, own []string) ([]*entry, []string) {
	if len(replay) < 2 {
		return replay, own
	}
	last := map[string]int{}
	for i, e := range replay {
		last[ch.keyLocked(e, mb.cf.key)] = i
	}
	var r []*entry
	var o []string
	for i, e := range replay {
		if last[ch.keyLocked(e, mb.cf.key)] != i {
			ch.h.conflated.Add(1)
			continue
		}
		r = append(r, e)
		if own != nil {
			o = append(o, own[i])
		}
	}
	return r, o
}
