package gateway

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp"

	"github.com/feedgate/feedgate/codec"
)

// Server is one edge's client-facing side.
type Server struct {
	cfg      Config
	bb       Backbone
	hub      *hub
	http     *fasthttp.Server
	upgrader websocket.FastHTTPUpgrader

	idPrefix string        // random per process: IDs stay unique across restarts
	idSeq    atomic.Uint64 // next assigned message ID
	connSeq  atomic.Uint64
	lim      *limiter
	origins  *origins // nil: any origin

	conns  sync.Map // *conn -> struct{}
	nconns atomic.Int64
	// admitMu orders admitting a connection (readers.Add) against the start
	// of a drain (draining set, then readers.Wait): a connection upgraded
	// while Shutdown begins is either counted and drained, or refused.
	admitMu sync.Mutex
	readers sync.WaitGroup
	// ln is Serve's listener once it serves (guarded by admitMu): a
	// Shutdown that began before fasthttp took it closes it itself.
	ln net.Listener

	ready     atomic.Bool
	warmed    chan struct{} // closed once the backbone's start-up replay is over (Warmer)
	draining  atomic.Bool
	flushers  []*flusher
	leaveBy   atomic.Int64  // once a drain began: the latest write deadline (Unix nanoseconds)
	stop      chan struct{} // closed at shutdown: heartbeats and idle checks end
	stopOnce  sync.Once
	flushEnd  chan struct{} // closed once the connections are gone: flushers end
	flushOnce sync.Once
	stats     serverStats
	// announceAt is when the revocation list is next announced (Unix
	// nanoseconds; 0: not scheduled).
	announceAt atomic.Int64
}

type serverStats struct {
	endStats
	badFrames atomic.Uint64
	refused   [NumRefusals]atomic.Uint64
}

// Stats is a snapshot of a server's counters.
type Stats struct {
	Connections   int64
	Delivered     uint64 // frames enqueued to subscribers by fan-out
	SlowConsumers uint64 // connections dropped because their queue overflowed (Ends[EndSlowConsumer])
	BadFrames     uint64 // client frames refused as malformed or invalid
	IdleDrops     uint64 // connections dropped for not answering heartbeats (Ends[EndIdleTimeout])
	WriteTimeouts uint64 // connections dropped because a write made no progress for WriteTimeout (Ends[EndWriteTimeout])
	// Ends counts ended connections by reason.
	Ends [NumEndReasons]uint64
	// Dropped counts frames queued for (or offered to) a connection and
	// never written, by the reason the connection ended: the queue a slow
	// consumer overflowed, what a client that left did not take, what was
	// offered to a connection already ending.
	Dropped [NumEndReasons]uint64
	// Refused counts requests refused for a limit or a policy, by reason
	// (a WebSocket publish or attach, an HTTP batch, an upgrade).
	Refused [NumRefusals]uint64
	// Keys is how many API keys and token subjects the edge remembers
	// limits for (bounded: see Limits.MaxKeys).
	Keys int
}

