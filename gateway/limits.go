package gateway

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/feedgate/feedgate/codec"
)

// Rate is a token bucket: PerSecond sustained, up to Burst at once.
type Rate struct {
	// PerSecond is the sustained rate. Zero means the default; negative
	// means no limit.
	PerSecond float64
	// Burst is how many may come at once (the bucket's size). Zero means
	// the default's burst when PerSecond is zero too, otherwise two seconds'
	// worth of PerSecond.
	Burst int
}

// Off reports whether r sets no limit.
func (r Rate) Off() bool { return r.PerSecond < 0 }

// String formats r as its flag value: "off", or "PerSecond:Burst".
func (r Rate) String() string {
	if r.Off() {
		return "off"
	}
	return strconv.FormatFloat(r.PerSecond, 'g', -1, 64) + ":" + strconv.Itoa(r.Burst)
}

// ParseRate reads a Rate written as "off", "R" (R per second, burst 2R) or
// "R:B"; "" is the zero Rate (the default).
func ParseRate(s string) (Rate, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return Rate{}, nil
	case strings.EqualFold(s, "off"):
		return Rate{PerSecond: -1}, nil
	}
	rs, bs, hasBurst := strings.Cut(s, ":")
	r, err := strconv.ParseFloat(rs, 64)
	if err != nil || r <= 0 || math.IsInf(r, 0) || math.IsNaN(r) {
		return Rate{}, fmt.Errorf("rate %q: want off, RATE or RATE:BURST with RATE a positive number per second", s)
	}
	out := Rate{PerSecond: r}
	if hasBurst {
		b, err := strconv.Atoi(bs)
		if err != nil || b < 1 {
			return Rate{}, fmt.Errorf("rate %q: BURST must be a positive integer", s)
		}
		out.Burst = b
	}
	return out, nil
}

// withDefault fills r's zero fields from def.
func (r Rate) withDefault(def Rate) Rate {
	switch {
	case r.Off():
		return r
	case r.PerSecond == 0:
		r.PerSecond = def.PerSecond
		if r.Burst == 0 {
			r.Burst = def.Burst
		}
	case r.Burst == 0:
		r.Burst = max(1, int(math.Ceil(2*r.PerSecond)))
	}
	return r
}

// newLimiter returns a limiter for r, or nil for no limit.
func (r Rate) newLimiter() *rate.Limiter {
	if r.Off() {
		return nil
	}
	return rate.NewLimiter(rate.Limit(r.PerSecond), r.Burst)
}

// refill is how long an emptied bucket takes to fill up again.
func (r Rate) refill() time.Duration {
	if r.Off() {
		return 0
	}
	return time.Duration(float64(r.Burst) / r.PerSecond * float64(time.Second))
}

// Limits bounds what one connection, and one key (an API key or a token
// subject, "principal" below), may do on this edge. The zero value of every
// field means its default. Limits are per edge: a key connected to three
// edges may do three times as much.
type Limits struct {
	// PublishPerConn bounds the messages one WebSocket connection may
	// publish. Default 10,000/s, burst 20,000: an odds provider reprices
	// every market of a match at once on a goal (a few thousand messages),
	// and the burst takes two such repricings back to back.
	PublishPerConn Rate
	// PublishPerKey bounds the messages one principal may publish on this
	// edge, over all its connections and HTTP batches (counted per
	// message). Default 20,000/s, burst 40,000: twice a connection's, so a
	// provider may spread its sports over a few connections. It must hold
	// a whole HTTP batch (Burst ≥ MaxBatch).
	PublishPerKey Rate
	// AttachPerConn bounds one connection's attaches. Default 100/s with a
	// burst of MaxChannelsPerConn, so a client that reconnects attaches all
	// its channels again at once.
	AttachPerConn Rate
	// AttachPerKey bounds one principal's attaches over all its
	// connections. Default 1,000/s, burst 20,000: a server fleet sharing a
	// key re-attaching everything after a drain.
	AttachPerKey Rate
	// ConnsPerKey caps the WebSocket connections one principal holds on
	// this edge (default 1,000; negative: no cap). Connections without a
	// key or subject are not counted: each is its own principal.
	ConnsPerKey int
	// MaxConnections caps the edge's WebSocket connections (default 0: no
	// cap). Over it, upgrades are refused with edge_full.
	MaxConnections int
	// MaxKeys bounds the principals remembered while they hold no
	// connection (default 65,536, about 270 bytes each). A principal
	// without connections whose buckets have filled up again is forgotten
	// at no cost; past MaxKeys, an arbitrary one without connections is
	// forgotten early (it starts again with full buckets).
	MaxKeys int
}

