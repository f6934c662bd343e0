package auth

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/feedgate/feedgate/codec"
)

// jwksServer serves a key set on loopback that the test can rotate.
type jwksServer struct {
	*httptest.Server
	mu   sync.Mutex
	keys []Key
	hits atomic.Int64
}

func startJWKS(tb testing.TB, keys ...Key) *jwksServer {
	tb.Helper()
	s := &jwksServer{keys: keys}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		var set struct {
			Keys []map[string]string `json:"keys"`
		}
		for _, k := range s.keys {
			j, err := PublicJWK(k)
			if err != nil {
				tb.Error(err)
			}
			set.Keys = append(set.Keys, j)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(set)
	}))
	tb.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(keys ...Key) {
	s.mu.Lock()
	s.keys = keys
	s.mu.Unlock()
}

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestJWKSRotationAndUnknownKid(t *testing.T) {
	k1, k2 := mustTestKeys(t), mustTestKeys(t)
	key1 := Key{ID: "k1", Alg: AlgEdDSA, Public: k1.ed.Public()}
	key2 := Key{ID: "k2", Alg: AlgES256, Public: &k2.ec.PublicKey}
	srv := startJWKS(t, key1)
	clock := &fakeClock{now: t0}
	jwks, err := NewJWKS(JWKSConfig{URL: srv.URL, Refresh: 5 * time.Minute, MinInterval: 10 * time.Second, Now: clock.Now, Logger: discardLogger})
	if err != nil {
		t.Fatal(err)
	}
	v := mustVerifier(t, nil, jwks, clock.Now)

	tok1 := sign(t, jwt.SigningMethodEdDSA, "k1", goodClaims(), k1.ed)
	if _, err := v.Verify(tok1); err != nil {
		t.Fatalf("first token (fetches the set): %v", err)
	}
	if n := srv.hits.Load(); n != 1 {
		t.Fatalf("%d fetches for the first token, want 1", n)
	}

	// The identity service rotates to k2: the first token with kid k2
	// fetches the set again at once.
	srv.set(key1, key2)
	clock.Add(11 * time.Second)
	tok2 := sign(t, jwt.SigningMethodES256, "k2", goodClaims(), k2.ec)
	if _, err := v.Verify(tok2); err != nil {
		t.Fatalf("token under the rotated-in key: %v", err)
	}
	if n := srv.hits.Load(); n != 2 {
		t.Fatalf("%d fetches after the rotation, want 2", n)
	}

	// A flood of made-up kids fetches at most once per MinInterval.
	clock.Add(11 * time.Second)
	for i := range 100 {
		bogus := sign(t, jwt.SigningMethodEdDSA, "bogus-"+string(rune('a'+i%26)), goodClaims(), k1.ed)
		if _, err := v.Verify(bogus); !errors.Is(err, &codec.Error{Code: codec.CodeTokenUnknownKey}) {
			t.Fatalf("bogus kid: %v", err)
		}
	}
	if n := srv.hits.Load(); n != 3 {
		t.Fatalf("%d fetches after 100 unknown kids, want 3 (one more)", n)
	}

	// k1 is retired: once the cache is older than Refresh, a lookup serves
	// the cached key and refreshes in the background; later lookups see
	// the new set.
	srv.set(key2)
	clock.Add(6 * time.Minute)
	if _, err := v.Verify(tok1); err != nil {
		t.Fatalf("stale cache must still serve while it refreshes: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := v.Verify(tok1)
		if errors.Is(err, &codec.Error{Code: codec.CodeTokenUnknownKey}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("retired key still accepted after the refresh: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := v.Verify(tok2); err != nil {
		t.Fatal(err)
	}
}

// TestJWKSKeepsKeysOnFailure: a failing identity service does not empty
// the cache.
func TestJWKSKeepsKeysOnFailure(t *testing.T) {
	k := mustTestKeys(t)
	srv := startJWKS(t, Key{ID: "k1", Alg: AlgEdDSA, Public: k.ed.Public()})
	clock := &fakeClock{now: t0}
	jwks, _ := NewJWKS(JWKSConfig{URL: srv.URL, Now: clock.Now, Logger: discardLogger})
	if err := jwks.Fetch(t.Context()); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	clock.Add(time.Hour)
	if err := jwks.Fetch(t.Context()); err == nil {
		t.Fatal("fetch from a closed server succeeded")
	}
	if _, ok := jwks.Lookup("k1"); !ok {
		t.Error("a failed fetch dropped the cached key")
	}
}

func TestParseJWKSRefuses(t *testing.T) {
	k := mustTestKeys(t)
	good, _ := PublicJWK(Key{ID: "a", Alg: AlgEdDSA, Public: k.ed.Public()})
	mk := func(f func(m map[string]string)) []byte {
		m := map[string]string{}
		for a, b := range good {
			m[a] = b
		}
		f(m)
		b, _ := json.Marshal(map[string]any{"keys": []any{m}})
		return b
	}
	for name, b := range map[string][]byte{
		"alg disagrees with the key": mk(func(m map[string]string) { m["alg"] = "HS256" }),
		"private member":             mk(func(m map[string]string) { m["d"] = "AAAA" }),
		"use enc":                    mk(func(m map[string]string) { m["use"] = "enc" }),
		"bad x":                      mk(func(m map[string]string) { m["x"] = "short" }),
		"RSA":                        mk(func(m map[string]string) { m["kty"] = "RSA" }),
		"oct from a URL":             []byte(`{"keys":[{"kty":"oct","k":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"}]}`),
		"duplicate kid":              []byte(`{"keys":[` + string(mustJSON(good)) + `,` + string(mustJSON(good)) + `]}`),
		"not JSON":                   []byte(`keys`),
	} {
		if _, err := ParseJWKS(b, false); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func mustJSON(v any) []byte { b, _ := json.Marshal(v); return b }
