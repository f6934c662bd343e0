package auth

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/feedgate/feedgate/codec"
)

// Config configures an Authorizer. The zero value refuses everyone.
type Config struct {
	// Keys are API keys "id:secret" (the -api-keys flag), each allowed
	// DefaultKeyCapability.
	Keys []string
	// AdminKeys are API keys "id:secret" allowed every operation, admin
	// included (the development key of cmd/edge).
	AdminKeys []string
	// KeysJSON are keys in the keys file's form, for embedded uses.
	KeysJSON []byte
	// KeysFile, if set, is a JSON keys file with per-key capabilities
	// (docs/operations.md, "API keys"), read by New and again by Reload.
	KeysFile string
	// Verifier checks capability tokens; nil refuses every token.
	Verifier *Verifier
	// Signer signs the tokens of POST /v1/tokens; nil refuses token requests.
	Signer *Signer
	// Anonymous is what a client without credentials may do. The zero
	// value allows nothing: such a client is refused at connect with
	// unauthorized. Open development edges set it to All.
	Anonymous Capability
	// AnonymousPublish adds publish on every channel for clients without
	// credentials (open development edges).
	AnonymousPublish bool
	// DefaultTTL and MaxTTL bound the tokens POST /v1/tokens issues
	// (defaults 15 minutes and 1 hour; MaxTTL never above the verifier's).
	DefaultTTL, MaxTTL time.Duration
	// KeyRevocationTTL is how long a revoked API key stays refused
	// (default 7 days): remove it from every edge's keys within that time.
	KeyRevocationTTL time.Duration
	// Logger receives reload results and refusals, never a secret or a
	// token (default slog.Default()).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Authorizer is the edge's gateway.Authorizer: API keys with capabilities,
// capability tokens, the token endpoint and revocations. Safe for
// concurrent use.
type Authorizer struct {
	cfg  Config
	keys atomic.Pointer[map[string]apiKey]
	rev  *revocations
}

// New builds an Authorizer, reading cfg.KeysFile if set.
func New(cfg Config) (*Authorizer, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.DefaultTTL <= 0 {
		cfg.DefaultTTL = 15 * time.Minute
	}
	if cfg.MaxTTL <= 0 {
		cfg.MaxTTL = time.Hour
	}
	if cfg.Verifier != nil && cfg.MaxTTL > cfg.Verifier.MaxTTL() {
		cfg.MaxTTL = cfg.Verifier.MaxTTL()
	}
	cfg.DefaultTTL = min(cfg.DefaultTTL, cfg.MaxTTL)
	if cfg.KeyRevocationTTL <= 0 {
		cfg.KeyRevocationTTL = 7 * 24 * time.Hour
	}
	a := &Authorizer{cfg: cfg, rev: newRevocations()}
	if err := a.Reload(); err != nil {
		return nil, err
	}
	return a, nil
}

// Reload reads the keys again (the keys file, if configured). On error the
// keys in use stay and the error says why, naming keys by ID only.
func (a *Authorizer) Reload() error {
	keys, err := parseKeyList(a.cfg.Keys)
	if err != nil {
		return err
	}
	admin, err := parseKeyList(a.cfg.AdminKeys)
	if err != nil {
		return err
	}
	for _, k := range admin {
		k.cap.rules = []rule{{pattern: "*", wild: true, ops: opChannel | OpAdmin}}
		keys = append(keys, k)
	}
	if len(a.cfg.KeysJSON) > 0 {
		jk, err := parseKeysFile(a.cfg.KeysJSON)
		if err != nil {
			return fmt.Errorf("auth: Config.KeysJSON: %w", err)
		}
		keys = append(keys, jk...)
	}
	if a.cfg.KeysFile != "" {
		b, err := os.ReadFile(a.cfg.KeysFile)
		if err != nil {
			return fmt.Errorf("auth: keys file: %w", err)
		}
		fk, err := parseKeysFile(b)
		if err != nil {
			return fmt.Errorf("auth: %s: %w", a.cfg.KeysFile, err)
		}
		keys = append(keys, fk...)
	}
	m := make(map[string]apiKey, len(keys))
	for _, k := range keys {
		if _, dup := m[k.id]; dup {
			return fmt.Errorf("auth: API key id %q is configured twice", k.id)
		}
		m[k.id] = k
	}
	a.keys.Store(&m)
	a.cfg.Logger.Info("API keys loaded", "keys", len(m))
	return nil
}

// NumKeys is how many API keys are loaded.
func (a *Authorizer) NumKeys() int { return len(*a.keys.Load()) }

// Authorize checks the credentials of a connection or an HTTP request:
// an API key ("id:secret") or a capability token (a JWT) in the
// Authorization header, told apart by shape, or a token in the query. With
// none, the client gets the Anonymous capability, or is refused if that
// is empty.
func (a *Authorizer) Authorize(c codec.Credentials) (codec.Access, error) {
	x, err := a.authorize(c)
	if err != nil {
		return nil, err
	}
	return x, nil
}

func (a *Authorizer) authorize(c codec.Credentials) (*Access, error) {
	switch {
	case c.APIKey != "" && c.Token != "":
		return nil, codec.Errorf(codec.CodeUnauthorized, "send one credential: an Authorization header or a token parameter, not both")
	case c.APIKey != "" && LooksLikeJWT(c.APIKey):
		return a.token(c.APIKey)
	case c.APIKey != "":
		return a.apiKey(c.APIKey)
	case c.Token != "":
		return a.token(c.Token)
	}
	cp := a.cfg.Anonymous
	if a.cfg.AnonymousPublish {
		cp, _ = union(cp, Capability{rules: []rule{{pattern: "*", wild: true, ops: OpPublish}}})
	}
	if cp.Empty() {
		return nil, codec.Errorf(codec.CodeUnauthorized, "credentials required: a capability token (Authorization: Bearer <token>, or ?token=) or an API key")
	}
	return &Access{a: a, subject: codec.AnonymousSubject, cap: cp}, nil
}

func (a *Authorizer) apiKey(s string) (*Access, error) {
	id, secret, _ := strings.Cut(s, ":")
	k, ok := (*a.keys.Load())[id]
	got := sha256.Sum256([]byte(secret))
	if !ok || subtle.ConstantTimeCompare(k.hash[:], got[:]) != 1 {
		a.cfg.Logger.Debug("API key refused", "key_id", codec.Clip(id))
		return nil, codec.Errorf(codec.CodeUnauthorized, "unknown API key or wrong secret")
	}
	x := &Access{a: a, subject: "key:" + id, keyID: id, cap: k.cap}
	if err := x.Valid(); err != nil {
		return nil, err
	}
	return x, nil
}

func (a *Authorizer) token(s string) (*Access, error) {
	if a.cfg.Verifier == nil {
		return nil, codec.Errorf(codec.CodeUnauthorized, "this edge accepts no capability tokens")
	}
	t, err := a.cfg.Verifier.Verify(s)
	if err != nil {
		a.cfg.Logger.Debug("token refused", "code", codec.AsError(err).Code.String())
		return nil, err
	}
	x := &Access{a: a, subject: "sub:" + t.Subject, keyID: t.KeyID, cap: t.Capability, tok: &t}
	if err := x.Valid(); err != nil {
		return nil, err
	}
	return x, nil
}

// Access is what one client may do: an API key's or a token's capability.
// It implements codec.Access; every check also consults the revocation
// list and the token's expiry.
type Access struct {
	a       *Authorizer
	subject string
	keyID   string // the API key, or the key that issued the token (azp)
	cap     Capability
	tok     *Token // nil for an API key or anonymous
}

// CanAttach allows subscribing where the capability has "subscribe".
func (x *Access) CanAttach(channel string) error { return x.check(channel, OpSubscribe) }

// CanPublish allows publishing where the capability has "publish".
func (x *Access) CanPublish(channel string) error { return x.check(channel, OpPublish) }

// CanHistory allows history reads where the capability has "history".
func (x *Access) CanHistory(channel string) error { return x.check(channel, OpHistory) }

// Subject is "key:<id>", "sub:<token subject>" or "anonymous".
func (x *Access) Subject() string { return x.subject }

// Expires is when the token expires; zero for an API key or anonymous.
func (x *Access) Expires() time.Time {
	if x.tok == nil {
		return time.Time{}
	}
	return x.tok.Expires
}

// TokenID is the token's jti, "" without a token.
func (x *Access) TokenID() string {
	if x.tok == nil {
		return ""
	}
	return x.tok.ID
}

// Capability is what x allows.
func (x *Access) Capability() Capability { return x.cap }

func (x *Access) check(channel string, op Op) error {
	if err := x.Valid(); err != nil {
		return err
	}
	if !x.cap.Allows(channel, op) {
		if x.subject == codec.AnonymousSubject {
			return codec.Errorf(codec.CodeUnauthorized, "to %s on channel %q, connect with a capability token or an API key", op, codec.Clip(channel))
		}
		return codec.Errorf(codec.CodeForbidden, "%s may not %s on channel %q", x.subject, op, codec.Clip(channel))
	}
	return nil
}

// Valid returns nil while the credential may still be used, or why not:
// token_expired once exp (plus the verifier's leeway) passed, revoked once
// its key, token ID or subject was revoked.
func (x *Access) Valid() error {
	now := x.a.cfg.Now()
	if x.tok != nil {
		if now.After(x.tok.Expires.Add(x.a.cfg.Verifier.cfg.Leeway)) {
			return codec.Errorf(codec.CodeTokenExpired, "token has expired")
		}
		if _, ok := x.a.rev.lookup(RevokeToken, x.tok.ID, now); ok {
			return codec.Errorf(codec.CodeRevoked, "token %s was revoked", x.tok.ID)
		}
		if r, ok := x.a.rev.lookup(RevokeSubject, x.tok.Subject, now); ok && x.tok.IssuedAt.UnixMilli() <= r.At {
			return codec.Errorf(codec.CodeRevoked, "the tokens of subject %q issued before %s were revoked", codec.Clip(x.tok.Subject), time.UnixMilli(r.At).UTC().Format(time.RFC3339))
		}
	}
	if _, ok := x.a.rev.lookup(RevokeKey, x.keyID, now); ok {
		if x.tok != nil {
			return codec.Errorf(codec.CodeRevoked, "API key %q, which issued this token, was revoked", x.keyID)
		}
		return codec.Errorf(codec.CodeRevoked, "API key %q was revoked", x.keyID)
	}
	return nil
}

// tokenRequest is the body of POST /v1/tokens.
type tokenRequest struct {
	Capability json.RawMessage `json:"capability"`
	TTL        float64         `json:"ttl"` // seconds
	Subject    string          `json:"subject"`
}

// tokenResponse is its answer.
type tokenResponse struct {
	Token      string     `json:"token"`
	TokenID    string     `json:"token_id"`
	Subject    string     `json:"subject"`
	Expires    int64      `json:"expires"` // Unix milliseconds
	Capability Capability `json:"capability"`
}

// IssueToken serves POST /v1/tokens: c must be an API key; body asks for a
// capability (default: the key's own), a ttl in seconds (default
// DefaultTTL, at most MaxTTL) and a subject (required). The token's
// capability is the intersection of what is asked and what the key allows.
func (a *Authorizer) IssueToken(c codec.Credentials, body []byte) ([]byte, error) {
	if a.cfg.Signer == nil {
		return nil, codec.Errorf(codec.CodeForbidden, "this edge does not issue tokens (no signing key configured)")
	}
	if c.APIKey == "" || LooksLikeJWT(c.APIKey) || c.Token != "" {
		return nil, codec.Errorf(codec.CodeUnauthorized, "a token request needs an API key (Authorization: Bearer id:secret)")
	}
	x, err := a.apiKey(c.APIKey)
	if err != nil {
		return nil, err
	}
	var req tokenRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, codec.Errorf(codec.CodeBadRequest, "body is not a token request: %s", codec.Clip(err.Error()))
	}
	if err := checkSubject(req.Subject); err != nil {
		return nil, err
	}
	ttl := a.cfg.DefaultTTL
	if req.TTL != 0 {
		if req.TTL < 1 || req.TTL > a.cfg.MaxTTL.Seconds() {
			return nil, codec.Errorf(codec.CodeBadRequest, "ttl must be from 1 to %.0f seconds", a.cfg.MaxTTL.Seconds())
		}
		ttl = time.Duration(req.TTL * float64(time.Second))
	}
	keyCap := withoutAdmin(x.cap)
	want := keyCap
	if len(req.Capability) > 0 {
		if want, err = ParseCapability(req.Capability); err != nil {
			return nil, codec.Errorf(codec.CodeBadRequest, "%s", err)
		}
		if want.Admin() {
			return nil, codec.Errorf(codec.CodeBadRequest, "a token cannot carry the admin operation")
		}
	}
	got, err := Intersect(want, keyCap)
	if err != nil {
		return nil, codec.Errorf(codec.CodeBadRequest, "%s", err)
	}
	if got.Empty() {
		return nil, codec.Errorf(codec.CodeForbidden, "key %q allows none of the capability asked for", x.keyID)
	}
	now := a.cfg.Now()
	tok, jti, err := a.cfg.Signer.Sign(TokenSpec{Subject: req.Subject, Capability: got, TTL: ttl, KeyID: x.keyID}, now)
	if err != nil {
		return nil, codec.Errorf(codec.CodeInternal, "signing the token failed")
	}
	a.cfg.Logger.Debug("token issued", "key_id", x.keyID, "subject", req.Subject, "token_id", jti, "ttl", ttl.String())
	return json.Marshal(tokenResponse{Token: tok, TokenID: jti, Subject: req.Subject, Expires: now.Add(ttl).UnixMilli(), Capability: got})
}

