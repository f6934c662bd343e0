package vcdiff

import (
	"encoding/binary"
	"fmt"
	"hash/adler32"
)

// Decode applies delta to source and returns the target. It reads any
// VCDIFF delta made with the default code table and without secondary
// compression (see the package doc). A delta that would produce more than
// maxTarget bytes is refused with ErrTooLarge before the bytes are
// allocated; the output never takes more than maxTarget bytes of memory.
//
// Every error wraps ErrCorrupt, ErrTooLarge or ErrUnsupported.
func Decode(source, delta []byte, maxTarget int) ([]byte, error) {
	if maxTarget < 0 {
		maxTarget = 0
	}
	d := decoder{delta: delta, source: source, max: maxTarget}
	if err := d.header(); err != nil {
		return nil, err
	}
	for n := 0; d.pos < len(d.delta); n++ {
		if err := d.window(); err != nil {
			return nil, fmt.Errorf("window %d: %w", n, err)
		}
	}
	if d.out == nil {
		d.out = []byte{}
	}
	return d.out, nil
}

type decoder struct {
	delta  []byte
	pos    int // read position in delta
	source []byte
	out    []byte // the target decoded so far
	max    int

	near     [nearSize]int
	nextNear int
	same     [sameSlots]int
	sameUsed bool // same holds an address: clear it at the next window
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}

func unsupported(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrUnsupported}, args...)...)
}

func (d *decoder) varint(what string) (int, error) {
	at := d.pos
	v, ok := readVarint(d.delta, &d.pos)
	if !ok {
		return 0, corrupt("%s at offset %d: truncated or larger than %d", what, at, maxInt)
	}
	return v, nil
}

func (d *decoder) byte(what string) (byte, error) {
	if d.pos >= len(d.delta) {
		return 0, corrupt("%s at offset %d: truncated", what, d.pos)
	}
	c := d.delta[d.pos]
	d.pos++
	return c, nil
}

func (d *decoder) header() error {
	if len(d.delta) < 5 {
		return corrupt("header: %d bytes, want at least 5", len(d.delta))
	}
	if d.delta[0] != magic0 || d.delta[1] != magic1 || d.delta[2] != magic2 {
		return corrupt("header: bad magic % x", d.delta[:3])
	}
	if d.delta[3] != version0 {
		return unsupported("header: version byte %#x (only 0, RFC 3284, is read)", d.delta[3])
	}
	ind := d.delta[4]
	d.pos = 5
	switch {
	case ind&^(hdrDecompress|hdrCodeTable|hdrAppHeader) != 0:
		return corrupt("header: unknown Hdr_Indicator bits %#x", ind)
	case ind&hdrDecompress != 0:
		return unsupported("header: secondary compression (VCD_DECOMPRESS)")
	case ind&hdrCodeTable != 0:
		return unsupported("header: custom code table (VCD_CODETABLE)")
	}
	if ind&hdrAppHeader != 0 {
		n, err := d.varint("application header length")
		if err != nil {
			return err
		}
		if n > len(d.delta)-d.pos {
			return corrupt("header: application header of %d bytes, %d left", n, len(d.delta)-d.pos)
		}
		d.pos += n
	}
	return nil
}

// window decodes one window and appends its target to d.out.
func (d *decoder) window() error {
	ind, err := d.byte("Win_Indicator")
	if err != nil {
		return err
	}
	if ind&^(winSource|winTarget|winAdler32) != 0 {
		return corrupt("unknown Win_Indicator bits %#x", ind)
	}
	if ind&winSource != 0 && ind&winTarget != 0 {
		return corrupt("Win_Indicator has both VCD_SOURCE and VCD_TARGET")
	}
	var seg []byte
	if ind&(winSource|winTarget) != 0 {
		segLen, err := d.varint("source segment length")
		if err != nil {
			return err
		}
		segPos, err := d.varint("source segment position")
		if err != nil {
			return err
		}
		from, name := d.source, "source"
		if ind&winTarget != 0 {
			from, name = d.out, "target so far"
		}
		if segPos > len(from) || segLen > len(from)-segPos {
			return corrupt("segment [%d, +%d) outside the %s (%d bytes)", segPos, segLen, name, len(from))
		}
		seg = from[segPos : segPos+segLen : segPos+segLen]
	}
	encLen, err := d.varint("delta encoding length")
	if err != nil {
		return err
	}
	if encLen > len(d.delta)-d.pos {
		return corrupt("delta encoding of %d bytes, %d left", encLen, len(d.delta)-d.pos)
	}
	end := d.pos + encLen
	sub := decoder{delta: d.delta[:end], pos: d.pos}
	tgtLen, err := sub.varint("target window length")
	if err != nil {
		return err
	}
	if tgtLen > d.max-len(d.out) {
		return fmt.Errorf("%w: window of %d bytes after %d, limit %d", ErrTooLarge, tgtLen, len(d.out), d.max)
	}
	dind, err := sub.byte("Delta_Indicator")
	if err != nil {
		return err
	}
	if dind != 0 {
		return unsupported("Delta_Indicator %#x: compressed sections", dind)
	}
	var lens [3]int
	for i, what := range [3]string{"data section length", "instruction section length", "address section length"} {
		if lens[i], err = sub.varint(what); err != nil {
			return err
		}
	}
	// The checksum (VCD_ADLER32) sits between the lengths and the sections:
	// 4 bytes big-endian in xdelta3, a VCDIFF integer in open-vcdiff. What is
	// left once the sections are accounted for tells its size.
	rest := end - sub.pos
	extra := rest - lens[0] - lens[1] - lens[2] // no overflow: each len <= maxInt
	if extra < 0 || (ind&winAdler32 == 0 && extra != 0) || (ind&winAdler32 != 0 && (extra < 1 || extra > 5)) {
		return corrupt("section lengths %d+%d+%d do not fit the %d bytes of the delta encoding", lens[0], lens[1], lens[2], rest)
	}
	sum := d.delta[sub.pos : sub.pos+extra]
	p := sub.pos + extra
	data := d.delta[p : p+lens[0]]
	p += lens[0]
	inst := d.delta[p : p+lens[1]]
	p += lens[1]
	addr := d.delta[p : p+lens[2]]
	d.pos = end

	start := len(d.out)
	if cap(d.out)-start < tgtLen {
		// Grow geometrically (many small windows cost linear time) but
		// never past the limit.
		grown := make([]byte, start, max(start+tgtLen, min(2*cap(d.out), d.max)))
		copy(grown, d.out)
		d.out = grown
	}
	if err := d.run(seg, data, inst, addr, tgtLen); err != nil {
		return err
	}
	if extra > 0 {
		return checkSum(sum, adler32.Checksum(d.out[start:]))
	}
	return nil
}