// New returns a Server relaying through bb. It does not listen yet.
func New(cfg Config, bb Backbone) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if bb == nil {
		return nil, errors.New("gateway: nil Backbone")
	}
	allowed, err := newOrigins(cfg.AllowedOrigins)
	if err != nil {
		return nil, err
	}
	var rnd [5]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		bb:       bb,
		hub:      newHub(cfg.HistorySize, cfg.HistoryAge, cfg.Now, logEncode(cfg.Logger)),
		idPrefix: strings.ToLower(base32.StdEncoding.EncodeToString(rnd[:])) + ":",
		stop:     make(chan struct{}),
		warmed:   make(chan struct{}),
		flushEnd: make(chan struct{}),
		flushers: newFlushers(),
		lim:      newLimiter(cfg.Limits),
		origins:  allowed,
	}
	s.upgrader = websocket.FastHTTPUpgrader{
		ReadBufferSize:  cfg.ReadBufferSize,
		WriteBufferSize: 256, // the library writes nothing but its own rare control replies
		WriteBufferPool: &sync.Pool{},
		// Origin is checked before the upgrade (AllowedOrigins), so that a
		// refusal gets the protocol's JSON error.
		CheckOrigin:       func(*fasthttp.RequestCtx) bool { return true },
		EnableCompression: cfg.Deflate,
	}
	s.http = &fasthttp.Server{
		Handler: s.route,
		Name:    "feedgate",
		// ReduceMemoryUsage costs a one-byte read syscall per connection
		// (fasthttp waits for the first byte without a buffer), but without
		// it an idle WebSocket connection holds 4.6 KB more RSS (17.7
		// against 13.1 KB, measured with 18,000).
		ReduceMemoryUsage: true,
		// httpReadBufferSize is also the most a request line and headers
		// may take; a larger head is answered by httpReadError.
		ReadBufferSize:     httpReadBufferSize,
		ErrorHandler:       httpReadError,
		MaxRequestBodySize: 4 << 20,
		ReadTimeout:        30 * time.Second,
		IdleTimeout:        2 * time.Minute,
		CloseOnShutdown:    true,
		KeepHijackedConns:  true, // WebSocket connections outlive the hijack handler
		Logger:             slogPrintf{l: cfg.Logger, limit: &printfLimit{}},
	}
	return s, nil
}

// Listen opens the TCP listener an edge serves on. Unlike net.Listen it
// leaves TCP keep-alive off on accepted connections: the edge's heartbeats
// and idle timeout already find dead clients, and keep-alive costs four
// setsockopt calls per connection (14 syscalls per new WebSocket connection
// with them, 10 without).
func Listen(ctx context.Context, addr string) (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: -1}
	return lc.Listen(ctx, "tcp", addr)
}

// Serve starts the backbone's delivery and serves HTTP and WebSocket
// clients on ln until Shutdown. It returns nil after a Shutdown.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if err := s.bb.Start(ctx, s.deliver); err != nil {
		return err
	}
	go s.warm(ctx)
	go s.heartbeats()
	go s.watchAuth()
	for _, f := range s.flushers {
		go f.run(s.flushEnd)
	}
	// Start may take a while (the relay's replay seeks): a Shutdown may
	// have come meanwhile, and would not have stopped a Serve begun after
	// it (fasthttp's shutdown does nothing before it has a listener).
	s.admitMu.Lock()
	if s.draining.Load() {
		s.admitMu.Unlock()
		ln.Close()
		return nil
	}
	s.ln = ln
	s.ready.Store(true) // under admitMu: a Shutdown's false comes after
	s.admitMu.Unlock()
	s.cfg.Logger.Info("edge serving", "addr", ln.Addr().String())
	err := s.http.Serve(ln)
	if s.draining.Load() {
		return nil
	}
	return err
}

