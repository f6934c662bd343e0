package gateway

import (
	"hash/crc32"
	"sync"

	"github.com/feedgate/feedgate/codec"
	"github.com/feedgate/feedgate/codec/vcdiff"
)

// Deltas (docs/protocol.md §6.1). A message's delta frame, in a format, is
// computed at most once, the first time a subscriber that holds its base
// needs it: the VCDIFF delta from the wire payload of the channel's
// previous message on this edge (entry.base) to its own. Each member
// remembers the serial of the last message it was sent (member.base); a
// delta subscriber gets the delta frame when that is the entry's base,
// and the full frame otherwise: first message after attach, after a gap,
// after a message it did not get (conflated, skipped on a resume ahead),
// or when the delta frame would not be smaller than the full one.

// vcdiffEncoders holds encoders (scratch tables) for the channels that
// prepare deltas concurrently.
var vcdiffEncoders = sync.Pool{New: func() any { return new(vcdiff.Encoder) }}

// wireLocked returns e's payload as format f carries it (codec.WireData),
// converting it once; nil if it does not convert.
func (ch *channel) wireLocked(e *entry, f codec.Format) []byte {
	if e.wire[f] == nil {
		b, err := f.WireData(e.m.Data)
		if err != nil {
			return nil // the full frame's encode logs it
		}
		e.wire[f] = b
	}
	return e.wire[f]
}

// fullFrameLocked returns e's full frame in variant v, preparing it the
// first time.
func (ch *channel) fullFrameLocked(e *entry, v variant) []byte {
	if e.tried&(1<<v) == 0 {
		e.tried |= 1 << v
		f := v.format()
		e.frames[v] = ch.encodeLocked(&codec.Frame{Type: codec.FrameMessage, Channel: e.m.Channel, Msg: *e.m, Pos: e.pos, Wire: ch.wireLocked(e, f)}, v)
		ch.h.prepared[v].Add(1)
	}
	return e.frames[v]
}

// deltaFrameLocked returns e's delta frame in the delta variant of v,
// preparing it the first time; nil when there is none (no base, a payload
// over codec.MaxDeltaPayload, or a delta frame not smaller than the full
// frame).
func (ch *channel) deltaFrameLocked(e *entry, v variant) []byte {
	dv := v.delta()
	if e.tried&(1<<dv) == 0 {
		e.tried |= 1 << dv
		e.frames[dv] = ch.prepareDeltaLocked(e, v)
	}
	return e.frames[dv]
}

func (ch *channel) prepareDeltaLocked(e *entry, v variant) []byte {
	return ch.prepareDeltaFromLocked(e, e.base, v)
}

// prepareDeltaFromLocked prepares e's delta frame against base (any
// earlier message of the channel still in history) in the delta variant
// of v; nil when there is none.
func (ch *channel) prepareDeltaFromLocked(e, base *entry, v variant) []byte {
	if base == nil {
		return nil
	}
	f := v.format()
	src, tgt := ch.wireLocked(base, f), ch.wireLocked(e, f)
	full := ch.fullFrameLocked(e, v)
	if src == nil || tgt == nil || full == nil || len(src) > codec.MaxDeltaPayload || len(tgt) > codec.MaxDeltaPayload {
		return nil
	}
	enc := vcdiffEncoders.Get().(*vcdiff.Encoder)
	d := enc.Append(nil, src, tgt)
	vcdiffEncoders.Put(enc)
	dv := v.delta()
	b := ch.encodeLocked(&codec.Frame{Type: codec.FrameMessage, Channel: e.m.Channel,
		Msg: codec.Message{ID: e.m.ID, Name: e.m.Name, Time: e.m.Time}, Pos: e.pos,
		Delta: d, Base: base.m.ID, BaseCRC: crc32.ChecksumIEEE(src)}, dv)
	ch.h.prepared[dv].Add(1)
	if len(b) >= len(full) {
		return nil
	}
	return b
}

