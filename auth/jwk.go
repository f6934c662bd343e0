package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/feedgate/feedgate/codec"
)

// Key is a token verification key. Its algorithm is fixed here, by
// configuration, never by a token's header: a token whose "alg" is not the
// key's is refused (no HMAC/public-key confusion, no "none").
type Key struct {
	// ID is the "kid" tokens name the key by. "" matches tokens without a
	// kid.
	ID string
	// Alg is "EdDSA" (Ed25519), "ES256" (ECDSA P-256) or "HS256" (HMAC
	// SHA-256).
	Alg string
	// Public is the key: ed25519.PublicKey, *ecdsa.PublicKey, or the HMAC
	// secret as []byte (at least 32 bytes).
	Public any
}

// Algorithms the verifier accepts: public-key ones so that edges hold no
// secret, HS256 for simple setups.
const (
	AlgEdDSA = "EdDSA"
	AlgES256 = "ES256"
	AlgHS256 = "HS256"
)

// minHMACSecret is the shortest HMAC secret accepted: RFC 7518 §3.2 asks
// for a key at least as long as the hash output (256 bits for HS256).
const minHMACSecret = 32

func (k Key) check() error {
	switch k.Alg {
	case AlgEdDSA:
		if p, ok := k.Public.(ed25519.PublicKey); !ok || len(p) != ed25519.PublicKeySize {
			return fmt.Errorf("key %q: EdDSA needs an Ed25519 public key", k.ID)
		}
	case AlgES256:
		if p, ok := k.Public.(*ecdsa.PublicKey); !ok || p.Curve != elliptic.P256() {
			return fmt.Errorf("key %q: ES256 needs a P-256 public key", k.ID)
		}
	case AlgHS256:
		if p, ok := k.Public.([]byte); !ok || len(p) < minHMACSecret {
			return fmt.Errorf("key %q: HS256 needs a secret of at least %d bytes", k.ID, minHMACSecret)
		}
	default:
		return fmt.Errorf("key %q: algorithm %q is not supported (EdDSA, ES256, HS256)", k.ID, codec.Clip(k.Alg))
	}
	return nil
}

// jwk is one JSON Web Key (RFC 7517), the members this package reads.
type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	X   string `json:"x"`
	Y   string `json:"y"`
	K   string `json:"k"`
	D   string `json:"d"`
}

// ParseJWKS parses a JSON Web Key Set ({"keys":[...]}) into verification
// keys: OKP/Ed25519 (EdDSA), EC/P-256 (ES256) and, only if allowSecret,
// oct (HS256). A key's algorithm follows from its type and curve; an "alg"
// member that disagrees refuses the key. Keys with "use" other than "sig",
// and private members ("d") are refused: a key set served to edges holds
// public keys only. Duplicate kids are refused.
func ParseJWKS(b []byte, allowSecret bool) ([]Key, error) {
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("key set is not a JWKS document: %s", codec.Clip(err.Error()))
	}
	seen := make(map[string]bool)
	keys := make([]Key, 0, len(set.Keys))
	for i, j := range set.Keys {
		k, err := j.key(allowSecret)
		if err != nil {
			return nil, fmt.Errorf("key set: key %d: %w", i, err)
		}
		if seen[k.ID] {
			return nil, fmt.Errorf("key set: kid %q appears twice", codec.Clip(k.ID))
		}
		seen[k.ID] = true
		keys = append(keys, k)
	}
	return keys, nil
}

func (j jwk) key(allowSecret bool) (Key, error) {
	b64 := base64.RawURLEncoding.DecodeString
	k := Key{ID: j.Kid}
	if j.Use != "" && j.Use != "sig" {
		return k, fmt.Errorf("kid %q: use %q is not sig", codec.Clip(j.Kid), codec.Clip(j.Use))
	}
	if j.D != "" && j.Kty != "oct" {
		return k, fmt.Errorf("kid %q: a private key has no place in a verification key set", codec.Clip(j.Kid))
	}
	switch {
	case j.Kty == "OKP" && j.Crv == "Ed25519":
		k.Alg = AlgEdDSA
		x, err := b64(j.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return k, fmt.Errorf("kid %q: x is not a base64url Ed25519 public key", codec.Clip(j.Kid))
		}
		k.Public = ed25519.PublicKey(x)
	case j.Kty == "EC" && j.Crv == "P-256":
		k.Alg = AlgES256
		x, errx := b64(j.X)
		y, erry := b64(j.Y)
		if errx != nil || erry != nil || len(x) != 32 || len(y) != 32 {
			return k, fmt.Errorf("kid %q: x and y must be base64url 32-byte coordinates", codec.Clip(j.Kid))
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return k, fmt.Errorf("kid %q: not a P-256 point: %v", codec.Clip(j.Kid), err)
		}
		k.Public = pub
	case j.Kty == "oct" && allowSecret:
		k.Alg = AlgHS256
		s, err := b64(j.K)
		if err != nil {
			return k, fmt.Errorf("kid %q: k is not base64url", codec.Clip(j.Kid))
		}
		k.Public = s
	default:
		return k, fmt.Errorf("kid %q: key type %q/%q is not supported here (OKP/Ed25519, EC/P-256%s)", codec.Clip(j.Kid), codec.Clip(j.Kty), codec.Clip(j.Crv), map[bool]string{true: ", oct"}[allowSecret])
	}
	if j.Alg != "" && j.Alg != k.Alg {
		return k, fmt.Errorf("kid %q: alg %q does not fit a %s key (%s)", codec.Clip(j.Kid), codec.Clip(j.Alg), j.Kty, k.Alg)
	}
	return k, k.check()
}

// PublicJWK returns the JWK form of a public key (for serving a JWKS of
// the edge's own signing key, and for tests).
func PublicJWK(k Key) (map[string]string, error) {
	enc := base64.RawURLEncoding.EncodeToString
	if err := k.check(); err != nil {
		return nil, err
	}
	m := map[string]string{"kid": k.ID, "alg": k.Alg, "use": "sig"}
	switch p := k.Public.(type) {
	case ed25519.PublicKey:
		m["kty"], m["crv"], m["x"] = "OKP", "Ed25519", enc(p)
	case *ecdsa.PublicKey:
		b, err := p.Bytes()
		if err != nil {
			return nil, err
		}
		m["kty"], m["crv"], m["x"], m["y"] = "EC", "P-256", enc(b[1:33]), enc(b[33:])
	default:
		return nil, fmt.Errorf("key %q: only public keys have a public JWK", k.ID)
	}
	return m, nil
}
