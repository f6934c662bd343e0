package auth

import (
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/feedgate/feedgate/codec"
)

// Revocation kinds.
const (
	RevokeKey     = "key"     // an API key ID: the key, and every token it issued (azp)
	RevokeToken   = "token"   // a token ID (jti)
	RevokeSubject = "subject" // a subject: every token of it issued at or before At
)

// Revocation is one entry of the revocation list.
type Revocation struct {
	Kind  string `json:"kind"`
	Value string `json:"value"`
	// At is when it was revoked (Unix milliseconds).
	At int64 `json:"at"`
	// Until is when the entry may be forgotten (Unix milliseconds): once
	// every credential it refuses has expired anyway.
	Until int64 `json:"until"`
}

// MaxRevocations bounds the revocation list. Entries leave it once what
// they refuse has expired (MaxTTL for tokens); a list that is full refuses
// new revocations (HTTP 503) rather than forget one that still matters.
const MaxRevocations = 10000

// revocations is the list, keyed by kind and value.
type revocations struct {
	mu      sync.RWMutex // guards the fields below
	entries map[[2]string]Revocation
}

func newRevocations() *revocations {
	return &revocations{entries: make(map[[2]string]Revocation)}
}

// add merges r into the list; it reports whether the list changed (a new
// entry, or a later At or Until for a known one). An entry already past its
// Until is ignored.
func (l *revocations) add(r Revocation, now time.Time) (bool, error) {
	if r.Until <= now.UnixMilli() {
		return false, nil
	}
	k := [2]string{r.Kind, r.Value}
	l.mu.Lock()
	defer l.mu.Unlock()
	old, ok := l.entries[k]
	if !ok {
		l.pruneLocked(now)
		if len(l.entries) >= MaxRevocations {
			return false, codec.Errorf(codec.CodeBackboneUnavailable, "the revocation list is full (%d entries)", MaxRevocations)
		}
		l.entries[k] = r
		return true, nil
	}
	changed := false
	if r.At > old.At {
		old.At, changed = r.At, true
	}
	if r.Until > old.Until {
		old.Until, changed = r.Until, true
	}
	l.entries[k] = old
	return changed, nil
}

func (l *revocations) pruneLocked(now time.Time) {
	ms := now.UnixMilli()
	for k, r := range l.entries {
		if r.Until <= ms {
			delete(l.entries, k)
		}
	}
}

// lookup returns the entry for kind and value, if one is live.
func (l *revocations) lookup(kind, value string, now time.Time) (Revocation, bool) {
	if value == "" {
		return Revocation{}, false
	}
	l.mu.RLock()
	r, ok := l.entries[[2]string{kind, value}]
	l.mu.RUnlock()
	return r, ok && r.Until > now.UnixMilli()
}

// list returns the live entries, sorted.
func (l *revocations) list(now time.Time) []Revocation {
	l.mu.Lock()
	l.pruneLocked(now)
	out := make([]Revocation, 0, len(l.entries))
	for _, r := range l.entries {
		out = append(out, r)
	}
	l.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].Value < out[j].Value
	})
	return out
}

// announcement is what edges send each other on codec.RevocationsChannel:
// entries to apply, or a request to re-announce (sent by an edge that just
// started, so that it learns the list the others hold).
type announcement struct {
	Revocations []Revocation `json:"revocations,omitempty"`
	Sync        bool         `json:"sync,omitempty"`
}

func (r Revocation) check() error {
	switch r.Kind {
	case RevokeKey, RevokeToken, RevokeSubject:
	default:
		return fmt.Errorf("kind %q is not key, token or subject", codec.Clip(r.Kind))
	}
	if r.Value == "" || len(r.Value) > 256 {
		return fmt.Errorf("value must have 1 to 256 bytes")
	}
	if r.At <= 0 || r.Until <= r.At {
		return fmt.Errorf("at and until must be times with until after at")
	}
	return nil
}

func decodeAnnouncement(b []byte) (announcement, error) {
	var a announcement
	if err := json.Unmarshal(b, &a); err != nil {
		return a, codec.Errorf(codec.CodeBadFrame, "revocation announcement: %s", codec.Clip(err.Error()))
	}
	if len(a.Revocations) > MaxRevocations {
		return a, codec.Errorf(codec.CodeBadFrame, "revocation announcement has more than %d entries", MaxRevocations)
	}
	for _, r := range a.Revocations {
		if err := r.check(); err != nil {
			return a, codec.Errorf(codec.CodeBadFrame, "revocation announcement: %s", err)
		}
	}
	return a, nil
}
