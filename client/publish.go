package client

import (
	"cmp"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"time"

	"github.com/feedgate/feedgate/codec"
)

// Publishing in order.
//
// An edge keeps a channel's publishes in the order they arrive on a
// connection, and after a retryable nack (rate_limited,
// backbone_unavailable, publish_timeout, ...) it refuses every later
// publish on that channel, on that connection, until the refused message
// is published again with its id (protocol §10); each of those refusals
// counts against the connection's error budget once the publisher keeps
// sending (§14.1).
//
// So a Session's publishes on one channel go through the channel's lane.
// Normally they are sent at once, pipelined, each in its caller's
// goroutine. The first retryable nack on a channel (in the order the edge
// sent its replies) starts its recovery: from then on one goroutine, the
// lane's driver, publishes what was refused and what is asked for
// meanwhile one message at a time, in the order they were first sent (or
// asked for), the refused one first, after its retry_after (or a backoff);
// once nothing is left, the lane sends at once again. Nothing overtakes a
// refusal, and a publish is refused for the sake of order at most once:
// the ones that were already on their way when the first nack came.

// lane is one channel's publishes; guarded by Session.pmu.
type lane struct {
	next     uint64                  // order key of the next ticket
	inflight map[inflightKey]*ticket // sent at once, awaiting their reply
	queue    []*ticket               // recovering: waiting, by key
	driving  bool                    // a driver goroutine owns queue[0]
	sending  *ticket                 // the ticket the driver has on the wire
}

func (l *lane) idle() bool { return len(l.inflight) == 0 && len(l.queue) == 0 && !l.driving }

// remove takes t out of the queue. (Not by position: a nack of an earlier
// publish may have been put ahead of it while it was on the wire.)
func (l *lane) remove(t *ticket) {
	if i := slices.Index(l.queue, t); i >= 0 {
		l.queue = slices.Delete(l.queue, i, i+1)
	}
}

// requeueLocked hands t, sent at once and now refused or cut off, to the
// queue in its place (by its key), and starts the driver if none runs;
// wait is how long the driver waits before it sends t, if t is the first.
func (s *Session) requeueLocked(channel string, l *lane, t *ticket, wait time.Duration) {
	if t.queued {
		return
	}
	t.queued = true
	if !l.driving {
		t.wait = wait
		l.driving = true
		go s.drive(channel, l)
	}
	i, _ := slices.BinarySearchFunc(l.queue, t.key, func(q *ticket, k uint64) int { return cmp.Compare(q.key, k) })
	l.queue = slices.Insert(l.queue, i, t)
}

type inflightKey struct{ gen, ref uint64 }

// ticket is one message to publish and its outcome.
type ticket struct {
	key     uint64
	channel string
	data    []byte
	o       PublishOptions
	sent    bool          // was on the wire at least once
	queued  bool          // handed to the lane's queue by a retryable nack
	wait    time.Duration // before its next send, once it heads the queue
	done    chan struct{} // closed with id, err set
	id      string
	err     error
}

func (t *ticket) frame(ref uint64) *codec.Frame {
	return &codec.Frame{Type: codec.FramePublish, Ref: ref, Channel: t.channel,
		Msg: codec.Message{ID: t.o.ID, Name: t.o.Name, Data: t.data}}
}

func (t *ticket) finish(id string, err error) {
	t.id, t.err = id, err
	close(t.done)
}

// laneLocked returns channel's lane, made if need be.
func (s *Session) laneLocked(channel string) *lane {
	l := s.lanes[channel]
	if l == nil {
		l = &lane{inflight: make(map[inflightKey]*ticket)}
		s.lanes[channel] = l
	}
	return l
}

func (s *Session) dropIfIdleLocked(channel string, l *lane) {
	if l.idle() && s.lanes[channel] == l {
		delete(s.lanes, channel)
	}
}

