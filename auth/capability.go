package auth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/feedgate/feedgate/codec"
)

// Op is a set of operations a capability grants on the channels of a
// pattern.
type Op uint8

// Operations. Admin is not a channel operation: it lets an API key revoke
// keys, tokens and subjects (POST /v1/revocations); it is granted only by
// the pattern "*" and only when named ("*" as an operation does not
// include it).
const (
	OpSubscribe Op = 1 << iota
	OpPublish
	OpHistory
	OpAdmin

	opChannel = OpSubscribe | OpPublish | OpHistory
)

var opNames = []struct {
	op   Op
	name string
}{{OpSubscribe, "subscribe"}, {OpPublish, "publish"}, {OpHistory, "history"}, {OpAdmin, "admin"}}

// String lists the operations of o, comma-separated.
func (o Op) String() string {
	var parts []string
	for _, n := range opNames {
		if o&n.op != 0 {
			parts = append(parts, n.name)
		}
	}
	return strings.Join(parts, ",")
}

// MaxPatterns bounds the patterns of one capability. A token is capped at
// MaxTokenBytes anyway; a key in the keys file or an intersection of two
// capabilities could otherwise grow without bound, and every attach scans
// the patterns.
const MaxPatterns = 256

// Capability maps channel patterns to the operations allowed on the
// channels they match. The zero value allows nothing.
//
// Pattern rules (docs/operations.md, "Capabilities"), on the exact bytes
// of the channel name, case-sensitive:
//
//   - "*" alone matches every channel.
//   - "prefix:*" matches every channel that begins with "prefix:" and has
//     at least one more byte: "odds:*" matches "odds:x" and "odds:x:y",
//     never "odds", "odds:" or "odds-admin". The prefix itself follows the
//     channel-name rules.
//   - Anything else is an exact channel name (codec.ValidateChannel).
//
// No other wildcard exists. A pattern with "*" anywhere else, a "..", a
// character outside the channel alphabet (so no "%" encoding), or over
// codec.MaxChannelLen bytes is refused when parsed: it could never match,
// and a pattern that silently matches nothing hides a mistake.
type Capability struct {
	rules []rule // sorted by pattern, one per pattern
}

type rule struct {
	pattern string
	prefix  string // for "x:*": "x:"; for "*": ""
	wild    bool
	ops     Op
}

func (r rule) matches(channel string) bool {
	if !r.wild {
		return channel == r.pattern
	}
	return len(channel) > len(r.prefix) && strings.HasPrefix(channel, r.prefix)
}

// All allows every channel operation on every channel (not admin).
var All = Capability{rules: []rule{{pattern: "*", wild: true, ops: opChannel}}}

// Allows reports whether c allows op (one or more operations, all
// required) on channel.
func (c Capability) Allows(channel string, op Op) bool {
	var have Op
	for _, r := range c.rules {
		if r.matches(channel) {
			have |= r.ops
			if have&op == op {
				return true
			}
		}
	}
	return op == 0
}

// Admin reports whether c grants the admin operation.
func (c Capability) Admin() bool {
	for _, r := range c.rules {
		if r.pattern == "*" && r.ops&OpAdmin != 0 {
			return true
		}
	}
	return false
}

// Empty reports whether c allows nothing.
func (c Capability) Empty() bool { return len(c.rules) == 0 }

// ParseCapability parses a capability in its JSON form, an object of
// pattern → array of operations:
//
//	{"odds:football:*":["subscribe","history"],"scores:live":["*"]}
//
// Operations are "subscribe", "publish", "history", "admin" (only on "*")
// and "*" (the three channel operations). Duplicate patterns, unknown
// operations, empty lists and bad patterns are refused with a message that
// names the problem.
func ParseCapability(b []byte) (Capability, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return Capability{}, fmt.Errorf("capability must be a JSON object of pattern -> [operations]")
	}
	seen := make(map[string]bool)
	var c Capability
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return Capability{}, fmt.Errorf("capability: %s", codec.Clip(err.Error()))
		}
		pattern, _ := t.(string)
		if seen[pattern] {
			return Capability{}, fmt.Errorf("capability: pattern %q appears twice", codec.Clip(pattern))
		}
		seen[pattern] = true
		var names []string
		if err := dec.Decode(&names); err != nil {
			return Capability{}, fmt.Errorf("capability: pattern %q: operations must be an array of strings", codec.Clip(pattern))
		}
		r, err := newRule(pattern, names)
		if err != nil {
			return Capability{}, err
		}
		if len(c.rules) == MaxPatterns {
			return Capability{}, fmt.Errorf("capability: more than %d patterns", MaxPatterns)
		}
		c.rules = append(c.rules, r)
	}
	if _, err := dec.Token(); err != nil {
		return Capability{}, fmt.Errorf("capability: %s", codec.Clip(err.Error()))
	}
	if _, err := dec.Token(); err != io.EOF {
		return Capability{}, fmt.Errorf("capability: trailing data after the object")
	}
	c.sort()
	return c, nil
}

