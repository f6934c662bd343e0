package client

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

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
	// OnAttached, if set, is told the outcome of every (re-)attach; with
	// ContinuityLost the application should refetch the channel's state.
	OnAttached func(channel string, a Attached)
	Logger     *slog.Logger
}

// Session is a client that stays connected: when its edge goes away (a
// dropped network, a dead or draining edge, a slow-consumer disconnect) it
// reconnects, to the next URL, with exponential backoff and jitter, and
// re-attaches every channel with its resume token, so that the messages
// stream continues with nothing missed and nothing repeated, or the
// application is told that continuity was lost.
type Session struct {
	o    SessionOptions
	msgs chan Message
	stop context.CancelFunc
	done chan struct{}

	mu        sync.Mutex // guards the fields below
	channels  map[string]*sessionChannel
	conn      *Client       // current connection, nil while reconnecting
	connected chan struct{} // closed when conn is set; replaced on loss
	err       error         // why the session ended
	stats     SessionStats
}

type sessionChannel struct {
	opts codec.AttachOptions
	pos  string // position after the last message received
}

// SessionStats count what a session went through.
type SessionStats struct {
	Connects       int // successful connections, the first included
	LostContinuity int // re-attaches whose continuity was lost
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
	ctx, stop := context.WithCancel(context.Background())
	s := &Session{
		o:         o,
		msgs:      make(chan Message, o.Buffer),
		stop:      stop,
		done:      make(chan struct{}),
		channels:  make(map[string]*sessionChannel),
		connected: make(chan struct{}),
	}
	go s.run(ctx)
	return s
}

// Messages delivers the messages of every attached channel, across
// reconnections. It is closed when the session ends.
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
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// current waits until the session is connected.
func (s *Session) current(ctx context.Context) (*Client, error) {
	for {
		s.mu.Lock()
		c, ready := s.conn, s.connected
		s.mu.Unlock()
		if c != nil {
			return c, nil
		}
		select {
		case <-ready:
		case <-s.done:
			return nil, ErrClosed
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Attach attaches a channel now and after every reconnection.
func (s *Session) Attach(ctx context.Context, channel string, opts codec.AttachOptions) (Attached, error) {
	for {
		c, err := s.current(ctx)
		if err != nil {
			return Attached{}, err
		}
		// Registered before the attach is sent: the channel's first messages
		// may be pumped before the reply is read, and must move its position.
		sc := &sessionChannel{opts: opts}
		s.mu.Lock()
		s.channels[channel] = sc
		s.mu.Unlock()
		a, err := c.AttachInfo(ctx, channel, opts)
		s.mu.Lock()
		if err != nil {
			if s.channels[channel] == sc {
				delete(s.channels, channel)
			}
			s.mu.Unlock()
			if errors.Is(err, ErrClosed) {
				continue // reconnecting; try again on the next connection
			}
			return a, err
		}
		if sc.pos == "" {
			sc.pos = a.Pos
		}
		s.mu.Unlock()
		return a, nil
	}
}

// Publish publishes on an attached channel and waits for the ack. If the
// connection is lost first, it publishes again on the next one with the
// same message ID (one is generated if o.ID is empty), which the edges
// deduplicate: the message is delivered once.
func (s *Session) Publish(ctx context.Context, channel string, data []byte, o PublishOptions) (string, error) {
	if o.ID == "" {
		var b [12]byte
		_, _ = crand.Read(b[:])
		o.ID = hex.EncodeToString(b[:])
	}
	for {
		c, err := s.current(ctx)
		if err != nil {
			return "", err
		}
		id, err := c.Publish(ctx, channel, data, o)
		var e *codec.Error
		switch {
		case err == nil:
			return id, nil
		case errors.Is(err, ErrClosed):
			continue
		case errors.As(err, &e) && e.Code.Retryable():
			select {
			case <-time.After(s.o.MinBackoff):
			case <-ctx.Done():
				return "", ctx.Err()
			}
			continue
		default:
			return "", err
		}
	}
}

// Close ends the session.
func (s *Session) Close() error {
	s.stop()
	<-s.done
	return nil
}

func (s *Session) run(ctx context.Context) {
	defer func() {
		close(s.msgs)
		close(s.done)
	}()
	backoff := s.o.MinBackoff
	for i := 0; ; i++ {
		if ctx.Err() != nil {
			s.end(nil)
			return
		}
		url := s.o.URLs[i%len(s.o.URLs)]
		c, err := s.connect(ctx, url)
		if err != nil {
			s.o.Logger.Debug("session: connect failed", "url", url, "err", err)
			// Full jitter: a storm of clients does not come back in step.
			wait := time.Duration(rand.Int64N(int64(backoff) + 1))
			backoff = min(2*backoff, s.o.MaxBackoff)
			select {
			case <-time.After(wait):
			case <-ctx.Done():
			}
			continue
		}
		backoff = s.o.MinBackoff
		s.pump(ctx, c)
		if d := c.Disconnect(); d != nil && d.Code == codec.CodeTooManyErrors {
			s.end(d)
			return
		}
	}
}

func (s *Session) end(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
}

// connect dials url and re-attaches every channel with its resume token.
func (s *Session) connect(ctx context.Context, url string) (*Client, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := Dial(dctx, url, s.o.Options)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	chans := make(map[string]sessionChannel, len(s.channels))
	for name, ch := range s.channels {
		chans[name] = *ch
	}
	s.mu.Unlock()
	for name, ch := range chans {
		opts := ch.opts
		if !opts.PublishOnly && ch.pos != "" {
			opts.Resume, opts.Rewind, opts.RewindFor = ch.pos, 0, 0
		}
		a, err := c.AttachInfo(dctx, name, opts)
		if err != nil {
			c.Close()
			return nil, err
		}
		if a.Continuity == codec.ContinuityLost {
			// The stream goes on from the edge's position, not from ours.
			s.mu.Lock()
			s.stats.LostContinuity++
			if sc := s.channels[name]; sc != nil {
				sc.pos = a.Pos
			}
			s.mu.Unlock()
		}
		if s.o.OnAttached != nil {
			s.o.OnAttached(name, a)
		}
	}
	s.mu.Lock()
	s.conn = c
	s.stats.Connects++
	close(s.connected)
	s.mu.Unlock()
	return c, nil
}

// pump forwards c's messages until c ends (or goes quiet for DeadAfter),
// keeping each channel's resume position.
func (s *Session) pump(ctx context.Context, c *Client) {
	tick := time.NewTicker(s.o.DeadAfter / 4)
	defer tick.Stop()
	defer func() {
		s.mu.Lock()
		s.conn = nil
		s.connected = make(chan struct{})
		s.mu.Unlock()
		c.Close()
	}()
	for {
		select {
		case m, ok := <-c.Messages():
			if !ok {
				return
			}
			s.mu.Lock()
			if ch := s.channels[m.Channel]; ch != nil {
				ch.pos = m.Pos
			}
			s.mu.Unlock()
			select {
			case s.msgs <- m:
			case <-ctx.Done():
				return
			}
		case <-tick.C:
			if time.Since(c.LastReceived()) > s.o.DeadAfter {
				s.o.Logger.Info("session: edge went quiet; reconnecting", "quiet_for", time.Since(c.LastReceived()).Round(time.Millisecond))
				return
			}
		case <-ctx.Done():
			return
		}
	}
}
