package auth

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/feedgate/feedgate/codec"
)

// CapabilityClaim is the JWT claim that carries a token's capability, as a
// JSON object (not a string): {"odds:*":["subscribe","history"]}.
const CapabilityClaim = "x-feedgate-capability"

// MaxTokenBytes is the largest token accepted by default, checked before
// anything is parsed: 4 KiB holds a capability of dozens of patterns,
// and fits the 4 KiB request head of the upgrade when sent as a query
// parameter (a longer one could not arrive that way anyway).
const MaxTokenBytes = 4096

// claims is a token's payload.
type claims struct {
	jwt.RegisteredClaims
	Capability *Capability `json:"x-feedgate-capability,omitempty"`
	// AuthorizedParty (azp) is the API key ID that issued the token through
	// POST /v1/tokens: revoking the key revokes its tokens too.
	AuthorizedParty string `json:"azp,omitempty"`
}

// Token is a verified capability token.
type Token struct {
	Subject    string
	ID         string // jti
	Issuer     string
	KeyID      string // azp: the API key that issued it, if issued by an edge
	IssuedAt   time.Time
	Expires    time.Time
	Capability Capability
}

// VerifierConfig configures a Verifier. Issuer and Audience are required.
type VerifierConfig struct {
	// Keys verify tokens by kid. Several may be configured at once so keys
	// can rotate: add the new public key everywhere, then sign with it,
	// then remove the old one once its tokens expired.
	Keys []Key
	// JWKS, if set, supplies keys not in Keys (an identity service's key set).
	JWKS *JWKS
	// Issuer is the required "iss"; Audience must be among "aud".
	Issuer, Audience string
	// Leeway tolerates clock skew on exp, nbf and iat (default 5s).
	Leeway time.Duration
	// MaxTTL refuses tokens whose lifetime (exp - iat) is longer (default
	// 24h). Bounding it bounds how long a revocation must be remembered.
	MaxTTL time.Duration
	// MaxBytes refuses longer tokens before parsing them (default
	// MaxTokenBytes).
	MaxBytes int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Verifier checks capability tokens. Safe for concurrent use.
type Verifier struct {
	cfg    VerifierConfig
	keys   map[string]Key
	parser *jwt.Parser
}

// NewVerifier validates cfg and returns a Verifier.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("auth: a token verifier needs an issuer and an audience")
	}
	if len(cfg.Keys) == 0 && cfg.JWKS == nil {
		return nil, errors.New("auth: a token verifier needs keys or a JWKS URL")
	}
	if cfg.Leeway <= 0 {
		cfg.Leeway = 5 * time.Second
	}
	if cfg.MaxTTL <= 0 {
		cfg.MaxTTL = 24 * time.Hour
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = MaxTokenBytes
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	v := &Verifier{cfg: cfg, keys: make(map[string]Key)}
	for _, k := range cfg.Keys {
		if err := k.check(); err != nil {
			return nil, fmt.Errorf("auth: %w", err)
		}
		if _, dup := v.keys[k.ID]; dup {
			return nil, fmt.Errorf("auth: verification key %q configured twice", k.ID)
		}
		v.keys[k.ID] = k
	}
	v.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{AlgEdDSA, AlgES256, AlgHS256}),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithAudience(cfg.Audience),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(cfg.Now),
		jwt.WithStrictDecoding(),
	)
	return v, nil
}

// MaxTTL is the longest token lifetime accepted.
func (v *Verifier) MaxTTL() time.Duration { return v.cfg.MaxTTL }

var (
	errUnknownKid   = errors.New("unknown kid")
	errAlgMismatch  = errors.New("alg is not the key's")
	errKidType      = errors.New("kid is not a string")
	errNoCapability = errors.New("no " + CapabilityClaim + " claim")
)