// Publish publishes on an attached channel and waits for the ack. If the
// connection is lost first, it publishes again on the next one with the
// same message ID (one is generated if o.ID is empty), which the edges
// deduplicate: the message is delivered once. A retryable nack is retried
// the same way, after the nack's RetryAfter when it has one (rate_limited
// says when the rate allows it again), otherwise after a backoff that
// starts at MinBackoff and doubles up to MaxBackoff; meanwhile the
// channel's later publishes wait behind it, and then go in the order they
// were asked for (several goroutines may publish on one channel).
//
// If ctx ends first, Publish returns its error and the outcome is unknown:
// a message that was sent (and refused, or cut off with its connection)
// is still published, in its place, since the edge holds the channel's
// later publishes until it is; one that was never sent is not.
func (s *Session) Publish(ctx context.Context, channel string, data []byte, o PublishOptions) (string, error) {
	if err := codec.ValidateChannel(channel); err != nil {
		return "", err // the edge's nack would not name the channel
	}
	if o.ID == "" {
		var b [12]byte
		_, _ = crand.Read(b[:])
		o.ID = hex.EncodeToString(b[:])
	}
	t := &ticket{channel: channel, data: data, o: o, done: make(chan struct{})}
	backoff := s.o.MinBackoff
	for {
		c, gen, err := s.current(ctx)
		if err != nil {
			return "", err
		}
		s.pmu.Lock()
		l := s.laneLocked(channel)
		t.key = l.next
		l.next++
		if l.driving {
			l.queue = append(l.queue, t)
			s.pmu.Unlock()
			return s.awaitTicket(ctx, channel, l, t)
		}
		// Sent under pmu: the order of keys is the order on the wire.
		ref := c.nextRef()
		reply, release, err := c.send(t.frame(ref))
		if err == nil {
			t.sent = true
			l.inflight[inflightKey{gen, ref}] = t
		} else {
			s.dropIfIdleLocked(channel, l)
		}
		s.pmu.Unlock()
		if errors.Is(err, ErrClosed) {
			continue // the next connection
		}
		if err != nil {
			return "", err
		}
		fr, err := c.await(ctx, reply)
		release()
		s.pmu.Lock()
		if k := (inflightKey{gen, ref}); errors.Is(err, ErrClosed) && l.inflight[k] == t {
			// Cut off before its reply: in its place in the queue, for
			// the next connection (unless forgetConnection did it).
			delete(l.inflight, k)
			s.requeueLocked(channel, l, t, 0)
		}
		queued := t.queued
		s.pmu.Unlock()
		if queued {
			// Refused retryably, or cut off: the lane's driver publishes
			// it again, in its place.
			return s.awaitTicket(ctx, channel, l, t)
		}
		var e *codec.Error
		switch {
		case err == nil:
			return fr.Msg.ID, nil
		case errors.Is(err, ErrClosed):
			continue // answered, but the connection ended as it was: same id again
		case errors.As(err, &e) && e.Code.Retryable():
			// A refusal the lane did not take (the connection ended
			// meanwhile): again, on the next connection if need be.
			if !sleepCtx(ctx, retryWait(e, &backoff, s.o.MaxBackoff)) {
				return "", ctx.Err()
			}
			continue
		default:
			return "", err
		}
	}
}

// retryWait is how long to wait before sending again what e refused: its
// RetryAfter, else the backoff, which doubles (up to max) each time it is
// used.
func retryWait(e *codec.Error, backoff *time.Duration, max time.Duration) time.Duration {
	if e.RetryAfter > 0 {
		return e.RetryAfter
	}
	d := *backoff
	*backoff = min(2*d, max)
	return d
}

// sleepCtx waits d; false if ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// awaitTicket waits for t's outcome. If ctx ends first, a ticket that was
// never sent leaves the queue; one that was (the edge may be holding the
// channel for it) stays, to be published in its place.
func (s *Session) awaitTicket(ctx context.Context, channel string, l *lane, t *ticket) (string, error) {
	select {
	case <-t.done:
		return t.id, t.err
	case <-ctx.Done():
	}
	s.pmu.Lock()
	defer s.pmu.Unlock()
	select {
	case <-t.done:
		return t.id, t.err
	default:
	}
	if !t.sent && l.sending != t {
		if i := slices.Index(l.queue, t); i >= 0 {
			l.queue = slices.Delete(l.queue, i, i+1)
		}
	}
	return "", ctx.Err()
}