// Default limits; see the fields of Limits for why.
var (
	defaultPublishPerConn = Rate{PerSecond: 10_000, Burst: 20_000}
	defaultPublishPerKey  = Rate{PerSecond: 20_000, Burst: 40_000}
	defaultAttachPerConn  = Rate{PerSecond: 100} // Burst: MaxChannelsPerConn
	defaultAttachPerKey   = Rate{PerSecond: 1_000, Burst: 20_000}
)

const (
	defaultConnsPerKey = 1000
	defaultMaxKeys     = 1 << 16
)

func (l *Limits) setDefaults(maxChannels, maxBatch int) error {
	l.PublishPerConn = l.PublishPerConn.withDefault(defaultPublishPerConn)
	l.PublishPerKey = l.PublishPerKey.withDefault(defaultPublishPerKey)
	l.AttachPerConn = l.AttachPerConn.withDefault(Rate{PerSecond: defaultAttachPerConn.PerSecond, Burst: maxChannels})
	l.AttachPerKey = l.AttachPerKey.withDefault(defaultAttachPerKey)
	if l.ConnsPerKey == 0 {
		l.ConnsPerKey = defaultConnsPerKey
	}
	if l.MaxKeys <= 0 {
		l.MaxKeys = defaultMaxKeys
	}
	if !l.PublishPerKey.Off() && l.PublishPerKey.Burst < maxBatch {
		return fmt.Errorf("gateway: Limits.PublishPerKey burst %d is below MaxBatch %d: an HTTP batch could never be published", l.PublishPerKey.Burst, maxBatch)
	}
	return nil
}

// Refusal is why the edge refused a request for a limit or a policy.
type Refusal uint8

const (
	// RefusedPublishConn: a publish over the connection's rate.
	RefusedPublishConn Refusal = iota
	// RefusedPublishKey: a publish (WebSocket, or an HTTP batch) over its
	// principal's rate.
	RefusedPublishKey
	// RefusedAttachConn: an attach over the connection's rate.
	RefusedAttachConn
	// RefusedAttachKey: an attach over its principal's rate.
	RefusedAttachKey
	// RefusedConnsPerKey: an upgrade over its principal's connection cap.
	RefusedConnsPerKey
	// RefusedEdgeFull: an upgrade over the edge's connection cap.
	RefusedEdgeFull
	// RefusedOrigin: an upgrade from a browser page whose Origin is not
	// allowed.
	RefusedOrigin

	// NumRefusals is the number of Refusal values.
	NumRefusals
)

var refusalNames = [NumRefusals]string{"publish_rate_conn", "publish_rate_key", "attach_rate_conn", "attach_rate_key", "conns_per_key", "edge_full", "origin"}

// String returns the refusal's name, as used for metric labels.
func (r Refusal) String() string {
	if r < NumRefusals {
		return refusalNames[r]
	}
	return "unknown"
}

// principalName is the name limits are counted against for a client with
// access a and credentials c: its subject ("key:<id>" or "sub:<subject>"),
// else its API key's ID, else "" (anonymous: a WebSocket connection is then
// its own principal).
func principalName(a codec.Access, c codec.Credentials) string {
	if a != nil {
		if sub := a.Subject(); sub != "" && sub != codec.AnonymousSubject {
			return sub
		}
	}
	if c.APIKey != "" {
		id, _, _ := strings.Cut(c.APIKey, ":") // the secret stays out
		return "key:" + id
	}
	return ""
}

