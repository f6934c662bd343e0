package client

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/feedgate/feedgate/codec"
)

// SubscribeOptions configure a subscription. The zero value receives live
// messages into a buffer of Options.Buffer, read from Messages.
type SubscribeOptions struct {
	// Rewind and RewindFor ask the first attach for the channel's last
	// messages from the edge's history (docs/protocol.md §6); Resume starts
	// after a resume token instead. Re-attaches always resume.
	Rewind    int
	RewindFor time.Duration
	Resume    string
	// Delta asks for message payloads as deltas (codec.DeltaVCDIFF; "" for
	// none): the session applies them, the application sees full
	// payloads. Conflate and ConflateKey ask the edge for at most one
	// message per Conflate per channel, or per value of the payload's
	// top-level field ConflateKey (docs/protocol.md §6).
	Delta       string
	Conflate    time.Duration
	ConflateKey string
	// Buffer is how many messages wait for the application at most
	// (default: the session's Options.Buffer).
	Buffer int
	// OnMessage, if set, is called with each message, in order, on the
	// subscription's own goroutine; Messages then delivers nothing.
	OnMessage func(Message)
	// OnContinuity, if set, is told the outcome of every attach and
	// re-attach and every loss the edge reports, in order with the messages
	// (after every message before it has been handed over, before any after
	// it), on the same goroutine as OnMessage.
	OnContinuity func(ContinuityEvent)
}

// ContinuityCause says what a ContinuityEvent reports on.
type ContinuityCause int

const (
	// CauseAttach: the subscription's first attach.
	CauseAttach ContinuityCause = iota
	// CauseReconnect: the re-attach on a new connection.
	CauseReconnect
	// CauseResync: the re-attach that fetches again the messages dropped
	// when the subscription's buffer was full.
	CauseResync
	// CauseEdge: the edge reported mid-stream that it lost messages of the
	// channel and could not recover them.
	CauseEdge
)

func (c ContinuityCause) String() string {
	switch c {
	case CauseAttach:
		return "attach"
	case CauseReconnect:
		return "reconnect"
	case CauseResync:
		return "resync"
	case CauseEdge:
		return "edge"
	}
	return "cause?"
}

// ContinuityEvent tells how a subscription's stream goes on. With
// codec.ContinuityLost, messages were missed that the edge could not send:
// the application should refetch the channel's state from its own source
// of truth; the stream continues from Pos.
type ContinuityEvent struct {
	Channel    string
	Continuity codec.Continuity
	Pos        string
	Cause      ContinuityCause
}

// SubscriptionStats count what one subscription went through.
type SubscriptionStats struct {
	Delivered int // messages handed to the application
	Dropped   int // messages not buffered because the buffer was full
	Resyncs   int // re-attaches that fetched the dropped messages again
	Lost      int // continuity losses reported to the application
	// DeltaErrors counts delta frames that did not apply to the base held
	// (a wrong base, a corrupt delta) and made the subscription resync;
	// they and what followed until the resync were dropped, and the
	// application never saw a wrong payload.
	DeltaErrors int
}

// ErrSubscribed is returned by Subscribe for a channel that is already
// subscribed (or attached) on the session.
var ErrSubscribed = errors.New("client: channel already subscribed")

