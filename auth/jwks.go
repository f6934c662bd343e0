package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// JWKSConfig configures a JWKS: verification keys fetched from an identity
// service's key set URL.
type JWKSConfig struct {
	// URL of the JSON Web Key Set (https in production).
	URL string
	// Refresh is how old the cached set may get before the next lookup
	// fetches it again, in the background (default 5 minutes).
	Refresh time.Duration
	// MinInterval is the least time between two fetches (default 30s). A
	// token with an unknown kid fetches the set at once (the identity
	// service may have rotated), but at most once per MinInterval: a flood
	// of tokens with made-up kids cannot hammer the identity service.
	MinInterval time.Duration
	// Timeout bounds one fetch (default 5s).
	Timeout time.Duration
	// Client is the HTTP client (default: one with Timeout).
	Client *http.Client
	// Logger receives fetch failures (default slog.Default()).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// maxJWKSBytes bounds a key set document: a set of a hundred keys is
// about 20 KB.
const maxJWKSBytes = 1 << 20

// JWKS is a cached key set. Safe for concurrent use.
type JWKS struct {
	cfg     JWKSConfig
	fetches atomic.Int64

	fetchMu sync.Mutex // one fetch at a time; held across the fetch, never with mu

	mu      sync.Mutex // guards the fields below
	keys    map[string]Key
	fetched time.Time // when keys were last replaced
	lastTry time.Time // when the last fetch began
	bg      bool      // a background refresh is running
}

// NewJWKS returns a JWKS for cfg. It fetches nothing yet: call Fetch at
// start to fail early on a wrong URL, or let the first lookup fetch.
func NewJWKS(cfg JWKSConfig) (*JWKS, error) {
	if cfg.URL == "" {
		return nil, errors.New("auth: JWKS needs a URL")
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = 5 * time.Minute
	}
	if cfg.MinInterval <= 0 {
		cfg.MinInterval = 30 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: cfg.Timeout}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &JWKS{cfg: cfg, keys: map[string]Key{}}, nil
}

// Fetches counts the fetches begun so far.
func (j *JWKS) Fetches() int64 { return j.fetches.Load() }

// Fetch fetches the key set now and replaces the cached keys. On failure
// the cached keys stay.
func (j *JWKS) Fetch(ctx context.Context) error {
	j.fetchMu.Lock()
	defer j.fetchMu.Unlock()
	return j.fetchLocked(ctx)
}

func (j *JWKS) fetchLocked(ctx context.Context) error {
	j.mu.Lock()
	j.lastTry = j.cfg.Now()
	j.mu.Unlock()
	j.fetches.Add(1)
	keys, err := j.get(ctx)
	if err != nil {
		j.cfg.Logger.Warn("JWKS fetch failed; keeping the cached keys", "url", j.cfg.URL, "err", err)
		return err
	}
	m := make(map[string]Key, len(keys))
	for _, k := range keys {
		m[k.ID] = k
	}
	j.mu.Lock()
	j.keys, j.fetched = m, j.cfg.Now()
	j.mu.Unlock()
	j.cfg.Logger.Debug("JWKS fetched", "url", j.cfg.URL, "keys", len(m))
	return nil
}

func (j *JWKS) get(ctx context.Context) ([]Key, error) {
	ctx, cancel := context.WithTimeout(ctx, j.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.cfg.URL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := j.cfg.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxJWKSBytes {
		return nil, fmt.Errorf("key set exceeds %d bytes", maxJWKSBytes)
	}
	// Secrets never travel in a served key set: oct keys are refused.
	return ParseJWKS(b, false)
}

// Lookup returns the key named kid. A kid not in the cache fetches the set
// again, unless a fetch began less than MinInterval ago; a cache older
// than Refresh is refreshed in the background while its keys still serve.
func (j *JWKS) Lookup(kid string) (Key, bool) {
	j.mu.Lock()
	k, ok := j.keys[kid]
	now := j.cfg.Now()
	mayFetch := now.Sub(j.lastTry) >= j.cfg.MinInterval || j.lastTry.IsZero()
	stale := now.Sub(j.fetched) >= j.cfg.Refresh
	if ok {
		if stale && mayFetch && !j.bg {
			j.bg = true
			go func() {
				_ = j.fetchIfDue(context.Background())
				j.mu.Lock()
				j.bg = false
				j.mu.Unlock()
			}()
		}
		j.mu.Unlock()
		return k, true
	}
	j.mu.Unlock()
	if !mayFetch {
		return Key{}, false
	}
	_ = j.fetchIfDue(context.Background())
	j.mu.Lock()
	k, ok = j.keys[kid]
	j.mu.Unlock()
	return k, ok
}

// fetchIfDue fetches unless another fetch began within MinInterval (while
// this caller waited for it, say).
func (j *JWKS) fetchIfDue(ctx context.Context) error {
	j.fetchMu.Lock()
	defer j.fetchMu.Unlock()
	j.mu.Lock()
	due := j.lastTry.IsZero() || j.cfg.Now().Sub(j.lastTry) >= j.cfg.MinInterval
	j.mu.Unlock()
	if !due {
		return nil
	}
	return j.fetchLocked(ctx)
}
