package auth

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/feedgate/feedgate/codec"
)

const (
	pubSecret   = "pub-secret-0123456789"
	adminSecret = "admin-secret-0123456789"
)

func writeKeys(tb testing.TB, path, body string) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		tb.Fatal(err)
	}
}

// keysJSON: a publisher on odds:*, an issuer of subscriber tokens on
// odds:football:*, and an admin (secret given by its hash).
func keysJSON() string {
	return `{"keys":[
 {"id":"pub","secret":"` + pubSecret + `","capability":{"odds:*":["publish"]}},
 {"id":"issuer","secret":"issuer-secret-0123456789","capability":{"odds:football:*":["subscribe","history"],"scores:*":["subscribe"]}},
 {"id":"admin","secret_sha256":"` + sha256hex(adminSecret) + `","capability":{"*":["admin","*"]}}
]}`
}

type authEnv struct {
	a     *Authorizer
	clock *fakeClock
	path  string
	log   *bytes.Buffer
}

func mustAuthorizer(tb testing.TB) authEnv {
	tb.Helper()
	k := mustTestKeys(tb)
	clock := &fakeClock{now: t0}
	path := filepath.Join(tb.TempDir(), "keys.json")
	writeKeys(tb, path, keysJSON())
	signer, err := NewEd25519Signer("edge-1", k.ed, "https://id.example", "feedgate")
	if err != nil {
		tb.Fatal(err)
	}
	var log bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	v, err := NewVerifier(VerifierConfig{Keys: []Key{signer.VerifyKey()}, Issuer: "https://id.example", Audience: "feedgate", Now: clock.Now, MaxTTL: 2 * time.Hour})
	if err != nil {
		tb.Fatal(err)
	}
	a, err := New(Config{KeysFile: path, Verifier: v, Signer: signer, Logger: logger, Now: clock.Now})
	if err != nil {
		tb.Fatal(err)
	}
	return authEnv{a: a, clock: clock, path: path, log: &log}
}

func hasCode(err error, c codec.Code) bool {
	var e *codec.Error
	return errors.As(err, &e) && e.Code == c
}

