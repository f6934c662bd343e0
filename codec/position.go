package codec

import (
	"slices"
	"strconv"
	"strings"
)

// Position is where a subscriber is in a channel: for each origin edge that
// published on it, the sequence number of the last message seen from that
// origin (a version vector). Messages from one origin arrive at every edge
// in sequence order, so a Position tells exactly which messages come after
// it, on any edge, whatever the interleaving of origins there.
type Position map[string]uint64

// Resume tokens: a Position as an opaque string, "1." followed by
// origin-seq pairs (seq in base 36) joined by "_", origins sorted, e.g.
// "1.k2x7q9aa-2s_m3ddq01b-a". Clients must treat them as opaque.
const (
	tokenVersion = "1."
	// MaxTokenLen bounds a resume token; MaxTokenOrigins bounds the origins
	// in it (a channel normally has one or two publishing regions).
	MaxTokenLen     = 512
	MaxTokenOrigins = 16
	maxOriginLen    = 32
)

// ValidOrigin reports whether o can name an origin in a token: 1 to 32
// lowercase letters or digits.
func ValidOrigin(o string) bool {
	if o == "" || len(o) > maxOriginLen {
		return false
	}
	for i := 0; i < len(o); i++ {
		c := o[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// Token encodes p as a resume token.
func (p Position) Token() string {
	origins := make([]string, 0, len(p))
	for o := range p {
		origins = append(origins, o)
	}
	slices.Sort(origins)
	var b strings.Builder
	b.WriteString(tokenVersion)
	for i, o := range origins {
		if i > 0 {
			b.WriteByte('_')
		}
		b.WriteString(o)
		b.WriteByte('-')
		b.WriteString(strconv.FormatUint(p[o], 36))
	}
	return b.String()
}

// ParseToken parses a resume token; errors are CodeBadRequest.
func ParseToken(s string) (Position, error) {
	if len(s) > MaxTokenLen {
		return nil, Errorf(CodeBadRequest, "resume token is longer than %d bytes", MaxTokenLen)
	}
	rest, ok := strings.CutPrefix(s, tokenVersion)
	if !ok {
		return nil, Errorf(CodeBadRequest, "resume token is not a version 1 token")
	}
	p := Position{}
	if rest == "" {
		return p, nil
	}
	for _, part := range strings.Split(rest, "_") {
		o, n, ok := strings.Cut(part, "-")
		if !ok || !ValidOrigin(o) {
			return nil, Errorf(CodeBadRequest, "resume token is malformed")
		}
		seq, err := strconv.ParseUint(n, 36, 64)
		if err != nil || seq == 0 {
			return nil, Errorf(CodeBadRequest, "resume token has a bad sequence number")
		}
		if _, dup := p[o]; dup {
			return nil, Errorf(CodeBadRequest, "resume token names an origin twice")
		}
		p[o] = seq
	}
	if len(p) > MaxTokenOrigins {
		return nil, Errorf(CodeBadRequest, "resume token has more than %d origins", MaxTokenOrigins)
	}
	return p, nil
}

// Continuity tells a subscriber, on attached, how its stream relates to
// what it had.
type Continuity string

const (
	// ContinuityFresh: a new attach (no resume token).
	ContinuityFresh Continuity = "fresh"
	// ContinuityResumed: every message after the resume token follows, in
	// order, then live messages; nothing is missing and nothing is repeated.
	ContinuityResumed Continuity = "resumed"
	// ContinuityLost: the edge's history no longer covers the gap; live
	// messages follow, and the client should refetch the channel's state.
	ContinuityLost Continuity = "lost"
)
