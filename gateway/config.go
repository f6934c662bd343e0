package gateway

import (
	"errors"
	"log/slog"
	"time"
)

// Config configures a Server. The zero value of every field means its default.
type Config struct {
	// MaxFrameSize is the largest client frame accepted, in bytes (default
	// 64 KiB). Larger frames are refused with frame_too_large and skipped;
	// the connection goes on.
	MaxFrameSize int
	// MaxBatch bounds the messages of one HTTP publish request (default
	// 1000). A larger batch is refused whole, before anything is published.
	MaxBatch int
	// MaxChannelsPerConn bounds the channels one connection may attach
	// (default 512).
	MaxChannelsPerConn int
	// SendQueueBytes bounds the bytes waiting to be written to one
	// connection (default 1 MiB). A subscriber that falls further behind is
	// disconnected as a slow consumer; the others are not affected. The
	// replays of rewinds and resumes have room of their own on top, up to
	// HistorySize × MaxFrameSize (replay.go).
	SendQueueBytes int
	// SocketSendBuffer, if set, caps the kernel's send buffer per
	// connection (SO_SNDBUF), in bytes. Linux otherwise grows it to a few
	// MB for a client that stops reading, memory the SendQueueBytes limit
	// does not see and a delay before a stalled client counts as slow.
	SocketSendBuffer int
	// WriteTimeout bounds one socket write (default 10s); a connection that
	// cannot take a write for that long is dropped.
	WriteTimeout time.Duration
	// HeartbeatInterval is how often the edge sends a heartbeat (default 20s,
	// under common proxy idle limits: ALB 60s, Cloudflare 100s).
	HeartbeatInterval time.Duration
	// IdleTimeout: a connection from which nothing was read for this long is
	// dropped (default 3 × HeartbeatInterval). Clients answer heartbeats.
	IdleTimeout time.Duration
	// MaxErrors is how many bad frames a connection may send within
	// ErrorWindow before it is disconnected (defaults 10 per 10s).
	MaxErrors   int
	ErrorWindow time.Duration
	// DrainPeriod is how long a graceful shutdown spreads its "reconnect
	// elsewhere" disconnects over (default 5s).
	DrainPeriod time.Duration
	// HistorySize and HistoryAge bound each channel's history, which serves
	// rewind, resume and the history endpoint (defaults 1000 messages and
	// 2 minutes, whichever is reached first).
	HistorySize int
	HistoryAge  time.Duration
	// ReadBufferSize is the WebSocket read buffer per connection (default
	// 1 KiB: memory per idle connection matters more than read syscalls for
	// clients that mostly listen).
	ReadBufferSize int

	// Limits bounds publishes, attaches and connections per connection and
	// per key or token subject (limits.go).
	Limits Limits
	// Deflate offers permessage-deflate (RFC 7692, without context
	// takeover) to clients that ask for it: message frames are then
	// compressed once per message and variant and shared by every such
	// subscriber. Off by default: on the odds feed it pays only for full
	// JSON frames (docs/bandwidth.md).
	Deflate bool
	// AllowedOrigins, if set, lists the browser origins that may open a
	// WebSocket connection: exact ("https://odds.example.com") or with a
	// wildcard host ("https://*.example.com"); see origin.go for the rules.
	// Requests without an Origin header (clients that are not browsers) are
	// always allowed. Empty: every origin may connect.
	AllowedOrigins []string

	// Authorizer decides what clients may do. Required. If it is also a
	// TokenIssuer or a Revoker, the server serves POST /v1/tokens or POST
	// /v1/revocations and relays revocations between edges.
	Authorizer Authorizer
	// Auth configures token expiry warnings and revocation announcements.
	Auth AuthConfig
	// Observer, if set, is told the latencies worth a histogram (see
	// Observer). Nil costs nothing.
	Observer Observer
	// Logger receives the server's logs (default slog.Default()).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Observer receives per-message timings, for latency histograms. Its
// methods are called once per message (never per subscriber), on the
// publish and delivery paths: they must be cheap and must not block.
type Observer interface {
	// Published: a publish (WebSocket or HTTP) was answered d after it was
	// handed to the backbone; err is nil when it was acknowledged.
	Published(d time.Duration, err error)
	// Delivered: a message from the backbone was queued to this edge's
	// subscribers of its channel. lag is how long after its origin edge
	// accepted it the message reached this edge's fan-out (across edges it
	// includes the backbone and any clock difference between the hosts);
	// fanout is how long queueing it to all of them took.
	Delivered(lag, fanout time.Duration, subscribers int)
}

func (c *Config) setDefaults() error {
	if c.Authorizer == nil {
		return errors.New("gateway: Config.Authorizer is required")
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.MaxFrameSize, 64<<10)
	def(&c.MaxChannelsPerConn, 512)
	def(&c.MaxBatch, 1000)
	def(&c.SendQueueBytes, 1<<20)
	def(&c.MaxErrors, 10)
	def(&c.ReadBufferSize, 1024)
	def(&c.HistorySize, 1000)
	defd := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	defd(&c.WriteTimeout, 10*time.Second)
	defd(&c.HeartbeatInterval, 20*time.Second)
	defd(&c.IdleTimeout, 3*c.HeartbeatInterval)
	defd(&c.ErrorWindow, 10*time.Second)
	defd(&c.HistoryAge, 2*time.Minute)
	defd(&c.DrainPeriod, 5*time.Second)
	c.Auth.setDefaults()
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c.Limits.setDefaults(c.MaxChannelsPerConn, c.MaxBatch)
}
