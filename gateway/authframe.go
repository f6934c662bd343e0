package gateway

import (
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"github.com/feedgate/feedgate/codec"
)

// AuthConfig configures how a Server follows credentials over a
// connection's life. The zero value of every field means its default.
type AuthConfig struct {
	// ExpiryWarning: this long before a connection's token expires, the
	// client gets an error frame with code token_expiring (default 30s),
	// its cue to renew with an auth frame.
	ExpiryWarning time.Duration
	// ExpiryGrace: a connection whose token expired this long ago without
	// a renewal is disconnected with token_expired (default 5s).
	ExpiryGrace time.Duration
	// CheckInterval is how often connections' expiry is checked (default
	// 1s): warnings and disconnects happen within it of their time.
	CheckInterval time.Duration
	// Reannounce is how often the edge announces its whole revocation list
	// to the others (default 1 minute), besides answering the request of
	// an edge that starts.
	Reannounce time.Duration
	// LocalOnly says that the backbone reaches no other edge (the
	// in-process one): revocations apply here and are not announced.
	LocalOnly bool
}

func (c *AuthConfig) setDefaults() {
	for _, d := range []struct {
		v *time.Duration
		d time.Duration
	}{{&c.ExpiryWarning, 30 * time.Second}, {&c.ExpiryGrace, 5 * time.Second}, {&c.CheckInterval, time.Second}, {&c.Reannounce, time.Minute}} {
		if *d.v <= 0 {
			*d.v = d.d
		}
	}
}

// Expirer is an optional ability of a codec.Access: Expires is when its
// credential (a token) expires, zero if never.
type Expirer interface {
	Expires() time.Time
}

// Validator is an optional ability of a codec.Access: Valid returns nil
// while its credential may be used, or why not (an *codec.Error: revoked,
// token_expired). The server asks it of every connection when the
// revocation list grows, and closes those it refuses.
type Validator interface {
	Valid() error
}

// connAuth is what the expiry checker and revocations need of a
// connection's credential; replaced whole on renewal.
type connAuth struct {
	access codec.Access
	exp    int64 // Unix nanoseconds; 0: never expires
	warned atomic.Bool
}

func newConnAuth(a codec.Access) *connAuth {
	ca := &connAuth{access: a}
	if e, ok := a.(Expirer); ok {
		if t := e.Expires(); !t.IsZero() {
			ca.exp = t.UnixNano()
		}
	}
	return ca
}

// renew handles an auth frame: the token replaces the connection's
// credential in place. Attachments the new capability still allows stay
// attached, with nothing lost; each one it no longer allows is detached
// with an unsolicited detached frame carrying forbidden (4030). A renewal
// that gives an anonymous connection a subject counts it against that
// subject's connection cap and rates from then on (too_many_connections if
// the subject holds its cap). A refused renewal leaves the old credential
// in force.
func (c *conn) renew(fr *codec.Frame) {
	if fr.Token == "" {
		c.refuse(fr.Type, fr.Ref, "", codec.Errorf(codec.CodeBadRequest, "an auth frame needs a token"))
		return
	}
	access, err := c.srv.cfg.Authorizer.Authorize(codec.Credentials{Token: fr.Token})
	if err != nil {
		c.refuse(fr.Type, fr.Ref, "", codec.AsError(err))
		return
	}
	if old := c.access.Subject(); old != "anonymous" && access.Subject() != old {
		c.refuse(fr.Type, fr.Ref, "", codec.Errorf(codec.CodeForbidden, "a renewal must keep the subject (%s, not %s): connect again for another one", codec.Clip(old), codec.Clip(access.Subject())))
		return
	}
	// A renewal that changes who the connection is (anonymous to a
	// subject) moves it to that subject's connection cap and rates: it
	// is refused, with the old token in force, if the subject holds its
	// cap already.
	p, r, e := c.srv.lim.move(c.principal, principalName(access, codec.Credentials{Token: fr.Token}), c.srv.cfg.Now())
	if e != nil {
		c.srv.stats.refused[r].Add(1)
		c.refuse(fr.Type, fr.Ref, "", e)
		return
	}
	c.principal = p
	c.access = access
	c.auth.Store(newConnAuth(access))
	for name, opts := range c.attached {
		if err := allowAttach(access, name, opts); err != nil {
			delete(c.attached, name)
			c.order.reset(name)
			if ch := c.srv.hub.get(name, false); ch != nil {
				ch.withdraw(c, codec.AsError(err))
			} else {
				// The edge forgot the channel (idle, no subscriber: the
				// attachment was publish_only, or a subscription ended
				// already): nothing of it is queued for c, and none will be.
				c.send(&codec.Frame{Type: codec.FrameDetached, Channel: name, Err: codec.AsError(err)})
			}
		}
	}
	c.log(slog.LevelDebug, "credential renewed", "subject", access.Subject())
	c.send(&codec.Frame{Type: codec.FrameAck, Ref: fr.Ref})
}

// allowAttach checks an attach: subscribing needs subscribe, a
// publish-only attach needs publish, and a rewind (a history read) needs
// history too.
func allowAttach(a codec.Access, channel string, o codec.AttachOptions) error {
	if o.PublishOnly {
		return a.CanPublish(channel)
	}
	if err := a.CanAttach(channel); err != nil {
		return err
	}
	if o.Rewind > 0 || o.RewindFor > 0 {
		return a.CanHistory(channel)
	}
	return nil
}

