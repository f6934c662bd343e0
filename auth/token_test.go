package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/feedgate/feedgate/codec"
)

// testKeys are one key of each algorithm.
type testKeys struct {
	ed     ed25519.PrivateKey
	ec     *ecdsa.PrivateKey
	secret []byte
}

func mustTestKeys(tb testing.TB) testKeys {
	tb.Helper()
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return testKeys{ed: ed, ec: ec, secret: []byte("0123456789abcdef0123456789abcdef-hmac")}
}

func (k testKeys) verifyKeys() []Key {
	return []Key{
		{ID: "ed-1", Alg: AlgEdDSA, Public: k.ed.Public()},
		{ID: "ec-1", Alg: AlgES256, Public: &k.ec.PublicKey},
		{ID: "hs-1", Alg: AlgHS256, Public: k.secret},
	}
}

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func mustVerifier(tb testing.TB, keys []Key, jwks *JWKS, now func() time.Time) *Verifier {
	tb.Helper()
	v, err := NewVerifier(VerifierConfig{Keys: keys, JWKS: jwks, Issuer: "https://id.example", Audience: "feedgate", Now: now, Leeway: 2 * time.Second, MaxTTL: time.Hour})
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// goodClaims are valid at t0 for mustVerifier.
func goodClaims() jwt.MapClaims {
	return jwt.MapClaims{
		"iss": "https://id.example", "aud": "feedgate", "sub": "client-7", "jti": "tok-1",
		"iat": t0.Unix(), "nbf": t0.Unix(), "exp": t0.Add(10 * time.Minute).Unix(),
		CapabilityClaim: map[string]any{"odds:football:*": []string{"subscribe", "history"}},
	}
}

func sign(tb testing.TB, m jwt.SigningMethod, kid string, cl jwt.MapClaims, key any) string {
	tb.Helper()
	tok := jwt.NewWithClaims(m, cl)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func TestVerifyAccepts(t *testing.T) {
	k := mustTestKeys(t)
	v := mustVerifier(t, k.verifyKeys(), nil, func() time.Time { return t0.Add(time.Minute) })
	for name, tok := range map[string]string{
		"EdDSA": sign(t, jwt.SigningMethodEdDSA, "ed-1", goodClaims(), k.ed),
		"ES256": sign(t, jwt.SigningMethodES256, "ec-1", goodClaims(), k.ec),
		"HS256": sign(t, jwt.SigningMethodHS256, "hs-1", goodClaims(), k.secret),
	} {
		t.Run(name, func(t *testing.T) {
			got, err := v.Verify(tok)
			if err != nil {
				t.Fatal(err)
			}
			if got.Subject != "client-7" || got.ID != "tok-1" || !got.Expires.Equal(t0.Add(10*time.Minute)) {
				t.Errorf("claims: %+v", got)
			}
			if !got.Capability.Allows("odds:football:m1", OpSubscribe) || got.Capability.Allows("odds:football:m1", OpPublish) {
				t.Errorf("capability %s", got.Capability)
			}
		})
	}
}

// TestVerifyRejects: every refusal the issue lists, each with its code.
func TestVerifyRejects(t *testing.T) {
	k := mustTestKeys(t)
	now := t0.Add(time.Minute)
	v := mustVerifier(t, k.verifyKeys(), nil, func() time.Time { return now })
	with := func(f func(jwt.MapClaims)) jwt.MapClaims { c := goodClaims(); f(c); return c }
	_, otherEd, _ := ed25519.GenerateKey(rand.Reader)
	edPub := []byte(k.ed.Public().(ed25519.PublicKey))
	ecPubDER, _ := k.ec.PublicKey.Bytes()
	good := sign(t, jwt.SigningMethodEdDSA, "ed-1", goodClaims(), k.ed)
	parts := strings.Split(good, ".")
	b64 := base64.RawURLEncoding.EncodeToString
	noneTok := b64([]byte(`{"alg":"none","typ":"JWT","kid":"ed-1"}`)) + "." + parts[1] + "."
	noneSigned := b64([]byte(`{"alg":"none","kid":"ed-1"}`)) + "." + parts[1] + "." + parts[2]
	forged := parts[0] + "." + b64([]byte(`{"iss":"https://id.example","aud":"feedgate","sub":"client-7","jti":"tok-1","iat":`+strconv.FormatInt(t0.Unix(), 10)+`,"exp":`+strconv.FormatInt(t0.Add(10*time.Minute).Unix(), 10)+`,"x-feedgate-capability":{"*":["*"]}}`)) + "." + parts[2]
	for _, tc := range []struct {
		name string
		tok  string
		code codec.Code
	}{
		{"forged signature (claims swapped)", forged, codec.CodeTokenInvalid},
		{"signed by another key", sign(t, jwt.SigningMethodEdDSA, "ed-1", goodClaims(), otherEd), codec.CodeTokenInvalid},
		{"alg none, no signature", noneTok, codec.CodeTokenInvalid},
		{"alg none, old signature", noneSigned, codec.CodeTokenInvalid},
		{"HS256 signed with the Ed25519 public key", sign(t, jwt.SigningMethodHS256, "ed-1", goodClaims(), edPub), codec.CodeTokenInvalid},
		{"HS256 signed with the EC public key", sign(t, jwt.SigningMethodHS256, "ec-1", goodClaims(), ecPubDER), codec.CodeTokenInvalid},
		{"ES256 under the EdDSA kid", sign(t, jwt.SigningMethodES256, "ed-1", goodClaims(), k.ec), codec.CodeTokenInvalid},
		{"HS512 (not accepted)", sign(t, jwt.SigningMethodHS512, "hs-1", goodClaims(), k.secret), codec.CodeTokenInvalid},
		{"expired", sign(t, jwt.SigningMethodEdDSA, "ed-1", with(func(c jwt.MapClaims) { c["exp"] = now.Add(-3 * time.Second).Unix() }), k.ed), codec.CodeTokenExpired},
		{"not yet valid", sign(t, jwt.SigningMethodEdDSA, "ed-1", with(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Minute).Unix() }), k.ed), codec.CodeTokenNotYetValid},
		{"issued in the future", sign(t, jwt.SigningMethodEdDSA, "ed-1", with(func(c jwt.MapClaims) { c["iat"] = now.Add(time.Minute).Unix() }), k.ed), codec.CodeTokenNotYetValid},
		{"wrong audience", sign(t, jwt.SigningMethodEdDSA, "ed-1", with(func(c jwt.MapClaims) { c["aud"] = "other-service" }), k.ed), codec.CodeTokenWrongAudience},
		{"no audience", sign(t, jwt.SigningMethodEdDSA, "ed-1", with(func(c jwt.MapClaims) { delete(c, "aud") }), k.ed), codec.CodeTokenInvalid},
		{"wrong issuer", sign(t, jwt.SigningMethodEdDSA, "ed-1", with(func(c jwt.MapClaims) { c["iss"] = "https://evil.example" }), k.ed), codec.CodeTokenWrongIssuer},
		{"unknown kid", sign(t, jwt.SigningMethodEdDSA, "ed-9", goodClaims(), k.ed), codec.CodeTokenUnknownKey},
		{"no kid (no key without one)", sign(t, jwt.SigningMethodEdDSA, "", goodClaims(), k.ed), codec.CodeTokenUnknownKey},
		{"kid not a string", func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, goodClaims())
			tok.Header["kid"] = 7
			s, _ := tok.SignedString(k.ed)
			return s
		}(), codec.CodeTokenInvalid},
		{"oversized", sign(t, jwt.SigningMethodEdDSA, "ed-1", with(func(c jwt.MapClaims) { c["pad"] = strings.Repeat("x", MaxTokenBytes) }), k.ed), codec.CodeTokenTooLarge},
		{"no exp", sign(t, jwt.SigningMethodEdDSA, "ed-1", with(func(c jwt.MapClaims) { delete(c, "exp") }), k.ed), codec.CodeTokenInvalid},
		{"no iat", sign(t, jwt.SigningMethodEdDSA, "ed-1", with(func(c jwt.MapClaims) { delete(c, "iat") }), k.ed), codec.CodeTokenInvalid},
		{"no jti", sign(t, jwt.SigningMethodEdDSA, "ed-1", with(func(c jwt.MapClaims) { delete(c, "jti") }), k.ed), codec.CodeTokenInvalid},
		{"no sub", sign(t, jwt.SigningMethodEdDSA, "ed-1", with(func(c jwt.MapClaims) { delete(c, "sub") }), k.ed), codec.CodeTokenInvalid},
		{"lifetime over MaxTTL", sign(t, jwt.SigningMethodEdDSA, "ed-1", with(func(c jwt.MapClaims) { c["exp"] = t0.Add(2 * time.Hour).Unix() }), k.ed), codec.CodeTokenInvalid},
		{"no capability", sign(t, jwt.SigningMethodEdDSA, "ed-1", with(func(c jwt.MapClaims) { delete(c, CapabilityClaim) }), k.ed), codec.CodeTokenInvalid},
		{"capability as a string", sign(t, jwt.SigningMethodEdDSA, "ed-1", with(func(c jwt.MapClaims) { c[CapabilityClaim] = `{"*":["*"]}` }), k.ed), codec.CodeTokenInvalid},
		{"capability escape pattern", sign(t, jwt.SigningMethodEdDSA, "ed-1", with(func(c jwt.MapClaims) { c[CapabilityClaim] = map[string]any{"odds:../*": []string{"subscribe"}} }), k.ed), codec.CodeTokenInvalid},
		{"capability with admin", sign(t, jwt.SigningMethodEdDSA, "ed-1", with(func(c jwt.MapClaims) { c[CapabilityClaim] = map[string]any{"*": []string{"admin"}} }), k.ed), codec.CodeTokenInvalid},
		{"malformed: two parts", parts[0] + "." + parts[1], codec.CodeTokenInvalid},
		{"malformed: garbage", "a.b.c", codec.CodeTokenInvalid},
		{"malformed: empty", "", codec.CodeTokenInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := v.Verify(tc.tok)
			var e *codec.Error
			if !errors.As(err, &e) || e.Code != tc.code {
				t.Fatalf("Verify = %+v, %v; want code %s", got, err, tc.code)
			}
			if strings.Contains(e.Message, tc.tok) && tc.tok != "" {
				t.Errorf("the error echoes the token: %s", e.Message)
			}
		})
	}
}