// Subscription is one channel of a Session: its messages, in order, with
// nothing missed or repeated across reconnections, or a ContinuityEvent
// saying what was lost.
//
// Delivery is decoupled from the connection: the reader puts each message
// in the subscription's buffer, a goroutine per subscription hands them to
// the application. When the buffer is full (Buffer messages wait) the
// policy is: drop, then fetch again. Messages that do not fit are dropped
// and counted; once the application has taken half of the buffer, the
// session re-attaches the channel on the same connection, resuming after
// the last buffered message, and the edge replays what was dropped from
// its history. If history no longer covers it, the application gets a
// ContinuityEvent with codec.ContinuityLost (Cause CauseResync), as after
// any re-attach that could not resume. A slow application thus never slows
// the connection, and other channels are not affected.
type Subscription struct {
	s        *Session
	channel  string
	opts     codec.AttachOptions // as asked: the first attach's
	legacy   bool                // attached with Session.Attach: delivers into Session.Messages
	limit    int
	onMsg    func(Message)
	onCont   func(ContinuityEvent)
	out      chan Message  // where messages go when onMsg is nil
	wake     chan struct{} // a new item is queued
	stop     chan struct{} // closed when the subscription ends
	settled  chan struct{} // closed at the first attached, or at the end
	stopOnce sync.Once

	mu        sync.Mutex // guards the fields below
	queue     []item
	queued    int                      // messages in queue
	pos       string                   // position after the last message buffered
	overflow  bool                     // the buffer was full: messages are dropped until a resync
	resyncing bool                     // a resync goroutine runs
	waitGen   uint64                   // connection on which attaches wait for their answer
	waiting   map[uint64]pendingAttach // on connection waitGen
	gates     int                      // of waiting, those that gate
	attached  bool                     // an attached arrived at least once
	first     Attached                 // the first attached
	ended     bool
	err       error
	stats     SubscriptionStats
}

type item struct {
	msg Message
	ev  *ContinuityEvent
}

// Subscribe attaches a channel, now and after every reconnection, and
// delivers its messages to o.OnMessage or Messages. It waits until the
// session is connected and the edge has answered the attach; if ctx ends
// first, or the edge refuses, there is no subscription.
func (s *Session) Subscribe(ctx context.Context, channel string, o SubscribeOptions) (*Subscription, error) {
	opts := codec.AttachOptions{Rewind: o.Rewind, RewindFor: o.RewindFor, Resume: o.Resume, Delta: o.Delta, Conflate: o.Conflate, ConflateKey: o.ConflateKey}
	sub := s.newSubscription(channel, opts, o.Buffer)
	sub.onMsg, sub.onCont = o.OnMessage, o.OnContinuity
	if sub.onMsg == nil {
		sub.out = make(chan Message)
	}
	if _, err := s.attach(ctx, sub, false); err != nil {
		return nil, err
	}
	return sub, nil
}

// Attach attaches a channel now and after every reconnection; its messages
// go to Messages. Attaching a channel attached with Attach before replaces
// its options (and its buffered messages are dropped).
func (s *Session) Attach(ctx context.Context, channel string, opts codec.AttachOptions) (Attached, error) {
	sub := s.newSubscription(channel, opts, 0)
	sub.legacy, sub.out = true, s.msgs
	return s.attach(ctx, sub, true)
}

// Detach detaches a channel attached with Attach or Subscribe.
func (s *Session) Detach(ctx context.Context, channel string) error {
	s.mu.Lock()
	sub := s.subs[channel]
	s.mu.Unlock()
	if sub == nil {
		return nil
	}
	return sub.Detach(ctx)
}

func (s *Session) newSubscription(channel string, opts codec.AttachOptions, limit int) *Subscription {
	if limit <= 0 {
		limit = s.o.Buffer
	}
	return &Subscription{
		s:       s,
		channel: channel,
		opts:    opts,
		limit:   limit,
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		settled: make(chan struct{}),
	}
}

// attach registers sub while connected (so that a reconnection re-attaches
// it) and attaches it.
func (s *Session) attach(ctx context.Context, sub *Subscription, replace bool) (Attached, error) {
	if err := codec.ValidateChannel(sub.channel); err != nil {
		return Attached{}, err
	}
	var c *Client
	var ref uint64
	for {
		cur, gen, err := s.current(ctx)
		if err != nil {
			return Attached{}, err
		}
		s.mu.Lock()
		if s.ctx.Err() != nil {
			// Closing: shutdown has taken (or is about to take) the
			// subscriptions to end; this one would outlive it.
			s.mu.Unlock()
			return Attached{}, ErrClosed
		}
		if s.conn != cur {
			s.mu.Unlock()
			continue
		}
		if d := s.detaching[sub.channel]; d != nil {
			s.mu.Unlock()
			select {
			case <-d:
				continue
			case <-ctx.Done():
				return Attached{}, ctx.Err()
			}
		}
		old := s.subs[sub.channel]
		if old != nil && !(replace && old.legacy) {
			s.mu.Unlock()
			return Attached{}, ErrSubscribed
		}
		s.subs[sub.channel] = sub
		c, ref = cur, cur.nextRef()
		sub.expectAttach(gen, ref, old == nil)
		// Under mu, with sub registered: shutdown, which takes mu after
		// cancelling ctx, ends sub and waits for its goroutine.
		s.delivering.Add(1)
		s.mu.Unlock()
		if old != nil {
			old.end(nil)
		}
		break
	}
	go sub.deliver()
	_, err := c.attachRef(ctx, sub.channel, sub.opts, ref)
	if errors.Is(err, ErrClosed) {
		// The connection went; the next one attaches the channel.
		select {
		case <-sub.settled:
		case <-ctx.Done():
			err = ctx.Err()
		}
		sub.mu.Lock()
		if err == nil {
			err = sub.err
		}
		sub.mu.Unlock()
	}
	if err != nil {
		s.remove(sub, err)
		if c := s.connection(); c != nil && !errors.As(err, new(*codec.Error)) {
			// The attach may have taken effect: best effort to undo it.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			_ = c.Detach(dctx, sub.channel)
			cancel()
		}
		return Attached{}, err
	}
	sub.mu.Lock()
	defer sub.mu.Unlock()
	return sub.first, nil
}