// checkSum accepts either encoding of the window checksum: 4 bytes
// big-endian (xdelta3) or one VCDIFF integer (open-vcdiff).
func checkSum(field []byte, want uint32) error {
	if len(field) == 4 && binary.BigEndian.Uint32(field) == want {
		return nil
	}
	var v uint64
	for i, c := range field {
		v = v<<7 | uint64(c&0x7f)
		if (c&0x80 == 0) != (i == len(field)-1) {
			v = 1 << 40 // not one integer: matches nothing
			break
		}
	}
	if v != uint64(want) {
		return corrupt("Adler-32 checksum mismatch: field % x, target has %08x", field, want)
	}
	return nil
}

// run executes the instructions of one window, appending exactly tgtLen
// bytes to d.out (whose capacity already holds them).
func (d *decoder) run(seg, data, inst, addr []byte, tgtLen int) error {
	d.near = [nearSize]int{}
	d.nextNear = 0
	if d.sameUsed {
		d.same = [sameSlots]int{}
		d.sameUsed = false
	}
	start := len(d.out)
	limit := start + tgtLen
	segLen := len(seg)
	ip, ap := 0, 0
	for ip < len(inst) {
		code := inst[ip]
		ip++
		for _, h := range codeTable[code] {
			if h.typ == opNoop {
				continue
			}
			size := int(h.size)
			if size == 0 {
				var ok bool
				if size, ok = readVarint(inst, &ip); !ok {
					return corrupt("instruction %d: size truncated or too large", ip)
				}
			}
			if size > limit-len(d.out) {
				return corrupt("instruction of %d bytes overflows the target window (%d of %d written)", size, len(d.out)-start, tgtLen)
			}
			switch h.typ {
			case opAdd:
				if size > len(data) {
					return corrupt("ADD of %d bytes, %d data bytes left", size, len(data))
				}
				d.out = append(d.out, data[:size]...)
				data = data[size:]
			case opRun:
				if len(data) == 0 {
					return corrupt("RUN without a data byte")
				}
				b := data[0]
				data = data[1:]
				for range size {
					d.out = append(d.out, b)
				}
			case opCopy:
				here := segLen + len(d.out) - start
				a, err := d.address(addr, &ap, h.mode, here)
				if err != nil {
					return err
				}
				d.copy(seg, start, a, size)
			}
		}
	}
	if len(d.out) != limit {
		return corrupt("instructions produce %d bytes, window declares %d", len(d.out)-start, tgtLen)
	}
	if len(data) != 0 || ap != len(addr) {
		return corrupt("%d data and %d address bytes left unused", len(data), len(addr)-ap)
	}
	return nil
}

// address decodes a COPY address (RFC 3284 section 5.3) and updates the
// caches. The result is below here.
func (d *decoder) address(addr []byte, ap *int, mode uint8, here int) (int, error) {
	var a int
	switch {
	case mode >= modeSame0:
		if *ap >= len(addr) {
			return 0, corrupt("COPY address truncated")
		}
		a = d.same[int(mode-modeSame0)*256+int(addr[*ap])]
		*ap++
	default:
		v, ok := readVarint(addr, ap)
		if !ok {
			return 0, corrupt("COPY address truncated or too large")
		}
		switch {
		case mode == modeSelf:
			a = v
		case mode == modeHere:
			a = here - v
		default:
			a = d.near[mode-modeNear0] + v
		}
	}
	if a < 0 || a >= here {
		return 0, corrupt("COPY address %d outside [0, %d)", a, here)
	}
	d.near[d.nextNear] = a
	d.nextNear = (d.nextNear + 1) % nearSize
	d.same[a%sameSlots] = a
	d.sameUsed = true
	return a, nil
}

// copy appends size bytes read from the window's address space (the
// segment, then this window's target) at address a < here. The part read
// from the target may overlap what it writes: it repeats the last bytes.
func (d *decoder) copy(seg []byte, start, a, size int) {
	if a < len(seg) {
		n := min(size, len(seg)-a)
		d.out = append(d.out, seg[a:a+n]...)
		size -= n
		a = len(seg)
	}
	t := start + a - len(seg) // where the rest starts in d.out
	for size > 0 {
		n := min(size, len(d.out)-t)
		d.out = append(d.out, d.out[t:t+n]...)
		t += n
		size -= n
	}
}
