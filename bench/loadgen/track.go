package loadgen

// Sub is one logical subscriber: the channels it holds and, per channel, what
// it has received so far. A Sub outlives its connections, so a reconnect
// continues the same sequence tracking and a gap shows as loss.
type Sub struct {
	ID       int
	Channels []int32 // channel indices into the run's channel list

	track []chanTrack // parallel to Channels; owned by the reader goroutine
	pos   []resumePos // parallel to Channels when the reader tracks positions; owned by the reader goroutine
	live  *conn       // current connection; owned by the reader goroutine
	base  [][]byte    // parallel to Channels with deltas on: the message held as a delta base (its id); owned by the reader goroutine
}

// heldBase returns the base record of s.Channels[i], allocating the records
// on first use.
func (s *Sub) heldBase(i int) *[]byte {
	if s.base == nil {
		s.base = make([][]byte, len(s.Channels))
	}
	return &s.base[i]
}

// NewSub returns a subscriber on the given channel indices.
func NewSub(id int, channels []int32) *Sub {
	return &Sub{ID: id, Channels: channels, track: make([]chanTrack, len(channels))}
}

// index returns the position of channel ci in s.Channels, or -1.
func (s *Sub) index(ci int64) int {
	for i, c := range s.Channels {
		if int64(c) == ci {
			return i
		}
	}
	return -1
}

// posAt returns the position record of s.Channels[i], allocating the
// records on first use.
func (s *Sub) posAt(i int) *resumePos {
	if s.pos == nil {
		s.pos = make([]resumePos, len(s.Channels))
	}
	return &s.pos[i]
}

// setTok records our resume token for s.Channels[i], reusing its buffer.
func (s *Sub) setTok(i int, tok []byte) {
	p := s.posAt(i)
	p.tok, p.ok = append(p.tok[:0], tok...), true
}

// chanTrack follows one publisher's sequence on one channel for one
// subscriber: the highest sequence seen and a 64-message window below it.
type chanTrack struct {
	last int64
	bits uint64 // bit d set: last-d was received
	seen bool
}

// observe classifies seq as new, duplicate or reordered. Anything older than
// the 64-message window counts as reordered.
func (t *chanTrack) observe(seq int64, st *Stats) {
	if !t.seen || seq > t.last {
		if !t.seen {
			t.bits = 1
		} else if d := seq - t.last; d >= 64 {
			t.bits = 1
		} else {
			t.bits = t.bits<<d | 1
		}
		t.last, t.seen = seq, true
		return
	}
	d := t.last - seq
	if d >= 64 {
		st.Reorders++
		return
	}
	bit := uint64(1) << d
	if t.bits&bit != 0 {
		st.Dups++
		return
	}
	t.bits |= bit
	st.Reorders++
}
