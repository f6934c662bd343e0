package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/feedgate/feedgate/codec"
)

// SessionOptions configure a Session. Zero values mean the defaults.
type SessionOptions struct {
	Options
	// URLs are the edges to use, tried in turn: one GeoDNS name in
	// production, several addresses in tests.
	URLs []string
	// MinBackoff and MaxBackoff bound the wait between reconnection
	// attempts, which doubles from MinBackoff with full jitter (defaults
	// 100ms and 5s).
	MinBackoff, MaxBackoff time.Duration
	// DeadAfter: an edge from which nothing arrived for this long is taken
	// for dead (default 45s: two missed 20s heartbeats and some slack).
	DeadAfter time.Duration
	// OnAttached, if set, is told the outcome of every re-attach after a
	// reconnection or a buffer overflow, and of every loss the edge reports
	// mid-stream; with ContinuityLost the application should refetch the
	// channel's state. It is called on the channel's delivery goroutine, in
	// order with the channel's messages.
	OnAttached func(channel string, a Attached)
	// OnState, if set, is told every change of the connection state, in
	// order, on a goroutine of its own: it may call the Session's methods.
	OnState func(StateEvent)
	// Credentials, if set, is called before every connection attempt, the
	// first included, and its result replaces Options.APIKey and
	// Options.Token for that connection and for History: the place to
	// obtain a fresh capability token. An error counts as a failed attempt
	// (the session backs off and asks again).
	Credentials func(ctx context.Context) (Credentials, error)
	// HTTPClient serves History (default http.DefaultClient).
	HTTPClient *http.Client
	Logger     *slog.Logger
}

// Credentials are what a connection authenticates with.
type Credentials struct {
	APIKey string // "id:secret", sent as Authorization: Bearer
	Token  string // a capability token, sent as the token query parameter
}

// Session is a client that stays connected: when its edge goes away (a
// dropped network, a dead or draining edge, a slow-consumer disconnect) it
// reconnects, to the next URL, with exponential backoff and jitter, and
// re-attaches every channel with its resume token, so that each channel's
// stream continues with nothing missed and nothing repeated, or the
// application is told that continuity was lost.
//
// The connection's reader never waits for the application: messages go to
// a bounded buffer per subscription (see Subscribe for the policy when it
// fills), so heartbeats are answered however slow a handler is.
type Session struct {
	o      SessionOptions
	msgs   chan Message // the Messages stream of channels attached with Attach
	ctx    context.Context
	stop   context.CancelFunc
	done   chan struct{}
	events *serial // OnState calls
	// callbacks are the goroutines that run the application's handlers
	// (events' and each subscription's delivery goroutine).
	callbacks goroutines

	connects, lost, dropped, resyncs, renewals atomic.Int64
	// delivering counts the subscriptions' delivery goroutines: Messages is
	// closed, and Close returns, once they have all returned.
	delivering sync.WaitGroup

	mu   sync.Mutex // guards the fields below; taken before a Subscription's
	subs map[string]*Subscription
	// pmu guards lanes: each channel's publishes in order (publish.go).
	// Taken before a Client's locks, never while holding mu.
	pmu   sync.Mutex
	lanes map[string]*lane
	// detaching holds, per channel, a Detach in flight: closed once its
	// detach frame was answered (or its connection lost).
	detaching map[string]chan struct{}
	conn      *Client       // current connection, nil while reconnecting
	gen       uint64        // numbers conn: frames of older connections are told apart
	url       string        // conn's URL, or the last one tried
	creds     Credentials   // conn's credentials
	connected chan struct{} // closed when conn is set; replaced on loss
	err       error         // why the session ended
}

// SessionStats count what a session went through.
type SessionStats struct {
	Connects       int // successful connections, the first included
	LostContinuity int // re-attaches (or edge reports) whose continuity was lost
	// Dropped counts messages not buffered because their subscription's
	// buffer was full; Resyncs the re-attaches that fetched them again.
	Dropped, Resyncs int
	// Renewals counts tokens renewed in place (auth frames the edge took).
	Renewals int
}