// warm waits for the backbone's start-up replay, if it has one, and moves
// the hub's start back to the replayed window's.
func (s *Server) warm(ctx context.Context) {
	defer close(s.warmed)
	w, ok := s.bb.(Warmer)
	if !ok {
		return
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	defer cancel()
	if from := w.Warmed(ctx); !from.IsZero() && from.UnixMilli() < s.hub.started.Load() {
		s.hub.started.Store(from.UnixMilli())
	}
}

// waitWarm holds a request (an attach, a history read) until the
// backbone's start-up replay is over, so that it sees the history the
// replay brings; false if done ends first.
func (s *Server) waitWarm(done <-chan struct{}) bool {
	select {
	case <-s.warmed:
		return true
	default:
	}
	select {
	case <-s.warmed:
		return true
	case <-done:
		return false
	}
}

// deliver is the backbone's DeliverFunc.
func (s *Server) deliver(m *codec.Message) {
	if s.deliverSystem(m) {
		return
	}
	obs := s.cfg.Observer
	if obs == nil {
		s.hub.deliver(m)
		return
	}
	start := s.cfg.Now()
	n := s.hub.deliver(m)
	obs.Delivered(start.Sub(time.UnixMilli(m.Time)), s.cfg.Now().Sub(start), n)
}

func logEncode(log *slog.Logger) func(*codec.Message, codec.Format, error) {
	return func(m *codec.Message, f codec.Format, err error) {
		log.Error("encode message", "channel", m.Channel, "id", m.ID, "format", f.String(), "err", err)
	}
}

// publish assigns an ID (unless the publisher gave one) and the accept time,
// and hands m to the backbone. done receives the message ID, or the error.
// newID assigns a message ID unique across edges and restarts.
func (s *Server) newID() string {
	return s.idPrefix + strconv.FormatUint(s.idSeq.Add(1), 36)
}

func (s *Server) publish(m *codec.Message, done func(id string, err error)) {
	if m.ID == "" {
		m.ID = s.newID()
	}
	m.Time = s.cfg.Now().UnixMilli()
	id := m.ID
	if obs := s.cfg.Observer; obs != nil {
		start := s.cfg.Now()
		s.bb.Publish(m, func(err error) {
			obs.Published(s.cfg.Now().Sub(start), err)
			done(id, err)
		})
		return
	}
	s.bb.Publish(m, func(err error) { done(id, err) })
}

// Stats returns a snapshot of the server's counters.
func (s *Server) Stats() Stats {
	st := Stats{
		Connections: s.nconns.Load(),
		BadFrames:   s.stats.badFrames.Load(),
	}
	if s.hub != nil {
		st.Delivered = s.hub.delivered.Load()
	}
	for r := range NumEndReasons {
		st.Ends[r] = s.stats.ends[r].Load()
		st.Dropped[r] = s.stats.dropped[r].Load()
	}
	for r := range NumRefusals {
		st.Refused[r] = s.stats.refused[r].Load()
	}
	if s.lim != nil {
		st.Keys, _ = s.lim.remembered()
	}
	st.SlowConsumers = st.Ends[EndSlowConsumer]
	st.IdleDrops = st.Ends[EndIdleTimeout]
	st.WriteTimeouts = st.Ends[EndWriteTimeout]
	return st
}

// idleChannelTTL is how long a channel without subscribers or history is
// remembered (its position lets a resume prove nothing was missed).
const idleChannelTTL = 30 * time.Minute

// every runs fn every interval until the server stops.
func (s *Server) every(interval time.Duration, fn func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			fn()
		}
	}
}

// heartbeats sends a heartbeat to every connection each HeartbeatInterval
// and drops connections from which nothing was read for IdleTimeout. One
// goroutine for the whole server: no timer per connection.
func (s *Server) heartbeats() {
	s.every(s.cfg.HeartbeatInterval, func() {
		now := s.cfg.Now()
		var frames [codec.NumFormats][]byte
		for f := range frames {
			payload, _ := codec.Format(f).Encode(&codec.Frame{Type: codec.FrameHeartbeat, Msg: codec.Message{Time: now.UnixMilli()}})
			frames[f] = appendFrame(nil, dataOpcode(codec.Format(f)), payload)
		}
		s.hub.sweep(idleChannelTTL)
		s.lim.sweep(now)
		idleBefore := now.Add(-s.cfg.IdleTimeout).UnixNano()
		s.conns.Range(func(k, _ any) bool {
			c := k.(*conn)
			if c.lastRead.Load() < idleBefore {
				c.disconnect(EndIdleTimeout, codec.Errorf(codec.CodeIdleTimeout, "nothing received for %v", s.cfg.IdleTimeout), true)
				return true
			}
			c.enqueueCtrl(frames[c.format])
			return true
		})
	})
}

