package vcdiff

// Header and indicator bits, RFC 3284 section 4.
const (
	magic0, magic1, magic2, version0 = 0xD6, 0xC3, 0xC4, 0x00

	hdrDecompress = 0x01 // Hdr_Indicator VCD_DECOMPRESS: secondary compressor ID follows
	hdrCodeTable  = 0x02 // Hdr_Indicator VCD_CODETABLE: custom code table follows
	hdrAppHeader  = 0x04 // Hdr_Indicator VCD_APPHEADER: xdelta3's application header follows

	winSource  = 0x01 // Win_Indicator VCD_SOURCE: the segment comes from the source
	winTarget  = 0x02 // Win_Indicator VCD_TARGET: the segment comes from earlier target windows
	winAdler32 = 0x04 // Win_Indicator VCD_ADLER32 (xdelta3, open-vcdiff): window checksum follows
)

// Instruction types of the code table.
const (
	opNoop = iota
	opAdd
	opRun
	opCopy
)

// Address cache sizes of the default code table (RFC 3284 section 5.1):
// s_near = 4, s_same = 3, so modes are 0 SELF, 1 HERE, 2..5 NEAR, 6..8 SAME.
const (
	nearSize  = 4
	sameSize  = 3
	modeSelf  = 0
	modeHere  = 1
	modeNear0 = 2
	modeSame0 = modeNear0 + nearSize
	numModes  = modeSame0 + sameSize
	sameSlots = sameSize * 256
)

// half is one half of a code table entry: an instruction type, its size
// (0: the size follows in the instruction section) and, for COPY, its mode.
type half struct{ typ, size, mode uint8 }

// codeTable is RFC 3284's default code table (section 5.6), built the way
// the RFC describes it.
var codeTable = func() (t [256][2]half) {
	i := 0
	t[i][0] = half{opRun, 0, 0}
	i++
	for size := 0; size <= 17; size++ {
		t[i][0] = half{opAdd, uint8(size), 0}
		i++
	}
	for mode := 0; mode < numModes; mode++ {
		t[i][0] = half{opCopy, 0, uint8(mode)}
		i++
		for size := 4; size <= 18; size++ {
			t[i][0] = half{opCopy, uint8(size), uint8(mode)}
			i++
		}
	}
	for mode := 0; mode < 6; mode++ {
		for add := 1; add <= 4; add++ {
			for cp := 4; cp <= 6; cp++ {
				t[i] = [2]half{{opAdd, uint8(add), 0}, {opCopy, uint8(cp), uint8(mode)}}
				i++
			}
		}
	}
	for mode := 6; mode < numModes; mode++ {
		for add := 1; add <= 4; add++ {
			t[i] = [2]half{{opAdd, uint8(add), 0}, {opCopy, 4, uint8(mode)}}
			i++
		}
	}
	for mode := 0; mode < numModes; mode++ {
		t[i] = [2]half{{opCopy, 4, uint8(mode)}, {opAdd, 1, 0}}
		i++
	}
	if i != 256 {
		panic("vcdiff: default code table has the wrong size")
	}
	return t
}()

// Opcodes of the default code table that the encoder computes directly.
const (
	codeRun      = 0   // RUN, size follows
	codeAdd0     = 1   // ADD, size follows; 2..18 are ADD of size 1..17
	codeCopy0    = 19  // COPY mode 0, size follows; +16*mode; +size-3 for sizes 4..18
	codeAddCopy  = 163 // ADD 1..4 + COPY 4..6, modes 0..5: +12*mode + 3*(add-1) + (copy-4)
	codeAddCopy4 = 235 // ADD 1..4 + COPY 4, modes 6..8: +4*(mode-6) + (add-1)
	codeCopyAdd1 = 247 // COPY 4 + ADD 1, modes 0..8: +mode
)

// maxInt is the largest integer the decoder accepts in any field: sizes and
// addresses beyond it cannot describe in-memory data, and open-vcdiff sets
// the same limit.
const maxInt = 1<<31 - 1

// appendVarint appends v as a VCDIFF integer: base 128, most significant
// digit first, the high bit set on every byte but the last.
func appendVarint(b []byte, v int) []byte {
	var tmp [10]byte
	i := len(tmp) - 1
	tmp[i] = byte(v & 0x7f)
	for v >>= 7; v > 0; v >>= 7 {
		i--
		tmp[i] = byte(v&0x7f) | 0x80
	}
	return append(b, tmp[i:]...)
}

// varintLen is the number of bytes appendVarint writes for v.
func varintLen(v int) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// readVarint reads a VCDIFF integer at b[*pos], advancing *pos. ok is false
// when the integer is truncated or exceeds maxInt.
func readVarint(b []byte, pos *int) (v int, ok bool) {
	p := *pos
	for p < len(b) {
		c := b[p]
		p++
		if v > maxInt>>7 {
			return 0, false
		}
		v = v<<7 | int(c&0x7f)
		if c&0x80 == 0 {
			if v > maxInt {
				return 0, false
			}
			*pos = p
			return v, true
		}
	}
	return 0, false
}