func (e authEnv) issue(tb testing.TB, key, body string) (tokenResponse, error) {
	tb.Helper()
	b, err := e.a.IssueToken(codec.Credentials{APIKey: key}, []byte(body))
	if err != nil {
		return tokenResponse{}, err
	}
	var r struct {
		tokenResponse
		Capability json.RawMessage `json:"capability"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		tb.Fatal(err)
	}
	r.tokenResponse.Capability = mustCap(tb, string(r.Capability))
	return r.tokenResponse, nil
}

func TestAPIKeyCapabilities(t *testing.T) {
	e := mustAuthorizer(t)
	x, err := e.a.Authorize(codec.Credentials{APIKey: "pub:" + pubSecret})
	if err != nil {
		t.Fatal(err)
	}
	if x.Subject() != "key:pub" {
		t.Errorf("Subject() = %q", x.Subject())
	}
	if err := x.CanPublish("odds:m1"); err != nil {
		t.Error(err)
	}
	for name, err := range map[string]error{
		"publish elsewhere": x.CanPublish("scores:m1"),
		"publish odds-x":    x.CanPublish("odds-admin"),
		"subscribe":         x.CanAttach("odds:m1"),
		"history":           x.CanHistory("odds:m1"),
	} {
		if !hasCode(err, codec.CodeForbidden) {
			t.Errorf("%s: %v, want forbidden", name, err)
		}
	}
	if _, err := e.a.Authorize(codec.Credentials{APIKey: "pub:wrong-secret-0000000"}); !hasCode(err, codec.CodeUnauthorized) {
		t.Errorf("wrong secret: %v", err)
	}
	if _, err := e.a.Authorize(codec.Credentials{APIKey: "admin:" + adminSecret}); err != nil {
		t.Errorf("key given by its hash: %v", err)
	}
	if _, err := e.a.Authorize(codec.Credentials{}); !hasCode(err, codec.CodeUnauthorized) {
		t.Errorf("no credentials: %v, want unauthorized (no anonymous capability)", err)
	}
	if _, err := e.a.Authorize(codec.Credentials{APIKey: "pub:" + pubSecret, Token: "x.y.z"}); !hasCode(err, codec.CodeUnauthorized) {
		t.Errorf("two credentials: %v", err)
	}
}

func TestKeysReload(t *testing.T) {
	e := mustAuthorizer(t)
	writeKeys(t, e.path, `{"keys":[{"id":"pub","secret":"`+pubSecret+`","capability":{"odds:*":["publish"]}},{"id":"new","secret":"new-secret-0123456789"}]}`)
	if err := e.a.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.a.Authorize(codec.Credentials{APIKey: "new:new-secret-0123456789"}); err != nil {
		t.Errorf("key added by the reload: %v", err)
	}
	if _, err := e.a.Authorize(codec.Credentials{APIKey: "admin:" + adminSecret}); !hasCode(err, codec.CodeUnauthorized) {
		t.Errorf("key removed by the reload still works: %v", err)
	}
	for name, body := range map[string]string{
		"not JSON":       `{"keys":[`,
		"short secret":   `{"keys":[{"id":"x","secret":"short"}]}`,
		"bad capability": `{"keys":[{"id":"x","secret":"0123456789abcdef","capability":{"odds*":["publish"]}}]}`,
		"duplicate id":   `{"keys":[{"id":"x","secret":"0123456789abcdef"},{"id":"x","secret":"0123456789abcdef"}]}`,
		"unknown field":  `{"keys":[{"id":"x","secret":"0123456789abcdef","caps":{}}]}`,
		"bad hash":       `{"keys":[{"id":"x","secret_sha256":"abc"}]}`,
		"both secrets":   `{"keys":[{"id":"x","secret":"0123456789abcdef","secret_sha256":"` + sha256hex("x") + `"}]}`,
	} {
		writeKeys(t, e.path, body)
		err := e.a.Reload()
		if err == nil {
			t.Errorf("%s: reload accepted it", name)
			continue
		}
		if _, err := e.a.Authorize(codec.Credentials{APIKey: "new:new-secret-0123456789"}); err != nil {
			t.Errorf("%s: a failed reload dropped the keys in use: %v", name, err)
		}
	}
}

func TestTokenEndpoint(t *testing.T) {
	e := mustAuthorizer(t)
	issuer := "issuer:issuer-secret-0123456789"
	t.Run("intersection", func(t *testing.T) {
		r, err := e.issue(t, issuer, `{"subject":"client-1","ttl":600,"capability":{"odds:*":["subscribe","publish"],"scores:live":["*"]}}`)
		if err != nil {
			t.Fatal(err)
		}
		want := `{"odds:football:*":["subscribe"],"scores:live":["subscribe"]}`
		if r.Capability.String() != want {
			t.Errorf("issued capability %s, want %s", r.Capability, want)
		}
		x, err := e.a.Authorize(codec.Credentials{APIKey: r.Token}) // Bearer <jwt>
		if err != nil {
			t.Fatal(err)
		}
		if x.Subject() != "sub:client-1" || !x.(*Access).Expires().Equal(t0.Add(10*time.Minute)) {
			t.Errorf("subject %q expires %v", x.Subject(), x.(*Access).Expires())
		}
		if err := x.CanAttach("odds:football:m1"); err != nil {
			t.Error(err)
		}
		if err := x.CanPublish("odds:football:m1"); !hasCode(err, codec.CodeForbidden) {
			t.Errorf("publish, which the key cannot grant: %v", err)
		}
		if err := x.CanAttach("odds:tennis:m1"); !hasCode(err, codec.CodeForbidden) {
			t.Errorf("capability for another channel: %v", err)
		}
		if _, err := e.a.Authorize(codec.Credentials{Token: r.Token}); err != nil {
			t.Errorf("the same token as a query parameter: %v", err)
		}
	})
	t.Run("default capability is the key's", func(t *testing.T) {
		r, err := e.issue(t, issuer, `{"subject":"client-2"}`)
		if err != nil {
			t.Fatal(err)
		}
		if r.Capability.String() != `{"odds:football:*":["subscribe","history"],"scores:*":["subscribe"]}` {
			t.Errorf("capability %s", r.Capability)
		}
		if time.UnixMilli(r.Expires).Sub(t0) != 15*time.Minute {
			t.Errorf("default ttl: expires %v", time.UnixMilli(r.Expires))
		}
	})
	t.Run("admin key issues no admin", func(t *testing.T) {
		r, err := e.issue(t, "admin:"+adminSecret, `{"subject":"ops"}`)
		if err != nil {
			t.Fatal(err)
		}
		if r.Capability.Admin() || r.Capability.String() != `{"*":["subscribe","publish","history"]}` {
			t.Errorf("capability %s", r.Capability)
		}
	})
	for name, tc := range map[string]struct {
		key, body string
		code      codec.Code
	}{
		"nothing in common": {issuer, `{"subject":"c","capability":{"admin:*":["subscribe"]}}`, codec.CodeForbidden},
		"ttl over the cap":  {issuer, `{"subject":"c","ttl":3601}`, codec.CodeBadRequest},
		"ttl negative":      {issuer, `{"subject":"c","ttl":-5}`, codec.CodeBadRequest},
		"no subject":        {issuer, `{}`, codec.CodeBadRequest},
		"subject spaces":    {issuer, `{"subject":"a b"}`, codec.CodeBadRequest},
		"admin asked":       {"admin:" + adminSecret, `{"subject":"c","capability":{"*":["admin"]}}`, codec.CodeBadRequest},
		"bad pattern":       {issuer, `{"subject":"c","capability":{"odds:football:*x":["subscribe"]}}`, codec.CodeBadRequest},
		"unknown field":     {issuer, `{"subject":"c","clientId":"x"}`, codec.CodeBadRequest},
		"wrong secret":      {"issuer:nope-nope-nope-nope", `{"subject":"c"}`, codec.CodeUnauthorized},
		"no key":            {"", `{"subject":"c"}`, codec.CodeUnauthorized},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := e.issue(t, tc.key, tc.body); !hasCode(err, tc.code) {
				t.Errorf("%v, want %s", err, tc.code)
			}
		})
	}
	t.Run("a token cannot issue tokens", func(t *testing.T) {
		r, err := e.issue(t, issuer, `{"subject":"c"}`)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.issue(t, r.Token, `{"subject":"c"}`); !hasCode(err, codec.CodeUnauthorized) {
			t.Errorf("%v, want unauthorized", err)
		}
	})
}

func TestTokenExpiresOnAccess(t *testing.T) {
	e := mustAuthorizer(t)
	r, err := e.issue(t, "issuer:issuer-secret-0123456789", `{"subject":"c","ttl":60}`)
	if err != nil {
		t.Fatal(err)
	}
	x, err := e.a.Authorize(codec.Credentials{Token: r.Token})
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Add(60*time.Second + 5*time.Second + time.Millisecond) // past exp + leeway
	if err := x.CanAttach("odds:football:a"); !hasCode(err, codec.CodeTokenExpired) {
		t.Errorf("attach after expiry: %v", err)
	}
	if _, err := e.a.Authorize(codec.Credentials{Token: r.Token}); !hasCode(err, codec.CodeTokenExpired) {
		t.Errorf("connect after expiry: %v", err)
	}
}

func TestRevocation(t *testing.T) {
	e := mustAuthorizer(t)
	admin := codec.Credentials{APIKey: "admin:" + adminSecret}
	issuer := "issuer:issuer-secret-0123456789"
	tok1, _ := e.issue(t, issuer, `{"subject":"alice"}`)
	tok2, _ := e.issue(t, issuer, `{"subject":"bob"}`)
	x1, _ := e.a.Authorize(codec.Credentials{Token: tok1.Token})
	x2, _ := e.a.Authorize(codec.Credentials{Token: tok2.Token})

	if _, _, err := e.a.Revoke(codec.Credentials{APIKey: issuer}, []byte(`{"token_id":"x"}`)); !hasCode(err, codec.CodeForbidden) {
		t.Errorf("revoke without admin: %v", err)
	}
	if _, _, err := e.a.Revoke(admin, []byte(`{"token_id":"x","subject":"y"}`)); !hasCode(err, codec.CodeBadRequest) {
		t.Errorf("two things at once: %v", err)
	}
	ann, _, err := e.a.Revoke(admin, []byte(`{"token_id":"`+tok1.TokenID+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := x1.CanAttach("odds:football:a"); !hasCode(err, codec.CodeRevoked) {
		t.Errorf("revoked token still attaches: %v", err)
	}
	if err := x2.CanAttach("odds:football:a"); err != nil {
		t.Errorf("another token refused: %v", err)
	}
	if _, err := e.a.Authorize(codec.Credentials{Token: tok1.Token}); !hasCode(err, codec.CodeRevoked) {
		t.Errorf("revoked token connects: %v", err)
	}

	// The announcement applies on another edge.
	other := mustAuthorizer(t)
	changed, sync, err := other.a.ApplyAnnouncement(ann)
	if err != nil || !changed || sync {
		t.Fatalf("ApplyAnnouncement = %v, %v, %v", changed, sync, err)
	}
	if changed, _, _ := other.a.ApplyAnnouncement(ann); changed {
		t.Error("applying the same announcement twice reports a change")
	}
	if got := other.a.Revocations(); len(got) != 1 || got[0].Value != tok1.TokenID {
		t.Errorf("other edge's list: %+v", got)
	}

	// Revoking a subject refuses its tokens issued until then, not later ones.
	if _, _, err := e.a.Revoke(admin, []byte(`{"subject":"bob"}`)); err != nil {
		t.Fatal(err)
	}
	if err := x2.CanAttach("odds:football:a"); !hasCode(err, codec.CodeRevoked) {
		t.Errorf("token of a revoked subject: %v", err)
	}
	e.clock.Add(2 * time.Second)
	tok3, _ := e.issue(t, issuer, `{"subject":"bob"}`)
	if _, err := e.a.Authorize(codec.Credentials{Token: tok3.Token}); err != nil {
		t.Errorf("token issued after the subject's revocation: %v", err)
	}

	// Revoking a key refuses the key and the tokens it issued.
	if _, _, err := e.a.Revoke(admin, []byte(`{"key_id":"issuer"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.a.Authorize(codec.Credentials{APIKey: issuer}); !hasCode(err, codec.CodeRevoked) {
		t.Errorf("revoked key: %v", err)
	}
	if _, err := e.a.Authorize(codec.Credentials{Token: tok3.Token}); !hasCode(err, codec.CodeRevoked) {
		t.Errorf("token of a revoked key: %v", err)
	}

	// Entries are forgotten once what they refuse has expired anyway.
	if n := len(e.a.Revocations()); n != 3 {
		t.Fatalf("%d entries, want 3", n)
	}
	e.clock.Add(2*time.Hour + 10*time.Second)
	if got := e.a.Revocations(); len(got) != 1 || got[0].Kind != RevokeKey {
		t.Errorf("after the longest token life only the key stays: %+v", got)
	}
	full := e.a.Announcement()
	var an announcement
	if err := json.Unmarshal(full, &an); err != nil || len(an.Revocations) != 1 {
		t.Errorf("Announcement() = %s", full)
	}
	if _, sync, _ := e.a.ApplyAnnouncement(e.a.SyncRequest()); !sync {
		t.Error("a sync request is not recognised")
	}
	for name, b := range map[string]string{
		"not JSON":     `{`,
		"unknown kind": `{"revocations":[{"kind":"ip","value":"x","at":1,"until":2}]}`,
		"until < at":   `{"revocations":[{"kind":"key","value":"x","at":5,"until":2}]}`,
	} {
		if _, _, err := e.a.ApplyAnnouncement([]byte(b)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestLogsHoldNoSecrets drives every path that logs, at debug level, and
// checks that no secret and no token appears in the output.
func TestLogsHoldNoSecrets(t *testing.T) {
	e := mustAuthorizer(t)
	issuer := "issuer:issuer-secret-0123456789"
	r, err := e.issue(t, issuer, `{"subject":"alice"}`)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = e.a.Authorize(codec.Credentials{APIKey: issuer})
	_, _ = e.a.Authorize(codec.Credentials{APIKey: "issuer:wrong-secret-0123456"})
	_, _ = e.a.Authorize(codec.Credentials{Token: r.Token})
	_, _ = e.a.Authorize(codec.Credentials{Token: r.Token + "x"})
	_, _, _ = e.a.Revoke(codec.Credentials{APIKey: "admin:" + adminSecret}, []byte(`{"token_id":"`+r.TokenID+`"}`))
	_, _ = e.a.Authorize(codec.Credentials{Token: r.Token})
	writeKeys(t, e.path, `{"keys":[{"id":"x","secret":"short-secret"}]}`)
	if err := e.a.Reload(); err == nil || strings.Contains(err.Error(), "short-secret") {
		t.Errorf("reload error %v must refuse and not quote the secret", err)
	}
	if _, err := NewStatic([]string{"k:leaky-short"}); err == nil || strings.Contains(err.Error(), "leaky-short") {
		t.Errorf("bad key error %v quotes the secret", err)
	}
	out := e.log.String()
	if !strings.Contains(out, `"level":"DEBUG"`) {
		t.Fatalf("no debug line was captured: %s", out)
	}
	for _, secret := range []string{pubSecret, adminSecret, "issuer-secret-0123456789", "wrong-secret-0123456", r.Token, strings.Split(r.Token, ".")[2]} {
		if strings.Contains(out, secret) {
			t.Errorf("the log holds a secret or token %q:\n%s", secret, out)
		}
	}
}

func sha256hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}