// NewSession starts a session; it connects in the background.
func NewSession(o SessionOptions) *Session {
	if o.MinBackoff <= 0 {
		o.MinBackoff = 100 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 5 * time.Second
	}
	if o.DeadAfter <= 0 {
		o.DeadAfter = 45 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Buffer <= 0 {
		o.Buffer = 4096
	}
	if o.HTTPClient == nil {
		o.HTTPClient = http.DefaultClient
	}
	ctx, stop := context.WithCancel(context.Background())
	s := &Session{
		o:         o,
		msgs:      make(chan Message),
		ctx:       ctx,
		stop:      stop,
		done:      make(chan struct{}),
		events:    nil,
		subs:      make(map[string]*Subscription),
		detaching: make(map[string]chan struct{}),
		lanes:     make(map[string]*lane),
		connected: make(chan struct{}),
	}
	s.events = newSerial(&s.callbacks)
	if len(o.URLs) > 0 {
		s.url = o.URLs[0]
	}
	go s.run(ctx)
	return s
}

// Messages delivers the messages of every channel attached with Attach,
// across reconnections, in order per channel. It is closed when the
// session ends. Subscriptions made with Subscribe deliver their own.
func (s *Session) Messages() <-chan Message { return s.msgs }

// Done is closed when the session has ended (Close, or an edge told it not
// to reconnect); Err says why.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err returns why the session ended, once Done is closed.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Stats returns the session's counters.
func (s *Session) Stats() SessionStats {
	return SessionStats{
		Connects:       int(s.connects.Load()),
		LostContinuity: int(s.lost.Load()),
		Dropped:        int(s.dropped.Load()),
		Resyncs:        int(s.resyncs.Load()),
		Renewals:       int(s.renewals.Load()),
	}
}

// current waits until the session is connected.
func (s *Session) current(ctx context.Context) (*Client, uint64, error) {
	for {
		s.mu.Lock()
		c, gen, ready := s.conn, s.gen, s.connected
		s.mu.Unlock()
		if c != nil {
			return c, gen, nil
		}
		select {
		case <-ready:
		case <-s.ctx.Done():
			// Closing (Done is closed only once handlers returned: one
			// of them may be the caller).
			return nil, 0, ErrClosed
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
	}
}

// Close ends the session: its connection, every subscription (their
// Messages channels are closed) and the Messages stream. It returns once
// every handler (OnMessage, OnContinuity, OnAttached, OnState) has
// returned, so that none runs after it. Called from such a handler, it
// cannot wait for that handler: it then starts the end and returns at
// once; Done is closed once the handler has returned.
func (s *Session) Close() error {
	s.stop()
	if s.callbacks.running() {
		return nil
	}
	<-s.done
	return nil
}

func (s *Session) emit(e StateEvent) {
	if s.o.OnState != nil {
		s.events.do(func() { s.o.OnState(e) })
	}
}

func (s *Session) run(ctx context.Context) {
	defer s.shutdown()
	if len(s.o.URLs) == 0 {
		s.mu.Lock()
		s.err = errors.New("client: SessionOptions.URLs is empty")
		s.mu.Unlock()
		return
	}
	backoff := s.o.MinBackoff
	refusals := 0 // consecutive refusals that sending the same again cannot turn
	for i := 0; ; i++ {
		if ctx.Err() != nil {
			return
		}
		url := s.o.URLs[i%len(s.o.URLs)]
		s.emit(StateEvent{State: StateConnecting, URL: url})
		c, err := s.connect(ctx, url)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.o.Logger.Debug("session: connect failed", "url", url, "err", err)
			ev := StateEvent{State: StateDisconnected, URL: url, Reason: err.Error(), Reconnect: true}
			var ce *codec.Error
			if errors.As(err, &ce) {
				ev.Code = ce.Code // the edge refused: unauthorized, token_expired, edge_full, ...
			}
			if ce != nil && s.refusedForGood(ce.Code) {
				refusals++
			} else {
				refusals = 0
			}
			// Every URL refused what this session would send again (a
			// wrong key, an expired token and nothing to renew it with, an
			// origin not allowed): retrying would hammer the edges for
			// nothing, so the session ends with the refusal.
			if refusals >= len(s.o.URLs) {
				ev.Reconnect = false
				s.emit(ev)
				s.mu.Lock()
				s.err = ce
				s.mu.Unlock()
				return
			}
			s.emit(ev)
			// Full jitter: a storm of clients does not come back in step.
			wait := time.Duration(rand.Int64N(int64(backoff) + 1))
			backoff = min(2*backoff, s.o.MaxBackoff)
			select {
			case <-time.After(wait):
			case <-ctx.Done():
			}
			continue
		}
		backoff, refusals = s.o.MinBackoff, 0
		s.emit(StateEvent{State: StateConnected, URL: url})
		ev := s.pump(ctx, c)
		if ctx.Err() != nil {
			return
		}
		ev.State, ev.URL = StateDisconnected, url
		s.emit(ev)
		if !ev.Reconnect {
			d, _, _ := c.ended()
			s.mu.Lock()
			s.err = d
			s.mu.Unlock()
			return
		}
	}
}

// refusedForGood reports whether an upgrade refused with code would be
// refused again if the session tried once more: a client error (4000–4099)
// is, except that an authentication refusal (4010–4019) may not be when
// SessionOptions.Credentials can supply fresh credentials. Codes from 4100
// on (going_away, edge_full, too_many_connections, rate_limited, ...) are
// worth retrying, with a backoff.
func (s *Session) refusedForGood(code codec.Code) bool {
	if code < 4000 || code >= 4100 {
		return false
	}
	if code >= codec.CodeUnauthorized && code < codec.CodeUnauthorized+10 && s.o.Credentials != nil {
		return false
	}
	return true
}

// shutdown ends every subscription, waits for their delivery goroutines,
// then closes the Messages stream and Done.
func (s *Session) shutdown() {
	s.stop()
	s.mu.Lock()
	subs := make([]*Subscription, 0, len(s.subs))
	for _, sub := range s.subs {
		subs = append(subs, sub)
	}
	s.subs = map[string]*Subscription{}
	err := s.err
	s.mu.Unlock()
	for _, sub := range subs {
		sub.end(ErrClosed)
	}
	s.delivering.Wait()
	close(s.msgs)
	s.emit(StateEvent{State: StateClosed, Err: err, Reason: errText(err)})
	s.events.close()
	<-s.events.done
	close(s.done)
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// connect dials url and re-attaches every subscription with its resume
// token.
func (s *Session) connect(ctx context.Context, url string) (*Client, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	o := s.o.Options
	if s.o.Credentials != nil {
		cr, err := s.o.Credentials(dctx)
		if err != nil {
			return nil, fmt.Errorf("client: credentials: %w", err)
		}
		o.APIKey, o.Token = cr.APIKey, cr.Token
	}
	s.mu.Lock()
	s.gen++
	gen := s.gen
	s.url = url
	s.mu.Unlock()
	c, err := dial(dctx, url, o, func(fr *codec.Frame) bool { return s.handleFrame(gen, fr) },
		func(channel string, err error) { s.deltaFailed(gen, channel, err) })
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	subs := make([]*Subscription, 0, len(s.subs))
	for _, sub := range s.subs {
		subs = append(subs, sub)
	}
	s.mu.Unlock()
	for _, sub := range subs {
		ref := c.nextRef()
		opts, ok := sub.expectAttach(gen, ref, true)
		if !ok {
			continue // ended meanwhile
		}
		_, err := c.attachRef(dctx, sub.channel, opts, ref)
		var e *codec.Error
		if errors.As(err, &e) && !e.Code.Retryable() {
			// Refused for good (e.g. the new credentials do not allow it):
			// the subscription ends, the others go on.
			s.o.Logger.Warn("session: re-attach refused", "channel", sub.channel, "err", err)
			s.remove(sub, err)
			continue
		}
		if err != nil {
			c.Close()
			return nil, err
		}
	}
	s.mu.Lock()
	s.conn = c
	s.creds = Credentials{APIKey: o.APIKey, Token: o.Token}
	s.connects.Add(1) // before anyone can see the connection
	close(s.connected)
	s.mu.Unlock()
	return c, nil
}

// pump watches c until it ends, goes quiet for DeadAfter, or the session
// is closed, and says how it ended.
func (s *Session) pump(ctx context.Context, c *Client) StateEvent {
	tick := time.NewTicker(s.o.DeadAfter / 4)
	defer tick.Stop()
	defer func() {
		s.mu.Lock()
		s.conn = nil
		s.connected = make(chan struct{})
		gen := s.gen // c's: the next connection is made after pump returns
		s.mu.Unlock()
		c.Close()
		s.forgetConnection(gen)
	}()
	for {
		select {
		case <-c.Done():
			d, reconnect, readErr := c.ended()
			if d != nil {
				return StateEvent{Code: d.Code, Reason: d.Message, Reconnect: reconnect}
			}
			var ce *websocket.CloseError
			if errors.As(readErr, &ce) {
				return StateEvent{Code: codec.Code(ce.Code), Reason: ce.Text, Reconnect: true}
			}
			return StateEvent{Reason: errText(readErr), Reconnect: true}
		case <-tick.C:
			if quiet := time.Since(c.LastReceived()); quiet > s.o.DeadAfter {
				s.o.Logger.Info("session: edge went quiet; reconnecting", "quiet_for", quiet.Round(time.Millisecond))
				return StateEvent{Reason: fmt.Sprintf("nothing received for %v", quiet.Round(time.Millisecond)), Reconnect: true}
			}
		case <-ctx.Done():
			return StateEvent{}
		}
	}
}