// TestVerifyRotation: two keys at once, tokens of either verify; a key
// without kid matches tokens without kid only.
func TestVerifyRotation(t *testing.T) {
	k1, k2 := mustTestKeys(t), mustTestKeys(t)
	v := mustVerifier(t, []Key{
		{ID: "2030-01", Alg: AlgEdDSA, Public: k1.ed.Public()},
		{ID: "2030-02", Alg: AlgEdDSA, Public: k2.ed.Public()},
	}, nil, func() time.Time { return t0 })
	for _, tok := range []string{sign(t, jwt.SigningMethodEdDSA, "2030-01", goodClaims(), k1.ed), sign(t, jwt.SigningMethodEdDSA, "2030-02", goodClaims(), k2.ed)} {
		if _, err := v.Verify(tok); err != nil {
			t.Error(err)
		}
	}
	if _, err := v.Verify(sign(t, jwt.SigningMethodEdDSA, "2030-02", goodClaims(), k1.ed)); !errors.Is(err, codec.ErrTokenInvalid) {
		t.Errorf("a token under the wrong kid: %v", err)
	}
}

func TestNewVerifierRefusesBadKeys(t *testing.T) {
	k := mustTestKeys(t)
	for name, key := range map[string]Key{
		"short HMAC secret":       {ID: "h", Alg: AlgHS256, Public: []byte("short")},
		"EdDSA with an EC key":    {ID: "e", Alg: AlgEdDSA, Public: &k.ec.PublicKey},
		"ES256 with an Ed25519":   {ID: "e", Alg: AlgES256, Public: k.ed.Public()},
		"HS256 with a public key": {ID: "e", Alg: AlgHS256, Public: k.ed.Public()},
		"RS256":                   {ID: "r", Alg: "RS256", Public: []byte("x")},
		"none":                    {ID: "n", Alg: "none", Public: nil},
	} {
		if _, err := NewVerifier(VerifierConfig{Keys: []Key{key}, Issuer: "i", Audience: "a"}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := NewVerifier(VerifierConfig{Keys: k.verifyKeys(), Audience: "a"}); err == nil {
		t.Error("a verifier without an issuer was built")
	}
}

func FuzzVerifyToken(f *testing.F) {
	k := mustTestKeys(f)
	v := mustVerifier(f, k.verifyKeys(), nil, func() time.Time { return t0.Add(time.Minute) })
	good := sign(f, jwt.SigningMethodEdDSA, "ed-1", goodClaims(), k.ed)
	f.Add(good)
	f.Add(sign(f, jwt.SigningMethodHS256, "hs-1", goodClaims(), k.secret))
	f.Add(sign(f, jwt.SigningMethodES256, "ec-1", goodClaims(), k.ec))
	f.Add(strings.Replace(good, "e", "f", 1))
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("..")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := v.Verify(s)
		if err != nil {
			var e *codec.Error
			if !errors.As(err, &e) || !codec.IsAuthCode(e.Code) {
				t.Fatalf("Verify(%q): %v is not an auth refusal", s, err)
			}
			return
		}
		// Only tokens we signed verify: the fuzzer cannot forge one, so an
		// accepted input must carry one of our signatures over its claims.
		if got.Subject != "client-7" {
			t.Fatalf("Verify(%q) accepted %+v", s, got)
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	k := mustTestKeys(b)
	v := mustVerifier(b, k.verifyKeys(), nil, func() time.Time { return t0.Add(time.Minute) })
	for name, tok := range map[string]string{
		"EdDSA": sign(b, jwt.SigningMethodEdDSA, "ed-1", goodClaims(), k.ed),
		"ES256": sign(b, jwt.SigningMethodES256, "ec-1", goodClaims(), k.ec),
		"HS256": sign(b, jwt.SigningMethodHS256, "hs-1", goodClaims(), k.secret),
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
