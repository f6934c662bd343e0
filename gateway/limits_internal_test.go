package gateway

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/feedgate/feedgate/codec"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func mustLimits(tb testing.TB, l Limits) Limits {
	tb.Helper()
	if err := l.setDefaults(512, 1000); err != nil {
		tb.Fatal(err)
	}
	return l
}

// TestPrincipalsBounded: principals without connections are remembered up
// to MaxKeys, however many come; those holding connections are never
// forgotten (their count is the cap), and a sweep forgets idle ones only
// once their buckets are full again.
func TestPrincipalsBounded(t *testing.T) {
	l := newLimiter(mustLimits(t, Limits{MaxKeys: 4, PublishPerKey: Rate{PerSecond: 1000, Burst: 2000}, AttachPerKey: Rate{PerSecond: 10, Burst: 50}}))
	if l.idleAfter != 5*time.Second {
		t.Fatalf("idleAfter %v, want 5s (the slower bucket's refill)", l.idleAfter)
	}
	var held []*principal
	for i := range 3 {
		p, _, e := l.acquire(fmt.Sprint("conn-", i), t0)
		if e != nil {
			t.Fatal(e)
		}
		held = append(held, p)
	}
	for i := range 10_000 {
		l.principal(fmt.Sprint("http-", i), t0.Add(time.Duration(i)*time.Millisecond))
		if total, idle := l.remembered(); idle > 4 || total > 7 {
			t.Fatalf("after %d: %d remembered, %d idle: want at most 4 idle", i, total, idle)
		}
	}
	for i, p := range held {
		if l.keys[p.name] != p {
			t.Fatalf("principal %d with a connection was forgotten", i)
		}
	}
	// An idle principal is kept until its buckets have refilled.
	last := t0.Add(9_999 * time.Millisecond)
	l.sweep(last.Add(l.idleAfter - time.Nanosecond))
	if _, idle := l.remembered(); idle == 0 {
		t.Fatal("swept principals whose buckets were not full yet")
	}
	l.sweep(last.Add(l.idleAfter))
	if total, idle := l.remembered(); total != 3 || idle != 0 {
		t.Fatalf("after the sweep: %d remembered, %d idle; want the 3 with connections", total, idle)
	}
	for _, p := range held {
		l.release(p, last)
	}
	if total, idle := l.remembered(); total != 3 || idle != 3 || l.conns.Load() != 0 {
		t.Fatalf("after release: %d remembered, %d idle, %d connections", total, idle, l.conns.Load())
	}
}

// TestConnectionCaps: acquire enforces both caps (the authoritative check
// for connections that raced past canConnect) and release frees them.
func TestConnectionCaps(t *testing.T) {
	l := newLimiter(mustLimits(t, Limits{ConnsPerKey: 2, MaxConnections: 3}))
	a1, _, e1 := l.acquire("key:a", t0)
	a2, _, e2 := l.acquire("key:a", t0)
	if e1 != nil || e2 != nil || a1 != a2 {
		t.Fatalf("%v %v", e1, e2)
	}
	if r, e := l.canConnect("key:a"); r != RefusedConnsPerKey || e.Code != codec.CodeTooManyConnections {
		t.Fatalf("canConnect over the key's cap: %v %v", r, e)
	}
	if _, r, e := l.acquire("key:a", t0); r != RefusedConnsPerKey || e == nil {
		t.Fatalf("acquire over the key's cap: %v %v", r, e)
	}
	if _, _, e := l.acquire("", t0); e != nil {
		t.Fatalf("anonymous: %v", e)
	}
	if r, e := l.canConnect("key:b"); r != RefusedEdgeFull || e.Code != codec.CodeEdgeFull {
		t.Fatalf("canConnect over the edge's cap: %v %v", r, e)
	}
	if _, r, e := l.acquire("", t0); r != RefusedEdgeFull || e == nil {
		t.Fatalf("acquire over the edge's cap: %v %v", r, e)
	}
	if n := l.conns.Load(); n != 3 {
		t.Fatalf("%d connections counted, want 3 (refusals are not counted)", n)
	}
	l.release(a1, t0)
	if _, e := l.canConnect("key:a"); e != nil {
		t.Fatalf("after a release: %v", e)
	}
	t.Run("no cap", func(t *testing.T) {
		l := newLimiter(mustLimits(t, Limits{ConnsPerKey: -1}))
		for range 5000 {
			if _, _, e := l.acquire("key:a", t0); e != nil {
				t.Fatal(e)
			}
		}
	})
}

