package auth

import "github.com/feedgate/feedgate/codec"

// NewStatic returns an Authorizer with API keys "id:secret" and the
// policy every edge had before capability tokens, for tests and embedded
// uses that state it on purpose:
//
//   - A client without credentials may subscribe to and read the history
//     of any channel (open subscribe).
//   - A valid key may do every channel operation on every channel
//     (DefaultKeyCapability); a wrong key is refused, never downgraded.
//   - With no keys at all, a client without credentials may also publish
//     (open publish).
//
// It accepts no tokens, issues none and takes no part in revocations.
// cmd/edge never builds this policy by itself: it runs open only when
// asked (-open).
func NewStatic(keys []string) (*Static, error) {
	a, err := New(Config{
		Keys:             keys,
		Anonymous:        Capability{rules: []rule{{pattern: "*", wild: true, ops: OpSubscribe | OpHistory}}},
		AnonymousPublish: len(keys) == 0,
		Logger:           discardLogger,
	})
	return &Static{a: a}, err
}

// Static is the pre-token policy (NewStatic): an Authorizer reduced to
// Authorize.
type Static struct{ a *Authorizer }

// Authorize is Authorizer.Authorize.
func (s *Static) Authorize(c codec.Credentials) (codec.Access, error) { return s.a.Authorize(c) }

// OpenPublish reports whether clients without credentials may publish.
func (s *Static) OpenPublish() bool { return s.a.cfg.AnonymousPublish }
