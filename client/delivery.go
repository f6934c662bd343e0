package client

import (
	"context"
	"errors"
	"time"

	"github.com/feedgate/feedgate/codec"
)

// A subscription's buffer and its policy (see Subscription): the read loop
// calls expectAttach, onAttached, onRefused, onMessage and onLost, in
// stream order, under sub.mu and without blocking; deliver hands the
// buffered items to the application; resync fetches again what a full
// buffer dropped.

// pendingAttach is an attach sent and not answered yet.
type pendingAttach struct {
	cause ContinuityCause
	// gate: until the answer, the connection's messages of the channel are
	// dropped, because they come again after it (the attach resumes from
	// the last one buffered, or is the channel's first on the connection).
	// An attach that replaces the options of a live one does not gate:
	// live delivery goes on through it.
	gate bool
}

// expectAttach notes that an attach with ref is being sent on connection
// gen, and returns its options: resuming after the last buffered message
// once there is one.
func (sub *Subscription) expectAttach(gen, ref uint64, gate bool) (codec.AttachOptions, bool) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.ended {
		return codec.AttachOptions{}, false
	}
	cause := CauseAttach
	if sub.attached {
		cause = CauseReconnect
	}
	return sub.expectLocked(gen, ref, pendingAttach{cause: cause, gate: gate}), true
}

func (sub *Subscription) expectLocked(gen, ref uint64, p pendingAttach) codec.AttachOptions {
	if sub.waitGen != gen || sub.waiting == nil {
		sub.waitGen, sub.waiting, sub.gates = gen, make(map[uint64]pendingAttach), 0
	}
	sub.waiting[ref] = p
	if p.gate {
		sub.gates++
	}
	sub.overflow = false // the attach fetches from pos again
	opts := sub.opts
	if sub.attached && !opts.PublishOnly && sub.pos != "" {
		opts.Resume, opts.Rewind, opts.RewindFor = sub.pos, 0, 0
	}
	return opts
}

// onAttached handles the edge's answer to one of the subscription's
// attaches (on the read loop, in stream order).
func (sub *Subscription) onAttached(gen uint64, fr *codec.Frame) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	p, ok := sub.waiting[fr.Ref]
	if sub.ended || gen != sub.waitGen || !ok {
		return
	}
	sub.answeredLocked(fr.Ref)
	cause := p.cause
	if fr.Continuity != codec.ContinuityResumed {
		sub.pos = fr.Pos // fresh: from here (rewound messages follow); lost: from here
	}
	a := Attached{Continuity: fr.Continuity, Pos: fr.Pos}
	if !sub.attached {
		sub.attached, sub.first = true, a
		sub.settle()
	}
	if cause == CauseResync {
		sub.stats.Resyncs++
		sub.s.resyncs.Add(1)
	}
	if fr.Continuity == codec.ContinuityLost {
		sub.stats.Lost++
		sub.s.lost.Add(1)
	}
	sub.pushLocked(item{ev: &ContinuityEvent{Channel: sub.channel, Continuity: fr.Continuity, Pos: fr.Pos, Cause: cause}})
}

// onRefused handles an error answering one of the subscription's
// attaches: no messages follow it on that connection.
func (sub *Subscription) onRefused(gen uint64, ref uint64) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if gen == sub.waitGen {
		sub.answeredLocked(ref)
	}
}

func (sub *Subscription) answeredLocked(ref uint64) {
	if p, ok := sub.waiting[ref]; ok {
		delete(sub.waiting, ref)
		if p.gate {
			sub.gates--
		}
	}
}

// onMessage buffers m, or drops it (see Subscription for the policy).
func (sub *Subscription) onMessage(gen uint64, m Message) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.ended || (gen == sub.waitGen && sub.gates > 0) {
		return // detached; or an attach's answer, and a replay, are coming
	}
	if sub.overflow || sub.queued >= sub.limit {
		if !sub.overflow {
			sub.s.o.Logger.Debug("session: subscription buffer full; dropping until resync", "channel", sub.channel, "buffer", sub.limit)
		}
		sub.overflow = true
		sub.stats.Dropped++
		sub.s.dropped.Add(1)
		return
	}
	sub.pos = m.Pos
	sub.queued++
	sub.pushLocked(item{msg: m})
}

// onDeltaError handles a delta frame that did not apply: like a full
// buffer, messages are dropped until a resync fetches them again.
func (sub *Subscription) onDeltaError(gen uint64) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.ended || (gen == sub.waitGen && sub.gates > 0) || sub.overflow {
		return // an attach's answer and its replay are coming anyway
	}
	sub.stats.DeltaErrors++
	sub.overflow = true
	sub.resyncLocked()
}

