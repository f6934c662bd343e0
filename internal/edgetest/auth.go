package edgetest

import (
	"crypto/ed25519"
	"crypto/sha256"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/feedgate/feedgate/auth"
)

// API keys of TokenAuth.
const (
	PublisherKey = "pub:pub-secret-0123456789"     // publish on every channel
	IssuerKey    = "issuer:issuer-secret-01234567" // subscribe and history on odds:*; issues tokens
	AdminKey     = "admin:admin-secret-0123456789" // every operation, admin too
)

// TestIssuer and TestAudience are the iss and aud of TokenAuth's tokens.
const (
	TestIssuer   = "https://id.test"
	TestAudience = "feedgate-test"
)

// signingKey is the same for every TokenAuth, so that edges built with it
// accept each other's tokens, like edges that share a verification key.
var signingKey = ed25519.NewKeyFromSeed(func() []byte { h := sha256.Sum256([]byte("feedgate edgetest signing key")); return h[:] }())

// TokenAuth is a production-like policy for tests: no access without
// credentials, three API keys (PublisherKey, IssuerKey, AdminKey), and
// Ed25519 tokens (kid "test-1") that Signer signs and the token endpoint
// issues. now is the clock (nil: time.Now); log receives its logs (nil:
// discarded).
type TokenAuth struct {
	Authorizer *auth.Authorizer
	Signer     *auth.Signer
}

// MustTokenAuth builds a TokenAuth.
func MustTokenAuth(tb testing.TB, now func() time.Time, log *slog.Logger) TokenAuth {
	tb.Helper()
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	signer, err := auth.NewEd25519Signer("test-1", signingKey, TestIssuer, TestAudience)
	if err != nil {
		tb.Fatal(err)
	}
	v, err := auth.NewVerifier(auth.VerifierConfig{Keys: []auth.Key{signer.VerifyKey()}, Issuer: TestIssuer, Audience: TestAudience, Now: now, MaxTTL: 2 * time.Hour})
	if err != nil {
		tb.Fatal(err)
	}
	a, err := auth.New(auth.Config{
		AdminKeys: []string{AdminKey},
		KeysJSON: []byte(`{"keys":[
			{"id":"pub","secret":"pub-secret-0123456789","capability":{"*":["publish"]}},
			{"id":"issuer","secret":"issuer-secret-01234567","capability":{"odds:*":["subscribe","history"]}}]}`),
		Verifier: v,
		Signer:   signer,
		Logger:   log,
		Now:      now,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return TokenAuth{Authorizer: a, Signer: signer}
}

// Token signs a token for subject with capability (JSON) and ttl, issued at now.
func (ta TokenAuth) Token(tb testing.TB, subject, capability string, ttl time.Duration, now time.Time) (token, jti string) {
	tb.Helper()
	c, err := auth.ParseCapability([]byte(capability))
	if err != nil {
		tb.Fatal(err)
	}
	token, jti, err = ta.Signer.Sign(auth.TokenSpec{Subject: subject, Capability: c, TTL: ttl}, now)
	if err != nil {
		tb.Fatal(err)
	}
	return token, jti
}

// Clock is a fake clock for tests of expiry: it moves only when told.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a Clock at t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

// Add moves the clock forward by d.
func (c *Clock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }
