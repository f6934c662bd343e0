package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/feedgate/feedgate/auth"
	"github.com/feedgate/feedgate/backbone"
	"github.com/feedgate/feedgate/gateway"
)

// authOptions are the access-control flags (docs/operations.md, "Access
// control").
type authOptions struct {
	keysFile, anonymous                         string
	issuer, audience                            string
	verifyKeysFile, jwksURL                     string
	hmacSecret, signingKeyFile, signingKid      string
	open                                        bool
	maxTTL, issueTTL, issueMaxTTL, leeway       time.Duration
	jwksRefresh, jwksMinInterval                time.Duration
	expiryWarning, expiryGrace, reannounceEvery time.Duration
}

func authFlags(fs *flag.FlagSet, ev *environ, o *authOptions) {
	str := func(p *string, name, env, def, usage string) {
		fs.StringVar(p, name, ev.str(env, def), usage+" (env "+env+")")
	}
	dur := func(p *time.Duration, name, env string, def time.Duration, usage string) {
		fs.DurationVar(p, name, ev.duration(env, def), usage+" (env "+env+")")
	}
	str(&o.keysFile, "keys-file", "EDGE_KEYS_FILE", "", "JSON file of API keys with capabilities; re-read on SIGHUP")
	str(&o.anonymous, "anonymous-capability", "EDGE_ANONYMOUS_CAPABILITY", "", `what clients without credentials may do, e.g. {"free:*":["subscribe"]}; default nothing`)
	str(&o.issuer, "token-issuer", "EDGE_TOKEN_ISSUER", "feedgate", "the iss capability tokens must carry (and that the edge's own tokens carry)")
	str(&o.audience, "token-audience", "EDGE_TOKEN_AUDIENCE", "feedgate", "the aud capability tokens must include")
	str(&o.verifyKeysFile, "token-keys", "EDGE_TOKEN_KEYS", "", "JWKS file of token verification keys (Ed25519, P-256; oct for HMAC)")
	str(&o.jwksURL, "token-jwks-url", "EDGE_TOKEN_JWKS_URL", "", "URL of an identity service's JWKS, fetched and cached")
	str(&o.hmacSecret, "token-hmac-secret", "EDGE_TOKEN_HMAC_SECRET", "", "HMAC secret (32+ bytes) that signs and verifies tokens (HS256); prefer the env variable")
	str(&o.signingKeyFile, "token-signing-key", "EDGE_TOKEN_SIGNING_KEY", "", "Ed25519 private key (PEM PKCS #8) with which POST /v1/tokens signs")
	str(&o.signingKid, "token-signing-kid", "EDGE_TOKEN_SIGNING_KID", "edge", "kid of the signing key")
	fs.BoolVar(&o.open, "open", ev.bool("EDGE_OPEN", false), "development only: anyone may subscribe, publish and read history without credentials (env EDGE_OPEN)")
	dur(&o.maxTTL, "token-max-ttl", "EDGE_TOKEN_MAX_TTL", 24*time.Hour, "refuse tokens whose lifetime (exp - iat) is longer")
	dur(&o.issueTTL, "token-ttl", "EDGE_TOKEN_TTL", 15*time.Minute, "default lifetime of tokens from POST /v1/tokens")
	dur(&o.issueMaxTTL, "token-ttl-max", "EDGE_TOKEN_TTL_MAX", time.Hour, "longest lifetime POST /v1/tokens grants")
	dur(&o.leeway, "token-leeway", "EDGE_TOKEN_LEEWAY", 5*time.Second, "clock skew tolerated on exp, nbf and iat")
	dur(&o.jwksRefresh, "token-jwks-refresh", "EDGE_TOKEN_JWKS_REFRESH", 5*time.Minute, "refetch the JWKS when the cached copy is older")
	dur(&o.jwksMinInterval, "token-jwks-min-interval", "EDGE_TOKEN_JWKS_MIN_INTERVAL", 30*time.Second, "least time between JWKS fetches (an unknown kid fetches at once, at most this often)")
	dur(&o.expiryWarning, "token-expiry-warning", "EDGE_TOKEN_EXPIRY_WARNING", 30*time.Second, "warn a connection (token_expiring) this long before its token expires")
	dur(&o.expiryGrace, "token-expiry-grace", "EDGE_TOKEN_EXPIRY_GRACE", 5*time.Second, "disconnect a connection this long after its token expired unrenewed")
	dur(&o.reannounceEvery, "revocations-reannounce", "EDGE_REVOCATIONS_REANNOUNCE", time.Minute, "announce the revocation list to the other edges this often")
}

// configured reports whether any credential source is configured.
func (o authOptions) configured(apiKeys string) bool {
	return apiKeys != "" || o.keysFile != "" || o.verifyKeysFile != "" || o.jwksURL != "" || o.hmacSecret != "" || o.signingKeyFile != "" || o.anonymous != ""
}

// gatewayAuth is the gateway's part of the options.
// With the in-process backbone there is no other edge to tell of a
// revocation.
func (o authOptions) gatewayAuth(localOnly bool) gateway.AuthConfig {
	return gateway.AuthConfig{ExpiryWarning: o.expiryWarning, ExpiryGrace: o.expiryGrace, Reannounce: o.reannounceEvery, LocalOnly: localOnly}
}

func isLocal(bb gateway.Backbone) bool {
	_, ok := bb.(*backbone.Local)
	return ok
}

// newAuthorizer builds the edge's authorizer from the options. With no
// credential configured and not -open, it runs in development mode: a
// random API key (every operation, admin too) and a random HMAC secret are
// made up, and a banner on banner (stderr) shows them with a sample
// subscriber token. Nothing else ever prints a secret.
func newAuthorizer(ctx context.Context, o options, log *slog.Logger, banner io.Writer) (*auth.Authorizer, error) {
	a := o.auth
	dev := !a.open && !a.configured(o.apiKeys)
	cfg := auth.Config{
		KeysFile:   a.keysFile,
		DefaultTTL: a.issueTTL,
		MaxTTL:     a.issueMaxTTL,
		Logger:     log,
	}
	if o.apiKeys != "" {
		cfg.Keys = strings.Split(o.apiKeys, ",")
	}
	var devKey string
	if dev {
		devKey = "dev:" + randomString(18)
		a.hmacSecret = randomString(32)
		cfg.AdminKeys = []string{devKey}
	}
	if a.anonymous != "" {
		c, err := auth.ParseCapability([]byte(a.anonymous))
		if err != nil {
			return nil, fmt.Errorf("-anonymous-capability: %w", err)
		}
		cfg.Anonymous = c
	}
	if a.open {
		cfg.Anonymous, cfg.AnonymousPublish = auth.All, true
	}

	var keys []auth.Key
	if a.verifyKeysFile != "" {
		b, err := os.ReadFile(a.verifyKeysFile)
		if err != nil {
			return nil, fmt.Errorf("-token-keys: %w", err)
		}
		if keys, err = auth.ParseJWKS(b, true); err != nil {
			return nil, fmt.Errorf("-token-keys %s: %w", a.verifyKeysFile, err)
		}
	}
	switch {
	case a.signingKeyFile != "" && a.hmacSecret != "":
		return nil, errors.New("-token-signing-key and -token-hmac-secret: choose one way to sign tokens")
	case a.signingKeyFile != "":
		b, err := os.ReadFile(a.signingKeyFile)
		if err != nil {
			return nil, fmt.Errorf("-token-signing-key: %w", err)
		}
		pk, err := auth.ParseEd25519PrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("-token-signing-key %s: %w", a.signingKeyFile, err)
		}
		if cfg.Signer, err = auth.NewEd25519Signer(a.signingKid, pk, a.issuer, a.audience); err != nil {
			return nil, err
		}
	case a.hmacSecret != "":
		var err error
		if cfg.Signer, err = auth.NewHMACSigner(a.signingKid, []byte(a.hmacSecret), a.issuer, a.audience); err != nil {
			return nil, fmt.Errorf("-token-hmac-secret: %w", err)
		}
	}
	if cfg.Signer != nil {
		own := cfg.Signer.VerifyKey()
		dup := false
		for _, k := range keys {
			dup = dup || k.ID == own.ID
		}
		if !dup {
			keys = append(keys, own)
		}
	}
	var jwks *auth.JWKS
	if a.jwksURL != "" {
		var err error
		jwks, err = auth.NewJWKS(auth.JWKSConfig{URL: a.jwksURL, Refresh: a.jwksRefresh, MinInterval: a.jwksMinInterval, Logger: log})
		if err != nil {
			return nil, err
		}
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = jwks.Fetch(fctx)
		cancel()
		if err != nil {
			// The identity service may come up later: the first token
			// fetches again.
			log.Warn("JWKS not reachable at start; tokens are refused until it is", "url", a.jwksURL, "err", err)
		}
	}
	if len(keys) > 0 || jwks != nil {
		v, err := auth.NewVerifier(auth.VerifierConfig{Keys: keys, JWKS: jwks, Issuer: a.issuer, Audience: a.audience, Leeway: a.leeway, MaxTTL: a.maxTTL})
		if err != nil {
			return nil, err
		}
		cfg.Verifier = v
	}
	authz, err := auth.New(cfg)
	if err != nil {
		return nil, err
	}
	switch {
	case a.open:
		log.Warn("OPEN MODE (-open): anyone may subscribe, publish and read history without credentials. Never use this in production.")
		fmt.Fprintln(banner, "\n*** feedgate edge in OPEN MODE: no credentials needed for anything. Development only. ***")
	case dev:
		tok, _, err := cfg.Signer.Sign(auth.TokenSpec{Subject: "dev-subscriber", Capability: mustCapability(`{"*":["subscribe","history"]}`), TTL: min(24*time.Hour, a.maxTTL)}, time.Now())
		if err != nil {
			return nil, err
		}
		log.Warn("DEVELOPMENT MODE: no credentials configured; a random API key and token secret were made up for this run (see the banner on stderr). Configure -api-keys, -keys-file or -token-* in production.")
		fmt.Fprintf(banner, `
*** feedgate edge in DEVELOPMENT MODE (no credentials configured) ***
API key (every operation, admin too; valid for this run only):
    %s
Subscriber token (subscribe and history on every channel, 24 h):
    %s
Publish:    curl -s -X POST -H 'Authorization: Bearer %s' localhost:8080/v1/channels/odds:match-1/messages -d '{"data":{"home":1.95}}'
Watch:      go run ./cmd/watch -channels odds:match-1 -token %s
More tokens: curl -s -X POST -H 'Authorization: Bearer %s' localhost:8080/v1/tokens -d '{"subject":"me"}'
Run with -open to need no credentials at all (development only).

`, devKey, tok, devKey, tok, devKey)
	}
	return authz, nil
}

func mustCapability(s string) auth.Capability {
	c, err := auth.ParseCapability([]byte(s))
	if err != nil {
		panic(err)
	}
	return c
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return strings.NewReplacer("-", "A", "_", "B").Replace(base64.RawURLEncoding.EncodeToString(b))[:n]
}

// reloadOnHUP re-reads the API keys on every SIGHUP until ctx ends. A bad
// keys file keeps the keys in use, and the log says why. The signal is
// caught from the moment it returns.
func reloadOnHUP(ctx context.Context, authz *auth.Authorizer, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go watchHUP(ctx, hup, authz, log)
}

func watchHUP(ctx context.Context, hup chan os.Signal, authz *auth.Authorizer, log *slog.Logger) {
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if err := authz.Reload(); err != nil {
				log.Error("SIGHUP: API keys not reloaded; the keys in use stay", "err", err)
			} else {
				log.Info("SIGHUP: API keys reloaded", "keys", authz.NumKeys())
			}
		}
	}
}