func checkSubject(s string) error {
	if s == "" || len(s) > 256 {
		return codec.Errorf(codec.CodeBadRequest, "subject (the client's ID) must have 1 to 256 bytes")
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] == 0x7f {
			return codec.Errorf(codec.CodeBadRequest, "subject has a space or control character at byte %d", i)
		}
	}
	return nil
}

func withoutAdmin(c Capability) Capability {
	out := Capability{rules: make([]rule, 0, len(c.rules))}
	for _, r := range c.rules {
		r.ops &^= OpAdmin
		if r.ops != 0 {
			out.rules = append(out.rules, r)
		}
	}
	return out
}

// union returns a capability allowing what a or b allows.
func union(a, b Capability) (Capability, error) {
	m := make(map[string]rule)
	for _, r := range append(append([]rule(nil), a.rules...), b.rules...) {
		if p, ok := m[r.pattern]; ok {
			r.ops |= p.ops
		}
		m[r.pattern] = r
	}
	if len(m) > MaxPatterns {
		return Capability{}, fmt.Errorf("capability: more than %d patterns", MaxPatterns)
	}
	var c Capability
	for _, r := range m {
		c.rules = append(c.rules, r)
	}
	c.sort()
	return c, nil
}

// revokeRequest is the body of POST /v1/revocations: one of key_id,
// token_id or subject; expires (Unix seconds) may bound a token revocation.
type revokeRequest struct {
	KeyID   string `json:"key_id"`
	TokenID string `json:"token_id"`
	Subject string `json:"subject"`
	Expires int64  `json:"expires"`
}