// publishReply sees, on the read loop and so in the order the edge sent
// them, the replies to publishes sent at once: a retryable nack hands its
// ticket to the lane's queue, and the first one starts the lane's driver.
func (s *Session) publishReply(gen uint64, fr *codec.Frame) {
	if fr.Type != codec.FrameAck && fr.Type != codec.FrameNack {
		return
	}
	s.pmu.Lock()
	defer s.pmu.Unlock()
	l := s.lanes[fr.Channel]
	if l == nil {
		return
	}
	k := inflightKey{gen, fr.Ref}
	t := l.inflight[k]
	if t == nil {
		return
	}
	delete(l.inflight, k)
	if fr.Type == codec.FrameNack && fr.Err != nil && fr.Err.Code.Retryable() {
		// The first refusal waits as it says; those behind it were
		// refused only for order: no wait.
		backoff := s.o.MinBackoff
		s.requeueLocked(fr.Channel, l, t, retryWait(fr.Err, &backoff, s.o.MaxBackoff))
		return
	}
	s.dropIfIdleLocked(fr.Channel, l)
}

// forgetConnection hands the publishes still awaiting a reply on
// connection gen, which ended, to their lanes' queues in the order they
// were sent: the next connection gets them in that order, not in the
// order their callers happen to wake up in.
func (s *Session) forgetConnection(gen uint64) {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	for ch, l := range s.lanes {
		for k, t := range l.inflight {
			if k.gen == gen {
				delete(l.inflight, k)
				s.requeueLocked(ch, l, t, 0)
			}
		}
	}
}

// drive publishes the lane's queue, one message at a time, in order, until
// it is empty; at the session's end, what is left fails with ErrClosed.
func (s *Session) drive(channel string, l *lane) {
	backoff := s.o.MinBackoff
	for {
		s.pmu.Lock()
		if len(l.queue) == 0 {
			l.driving = false
			s.dropIfIdleLocked(channel, l)
			s.pmu.Unlock()
			return
		}
		t := l.queue[0]
		wait := t.wait
		t.wait = 0
		s.pmu.Unlock()
		if wait > 0 && !sleepCtx(s.ctx, wait) {
			s.failLane(l, ErrClosed)
			return
		}
		c, _, err := s.current(s.ctx)
		if err != nil {
			s.failLane(l, ErrClosed)
			return
		}
		s.pmu.Lock()
		if len(l.queue) == 0 || l.queue[0] != t {
			// Its caller gave up on it before it was ever sent.
			s.pmu.Unlock()
			continue
		}
		l.sending = t
		t.sent = true
		s.pmu.Unlock()
		fr, err := c.request(s.ctx, t.frame(0))
		s.pmu.Lock()
		l.sending = nil
		var e *codec.Error
		switch {
		case err == nil:
			backoff = s.o.MinBackoff
			l.remove(t)
			t.finish(fr.Msg.ID, nil)
		case errors.Is(err, ErrClosed) && s.ctx.Err() == nil:
			// The connection ended; the next one holds nothing for it.
		case errors.As(err, &e) && e.Code.Retryable():
			t.wait = retryWait(e, &backoff, s.o.MaxBackoff)
		case errors.As(err, &e):
			l.remove(t)
			t.finish("", err)
		default: // the session ended
			s.pmu.Unlock()
			s.failLane(l, ErrClosed)
			return
		}
		s.pmu.Unlock()
	}
}

// failLane ends every ticket of l's queue with err.
func (s *Session) failLane(l *lane, err error) {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	for _, t := range l.queue {
		t.finish("", err)
	}
	l.queue = nil
	l.driving = false
}
