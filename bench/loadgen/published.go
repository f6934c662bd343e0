package loadgen

import "sync"

// publishedDepth is how many recent payloads Published keeps per channel: a
// subscriber's delta is checked when its message is first decoded, within
// moments of its publication, far fewer messages later than this.
const publishedDepth = 4096

// Published keeps the payloads the publishers sent, per channel and
// sequence, so that the reader can compare a payload rebuilt from a delta
// with what was published. Safe for concurrent use.
type Published struct {
	mu sync.Mutex // guards the field below
	ch map[int64][]pubSlot
}

type pubSlot struct {
	seq  int64
	data []byte
}

// NewPublished returns an empty record.
func NewPublished() *Published { return &Published{ch: make(map[int64][]pubSlot)} }

// Record returns payload, recording each payload it produces. One
// channel's payloads must be produced in sequence order (one publisher owns
// a channel).
func (p *Published) Record(payload Payload) Payload {
	return func(dst []byte, ts, seq int64, ci int) []byte {
		start := len(dst)
		dst = payload(dst, ts, seq, ci)
		data := append([]byte(nil), dst[start:]...)
		p.mu.Lock()
		s := append(p.ch[int64(ci)], pubSlot{seq, data})
		if len(s) > 2*publishedDepth {
			s = append(s[:0:0], s[len(s)-publishedDepth:]...)
		}
		p.ch[int64(ci)] = s
		p.mu.Unlock()
		return dst
	}
}

// Get returns the payload published as message seq of channel ci.
func (p *Published) Get(ci, seq int64) ([]byte, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.ch[ci]
	if len(s) == 0 {
		return nil, false
	}
	// Sequences are consecutive within a channel's record.
	if i := seq - s[0].seq; i >= 0 && i < int64(len(s)) && s[i].seq == seq {
		return s[i].data, true
	}
	for _, e := range s {
		if e.seq == seq {
			return e.data, true
		}
	}
	return nil, false
}