// TestTake: a request takes from both buckets or from neither, and says
// which one was short and for how long.
func TestTake(t *testing.T) {
	own := Rate{PerSecond: 10, Burst: 2}.newLimiter()
	shared := Rate{PerSecond: 1, Burst: 3}.newLimiter()
	for i := range 2 {
		if w, _ := take(t0, 1, own, shared); w != 0 {
			t.Fatalf("take %d: bucket %d short", i, w)
		}
	}
	if w, d := take(t0, 1, own, shared); w != 1 || d != 100*time.Millisecond {
		t.Fatalf("own empty: %d %v", w, d)
	}
	if got := shared.TokensAt(t0); got != 1 {
		t.Fatalf("shared bucket has %v tokens, want 1: a refusal took from it", got)
	}
	t1 := t0.Add(200 * time.Millisecond) // own full again, shared 1.2
	if w, _ := take(t1, 1, own, shared); w != 0 {
		t.Fatal("refused with tokens in both")
	}
	if w, d := take(t1, 1, own, shared); w != 2 || d != 800*time.Millisecond {
		t.Fatalf("shared short: %d %v", w, d)
	}
	if got := own.TokensAt(t1); got != 1 {
		t.Fatalf("own bucket has %v tokens, want 1: a refusal took from it", got)
	}
	if w, _ := take(t1, 5, nil, nil); w != 0 {
		t.Fatal("no buckets refused")
	}
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]Rate{
		"":           {},
		"off":        {PerSecond: -1},
		"OFF":        {PerSecond: -1},
		"100":        {PerSecond: 100},
		"0.5:3":      {PerSecond: 0.5, Burst: 3},
		" 10:20 ":    {PerSecond: 10, Burst: 20},
		"20000:4000": {PerSecond: 20000, Burst: 4000},
	} {
		got, err := ParseRate(in)
		if err != nil || got != want {
			t.Errorf("ParseRate(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"0", "-1", "x", "10:", "10:0", "10:-2", "10:1.5", "NaN", "Inf", ":5", "1e400"} {
		if _, err := ParseRate(in); err == nil {
			t.Errorf("ParseRate(%q) accepted", in)
		}
	}
	if got := (Rate{PerSecond: 100}).withDefault(Rate{PerSecond: 1, Burst: 1}); got != (Rate{PerSecond: 100, Burst: 200}) {
		t.Errorf("rate without burst: %+v, want two seconds' worth", got)
	}
}

// TestOriginRules: the allow-list's matching rules, against the usual
// tricks.
func TestOriginRules(t *testing.T) {
	o, err := newOrigins([]string{"https://odds.example.com", "https://*.example.net", "http://localhost:3000", "https://[::1]:8443", "HTTPS://Upper.Example.ORG"})
	if err != nil {
		t.Fatal(err)
	}
	for origin, want := range map[string]bool{
		"":                                  true, // not a browser
		"https://odds.example.com":          true,
		"https://ODDS.EXAMPLE.COM":          true,
		"HTTPS://odds.example.com":          true,
		"https://odds.example.com:443":      true,
		"https://upper.example.org":         true,
		"http://localhost:3000":             true,
		"https://[::1]:8443":                true,
		"https://live.example.net":          true,
		"https://a.b.c.example.net":         true,
		"https://example.net":               false, // the wildcard needs a label
		"https://.example.net":              false,
		"https://odds.example.com.evil.com": false,
		"https://live.example.net.evil.com": false,
		"https://evilexample.net":           false,
		"https://odds-example.com":          false,
		"https://xodds.example.com":         false,
		"https://odds.example.com:8443":     false,
		"https://odds.example.com:0443":     false,
		"https://odds.example.com:":         false,
		"https://odds.example.com:+443":     false,
		"http://odds.example.com":           false,
		"wss://odds.example.com":            false,
		"https://odds.example.com.":         false,
		"https://odds.example.com/":         false,
		"https://odds.example.com/x":        false,
		"https://odds.example.com?x":        false,
		"https://odds.example.com#x":        false,
		"https://user@odds.example.com":     false,
		"https://evil.com@odds.example.com": false,
		"https://odds.example.com@evil.com": false,
		"https://odds%2eexample.com":        false,
		"https://odds.example.com\\.x":      false,
		"https://odds.example.com\x00":      false,
		"https://odds.exampl\u0435.com":     false, // Cyrillic е
		"null":                              false,
		"NULL":                              false,
		"*":                                 false,
		"https://*.example.net":             false,
		"odds.example.com":                  false,
		"//odds.example.com":                false,
		"http://localhost":                  false,
		"http://localhost:3001":             false,
		"https://[::1]":                     false,
		"https://[::1]:8443x":               false,
		"https://[::1":                      false,
		"https://[]:8443":                   false,
		"https://live.example.net:443":      true,
		"https://live.example.net:8443":     false,
		"https:// live.example.net":         false,
		" https://odds.example.com":         false,
		"https://-x.example.net":            false,
	} {
		if got := o.allow([]byte(origin)); got != want {
			t.Errorf("allow(%q) = %v, want %v", origin, got, want)
		}
	}
	if any, err := newOrigins(nil); err != nil || !any.allow([]byte("https://anything.example")) || !any.allow([]byte("null")) {
		t.Error("an empty list must allow every origin")
	}
}

// FuzzOrigin: whatever the header, allow never panics, and what it allows
// is one of the listed origins or a subdomain of the wildcard, with the
// listed scheme and port.
func FuzzOrigin(f *testing.F) {
	for _, s := range []string{"https://odds.example.com", "https://a.example.net", "https://odds.example.com.evil.com", "null",
		"https://[::1]:8443", "https://x@y", "HTTPS://A.EXAMPLE.NET:443", "https://a..example.net", "https://a.example.net:65536"} {
		f.Add(s)
	}
	o, err := newOrigins([]string{"https://odds.example.com", "https://*.example.net"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !o.allow([]byte(s)) || s == "" {
			return
		}
		p, err := parseOrigin(s, false)
		if err != nil {
			t.Fatalf("allowed %q, which does not parse: %v", s, err)
		}
		if p.scheme != "https" || p.port != 443 || !(p.host == "odds.example.com" || strings.HasSuffix(p.host, ".example.net")) {
			t.Fatalf("allowed %q (%+v)", s, p)
		}
		rest := strings.ToLower(s[len("https://"):])
		rest = strings.TrimSuffix(rest, ":443")
		if rest != p.host {
			t.Fatalf("allowed %q: host %q is not what was sent", s, p.host)
		}
	})
}

// BenchmarkTake: what the limits add to one publish: the connection's
// bucket and its key's, shared by parallel publishers.
func BenchmarkTake(b *testing.B) {
	shared := Rate{PerSecond: 1e12, Burst: 1 << 30}.newLimiter()
	b.RunParallel(func(pb *testing.PB) {
		own := Rate{PerSecond: 1e12, Burst: 1 << 30}.newLimiter()
		now := t0
		for pb.Next() {
			now = now.Add(time.Microsecond)
			if w, _ := take(now, 1, own, shared); w != 0 {
				b.Fatal("refused")
			}
		}
	})
}

// TestPublishOrderBlocksOnFirstSent: a connection's block on a channel is
// on the refused publish it received first, whatever order the refusals
// came in (a rate refusal is immediate, the backbone's refusal of an
// earlier publish comes later), and the retry of that one lifts it.
// Before, the block stayed on whichever refusal came first, unless the
// retry that lifted it was refused again: with A (to the backbone) then B
// (over the rate), B's retry lifted the block, A's and B's backbone
// refusals came next, and the block went back to B, while the client must
// publish A first: A was refused for order for ever.
func TestPublishOrderBlocksOnFirstSent(t *testing.T) {
	var o publishOrder
	a, b := o.number(), o.number()
	o.refused("c", "B", b) // over the rate: at once
	if got := o.admit("c", "A2"); got != "B" {
		t.Fatalf("a later publish: admitted against %q, want refused for B", got)
	}
	if got := o.admit("c", "B"); got != "" {
		t.Fatalf("B's retry: refused for %q", got)
	}
	bRetry := o.number()
	o.refused("c", "A", a)      // the backbone refuses A, sent before B…
	o.refused("c", "B", bRetry) // …and B's retry behind it
	if got := o.admit("c", "B"); got != "A" {
		t.Fatalf("B again: admitted against %q, want refused for A (sent first)", got)
	}
	if got := o.admit("c", "A"); got != "" {
		t.Fatalf("A's retry: refused for %q", got)
	}
	if got := o.admit("c", "B"); got != "" {
		t.Fatalf("B after A: refused for %q", got)
	}
}
