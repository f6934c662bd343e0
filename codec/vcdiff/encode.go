package vcdiff

import (
	"encoding/binary"
	"math/bits"
	"sync"
)

// Tuning of the match finder. Matches are found through a hash of 4-byte
// blocks over the source and the target already encoded (one address space,
// as in VCDIFF: the source at [0, S), the target after it).
const (
	blockSize = 4 // bytes hashed per block; also the shortest COPY emitted
	// The source index holds every step-th block, step = len(source) /
	// srcPerStep, 1 to maxStep: a match of blockSize+step-1 bytes or more
	// is always found (and extended backwards to its start), shorter ones
	// often. Indexing is most of the encoder's work on large sources, so
	// this bounds it to about srcPerStep..2*srcPerStep inserts.
	srcPerStep = 4096
	maxStep    = 8
	// indexAfter: the source is indexed only once this many literal bytes
	// are pending; until then matches come from the diagonal of the last
	// COPY alone. A document with a few values changed in place is encoded
	// without building the index at all.
	indexAfter = 8
	// maxShift: before the index exists, diagonals this close to the last
	// COPY's are tried too, and taken for a match of minShifted bytes.
	maxShift   = 4
	minShifted = 8
	minRun     = 4  // shortest RUN worth emitting: 3 bytes instead of 4 literal ones
	maxChain   = 16 // hash chain candidates examined per position
	goodMatch  = 64 // a match this long is taken without looking further
	minBits    = 8  // hash table sizes: 2^minBits .. 2^maxBits slots
	maxBits    = 17
	// skipShift makes the search step grow by one for every 2^skipShift
	// bytes without a match, so unrelated inputs cost little to encode
	// (the data is sent as it is).
	skipShift = 5
	// maxEncoded bounds what the match finder indexes (int32 positions);
	// larger inputs are sent as one ADD. VCDIFF decoders limit sizes to
	// 2^31-1 anyway.
	maxEncoded = 1 << 30
)

// Encoder computes VCDIFF deltas. Its zero value is ready to use. It keeps
// its scratch memory between calls, so a long-lived Encoder allocates only
// the output; it must not be used by two goroutines at once.
type Encoder struct {
	head []int32 // hash -> latest block position + 1 in the address space (0: none)
	prev []int32 // block position -> previous position + 1 with the same hash

	src, tgt []byte
	shift    uint // 32 - hash bits
	hasIndex bool // head and prev index the source (built on first need)
	indexed  int  // with hasIndex: target blocks before this position are indexed

	data, inst, addr []byte // the three sections of the window

	near     [nearSize]int
	nextNear int
	same     [sameSlots]int
	// diag is address minus position of the last COPY: the next bytes
	// usually continue on that diagonal after a small edit.
	diag int
	// last is the index in inst of a single-instruction opcode that the
	// next instruction may merge into a double one, or -1.
	last                   int
	lastOp, lastSz, lastMd int
}

var encoders = sync.Pool{New: func() any { return new(Encoder) }}

// Encode returns the VCDIFF delta that turns source into target, in the
// subset described in the package doc. It is safe for concurrent use.
func Encode(source, target []byte) []byte {
	e := encoders.Get().(*Encoder)
	out := e.Append(nil, source, target)
	encoders.Put(e)
	return out
}

// Append appends the VCDIFF delta that turns source into target to dst and
// returns the extended slice.
func (e *Encoder) Append(dst, source, target []byte) []byte {
	e.data, e.inst, e.addr = e.data[:0], e.inst[:0], e.addr[:0]
	e.near, e.nextNear, e.same = [nearSize]int{}, 0, [sameSlots]int{}
	e.last = -1
	e.diag = 0
	if len(source)+len(target) > maxEncoded {
		source = nil
		e.add(target)
	} else {
		e.src, e.tgt = source, target
		e.match()
		e.src, e.tgt = nil, nil // keep no reference to the caller's bytes
	}

	S, T := len(source), len(target)
	enc := varintLen(T) + 1 + varintLen(len(e.data)) + varintLen(len(e.inst)) + varintLen(len(e.addr)) +
		len(e.data) + len(e.inst) + len(e.addr)
	n := 5 + 1 + varintLen(enc) + enc
	if S > 0 {
		n += varintLen(S) + 1
	}
	if cap(dst)-len(dst) < n {
		grown := make([]byte, len(dst), len(dst)+n)
		copy(grown, dst)
		dst = grown
	}
	dst = append(dst, magic0, magic1, magic2, version0, 0)
	if S > 0 {
		dst = append(dst, winSource)
		dst = appendVarint(dst, S)
		dst = append(dst, 0) // segment position
	} else {
		dst = append(dst, 0)
	}
	dst = appendVarint(dst, enc)
	dst = appendVarint(dst, T)
	dst = append(dst, 0) // Delta_Indicator: no compressed sections
	dst = appendVarint(dst, len(e.data))
	dst = appendVarint(dst, len(e.inst))
	dst = appendVarint(dst, len(e.addr))
	dst = append(dst, e.data...)
	dst = append(dst, e.inst...)
	dst = append(dst, e.addr...)
	return dst
}

