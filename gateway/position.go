package gateway

import (
	"time"

	"github.com/feedgate/feedgate/codec"
)

// Positions and resume across origins (docs/protocol.md §7): a channel's
// position is a watermark over origin time, trailing the newest message by
// the lateness bound, plus the last Seq of each origin that delivered past
// it. This file holds what decides positions, resumes, and what a
// subscriber that resumed ahead of this edge receives.

// originState is what a channel knows of one origin.
type originState struct {
	seq      uint64 // last Seq delivered
	lastTime int64  // origin time of the message with Seq seq
	maxTime  int64  // highest origin time of its messages delivered
	inHist   int    // its messages in history
}

// pending is a resumed subscriber's own position while this edge lags it.
type pending struct {
	has  codec.Position    // the token, plus every message sent since
	wait map[string]uint64 // origins named in the token that this edge has not delivered up to its Seq
}

const (
	// lateness is the lateness bound: how far, in origin time, a message
	// may arrive behind the newest message of its channel on an edge
	// (clock skew between origin edges, plus the longest delivery delay,
	// plus the backbone's bounded wait for a redelivery). The watermark
	// trails the newest message by it: the edge holds every message up to
	// the watermark, and tokens name the origins that delivered after it.
	// A message that arrives anyway is counted late (docs/protocol.md §7.5).
	lateness = time.Minute
	// originKeep is how long, in origin time behind the watermark, an
	// origin with nothing left in history is remembered. A resume from a
	// token older than that may answer lost for a forgotten origin it could
	// have vouched for (never the other way round); 10 minutes is the
	// dedup window, beyond which a redelivered copy is a duplicate anyway.
	originKeep = 10 * time.Minute
)

// watermarkLocked is the channel's watermark: every message of the channel
// with an origin time at or below it has been delivered here (within the
// lateness bound).
func (ch *channel) watermarkLocked() int64 {
	return max(0, ch.newest-lateness.Milliseconds())
}

// tokenLocked returns the channel's position as a token, and forgets the
// origins that have nothing in history and are originKeep behind the
// watermark.
func (ch *channel) tokenLocked() string {
	w := ch.watermarkLocked()
	clear(ch.named)
	for o, st := range ch.origins {
		switch {
		case st.maxTime > w:
			ch.named[o] = st.seq
		case st.inHist == 0 && st.maxTime <= w-originKeep.Milliseconds():
			ch.forgot = max(ch.forgot, st.maxTime)
			delete(ch.origins, o)
		}
	}
	return codec.Position{Watermark: w, Seqs: ch.named}.Token()
}

// deliverPendingLocked delivers e to a subscriber that resumed ahead of
// this edge: skipped if it already has it, else sent with the subscriber's
// own position, or after a continuity frame if what comes before it is
// missing. Once the edge has caught up with the subscriber, the subscriber
// gets the shared frames.
//
// A conflated one is conflated all the same: its frames (its own, or the
// continuity frame) go through its conflater, never past its queue's room.
func (ch *channel) deliverPendingLocked(mb *member, e *entry, now time.Time) {
	p, m := mb.pend, e.m
	if s, ok := p.wait[m.Origin]; ok && m.Seq >= s {
		delete(p.wait, m.Origin)
	}
	// It gets full frames only (deltas resume once the edge has caught
	// up): its own frames are encoded for it alone, and a message it
	// skips is one it got elsewhere, whose payload it may or may not hold.
	switch {
	case p.has.Includes(m.Origin, m.Seq, m.Time):
		// Delivered to it by the edge it came from.
		mb.base = 0
	case !follows(p.has, e):
		ch.h.broken.Add(1)
		// In line with the messages (not a reply): it precedes e.
		lost := mb.sub.encode(lostFrame(ch.name, p.has.Token()))
		mb.pend = nil
		mb.base = 0
		if mb.cf != nil {
			ch.conflateLostLocked(mb, lost, now)
			ch.conflateLocked(mb, e, now, nil)
			return
		}
		mb.sub.enqueue(lost)
		ch.sendLocked(mb, e)
		return
	default:
		p.has.Seqs[m.Origin] = m.Seq
		switch b := ch.encodeLocked(&codec.Frame{Type: codec.FrameMessage, Channel: m.Channel, Msg: *m, Pos: p.has.Token(), Wire: ch.wireLocked(e, mb.v.format())}, mb.v); {
		case b == nil:
			mb.base = 0
		case mb.cf != nil:
			// Its position in b covers what a later message of its key
			// makes it skip.
			ch.conflateLocked(mb, e, now, b)
		default:
			mb.sub.enqueue(b)
			ch.sentLocked(mb, e, false)
		}
	}
	if len(p.wait) == 0 && ch.watermarkLocked() >= p.has.Watermark {
		// Everything it has, this edge has delivered (and, past the
		// watermark, will not deliver again): its position is the edge's.
		mb.pend = nil
	}
}

