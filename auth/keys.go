package auth

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"

	"github.com/feedgate/feedgate/codec"
)

// apiKey is one API key: its ID, the SHA-256 of its secret (the secret
// itself is not kept) and what it allows.
type apiKey struct {
	id   string
	hash [32]byte
	cap  Capability
}

// minSecret is the shortest API key secret accepted.
const minSecret = 16

// DefaultKeyCapability is what a key configured without a capability
// allows: every channel operation on every channel (what every key allowed
// before capabilities), but not admin, which is granted only explicitly.
var DefaultKeyCapability = All

// parseKeyList parses keys of the form "id:secret" (the -api-keys flag);
// each gets DefaultKeyCapability.
func parseKeyList(list []string) ([]apiKey, error) {
	var keys []apiKey
	for _, k := range list {
		id, secret, ok := strings.Cut(k, ":")
		if !ok || !validKeyID(id) || len(secret) < minSecret {
			return nil, fmt.Errorf("auth: API key %q must be id:secret with an id of letters, digits, - and _ and a secret of at least %d characters", redact(k), minSecret)
		}
		keys = append(keys, apiKey{id: id, hash: sha256.Sum256([]byte(secret)), cap: DefaultKeyCapability})
	}
	return keys, nil
}

// keysFile is the keys file's form (docs/operations.md, "API keys").
type keysFile struct {
	Keys []struct {
		ID           string          `json:"id"`
		Secret       string          `json:"secret"`
		SecretSHA256 string          `json:"secret_sha256"`
		Capability   json.RawMessage `json:"capability"`
	} `json:"keys"`
}

// parseKeysFile parses a keys file. Errors name the key by ID, never by
// secret.
func parseKeysFile(b []byte) ([]apiKey, error) {
	var f keysFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("keys file is not valid: %s", codec.Clip(err.Error()))
	}
	var keys []apiKey
	for i, e := range f.Keys {
		k := apiKey{id: e.ID, cap: DefaultKeyCapability}
		if !validKeyID(e.ID) {
			return nil, fmt.Errorf("keys file: key %d: id %q must be 1 to 64 letters, digits, - and _", i, codec.Clip(e.ID))
		}
		switch {
		case e.Secret != "" && e.SecretSHA256 != "":
			return nil, fmt.Errorf("keys file: key %q: give secret or secret_sha256, not both", e.ID)
		case e.Secret != "":
			if len(e.Secret) < minSecret {
				return nil, fmt.Errorf("keys file: key %q: the secret must have at least %d characters", e.ID, minSecret)
			}
			k.hash = sha256.Sum256([]byte(e.Secret))
		case e.SecretSHA256 != "":
			h, err := hex.DecodeString(e.SecretSHA256)
			if err != nil || len(h) != sha256.Size {
				return nil, fmt.Errorf("keys file: key %q: secret_sha256 must be 64 hex digits", e.ID)
			}
			copy(k.hash[:], h)
		default:
			return nil, fmt.Errorf("keys file: key %q has no secret or secret_sha256", e.ID)
		}
		if len(e.Capability) > 0 && string(e.Capability) != "null" {
			c, err := ParseCapability(e.Capability)
			if err != nil {
				return nil, fmt.Errorf("keys file: key %q: %w", e.ID, err)
			}
			k.cap = c
		}
		keys = append(keys, k)
	}
	return keys, nil
}

func validKeyID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func redact(k string) string {
	id, _, _ := strings.Cut(k, ":")
	return codec.Clip(id) + ":…"
}

var discardLogger = slog.New(slog.DiscardHandler)