// onLost handles a loss the edge reports mid-stream, like a lost
// continuity on a re-attach: the stream continues from pos.
func (sub *Subscription) onLost(gen uint64, c codec.Continuity, pos string) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.ended || (gen == sub.waitGen && sub.gates > 0) || sub.overflow {
		// Not in the stream the application sees yet: the pending attach
		// or resync reports its own continuity.
		return
	}
	if pos != "" {
		sub.pos = pos
	}
	if c == codec.ContinuityLost {
		sub.stats.Lost++
		sub.s.lost.Add(1)
	}
	sub.pushLocked(item{ev: &ContinuityEvent{Channel: sub.channel, Continuity: c, Pos: pos, Cause: CauseEdge}})
}

func (sub *Subscription) pushLocked(it item) {
	sub.queue = append(sub.queue, it)
	select {
	case sub.wake <- struct{}{}:
	default:
	}
}

// next takes the next item, and starts a resync when the buffer has
// drained to half after an overflow.
func (sub *Subscription) next() (item, bool) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.ended || len(sub.queue) == 0 {
		sub.resyncLocked()
		return item{}, false
	}
	it := sub.queue[0]
	sub.queue[0] = item{}
	sub.queue = sub.queue[1:]
	if it.ev == nil {
		sub.queued--
		sub.stats.Delivered++
	}
	sub.resyncLocked()
	return it, true
}

func (sub *Subscription) resyncLocked() {
	if sub.overflow && !sub.ended && !sub.resyncing && sub.queued <= sub.limit/2 {
		sub.resyncing = true
		go sub.s.resync(sub)
	}
}

// deliver hands the buffered items to the application, in order, until the
// subscription ends.
func (sub *Subscription) deliver() {
	defer sub.s.delivering.Done()
	defer sub.s.callbacks.enter()()
	if !sub.legacy && sub.out != nil {
		defer close(sub.out)
	}
	for {
		it, ok := sub.next()
		if !ok {
			select {
			case <-sub.wake:
				continue
			case <-sub.stop:
				return
			}
		}
		if it.ev != nil {
			sub.event(*it.ev)
			continue
		}
		if sub.onMsg != nil {
			sub.onMsg(it.msg)
			continue
		}
		select {
		case sub.out <- it.msg:
		case <-sub.stop:
			return
		}
	}
}

func (sub *Subscription) event(ev ContinuityEvent) {
	if sub.onCont != nil {
		sub.onCont(ev)
	}
	if f := sub.s.o.OnAttached; f != nil && ev.Cause != CauseAttach {
		f(sub.channel, Attached{Continuity: ev.Continuity, Pos: ev.Pos})
	}
}

// resync re-attaches an overflowed subscription on the current connection,
// resuming after its last buffered message, so that the edge replays what
// was dropped.
func (s *Session) resync(sub *Subscription) {
	for {
		c, gen, err := s.current(s.ctx)
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.conn != c {
			s.mu.Unlock()
			continue
		}
		sub.mu.Lock()
		if sub.ended || !sub.overflow {
			// Ended, or a reconnection re-attached it meanwhile.
			sub.resyncing = false
			sub.mu.Unlock()
			s.mu.Unlock()
			return
		}
		ref := c.nextRef()
		opts := sub.expectLocked(gen, ref, pendingAttach{cause: CauseResync, gate: true})
		sub.mu.Unlock()
		s.mu.Unlock()

		ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
		_, err = c.attachRef(ctx, sub.channel, opts, ref)
		cancel()
		var e *codec.Error
		switch {
		case err == nil, errors.Is(err, ErrClosed), s.ctx.Err() != nil:
			// Answered, or the next connection re-attaches it.
		case errors.As(err, &e) && !e.Code.Retryable():
			s.o.Logger.Warn("session: resync refused", "channel", sub.channel, "err", err)
			s.remove(sub, err)
		default:
			// No answer: the connection is not to be trusted; the next one
			// re-attaches everything.
			s.o.Logger.Warn("session: resync failed; reconnecting", "channel", sub.channel, "err", err)
			c.Close()
		}
		sub.mu.Lock()
		sub.resyncing = false
		again := sub.overflow && !sub.ended && sub.queued <= sub.limit/2
		if again {
			sub.resyncing = true
		}
		sub.mu.Unlock()
		if !again {
			return
		}
	}
}
