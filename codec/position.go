package codec

import (
	"math"
	"slices"
	"strconv"
	"strings"
)

// Position is a set of a channel's messages, the ones a subscriber has: a
// watermark over origin time plus a version vector over the origins active
// near it (docs/protocol.md §7). A message of origin o with sequence number
// seq and origin time t is in the position when
//
//   - o is named in Seqs: seq <= Seqs[o];
//   - o is not named: t <= Watermark.
//
// An edge names an origin as long as it has delivered a message of it newer
// than the watermark; the watermark trails the newest message of the channel
// by the edge's lateness bound, so an origin that stopped publishing drops
// out of the tokens after that bound, and positions stay small however many
// origins a channel has seen.
type Position struct {
	// Watermark is an origin time in Unix milliseconds (0: none).
	Watermark int64
	// Seqs holds the named origins; nil means none.
	Seqs map[string]uint64
	// Overflow marks a position that names more origins than a token can
	// hold: it cannot be resumed from exactly, and a resume from it
	// reports continuity lost.
	Overflow bool
}

// Includes reports whether the message of origin with sequence number seq
// and origin time t is in p.
func (p Position) Includes(origin string, seq uint64, t int64) bool {
	if s, ok := p.Seqs[origin]; ok {
		return seq <= s
	}
	return t <= p.Watermark
}

// Clone returns a copy of p that shares nothing with it.
func (p Position) Clone() Position {
	q := p
	if p.Seqs != nil {
		q.Seqs = make(map[string]uint64, len(p.Seqs))
		for o, s := range p.Seqs {
			q.Seqs[o] = s
		}
	}
	return q
}

// Resume tokens are Positions as opaque strings. Version 2:
//
//	"2." watermark *( "_" origin "-" seq )
//
// with the watermark and seq in base 36 and origins sorted, e.g.
// "2.mfz3a0g0_k2x7q9aa-2s_m3ddq01b-a"; "2.!" is an overflowed position.
// Version 1 ("1." origin-seq pairs joined by "_", no watermark) still parses,
// as a position with watermark 0. Clients must treat tokens as opaque.
const (
	tokenV1       = "1."
	tokenV2       = "2."
	tokenOverflow = "2.!"
	// MaxTokenLen bounds a resume token; MaxTokenOrigins bounds the origins
	// named in it. An edge names only the origins that delivered a message
	// within its lateness bound of the channel's newest one (one minute by
	// default): one or two per publishing region normally, a few more
	// during a rolling restart or with HTTP publishers spread over edges.
	// A position naming more than fits is issued as an overflowed token.
	MaxTokenLen     = 512
	MaxTokenOrigins = 32
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

// Token encodes p as a version 2 resume token. A position that names more
// than MaxTokenOrigins origins, or whose token would exceed MaxTokenLen, is
// encoded as the overflow token.
func (p Position) Token() string {
	if p.Overflow || len(p.Seqs) > MaxTokenOrigins {
		return tokenOverflow
	}
	origins := make([]string, 0, len(p.Seqs))
	for o := range p.Seqs {
		origins = append(origins, o)
	}
	slices.Sort(origins)
	var b strings.Builder
	b.WriteString(tokenV2)
	b.WriteString(strconv.FormatUint(uint64(max(p.Watermark, 0)), 36))
	for _, o := range origins {
		b.WriteByte('_')
		b.WriteString(o)
		b.WriteByte('-')
		b.WriteString(strconv.FormatUint(p.Seqs[o], 36))
	}
	if b.Len() > MaxTokenLen {
		return tokenOverflow
	}
	return b.String()
}

// ParseToken parses a resume token of version 1 or 2; errors are
// CodeBadRequest.
func ParseToken(s string) (Position, error) {
	if len(s) > MaxTokenLen {
		return Position{}, Errorf(CodeBadRequest, "resume token is longer than %d bytes", MaxTokenLen)
	}
	var p Position
	var pairs string
	switch {
	case s == tokenOverflow:
		return Position{Overflow: true}, nil
	case strings.HasPrefix(s, tokenV1):
		pairs = s[len(tokenV1):]
	case strings.HasPrefix(s, tokenV2):
		wm, rest, _ := strings.Cut(s[len(tokenV2):], "_")
		w, err := strconv.ParseUint(wm, 36, 63)
		if err != nil || w > math.MaxInt64 {
			return Position{}, Errorf(CodeBadRequest, "resume token has a bad watermark")
		}
		p.Watermark, pairs = int64(w), rest
	default:
		return Position{}, Errorf(CodeBadRequest, "resume token is not a version 1 or 2 token")
	}
	if pairs == "" {
		return p, nil
	}
	p.Seqs = map[string]uint64{}
	for _, part := range strings.Split(pairs, "_") {
		o, n, ok := strings.Cut(part, "-")
		if !ok || !ValidOrigin(o) {
			return Position{}, Errorf(CodeBadRequest, "resume token is malformed")
		}
		seq, err := strconv.ParseUint(n, 36, 64)
		if err != nil || seq == 0 {
			return Position{}, Errorf(CodeBadRequest, "resume token has a bad sequence number")
		}
		if _, dup := p.Seqs[o]; dup {
			return Position{}, Errorf(CodeBadRequest, "resume token names an origin twice")
		}
		p.Seqs[o] = seq
	}
	if len(p.Seqs) > MaxTokenOrigins {
		return Position{}, Errorf(CodeBadRequest, "resume token has more than %d origins", MaxTokenOrigins)
	}
	return p, nil
}

// Continuity tells a subscriber how its stream relates to what it had: on
// attached, and in a continuity frame mid-stream.
type Continuity string

const (
	// ContinuityFresh: a new attach (no resume token).
	ContinuityFresh Continuity = "fresh"
	// ContinuityResumed: every message after the resume token follows, in
	// order, then live messages; nothing is missing and nothing is repeated.
	ContinuityResumed Continuity = "resumed"
	// ContinuityLost: the edge cannot send messages the subscriber has not
	// had (history no longer covers the gap, or, mid-stream, a message
	// never reached this edge); the client should refetch the channel's
	// state.
	ContinuityLost Continuity = "lost"
)