// Shutdown turns the edge unready, refuses new connections, tells every
// client to reconnect elsewhere, waits for the connections to end (or ctx)
// and stops the HTTP server. It does not close the backbone: whoever
// created it closes it, after Shutdown (cmd/edge gives that a budget of its
// own, so that clients slow to leave never make the edge leave its
// subscriptions behind for their TTL).
func (s *Server) Shutdown(ctx context.Context) error {
	s.admitMu.Lock()
	s.ready.Store(false)
	s.draining.Store(true)
	s.admitMu.Unlock()
	s.stopOnce.Do(func() { close(s.stop) })
	s.drain(ctx)
	done := make(chan struct{})
	go func() { s.readers.Wait(); close(done) }()
	var errs []error
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, errors.New("gateway: connections still open at shutdown deadline"))
	}
	s.flushOnce.Do(func() { close(s.flushEnd) })
	errs = append(errs, s.http.ShutdownWithContext(ctx))
	s.admitMu.Lock()
	ln := s.ln
	s.admitMu.Unlock()
	if ln != nil {
		// Closed already, unless Serve had it but fasthttp not yet: then
		// this ends that Serve.
		_ = ln.Close()
	}
	return errors.Join(errs...)
}

// drain tells every client to reconnect elsewhere, spread evenly over
// DrainPeriod so that the other edges are not hit by all of them at once.
// Clients keep receiving until their turn. It returns early if ctx ends.
func (s *Server) drain(ctx context.Context) {
	var conns []*conn
	s.conns.Range(func(k, _ any) bool {
		conns = append(conns, k.(*conn))
		return true
	})
	s.cfg.Logger.Info("draining", "connections", len(conns), "over", s.cfg.DrainPeriod.String())
	start := time.Now() // the turns below wait on the real clock (time.Until), as do write deadlines
	// A client gets at most one drain period after the last one is told
	// (and no more than the write timeout) to take what is queued for it:
	// a client that stopped reading does not hold the shutdown until its
	// deadline. Write deadlines run on the real clock.
	leaveBy := time.Now().Add(s.cfg.DrainPeriod + min(s.cfg.DrainPeriod, s.cfg.WriteTimeout)).UnixNano()
	s.leaveBy.Store(leaveBy)
	for _, c := range conns {
		c.capDeadline(leaveBy)
	}
	for i, c := range conns {
		// Connection i leaves at start + i/n of the period.
		if wait := time.Until(start.Add(s.cfg.DrainPeriod * time.Duration(i) / time.Duration(len(conns)))); wait > time.Millisecond {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
			}
		}
		c.disconnect(EndGoingAway, codec.Errorf(codec.CodeGoingAway, "edge is draining; reconnect to another edge"), true)
	}
}

// slogPrintf adapts fasthttp's Printf logger to slog. fasthttp logs one
// line per bad connection, quoting what the peer sent: the lines are
// clipped (codec.Clip) and at most one per second is written, with the
// count of those suppressed meanwhile, so a flood of garbage cannot flood
// the log.
type slogPrintf struct {
	l     interface{ Warn(string, ...any) }
	limit *printfLimit
}

type printfLimit struct {
	mu         sync.Mutex // guards the fields below
	last       time.Time
	suppressed int
}

func (p slogPrintf) Printf(format string, args ...any) {
	if p.limit != nil {
		p.limit.mu.Lock()
		now := time.Now()
		if now.Sub(p.limit.last) < time.Second {
			p.limit.suppressed++
			p.limit.mu.Unlock()
			return
		}
		n := p.limit.suppressed
		p.limit.last, p.limit.suppressed = now, 0
		p.limit.mu.Unlock()
		if n > 0 {
			p.l.Warn("http server", "detail", codec.Clip(strings.TrimSpace(fmt.Sprintf(format, args...))), "suppressed_since_last", n)
			return
		}
	}
	p.l.Warn("http server", "detail", codec.Clip(strings.TrimSpace(fmt.Sprintf(format, args...))))
}
