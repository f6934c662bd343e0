package auth

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/feedgate/feedgate/codec"
)

func mustCap(tb testing.TB, s string) Capability {
	tb.Helper()
	c, err := ParseCapability([]byte(s))
	if err != nil {
		tb.Fatalf("ParseCapability(%s): %v", s, err)
	}
	return c
}

func TestCapabilityMatching(t *testing.T) {
	c := mustCap(t, `{"odds:football:*":["subscribe","history"],"scores:live":["*"],"news:*":["publish"]}`)
	for _, tc := range []struct {
		channel string
		op      Op
		want    bool
	}{
		{"odds:football:match-1", OpSubscribe, true},
		{"odds:football:match-1:1x2", OpHistory, true},
		{"odds:football:match-1", OpPublish, false},
		{"odds:football", OpSubscribe, false},  // the prefix itself is not matched
		{"odds:football:", OpSubscribe, false}, // nothing after the prefix
		{"odds:footballx", OpSubscribe, false},
		{"odds:football-admin", OpSubscribe, false},
		{"ODDS:football:match-1", OpSubscribe, false}, // case-sensitive
		{"odds:Football:match-1", OpSubscribe, false},
		{"xodds:football:a", OpSubscribe, false},
		{"scores:live", OpPublish, true},
		{"scores:live", OpSubscribe | OpHistory | OpPublish, true},
		{"scores:live:x", OpSubscribe, false}, // exact name
		{"scores:liv", OpSubscribe, false},
		{"news:a", OpPublish, true},
		{"news:a", OpSubscribe, false},
		{"news", OpPublish, false},
	} {
		if got := c.Allows(tc.channel, tc.op); got != tc.want {
			t.Errorf("Allows(%q, %s) = %v, want %v", tc.channel, tc.op, got, tc.want)
		}
	}
	odds := mustCap(t, `{"odds:*":["subscribe"]}`)
	for ch, want := range map[string]bool{"odds:x": true, "odds:x:y": true, "odds-admin": false, "odds": false, "odds:": false, "oddsx:y": false} {
		if got := odds.Allows(ch, OpSubscribe); got != want {
			t.Errorf("odds:* on %q = %v, want %v", ch, got, want)
		}
	}
	all := mustCap(t, `{"*":["subscribe"]}`)
	if !all.Allows("anything:at/all", OpSubscribe) || all.Allows("a", OpPublish) {
		t.Error(`"*" must match every channel, for its operations only`)
	}
	if (Capability{}).Allows("a", OpSubscribe) {
		t.Error("the zero capability must allow nothing")
	}
}

func TestCapabilityRefused(t *testing.T) {
	for name, s := range map[string]string{
		"not an object":         `["odds:*"]`,
		"ops not an array":      `{"odds:*":"subscribe"}`,
		"unknown op":            `{"odds:*":["read"]}`,
		"op case":               `{"odds:*":["Subscribe"]}`,
		"no ops":                `{"odds:*":[]}`,
		"empty pattern":         `{"":["subscribe"]}`,
		"star in the middle":    `{"odds:*:live":["subscribe"]}`,
		"star glued":            `{"odds*":["subscribe"]}`,
		"star without colon":    `{"odds-*":["subscribe"]}`,
		"bare colon star":       `{":*":["subscribe"]}`,
		"double star":           `{"odds:**":["subscribe"]}`,
		"dot dot":               `{"odds:../admin:*":["subscribe"]}`,
		"dot dot exact":         `{"odds/../admin":["subscribe"]}`,
		"percent encoding":      `{"odds%3Aadmin":["subscribe"]}`,
		"percent in prefix":     `{"odds%2F:*":["subscribe"]}`,
		"space":                 `{"odds admin":["subscribe"]}`,
		"non-ASCII":             `{"odds:é":["subscribe"]}`,
		"fullwidth colon":       `{"odds：*":["subscribe"]}`,
		"NUL":                   `{"odds\u0000:*":["subscribe"]}`,
		"duplicate pattern":     `{"odds:*":["subscribe"],"odds:*":["publish"]}`,
		"admin off star":        `{"odds:*":["admin"]}`,
		"too long":              `{"` + strings.Repeat("a", 129) + `":["subscribe"]}`,
		"prefix too long":       `{"` + strings.Repeat("a", 127) + `:*":["subscribe"]}`,
		"trailing data":         `{"odds:*":["subscribe"]} {}`,
		"truncated":             `{"odds:*":["subscribe"]`,
		"system channel":        `{"$feedgate:revocations":["subscribe"]}`,
		"system channel prefix": `{"$feedgate:*":["subscribe"]}`,
	} {
		t.Run(name, func(t *testing.T) {
			if c, err := ParseCapability([]byte(s)); err == nil {
				t.Errorf("ParseCapability(%s) = %s, want an error", s, c)
			}
		})
	}
	var many strings.Builder
	many.WriteString("{")
	for i := range MaxPatterns + 1 {
		if i > 0 {
			many.WriteString(",")
		}
		many.WriteString(`"c` + strings.Repeat("x", i%50) + string(rune('a'+i%26)) + `:` + strconv.Itoa(i) + `":["subscribe"]`)
	}
	many.WriteString("}")
	if _, err := ParseCapability([]byte(many.String())); err == nil {
		t.Errorf("a capability of %d patterns was accepted", MaxPatterns+1)
	}
}