func newRule(pattern string, names []string) (rule, error) {
	r := rule{pattern: pattern}
	if err := checkPattern(pattern); err != nil {
		return r, err
	}
	if pattern == "*" {
		r.wild = true
	} else if p, ok := strings.CutSuffix(pattern, ":*"); ok {
		r.wild, r.prefix = true, p+":"
	}
	if len(names) == 0 {
		return r, fmt.Errorf("capability: pattern %q has no operations", codec.Clip(pattern))
	}
	for _, n := range names {
		op, ok := parseOp(n)
		if !ok {
			return r, fmt.Errorf("capability: pattern %q: unknown operation %q (want subscribe, publish, history, admin or *)", codec.Clip(pattern), codec.Clip(n))
		}
		if op == OpAdmin && pattern != "*" {
			return r, fmt.Errorf("capability: admin is granted only on the pattern \"*\", not %q", codec.Clip(pattern))
		}
		r.ops |= op
	}
	return r, nil
}

func parseOp(n string) (Op, bool) {
	if n == "*" {
		return opChannel, true
	}
	for _, o := range opNames {
		if o.name == n {
			return o.op, true
		}
	}
	return 0, false
}

// checkPattern applies the pattern rules of Capability.
func checkPattern(p string) error {
	if p == "*" {
		return nil
	}
	name := p
	if pre, ok := strings.CutSuffix(p, ":*"); ok {
		if pre == "" {
			return fmt.Errorf("capability: pattern %q: a wildcard needs a prefix before \":*\" (or use \"*\" alone)", p)
		}
		name = pre + ":x" // the shortest channel it matches must be valid
	}
	if strings.Contains(name, "*") {
		return fmt.Errorf("capability: pattern %q: \"*\" is allowed only alone or as a last segment after \":\"", codec.Clip(p))
	}
	if strings.Contains(name, "..") {
		return fmt.Errorf("capability: pattern %q: \"..\" is not allowed in a pattern", codec.Clip(p))
	}
	if err := codec.ValidateChannel(name); err != nil {
		return fmt.Errorf("capability: pattern %q: %s", codec.Clip(p), codec.AsError(err).Message)
	}
	return nil
}

func (c *Capability) sort() {
	sort.Slice(c.rules, func(i, j int) bool { return c.rules[i].pattern < c.rules[j].pattern })
}

// MarshalJSON returns c in its JSON form, patterns sorted.
func (c Capability) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, r := range c.rules {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(r.pattern)
		b.Write(k)
		b.WriteString(":[")
		first := true
		for _, n := range opNames {
			if r.ops&n.op != 0 {
				if !first {
					b.WriteByte(',')
				}
				first = false
				b.WriteString(`"` + n.name + `"`)
			}
		}
		b.WriteByte(']')
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON parses the JSON form (ParseCapability).
func (c *Capability) UnmarshalJSON(b []byte) error {
	p, err := ParseCapability(b)
	if err != nil {
		return err
	}
	*c = p
	return nil
}

// String returns the JSON form.
func (c Capability) String() string {
	b, _ := c.MarshalJSON()
	return string(b)
}

// Intersect returns the capability that allows exactly what both a and b
// allow: an operation on a channel is in the result if and only if a and b
// both allow it. A token issued with an API key gets the intersection of
// what it asks for and the key's own capability, so it is never wider.
// The result is refused if it would exceed MaxPatterns.
func Intersect(a, b Capability) (Capability, error) {
	byPattern := make(map[string]rule)
	for _, x := range a.rules {
		for _, y := range b.rules {
			ops := x.ops & y.ops
			if ops == 0 {
				continue
			}
			r, ok := meet(x, y)
			if !ok {
				continue
			}
			if prev, ok := byPattern[r.pattern]; ok {
				r.ops |= prev.ops
			}
			r.ops |= ops
			byPattern[r.pattern] = r
		}
	}
	if len(byPattern) > MaxPatterns {
		return Capability{}, fmt.Errorf("capability: the intersection has more than %d patterns", MaxPatterns)
	}
	var c Capability
	for _, r := range byPattern {
		c.rules = append(c.rules, r)
	}
	c.sort()
	return c, nil
}

// meet returns the pattern matching exactly the channels both x and y
// match (without operations), or false if they match none in common. Two
// wildcard patterns overlap only if one prefix begins with the other (a
// channel that begins with both begins with the longer one); the narrower
// pattern is then the intersection.
func meet(x, y rule) (rule, bool) {
	switch {
	case !x.wild && !y.wild:
		return rule{pattern: x.pattern}, x.pattern == y.pattern
	case !x.wild:
		return rule{pattern: x.pattern}, y.matches(x.pattern)
	case !y.wild:
		return rule{pattern: y.pattern}, x.matches(y.pattern)
	case strings.HasPrefix(x.prefix, y.prefix):
		return rule{pattern: x.pattern, prefix: x.prefix, wild: true}, true
	case strings.HasPrefix(y.prefix, x.prefix):
		return rule{pattern: y.pattern, prefix: y.prefix, wild: true}, true
	}
	return rule{}, false
}

// Equal reports whether a and b have the same patterns and operations.
func (c Capability) Equal(o Capability) bool {
	return slices.Equal(c.rules, o.rules)
}