// Revoke serves POST /v1/revocations: c must be an API key with the admin
// operation. It applies the revocation here and returns the announcement
// for the other edges and the answer for the client.
func (a *Authorizer) Revoke(c codec.Credentials, body []byte) (announce, resp []byte, err error) {
	if c.APIKey == "" || LooksLikeJWT(c.APIKey) || c.Token != "" {
		return nil, nil, codec.Errorf(codec.CodeUnauthorized, "revoking needs an API key with the admin operation")
	}
	x, err := a.apiKey(c.APIKey)
	if err != nil {
		return nil, nil, err
	}
	if !x.cap.Admin() {
		return nil, nil, codec.Errorf(codec.CodeForbidden, "key %q lacks the admin operation ({\"*\":[\"admin\"]})", x.keyID)
	}
	var req revokeRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, nil, codec.Errorf(codec.CodeBadRequest, "body is not a revocation request: %s", codec.Clip(err.Error()))
	}
	now := a.cfg.Now()
	r := Revocation{At: now.UnixMilli()}
	n := 0
	for _, f := range []struct{ kind, v string }{{RevokeKey, req.KeyID}, {RevokeToken, req.TokenID}, {RevokeSubject, req.Subject}} {
		if f.v != "" {
			r.Kind, r.Value = f.kind, f.v
			n++
		}
	}
	if n != 1 {
		return nil, nil, codec.Errorf(codec.CodeBadRequest, "give exactly one of key_id, token_id, subject")
	}
	// Until: once every credential the entry refuses has expired anyway.
	tokenLife := a.cfg.MaxTTL
	leeway := time.Duration(0)
	if v := a.cfg.Verifier; v != nil {
		tokenLife, leeway = v.cfg.MaxTTL, v.cfg.Leeway
	}
	until := now.Add(tokenLife + leeway)
	switch {
	case r.Kind == RevokeKey:
		until = now.Add(max(a.cfg.KeyRevocationTTL, tokenLife+leeway))
	case r.Kind == RevokeToken && req.Expires > 0:
		if e := time.Unix(req.Expires, 0).Add(leeway); e.Before(until) {
			until = e
		}
	}
	if r.Until = until.UnixMilli(); r.Until <= r.At {
		r.Until = r.At + 1
	}
	if err := r.check(); err != nil {
		return nil, nil, codec.Errorf(codec.CodeBadRequest, "%s", err)
	}
	if _, err := a.rev.add(r, now); err != nil {
		return nil, nil, err
	}
	a.cfg.Logger.Info("revoked", "by_key", x.keyID, "kind", r.Kind, "value", r.Value, "until", time.UnixMilli(r.Until).UTC().Format(time.RFC3339))
	announce, _ = json.Marshal(announcement{Revocations: []Revocation{r}})
	resp, _ = json.Marshal(map[string]any{"revoked": r})
	return announce, resp, nil
}