func TestCapabilityJSONRoundTrip(t *testing.T) {
	in := `{"scores:live":["*"],"odds:*":["history","subscribe"],"*":["admin"]}`
	c := mustCap(t, in)
	want := `{"*":["admin"],"odds:*":["subscribe","history"],"scores:live":["subscribe","publish","history"]}`
	if got := c.String(); got != want {
		t.Errorf("String() = %s, want %s", got, want)
	}
	if !mustCap(t, c.String()).Equal(c) {
		t.Error("parsing the JSON form again gave another capability")
	}
	if !c.Admin() || mustCap(t, `{"*":["*"]}`).Admin() {
		t.Error(`admin must be granted only when named ("*" ops exclude it)`)
	}
}

// TestIntersect checks Intersect against its definition on random
// capabilities and channels: allowed by the result iff allowed by both.
func TestIntersect(t *testing.T) {
	segs := []string{"a", "b", "ab"}
	randName := func(r *rand.Rand) string {
		n := 1 + r.IntN(3)
		parts := make([]string, n)
		for i := range parts {
			parts[i] = segs[r.IntN(len(segs))]
		}
		return strings.Join(parts, ":")
	}
	randCap := func(r *rand.Rand) Capability {
		var c Capability
		seen := map[string]bool{}
		for range 1 + r.IntN(4) {
			p := randName(r)
			switch r.IntN(3) {
			case 0:
				p += ":*"
			case 1:
				if r.IntN(4) == 0 {
					p = "*"
				}
			}
			if seen[p] {
				continue
			}
			seen[p] = true
			rr, err := newRule(p, []string{[]string{"subscribe", "publish", "history", "*"}[r.IntN(4)]})
			if err != nil {
				t.Fatal(err)
			}
			c.rules = append(c.rules, rr)
		}
		c.sort()
		return c
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		a, b := randCap(r), randCap(r)
		got, err := Intersect(a, b)
		if err != nil {
			t.Fatal(err)
		}
		for range 30 {
			ch := randName(r)
			for _, op := range []Op{OpSubscribe, OpPublish, OpHistory} {
				want := a.Allows(ch, op) && b.Allows(ch, op)
				if got.Allows(ch, op) != want {
					t.Fatalf("case %d: Intersect(%s, %s) = %s allows %s on %q: %v, want %v", i, a, b, got, op, ch, !want, want)
				}
			}
		}
	}
}

func FuzzParseCapability(f *testing.F) {
	for _, s := range []string{
		`{"odds:football:*":["subscribe","history"]}`,
		`{"*":["*"]}`,
		`{"*":["admin","subscribe"]}`,
		`{"scores:live":["publish"],"odds:*":["subscribe"]}`,
		`{"odds:../x:*":["subscribe"]}`,
		`{"odds%3A*":["subscribe"]}`,
		`{"a":[]}`,
		`[]`,
		``,
	} {
		f.Add([]byte(s), "odds:football:x")
	}
	f.Fuzz(func(t *testing.T, b []byte, channel string) {
		c, err := ParseCapability(b)
		if err != nil {
			return
		}
		// The JSON form parses back to the same capability.
		again, err := ParseCapability([]byte(c.String()))
		if err != nil || !again.Equal(c) {
			t.Fatalf("%s: round trip gave %s, %v", c, again, err)
		}
		// Every pattern is one of the three documented forms, and a channel
		// it matches begins with its prefix (no escape out of it).
		for _, r := range c.rules {
			if r.wild && r.pattern != "*" && r.pattern != r.prefix+"*" || !r.wild && codec.ValidateChannel(r.pattern) != nil {
				t.Fatalf("pattern %q is none of the documented forms", r.pattern)
			}
			if r.matches(channel) && r.wild && (!strings.HasPrefix(channel, r.prefix) || len(channel) == len(r.prefix)) {
				t.Fatalf("pattern %q matches %q", r.pattern, channel)
			}
		}
		// Intersecting with itself changes nothing it allows.
		self, err := Intersect(c, c)
		if err != nil {
			t.Fatal(err)
		}
		for _, op := range []Op{OpSubscribe, OpPublish, OpHistory} {
			if self.Allows(channel, op) != c.Allows(channel, op) {
				t.Fatalf("Intersect(c, c) differs from c on %q", channel)
			}
		}
	})
}