func load32(b []byte, i int) uint32 { return binary.LittleEndian.Uint32(b[i:]) }

func (e *Encoder) hash(v uint32) uint32 { return (v * 2654435761) >> e.shift }

// at returns the bytes of the address space from position p to the end of
// its region (the source or the target), so no match crosses from one into
// the other.
func (e *Encoder) at(p int) []byte {
	if p < len(e.src) {
		return e.src[p:]
	}
	return e.tgt[p-len(e.src):]
}

func (e *Encoder) insert(p int, b []byte, i int) {
	h := e.hash(load32(b, i))
	e.prev[p] = e.head[h]
	e.head[h] = int32(p + 1)
}

// indexSource inserts the source blocks into the hash chains.
func (e *Encoder) indexSource() {
	src, head, shift := e.src, e.head, e.shift
	mask := uint32(len(head) - 1)
	prev := e.prev[:len(src)]
	step := min(maxStep, max(1, len(src)/srcPerStep))
	for i := 0; i+blockSize <= len(src); i += step {
		h := (binary.LittleEndian.Uint32(src[i:]) * 2654435761 >> shift) & mask
		prev[i] = head[h]
		head[h] = int32(i + 1)
	}
}

// matchLen returns the length of the common prefix of a and b.
func matchLen(a, b []byte) int {
	n := 0
	for len(a) >= 8 && len(b) >= 8 {
		x := binary.LittleEndian.Uint64(a) ^ binary.LittleEndian.Uint64(b)
		if x != 0 {
			return n + bits.TrailingZeros64(x)>>3
		}
		a, b, n = a[8:], b[8:], n+8
	}
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return n + i
		}
	}
	return n + min(len(a), len(b))
}

// best finds the longest match for the target at j: first on the
// diagonal of the last COPY, then, once the index exists, among the hash
// chain of its block. It returns the address and length (0: none). lit is
// the start of the pending literal bytes: the index is built only once they
// exceed indexAfter bytes.
func (e *Encoder) best(j, lit int) (addr, length int) {
	S := len(e.src)
	want := e.tgt[j:]
	if p := S + j + e.diag; p >= 0 && p < S+j {
		addr, length = p, matchLen(e.at(p), want)
		if length >= goodMatch {
			return addr, length
		}
	}
	if !e.hasIndex {
		// An edit that changed the length (a price from 9.95 to 10.05)
		// moves the rest to a nearby diagonal: try those before indexing.
		for k := -maxShift; k <= maxShift; k++ {
			if p := S + j + e.diag + k; k != 0 && p >= 0 && p < S+j {
				if l := matchLen(e.at(p), want); l > length && l >= minShifted {
					addr, length = p, l
				}
			}
		}
		if length >= minShifted || (j-lit < indexAfter && S > 0) {
			return addr, length
		}
		e.buildIndex(j)
	}
	h := e.hash(load32(e.tgt, j))
	for c, n := e.head[h], 0; c != 0 && n < maxChain; c, n = e.prev[c-1], n+1 {
		p := int(c - 1)
		if p >= S+j { // a target block not yet encoded: unusable
			continue
		}
		l := matchLen(e.at(p), want)
		if l > length {
			addr, length = p, l
			if l >= goodMatch {
				break
			}
		}
	}
	return addr, length
}

// buildIndex indexes the source, and from now on the target blocks before
// the encoding position (from j on).
func (e *Encoder) buildIndex(j int) {
	S, T := len(e.src), len(e.tgt)
	hb := bits.Len(uint(S + T))
	hb = max(minBits, min(maxBits, hb))
	e.shift = uint(32 - hb)
	if cap(e.head) < 1<<hb {
		e.head = make([]int32, 1<<hb)
	} else {
		e.head = e.head[:1<<hb]
		clear(e.head)
	}
	if cap(e.prev) < S+T {
		e.prev = make([]int32, S+T)
	}
	e.prev = e.prev[:S+T]
	e.indexSource()
	e.hasIndex, e.indexed = true, j
}