// follows reports whether the subscriber whose position is has, which does
// not include e's message, has everything of its origin before it: its
// predecessor is none, or in has (by Seq if has names the origin, by the
// predecessor's origin time, as delivered here, if not).
func follows(has codec.Position, e *entry) bool {
	m := e.m
	if m.Prev == 0 {
		return true
	}
	if s, ok := has.Seqs[m.Origin]; ok {
		return m.Prev <= s
	}
	return e.prevTime >= 0 && e.prevTime <= has.Watermark
}

// impossibleLocked reports whether no edge can have issued position p: its
// watermark is more than the lateness bound past both this edge's clock and
// the newest origin time delivered on the channel here. An edge's watermark
// trails its newest origin time, stamped by an origin's clock, by the
// lateness bound, which covers the skew between edges' clocks; so an issued
// watermark is at most this edge's clock. The channel's newest origin time
// admits, besides, origins whose clocks run ahead of this one's.
func (ch *channel) impossibleLocked(p codec.Position) bool {
	return p.Watermark > max(ch.h.now().UnixMilli(), ch.newest)+lateness.Milliseconds()
}

// resumeLocked decides a resume from the position from: the messages of
// history not in it, in order, and whether they are all it is missing
// (docs/protocol.md §7.3). Continuity is lost, and nothing replayed, when
//
//   - from overflowed, or this channel state has forgotten messages newer
//     than from's watermark (it cannot tell whether from had them);
//   - a message to replay does not follow on what the subscriber has (its
//     predecessor from the same origin is neither in from nor replayed
//     before it: it left history, or never reached this edge);
//   - a message this edge delivered and from lacks has left history;
//   - from counts a message in by the watermark alone that arrived here
//     late (the edge it came from may not have had it);
//   - from names an origin this edge has had nothing of, and from's
//     watermark is not a lateness bound past this edge's start (it may have
//     started after that origin's messages that from lacks);
//   - from's watermark is more than the lateness bound past both this
//     edge's clock and the newest origin time of the channel here (see
//     impossibleLocked): no edge can have issued it, and taken for a
//     position ahead of this edge it would make every message be skipped
//     until the channel got there.
//
// When the entries' positions may lack messages the subscriber has (see
// understated), replayed messages carry the subscriber's own position
// (own). When this edge lags from (an origin named in from it has not
// delivered up to from's Seq, or a watermark behind from's), pend also says
// what to skip as it arrives, and the subscriber's live frames carry its own
// position until the edge catches up. Otherwise own and pend are nil: the
// entries' positions are the subscriber's.
func (ch *channel) resumeLocked(from codec.Position) (replay []*entry, own []string, _ codec.Continuity, pend *pending) {
	if from.Overflow || ch.forgot > from.Watermark || ch.impossibleLocked(from) {
		return nil, nil, codec.ContinuityLost, nil
	}
	has := from.Clone()
	if has.Seqs == nil {
		has.Seqs = map[string]uint64{}
	}
	// understated: an entry's position, after the first replayed one, may
	// lack messages the subscriber has: one of them is delivered after it,
	// or is revealed after it as lost here for good (a gap), or belongs to
	// an origin this edge first heard of after it.
	understated := false
	for _, e := range ch.hist {
		m := e.m
		if len(replay) > 0 && m.Prev != 0 && e.prevTime < 0 {
			understated = true
		}
		if has.Includes(m.Origin, m.Seq, m.Time) {
			if _, named := has.Seqs[m.Origin]; !named && e.late {
				return nil, nil, codec.ContinuityLost, nil
			}
			understated = understated || len(replay) > 0
			continue
		}
		if !follows(has, e) {
			return nil, nil, codec.ContinuityLost, nil
		}
		has.Seqs[m.Origin] = m.Seq
		replay = append(replay, e)
	}
	for o, st := range ch.origins {
		s, named := has.Seqs[o]
		if named && st.seq > s || !named && st.maxTime > has.Watermark {
			return nil, nil, codec.ContinuityLost, nil // its messages after from have left history
		}
	}
	wait := map[string]uint64{}
	for o, s := range from.Seqs {
		st := ch.origins[o]
		if st == nil && from.Watermark < ch.h.started.Load()+lateness.Milliseconds() {
			// This edge has had nothing of o: it may have started after
			// o's messages that from lacks, and would never get them.
			return nil, nil, codec.ContinuityLost, nil
		}
		if st == nil || st.seq < s {
			wait[o] = s
		}
	}
	caughtUp := len(wait) == 0 && ch.watermarkLocked() >= from.Watermark
	if caughtUp && !understated {
		return replay, nil, codec.ContinuityResumed, nil
	}
	p := from.Clone()
	if p.Seqs == nil {
		p.Seqs = map[string]uint64{}
	}
	own = make([]string, len(replay))
	for i, e := range replay {
		p.Seqs[e.m.Origin] = e.m.Seq
		own[i] = p.Token()
	}
	if caughtUp {
		return replay, own, codec.ContinuityResumed, nil // live, the edge's positions are the subscriber's
	}
	return replay, own, codec.ContinuityResumed, &pending{has: has, wait: wait}
}
