package auth

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
// It accepts no tokens. cmd/edge never builds this policy by itself: it
// runs open only when asked (-open).
func NewStatic(keys []string) (*Authorizer, error) {
	a, err := New(Config{
		Keys:             keys,
		Anonymous:        Capability{rules: []rule{{pattern: "*", wild: true, ops: OpSubscribe | OpHistory}}},
		AnonymousPublish: len(keys) == 0,
		Logger:           discardLogger,
	})
	return a, err
}

// OpenPublish reports whether clients without credentials may publish.
func (a *Authorizer) OpenPublish() bool {
	return a.cfg.Anonymous.Allows("x", OpPublish) || a.cfg.AnonymousPublish
}