func (v *Verifier) key(t *jwt.Token) (any, error) {
	kidv, present := t.Header["kid"]
	kid, ok := kidv.(string)
	if present && !ok {
		return nil, errKidType
	}
	k, found := v.keys[kid]
	if !found && v.cfg.JWKS != nil && kid != "" {
		k, found = v.cfg.JWKS.Lookup(kid)
	}
	if !found {
		return nil, errUnknownKid
	}
	if t.Method.Alg() != k.Alg {
		return nil, errAlgMismatch
	}
	return k.Public, nil
}

// Verify checks a token and returns its claims, or an *codec.Error whose
// code says why it was refused (docs/protocol.md §15): token_too_large,
// token_invalid (malformed, bad signature, "none" or an algorithm that is
// not the key's, missing claims, a lifetime over MaxTTL, a bad capability),
// token_unknown_key, token_expired, token_not_yet_valid,
// token_wrong_issuer, token_wrong_audience.
func (v *Verifier) Verify(s string) (Token, error) {
	if len(s) > v.cfg.MaxBytes {
		return Token{}, codec.Errorf(codec.CodeTokenTooLarge, "token is %d bytes; the limit is %d", len(s), v.cfg.MaxBytes)
	}
	var c claims
	_, err := v.parser.ParseWithClaims(s, &c, v.key)
	if err != nil {
		return Token{}, tokenError(err)
	}
	if c.ExpiresAt == nil || c.IssuedAt == nil || c.ID == "" || c.Subject == "" {
		return Token{}, codec.Errorf(codec.CodeTokenInvalid, "token needs exp, iat, jti and sub")
	}
	if life := c.ExpiresAt.Sub(c.IssuedAt.Time); life > v.cfg.MaxTTL || life <= 0 {
		return Token{}, codec.Errorf(codec.CodeTokenInvalid, "token lifetime %v is not within (0, %v]", life, v.cfg.MaxTTL)
	}
	if c.Capability == nil {
		return Token{}, tokenError(errNoCapability)
	}
	if c.Capability.Admin() {
		return Token{}, codec.Errorf(codec.CodeTokenInvalid, "a token cannot carry the admin operation")
	}
	return Token{
		Subject:    c.Subject,
		ID:         c.ID,
		Issuer:     c.Issuer,
		KeyID:      c.AuthorizedParty,
		IssuedAt:   c.IssuedAt.Time,
		Expires:    c.ExpiresAt.Time,
		Capability: *c.Capability,
	}, nil
}

// tokenError maps a parse or validation error to the protocol's codes.
// Messages name the reason but never echo the token.
func tokenError(err error) *codec.Error {
	switch {
	case errors.Is(err, errUnknownKid):
		return codec.Errorf(codec.CodeTokenUnknownKey, "token is signed with an unknown key (kid)")
	case errors.Is(err, errAlgMismatch):
		return codec.Errorf(codec.CodeTokenInvalid, "token algorithm is not its key's")
	case errors.Is(err, jwt.ErrTokenExpired):
		return codec.Errorf(codec.CodeTokenExpired, "token has expired")
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return codec.Errorf(codec.CodeTokenNotYetValid, "token is not valid yet (nbf or iat in the future)")
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return codec.Errorf(codec.CodeTokenWrongIssuer, "token issuer is not the one this edge trusts")
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return codec.Errorf(codec.CodeTokenWrongAudience, "token audience does not include this edge's")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return codec.Errorf(codec.CodeTokenInvalid, "token signature is invalid, or its algorithm is not accepted")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return codec.Errorf(codec.CodeTokenInvalid, "token lacks a required claim (exp or aud)")
	case errors.Is(err, errNoCapability):
		return codec.Errorf(codec.CodeTokenInvalid, "token has no %s claim", CapabilityClaim)
	}
	return codec.Errorf(codec.CodeTokenInvalid, "token is malformed")
}

// LooksLikeJWT reports whether s has a JWT's shape (three dot-separated
// parts, no ':'), as opposed to an API key (id:secret). The two share the
// Authorization: Bearer header.
func LooksLikeJWT(s string) bool {
	return strings.Count(s, ".") == 2 && !strings.Contains(s, ":")
}