// withdraw detaches c because its credential no longer allows the
// channel: an unsolicited detached frame (no ref) with the reason.
func (ch *channel) withdraw(c *conn, reason *codec.Error) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	ch.lastUse = ch.h.now()
	ch.removeLocked(c)
	c.send(&codec.Frame{Type: codec.FrameDetached, Channel: ch.name, Err: reason})
}

// watchAuth warns connections whose token is about to expire, disconnects
// those whose token expired unrenewed, and re-announces the revocation
// list. One goroutine per server, no timer per connection.
func (s *Server) watchAuth() {
	rv, _ := s.cfg.Authorizer.(Revoker)
	if s.cfg.Auth.LocalOnly {
		rv = nil
	}
	if rv != nil {
		// Ask the other edges for their lists: a restarted edge learns
		// every revocation still in force within moments.
		s.announce(rv.SyncRequest())
		s.scheduleAnnounce(s.cfg.Auth.Reannounce)
	}
	s.every(s.cfg.Auth.CheckInterval, func() {
		now := s.cfg.Now()
		s.checkExpiry(now)
		if rv != nil {
			if due := s.announceAt.Load(); due != 0 && now.UnixNano() >= due && s.announceAt.CompareAndSwap(due, 0) {
				if b := rv.Announcement(); b != nil {
					s.announce(b)
				}
				s.scheduleAnnounce(s.cfg.Auth.Reannounce)
			}
		}
	})
}

func (s *Server) checkExpiry(now time.Time) {
	warnAt := now.Add(s.cfg.Auth.ExpiryWarning).UnixNano()
	endAt := now.Add(-s.cfg.Auth.ExpiryGrace).UnixNano()
	s.conns.Range(func(k, _ any) bool {
		c := k.(*conn)
		ca := c.auth.Load()
		if ca == nil || ca.exp == 0 {
			return true
		}
		switch {
		case ca.exp <= endAt:
			c.disconnect(EndTokenExpired, codec.Errorf(codec.CodeTokenExpired, "the token expired and was not renewed; connect again with a fresh token"), true)
		case ca.exp <= warnAt && ca.warned.CompareAndSwap(false, true):
			left := time.Duration(ca.exp - now.UnixNano()).Round(time.Second)
			c.send(&codec.Frame{Type: codec.FrameError, Err: codec.Errorf(codec.CodeTokenExpiring, "the token expires in %v: renew it with an auth frame", max(left, 0))})
		}
		return true
	})
}

// scheduleAnnounce sets the next announcement of the revocation list in
// d, unless one is due sooner.
func (s *Server) scheduleAnnounce(d time.Duration) {
	at := s.cfg.Now().Add(d).UnixNano()
	for {
		cur := s.announceAt.Load()
		if cur != 0 && cur <= at {
			return
		}
		if s.announceAt.CompareAndSwap(cur, at) {
			return
		}
	}
}

// announce publishes b on the revocations channel; done, if set, gets
// the backbone's answer. It is not a client's publish: the Observer does
// not see it.
func (s *Server) announce(b []byte, done ...func(error)) {
	if s.cfg.Auth.LocalOnly {
		for _, f := range done {
			f(nil)
		}
		return
	}
	m := &codec.Message{Channel: codec.RevocationsChannel, Name: "revocations", Data: b, ID: s.newID(), Time: s.cfg.Now().UnixMilli()}
	s.bb.Publish(m, func(err error) {
		if err != nil {
			s.cfg.Logger.Warn("revocations: announcement not accepted by the backbone", "err", err)
		}
		for _, f := range done {
			f(err)
		}
	})
}

// deliverSystem handles a message on a system channel (never fanned out
// to clients); it reports whether m was one.
func (s *Server) deliverSystem(m *codec.Message) bool {
	if !strings.HasPrefix(m.Channel, codec.SystemChannelPrefix) {
		return false
	}
	rv, ok := s.cfg.Authorizer.(Revoker)
	if m.Channel != codec.RevocationsChannel || !ok {
		return true
	}
	changed, sync, err := rv.ApplyAnnouncement(m.Data)
	if err != nil {
		s.cfg.Logger.Warn("revocations: announcement refused", "id", m.ID, "err", err)
	}
	if changed {
		go s.enforceRevocations() // deliver must not block
	}
	if sync && !strings.HasPrefix(m.ID, s.idPrefix) {
		// Answer an edge that started, after a random delay so that the
		// edges do not all answer at once (the first answer is enough; a
		// few more do no harm).
		s.scheduleAnnounce(time.Duration(rand.Int64N(int64(2 * time.Second))))
	}
	return true
}

// revalidate checks the connection's credential again once it is
// registered in s.conns: a revocation applied between Authorize and the
// registration was missed by enforceRevocations' scan, and is caught here
// (the scan sees the connection, or this check sees the revocation).
func (c *conn) revalidate() {
	if v, ok := c.access.(Validator); ok {
		if err := v.Valid(); err != nil {
			e := codec.AsError(err)
			c.disconnect(EndRevoked, e, e.Code != codec.CodeRevoked)
		}
	}
}

// enforceRevocations closes every connection whose credential the
// revocation list now refuses, with the reason as its disconnect.
func (s *Server) enforceRevocations() {
	s.conns.Range(func(k, _ any) bool {
		c := k.(*conn)
		ca := c.auth.Load()
		if ca == nil {
			return true
		}
		if v, ok := ca.access.(Validator); ok {
			if err := v.Valid(); err != nil {
				e := codec.AsError(err)
				c.disconnect(EndRevoked, e, e.Code != codec.CodeRevoked)
			}
		}
		return true
	})
}
