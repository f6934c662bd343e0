package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"strings"

	"github.com/feedgate/feedgate/codec"
)

// Static authorises with a fixed set of API keys.
//
//   - A connection or request without an API key is a subscriber: it may
//     attach any channel (the open subscriber policy) and may not publish.
//   - A valid API key may attach and publish on any channel.
//   - An unknown or wrong API key is refused (unauthorized), never
//     downgraded to a subscriber, so a misconfigured publisher fails loudly.
//   - With no keys configured at all (OpenPublish), anyone may publish: the
//     zero-configuration default of a development edge. cmd/edge logs a
//     warning when it runs this way.
type Static struct {
	keys        map[string][32]byte // key ID -> SHA-256 of the secret
	openPublish bool
}

// NewStatic parses API keys of the form "id:secret". With none, publishing
// is open to all.
func NewStatic(keys []string) (*Static, error) {
	s := &Static{keys: make(map[string][32]byte), openPublish: len(keys) == 0}
	for _, k := range keys {
		id, secret, ok := strings.Cut(k, ":")
		if !ok || id == "" || len(secret) < 16 {
			return nil, fmt.Errorf("auth: API key %q must be id:secret with a secret of at least 16 characters", redact(k))
		}
		s.keys[id] = sha256.Sum256([]byte(secret))
	}
	return s, nil
}

// OpenPublish reports whether anyone may publish (no keys configured).
func (s *Static) OpenPublish() bool { return s.openPublish }

// Authorize checks an API key, if one was presented.
func (s *Static) Authorize(c codec.Credentials) (codec.Access, error) {
	if c.APIKey == "" {
		return Access{publish: s.openPublish}, nil
	}
	id, secret, _ := strings.Cut(c.APIKey, ":")
	want, ok := s.keys[id]
	got := sha256.Sum256([]byte(secret))
	if !ok || subtle.ConstantTimeCompare(want[:], got[:]) != 1 {
		return nil, codec.Errorf(codec.CodeUnauthorized, "unknown API key or wrong secret")
	}
	return Access{publish: true, keyID: id}, nil
}

// Access is what one client may do.
type Access struct {
	publish bool
	keyID   string
}

// CanAttach allows every channel: the open subscriber policy.
func (a Access) CanAttach(string) error { return nil }

// CanPublish allows publishers (a valid API key, or open publishing).
func (a Access) CanPublish(string) error {
	if !a.publish {
		return codec.Errorf(codec.CodeUnauthorized, "publishing needs an API key (Authorization: Bearer id:secret)")
	}
	return nil
}

func redact(k string) string {
	id, _, _ := strings.Cut(k, ":")
	return id + ":…"
}