// match runs the match finder over e.tgt and fills the sections.
func (e *Encoder) match() {
	S, T := len(e.src), len(e.tgt)
	e.hasIndex = false
	e.diag = -S // start on the main diagonal: target position j against source position j
	if T < blockSize {
		e.add(e.tgt)
		return
	}
	lit := 0 // start of the literal bytes not yet emitted
	j := 0
	last := T - blockSize // last position where a block starts
	for j <= last {
		if e.hasIndex {
			for ; e.indexed < j && e.indexed <= last; e.indexed++ {
				e.insert(S+e.indexed, e.tgt, e.indexed)
			}
		}
		run := 0
		if load32(e.tgt, j) == uint32(e.tgt[j])*0x01010101 {
			run = blockSize + matchRun(e.tgt[j+blockSize:], e.tgt[j])
		}
		a, l := e.best(j, lit)
		if l < goodMatch && run < goodMatch && j+1 <= last {
			// Lazy evaluation: a longer match one byte later wins.
			if e.hasIndex && e.indexed == j {
				e.insert(S+j, e.tgt, j)
				e.indexed = j + 1
			}
			if a1, l1 := e.best(j+1, lit); l1 > l+1 && l1 > run+1 {
				j++
				a, l, run = a1, l1, 0
			}
		}
		switch {
		case run >= minRun && run >= l:
			e.add(e.tgt[lit:j])
			e.run(run, e.tgt[j])
			j += run
			lit, e.indexed = j, j
		case l >= blockSize && e.addrCost(a, S+j) < l-1:
			// Extend backwards over pending literals.
			lo := 0
			if a >= S {
				lo = S
			}
			for j > lit && a > lo && e.tgt[j-1] == e.at(a - 1)[0] {
				j--
				a--
				l++
			}
			e.add(e.tgt[lit:j])
			e.copy(a, l, S+j)
			j += l
			lit, e.indexed = j, j
		default:
			j += 1 + (j-lit)>>skipShift
		}
	}
	e.add(e.tgt[lit:])
}

// matchRun returns how many bytes at the start of b equal c.
func matchRun(b []byte, c byte) int {
	n := 0
	w := uint64(c) * 0x0101010101010101
	for len(b) >= 8 {
		x := binary.LittleEndian.Uint64(b) ^ w
		if x != 0 {
			return n + bits.TrailingZeros64(x)>>3
		}
		b, n = b[8:], n+8
	}
	for _, x := range b {
		if x != c {
			break
		}
		n++
	}
	return n
}

// addrMode picks the cheapest encoding of a COPY address a at position
// here (RFC 3284 section 5.3): its mode, the value written, and its size.
func (e *Encoder) addrMode(a, here int) (mode, val, size int) {
	if e.same[a%sameSlots] == a {
		return modeSame0 + a%sameSlots/256, a % 256, 1
	}
	mode, val, size = modeSelf, a, varintLen(a)
	if d := here - a; varintLen(d) < size {
		mode, val, size = modeHere, d, varintLen(d)
	}
	for i, n := range e.near {
		if d := a - n; d >= 0 && varintLen(d) < size {
			mode, val, size = modeNear0+i, d, varintLen(d)
		}
	}
	return mode, val, size
}

func (e *Encoder) addrCost(a, here int) int {
	_, _, size := e.addrMode(a, here)
	return size
}

// add emits an ADD of b (nothing when b is empty).
func (e *Encoder) add(b []byte) {
	n := len(b)
	if n == 0 {
		return
	}
	e.data = append(e.data, b...)
	if e.last >= 0 && e.lastOp == opCopy && n == 1 {
		// COPY 4 (mode m) + ADD 1
		e.inst[e.last] = byte(codeCopyAdd1 + e.lastMd)
		e.last = -1
		return
	}
	if n <= 17 {
		if n <= 4 {
			e.last, e.lastOp, e.lastSz = len(e.inst), opAdd, n
		} else {
			e.last = -1
		}
		e.inst = append(e.inst, byte(codeAdd0+n))
		return
	}
	e.last = -1
	e.inst = append(e.inst, codeAdd0)
	e.inst = appendVarint(e.inst, n)
}

// run emits a RUN of n bytes c.
func (e *Encoder) run(n int, c byte) {
	e.last = -1
	e.data = append(e.data, c)
	e.inst = append(e.inst, codeRun)
	e.inst = appendVarint(e.inst, n)
}

// copy emits a COPY of n bytes from address a, the output starting at
// address here.
func (e *Encoder) copy(a, n, here int) {
	mode, val, _ := e.addrMode(a, here)
	if mode >= modeSame0 {
		e.addr = append(e.addr, byte(val))
	} else {
		e.addr = appendVarint(e.addr, val)
	}
	e.near[e.nextNear] = a
	e.nextNear = (e.nextNear + 1) % nearSize
	e.same[a%sameSlots] = a
	e.diag = a - here

	if e.last >= 0 && e.lastOp == opAdd {
		switch {
		case mode < 6 && n >= 4 && n <= 6:
			e.inst[e.last] = byte(codeAddCopy + 12*mode + 3*(e.lastSz-1) + n - 4)
			e.last = -1
			return
		case mode >= 6 && n == 4:
			e.inst[e.last] = byte(codeAddCopy4 + 4*(mode-6) + e.lastSz - 1)
			e.last = -1
			return
		}
	}
	if n == 4 {
		e.last, e.lastOp, e.lastMd = len(e.inst), opCopy, mode
	} else {
		e.last = -1
	}
	if n >= 4 && n <= 18 {
		e.inst = append(e.inst, byte(codeCopy0+16*mode+n-3))
		return
	}
	e.inst = append(e.inst, byte(codeCopy0+16*mode))
	e.inst = appendVarint(e.inst, n)
}