// ApplyAnnouncement applies what another edge (or this one) announced on
// codec.RevocationsChannel. changed reports new entries (the gateway then
// checks its connections); sync that the sender asks every edge to
// re-announce its list.
func (a *Authorizer) ApplyAnnouncement(b []byte) (changed, sync bool, err error) {
	an, err := decodeAnnouncement(b)
	if err != nil {
		return false, false, err
	}
	now := a.cfg.Now()
	var errs []error
	for _, r := range an.Revocations {
		c, err := a.rev.add(r, now)
		changed = changed || c
		if err != nil {
			errs = append(errs, err)
		}
	}
	return changed, an.Sync, errors.Join(errs...)
}

// Announcement returns this edge's whole revocation list as an
// announcement, or nil if it is empty.
func (a *Authorizer) Announcement() []byte {
	l := a.rev.list(a.cfg.Now())
	if len(l) == 0 {
		return nil
	}
	b, _ := json.Marshal(announcement{Revocations: l})
	return b
}

// SyncRequest returns the announcement an edge sends at start, asking the
// others to re-announce their lists.
func (a *Authorizer) SyncRequest() []byte {
	b, _ := json.Marshal(announcement{Sync: true})
	return b
}

// Revocations returns the live revocation list.
func (a *Authorizer) Revocations() []Revocation { return a.rev.list(a.cfg.Now()) }
