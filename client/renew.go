package client

import (
	"context"
	"errors"
	"time"

	"github.com/feedgate/feedgate/codec"
)

// Authorize renews the connection's capability token in place with an
// auth frame and waits for the edge's answer: nil once the new token is in
// force, or the refusal as an *codec.Error (the old token then stays in
// force). Attachments the new token still allows go on without a gap;
// each one it no longer allows is detached by the edge (for a Session, the
// subscription ends with forbidden).
func (c *Client) Authorize(ctx context.Context, token string) error {
	if token == "" {
		return errors.New("client: Authorize needs a token")
	}
	_, err := c.request(ctx, &codec.Frame{Type: codec.FrameAuth, Token: token})
	return err
}

// Renew asks SessionOptions.Credentials for a fresh token and renews the
// current connection's token with it, in place. A Session does this by
// itself when the edge warns that the token expires soon (token_expiring);
// call it to renew earlier, e.g. after the user's entitlements changed.
func (s *Session) Renew(ctx context.Context) error {
	if s.o.Credentials == nil {
		return errors.New("client: Renew needs SessionOptions.Credentials")
	}
	c, _, err := s.current(ctx)
	if err != nil {
		return err
	}
	cr, err := s.o.Credentials(ctx)
	if err != nil {
		return err
	}
	if cr.Token == "" {
		return errors.New("client: Credentials returned no token to renew with")
	}
	if err := c.Authorize(ctx, cr.Token); err != nil {
		return err
	}
	s.mu.Lock()
	if s.conn == c {
		s.creds.Token = cr.Token
	}
	s.mu.Unlock()
	s.renewals.Add(1)
	return nil
}

// onAuthFrame handles, on the read loop, the frames of token renewal: the
// expiry warning starts a renewal (off the read loop), and an unsolicited
// detached ends the subscription the new capability no longer allows.
func (s *Session) onAuthFrame(fr *codec.Frame) {
	switch {
	case fr.Type == codec.FrameError && fr.Ref == 0 && fr.Err != nil && fr.Err.Code == codec.CodeTokenExpiring:
		if s.o.Credentials == nil {
			return
		}
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := s.Renew(ctx); err != nil {
				s.o.Logger.Warn("session: token renewal failed; the edge will disconnect when it expires", "err", err)
			}
		}()
	case fr.Type == codec.FrameDetached && fr.Ref == 0 && fr.Err != nil:
		if sub := s.subscription(fr.Channel); sub != nil {
			go s.remove(sub, fr.Err)
		}
	}
}