func (s *Session) connection() *Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn
}

// remove ends sub and forgets it, if it is still the channel's.
func (s *Session) remove(sub *Subscription, err error) {
	s.mu.Lock()
	if s.subs[sub.channel] == sub {
		delete(s.subs, sub.channel)
	}
	s.mu.Unlock()
	sub.end(err)
}

// Channel returns the subscription's channel.
func (sub *Subscription) Channel() string { return sub.channel }

// Messages delivers the subscription's messages in order (nothing if
// OnMessage is set). It is closed when the subscription ends.
func (sub *Subscription) Messages() <-chan Message {
	if sub.legacy {
		return nil
	}
	return sub.out
}

// Done is closed when the subscription has ended: Detach, the session's
// end, or a re-attach the edge refused (Err says which).
func (sub *Subscription) Done() <-chan struct{} { return sub.stop }

// Err says why the subscription ended: nil after Detach, ErrClosed after
// the session's end, or the edge's refusal.
func (sub *Subscription) Err() error {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	return sub.err
}

// Pos returns the position after the last message buffered for the
// application: where a re-attach resumes.
func (sub *Subscription) Pos() string {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	return sub.pos
}

// Stats returns the subscription's counters.
func (sub *Subscription) Stats() SubscriptionStats {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	return sub.stats
}

// Detach detaches the channel: no message is handed to the application
// after Detach returns (except to a handler already running), and the
// buffered ones are dropped. It may be called from a handler.
func (sub *Subscription) Detach(ctx context.Context) error {
	s := sub.s
	s.mu.Lock()
	mine := s.subs[sub.channel] == sub
	if mine {
		delete(s.subs, sub.channel)
	}
	c := s.conn
	var detached chan struct{}
	if mine && c != nil {
		// An attach of this channel made meanwhile waits for this detach:
		// sent ahead of it, it would be undone by it.
		detached = make(chan struct{})
		s.detaching[sub.channel] = detached
	}
	s.mu.Unlock()
	sub.end(nil)
	if detached == nil {
		return nil // not attached on this connection, or not at all any more
	}
	err := c.Detach(ctx, sub.channel)
	s.mu.Lock()
	delete(s.detaching, sub.channel)
	s.mu.Unlock()
	close(detached)
	if errors.Is(err, ErrClosed) || errors.Is(err, &codec.Error{Code: codec.CodeNotAttached}) {
		return nil // the next connection does not attach it
	}
	return err
}

// end stops delivery; the buffered items are dropped.
func (sub *Subscription) end(err error) {
	sub.mu.Lock()
	if !sub.ended {
		sub.ended, sub.err = true, err
		sub.queue, sub.queued = nil, 0
	}
	sub.mu.Unlock()
	sub.stopOnce.Do(func() {
		close(sub.stop)
		sub.settle()
	})
}

// settle closes settled once; sub.mu or stopOnce serialise the callers.
func (sub *Subscription) settle() {
	select {
	case <-sub.settled:
	default:
		close(sub.settled)
	}
}