// principal is the state of one key or subject on this edge.
type principal struct {
	name     string
	pub, att *rate.Limiter // nil: no limit

	// Guarded by limiter.mu.
	conns    int
	lastUsed int64 // Unix nanoseconds
}

// limiter holds the edge's limits and the per-principal state. Safe for
// concurrent use.
type limiter struct {
	cfg   Limits
	conns atomic.Int64 // WebSocket connections admitted and not yet ended

	// idleAfter: a principal without connections unused this long has full
	// buckets again, as good as new.
	idleAfter time.Duration

	mu      sync.Mutex // guards the fields below and every principal's conns and lastUsed
	keys    map[string]*principal
	idle    int   // principals with no connection
	sweptAt int64 // Unix nanoseconds of the last sweep
}

func newLimiter(cfg Limits) *limiter {
	return &limiter{
		cfg:       cfg,
		keys:      make(map[string]*principal),
		idleAfter: max(cfg.PublishPerKey.refill(), cfg.AttachPerKey.refill()),
	}
}

// getLocked returns name's principal, remembering a new one if needed
// (forgetting an idle one if MaxKeys are remembered).
func (l *limiter) getLocked(name string, now time.Time) *principal {
	p, ok := l.keys[name]
	if !ok {
		// At the bound, a sweep (of the whole table) runs at most once a
		// second; in between, an arbitrary idle principal makes room.
		if l.idle >= l.cfg.MaxKeys && now.UnixNano()-l.sweptAt >= int64(time.Second) {
			l.sweepLocked(now)
		}
		if l.idle >= l.cfg.MaxKeys {
			for k, q := range l.keys {
				if q.conns == 0 {
					delete(l.keys, k)
					l.idle--
					break
				}
			}
		}
		p = &principal{name: name, pub: l.cfg.PublishPerKey.newLimiter(), att: l.cfg.AttachPerKey.newLimiter()}
		l.keys[name] = p
		l.idle++
	}
	p.lastUsed = now.UnixNano()
	return p
}

// principal returns name's principal for a request that holds no
// connection (an HTTP publish).
func (l *limiter) principal(name string, now time.Time) *principal {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.getLocked(name, now)
}

// canConnect reports whether a new connection of principal name (""
// for none) would be admitted now, or the refusal. It reserves nothing:
// acquire, once the connection is upgraded, decides.
func (l *limiter) canConnect(name string) (Refusal, *codec.Error) {
	if m := l.cfg.MaxConnections; m > 0 && l.conns.Load() >= int64(m) {
		return RefusedEdgeFull, l.edgeFull()
	}
	if name == "" || l.cfg.ConnsPerKey < 0 {
		return 0, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if p, ok := l.keys[name]; ok && p.conns >= l.cfg.ConnsPerKey {
		return RefusedConnsPerKey, l.tooManyConns()
	}
	return 0, nil
}

// acquire admits a connection of principal name ("" for none): it counts
// the connection, and returns its principal (nil for none). Every admitted
// connection is released once.
func (l *limiter) acquire(name string, now time.Time) (*principal, Refusal, *codec.Error) {
	if m := l.cfg.MaxConnections; m > 0 {
		if l.conns.Add(1) > int64(m) {
			l.conns.Add(-1)
			return nil, RefusedEdgeFull, l.edgeFull()
		}
	} else {
		l.conns.Add(1)
	}
	if name == "" {
		return nil, 0, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.getLocked(name, now)
	if l.cfg.ConnsPerKey >= 0 && p.conns >= l.cfg.ConnsPerKey {
		l.conns.Add(-1)
		return nil, RefusedConnsPerKey, l.tooManyConns()
	}
	if p.conns == 0 {
		l.idle--
	}
	p.conns++
	return p, 0, nil
}

// release ends a connection admitted by acquire, of principal p (nil for
// none).
func (l *limiter) release(p *principal, now time.Time) {
	l.conns.Add(-1)
	if p == nil {
		return
	}
	l.mu.Lock()
	p.conns--
	if p.conns == 0 {
		l.idle++
	}
	p.lastUsed = now.UnixNano()
	l.mu.Unlock()
}

// move moves an admitted connection from principal old (nil for none) to
// principal name ("" for none), when a renewal changes who it counts
// against: it takes a slot of name's cap first (refusing, with nothing
// changed, if name holds its cap), then gives back old's. The edge's count
// of connections is unchanged. It returns the connection's principal.
func (l *limiter) move(old *principal, name string, now time.Time) (*principal, Refusal, *codec.Error) {
	if old != nil && old.name == name || old == nil && name == "" {
		return old, 0, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var p *principal
	if name != "" {
		p = l.getLocked(name, now)
		if l.cfg.ConnsPerKey >= 0 && p.conns >= l.cfg.ConnsPerKey {
			return old, RefusedConnsPerKey, l.tooManyConns()
		}
		if p.conns == 0 {
			l.idle--
		}
		p.conns++
	}
	if old != nil {
		old.conns--
		if old.conns == 0 {
			l.idle++
		}
		old.lastUsed = now.UnixNano()
	}
	return p, 0, nil
}

func (l *limiter) edgeFull() *codec.Error {
	return codec.Errorf(codec.CodeEdgeFull, "this edge holds its maximum of %d connections; connect to another edge", l.cfg.MaxConnections)
}

func (l *limiter) tooManyConns() *codec.Error {
	return codec.Errorf(codec.CodeTooManyConnections, "this key or subject holds its maximum of %d connections on this edge; close one first", l.cfg.ConnsPerKey)
}

// sweep forgets the principals without connections whose buckets have
// filled up again.
func (l *limiter) sweep(now time.Time) {
	l.mu.Lock()
	l.sweepLocked(now)
	l.mu.Unlock()
}

func (l *limiter) sweepLocked(now time.Time) {
	l.sweptAt = now.UnixNano()
	before := now.Add(-l.idleAfter).UnixNano()
	for k, p := range l.keys {
		if p.conns == 0 && p.lastUsed <= before {
			delete(l.keys, k)
			l.idle--
		}
	}
}

// remembered returns how many principals are remembered, and how many of
// them hold no connection.
func (l *limiter) remembered() (total, idle int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.keys), l.idle
}

// take takes n tokens from own and shared, or from neither (nil sets no
// limit). own is a bucket only its caller's goroutine takes from (a
// connection's reader), so checking it first and taking from it last
// cannot be split by another taker; shared is a principal's. It returns
// 0 if taken, or 1 (own) or 2 (shared) for the bucket short of tokens and
// how long until it will hold them.
func take(now time.Time, n int, own, shared *rate.Limiter) (int, time.Duration) {
	if own != nil && own.TokensAt(now) < float64(n) {
		return 1, wait(own, now, n)
	}
	if shared != nil && !shared.AllowN(now, n) {
		return 2, wait(shared, now, n)
	}
	if own != nil {
		own.AllowN(now, n)
	}
	return 0, 0
}

// wait is how long until b holds n tokens (at least a millisecond).
func wait(b *rate.Limiter, now time.Time, n int) time.Duration {
	missing := float64(n) - b.TokensAt(now)
	d := time.Duration(math.Ceil(missing / float64(b.Limit()) * float64(time.Second)))
	return max(d.Round(time.Millisecond), time.Millisecond)
}

// rateLimited is the refusal of a request over a rate.
func rateLimited(what string, r Rate, retry time.Duration) *codec.Error {
	e := codec.Errorf(codec.CodeRateLimited, "%s rate limit (%s/s, burst %d) reached; retry in %v", what,
		strconv.FormatFloat(r.PerSecond, 'g', -1, 64), r.Burst, retry)
	e.RetryAfter = retry
	return e
}

// connLimits are one connection's buckets, made on its first attach or
// publish. Owned by the connection's reader.
type connLimits struct {
	pub, att *rate.Limiter // nil: no limit
	// Refusals for a rate (and publishes refused behind one, to keep
	// order) take from these, at the same rate and burst; a client that
	// empties them counts each further refusal against its error budget.
	pubStrikes, attStrikes *rate.Limiter
}

func (c *conn) limits() *connLimits {
	if c.lim == nil {
		l := &c.srv.cfg.Limits
		c.lim = &connLimits{pub: l.PublishPerConn.newLimiter(), att: l.AttachPerConn.newLimiter()}
	}
	return c.lim
}

// limitPublish takes one publish from the connection's and its principal's
// buckets, or returns the refusal (rate_limited).
func (c *conn) limitPublish(now time.Time) *codec.Error {
	var shared *rate.Limiter
	if c.principal != nil {
		shared = c.principal.pub
	}
	l := &c.srv.cfg.Limits
	switch which, retry := take(now, 1, c.limits().pub, shared); which {
	case 1:
		c.srv.stats.refused[RefusedPublishConn].Add(1)
		return rateLimited("this connection's publish", l.PublishPerConn, retry)
	case 2:
		c.srv.stats.refused[RefusedPublishKey].Add(1)
		return rateLimited("this key's publish", l.PublishPerKey, retry)
	}
	return nil
}

// limitAttach is limitPublish for attaches.
func (c *conn) limitAttach(now time.Time) *codec.Error {
	var shared *rate.Limiter
	if c.principal != nil {
		shared = c.principal.att
	}
	l := &c.srv.cfg.Limits
	switch which, retry := take(now, 1, c.limits().att, shared); which {
	case 1:
		c.srv.stats.refused[RefusedAttachConn].Add(1)
		return rateLimited("this connection's attach", l.AttachPerConn, retry)
	case 2:
		c.srv.stats.refused[RefusedAttachKey].Add(1)
		return rateLimited("this key's attach", l.AttachPerKey, retry)
	}
	return nil
}

// strike takes one refusal from the connection's allowance for publish (or
// attach) refusals; past it, the refusal counts against the error budget.
// The allowance has the connection's rate and burst (the principal's if
// the connection has none): a client that keeps sending at more than
// twice what it may is disconnected (too_many_errors), one that sends
// what it pipelined before the first refusal reached it is not.
func (c *conn) strike(now time.Time, publish bool) {
	l, cl := &c.srv.cfg.Limits, c.limits()
	b, r, alt := &cl.attStrikes, l.AttachPerConn, l.AttachPerKey
	if publish {
		b, r, alt = &cl.pubStrikes, l.PublishPerConn, l.PublishPerKey
	}
	if r.Off() {
		r = alt
	}
	if *b == nil {
		if *b = r.newLimiter(); *b == nil {
			return
		}
	}
	if !(*b).AllowN(now, 1) {
		c.countError(now)
	}
}

// refuseOverRate refuses publish m if it is over a rate, like the backbone
// refuses one: with a nack carrying its id (assigned here if the client
// gave none), and later publishes on the channel wait for its retry
// (publishOrder). It reports whether m was refused.
func (c *conn) refuseOverRate(now time.Time, ref uint64, channel string, m *codec.Message, seq uint64) bool {
	e := c.limitPublish(now)
	if e == nil {
		return false
	}
	if m.ID == "" {
		m.ID = c.srv.newID()
	}
	c.order.refused(channel, m.ID, seq)
	c.send(&codec.Frame{Type: codec.FrameNack, Ref: ref, Channel: channel, Msg: codec.Message{ID: m.ID}, Err: e})
	c.strike(now, true)
	return true
}
