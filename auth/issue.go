package auth

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Signer signs capability tokens: an edge's token endpoint, the
// development sample token, and tests. Safe for concurrent use.
type Signer struct {
	id       string
	alg      string
	private  crypto.Signer // Ed25519; nil for HMAC
	secret   []byte        // HMAC
	issuer   string
	audience string
}

// NewEd25519Signer signs with an Ed25519 private key; kid names it in the
// tokens' header, so verifiers can pick the matching public key.
func NewEd25519Signer(kid string, key ed25519.PrivateKey, issuer, audience string) (*Signer, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, errors.New("auth: not an Ed25519 private key")
	}
	return newSigner(&Signer{id: kid, alg: AlgEdDSA, private: key, issuer: issuer, audience: audience})
}

// NewHMACSigner signs with an HMAC secret (HS256): every verifier holds the
// same secret, so only for setups where edges are trusted alike.
func NewHMACSigner(kid string, secret []byte, issuer, audience string) (*Signer, error) {
	if len(secret) < minHMACSecret {
		return nil, fmt.Errorf("auth: an HMAC secret needs at least %d bytes", minHMACSecret)
	}
	return newSigner(&Signer{id: kid, alg: AlgHS256, secret: secret, issuer: issuer, audience: audience})
}

func newSigner(s *Signer) (*Signer, error) {
	if s.issuer == "" || s.audience == "" {
		return nil, errors.New("auth: a signer needs an issuer and an audience")
	}
	return s, nil
}

// ParseEd25519PrivateKey reads a PEM "PRIVATE KEY" (PKCS #8) Ed25519 key,
// as written by `openssl genpkey -algorithm ed25519`.
func ParseEd25519PrivateKey(pemBytes []byte) (ed25519.PrivateKey, error) {
	b, _ := pem.Decode(pemBytes)
	if b == nil || b.Type != "PRIVATE KEY" {
		return nil, errors.New("auth: signing key file is not a PEM PRIVATE KEY")
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("auth: signing key: %w", err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, errors.New("auth: signing key is not Ed25519")
	}
	return ek, nil
}

// VerifyKey is the key that verifies this signer's tokens (its public key,
// or the HMAC secret).
func (s *Signer) VerifyKey() Key {
	if s.alg == AlgHS256 {
		return Key{ID: s.id, Alg: AlgHS256, Public: s.secret}
	}
	return Key{ID: s.id, Alg: s.alg, Public: s.private.Public()}
}

// TokenSpec is what a token says.
type TokenSpec struct {
	Subject    string
	Capability Capability
	TTL        time.Duration
	KeyID      string // azp: the API key it is issued with, if any
}

// Sign returns a signed token for spec, issued at now, and its ID (jti).
func (s *Signer) Sign(spec TokenSpec, now time.Time) (token, jti string, err error) {
	var rnd [12]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", "", err
	}
	jti = base64.RawURLEncoding.EncodeToString(rnd[:])
	c := spec.Capability
	cl := claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.issuer,
			Subject:   spec.Subject,
			Audience:  jwt.ClaimStrings{s.audience},
			ExpiresAt: jwt.NewNumericDate(now.Add(spec.TTL)),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        jti,
		},
		Capability:      &c,
		AuthorizedParty: spec.KeyID,
	}
	var t *jwt.Token
	var key any
	if s.alg == AlgHS256 {
		t, key = jwt.NewWithClaims(jwt.SigningMethodHS256, cl), s.secret
	} else {
		t, key = jwt.NewWithClaims(jwt.SigningMethodEdDSA, cl), s.private
	}
	if s.id != "" {
		t.Header["kid"] = s.id
	}
	token, err = t.SignedString(key)
	return token, jti, err
}