// frameForLocked returns the frame mb gets for e, and whether it is a
// delta: the delta frame when mb takes deltas and holds e's base, else the
// full frame. nil if e does not encode in mb's format.
func (ch *channel) frameForLocked(mb *member, e *entry) ([]byte, bool) {
	switch {
	case !mb.delta || mb.base == 0:
	case e.base != nil && e.base.serial == mb.base:
		if b := ch.deltaFrameLocked(e, mb.v); b != nil {
			return b, true
		}
	case mb.cf != nil:
		// Conflated: it skipped the messages in between on purpose, and
		// holds an older one; a delta against that one still applies.
		if b := ch.crossDeltaLocked(e, ch.entryLocked(mb.base), mb.v); b != nil {
			return b, true
		}
	}
	return ch.fullFrameLocked(e, mb.v), false
}

// maxCrossDeltas bounds the deltas an entry keeps against bases other than
// its own: conflated subscribers of a channel hold one of the few messages
// that ended their windows, so a handful serves them; past it they get the
// full frame (nothing is encoded per subscriber).
const maxCrossDeltas = 4

// crossDelta is an entry's delta frame against an older base than its own.
type crossDelta struct {
	base  uint64  // the base's serial
	v     variant // the delta variant
	frame []byte  // nil: none (too large, or not smaller than the full frame)
}

// crossDeltaLocked returns e's delta frame against base in the delta
// variant of v, preparing it once per (base, variant); nil if there is
// none, base is nil (it left history), or e keeps maxCrossDeltas already.
func (ch *channel) crossDeltaLocked(e, base *entry, v variant) []byte {
	if base == nil {
		return nil
	}
	dv := v.delta()
	for _, c := range e.cross {
		if c.base == base.serial && c.v == dv {
			return c.frame
		}
	}
	if len(e.cross) >= maxCrossDeltas {
		return nil
	}
	b := ch.prepareDeltaFromLocked(e, base, v)
	e.cross = append(e.cross, crossDelta{base: base.serial, v: dv, frame: b})
	return b
}

// entryLocked returns the history entry with serial n, or nil if it is not
// in history (serials are consecutive there).
func (ch *channel) entryLocked(n uint64) *entry {
	if len(ch.hist) == 0 || n < ch.hist[0].serial {
		return nil
	}
	i := n - ch.hist[0].serial
	if i >= uint64(len(ch.hist)) || ch.hist[i].serial != n {
		return nil
	}
	return ch.hist[i]
}

// sendLocked queues e to mb (enqueue: a full queue ends mb as a slow
// consumer) and records what mb holds.
func (ch *channel) sendLocked(mb *member, e *entry) {
	b, isDelta := ch.frameForLocked(mb, e)
	if b == nil {
		mb.base = 0
		return
	}
	mb.sub.enqueue(b)
	ch.sentLocked(mb, e, isDelta)
}

// offerLocked is sendLocked with offer: it reports false, and changes
// nothing, when mb's queue has no room for the frame.
func (ch *channel) offerLocked(mb *member, e *entry) bool {
	b, isDelta := ch.frameForLocked(mb, e)
	if b == nil {
		mb.base = 0
		return true
	}
	if !mb.sub.offer(b) {
		return false
	}
	ch.sentLocked(mb, e, isDelta)
	return true
}

func (ch *channel) sentLocked(mb *member, e *entry, isDelta bool) {
	mb.base = e.serial
	switch {
	case isDelta:
		ch.h.deltas.Add(1)
	case mb.delta:
		ch.h.deltaFull.Add(1)
	}
}

// DeltaStats counts prepared frames and what delta and conflated
// subscribers were sent (docs/operations.md).
type DeltaStats struct {
	// Prepared counts message frames encoded, per variant ("json",
	// "msgpack", "json+vcdiff", "msgpack+vcdiff"): at most one per message
	// per variant, whatever the number of subscribers.
	Prepared map[string]uint64
	// Deltas: delta frames queued to subscribers. Full: full frames queued
	// to subscribers that asked for deltas (first message, after a gap or
	// a skipped message, or a delta not smaller than the payload).
	Deltas, Full uint64
	// Conflated: messages a conflated subscriber did not get because a
	// later one of the same conflation key superseded it.
	Conflated uint64
}

// DeltaStats returns the server's delta and conflation counters.
func (s *Server) DeltaStats() DeltaStats {
	h := s.hub
	st := DeltaStats{Prepared: map[string]uint64{}, Deltas: h.deltas.Load(), Full: h.deltaFull.Load(), Conflated: h.conflated.Load()}
	for v := variant(0); int(v) < numVariants; v++ {
		st.Prepared[v.String()] = h.prepared[v].Load()
	}
	return st
}
