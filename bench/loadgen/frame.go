package loadgen

import "encoding/binary"

// WebSocket opcodes (RFC 6455 section 5.2).
const (
	opCont   = 0x0
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xA
)

// maxFrame bounds one inbound frame; a server sending more is dropped.
const maxFrame = 4 << 20

// clientMask is the masking key of every client frame. RFC 6455 asks clients
// for unpredictable keys to protect proxies from cache poisoning; on loopback
// against our own servers a constant costs nothing and changes nothing.
var clientMask = [4]byte{0x5a, 0x1c, 0x3e, 0x77}

// appendClientFrame appends one masked FIN frame with opcode op.
func appendClientFrame(dst []byte, op byte, payload []byte) []byte {
	n := len(payload)
	dst = append(dst, 0x80|op)
	switch {
	case n < 126:
		dst = append(dst, 0x80|byte(n))
	case n < 1<<16:
		dst = append(dst, 0x80|126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0x80|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	dst = append(dst, clientMask[:]...)
	start := len(dst)
	dst = append(dst, payload...)
	for i := range payload {
		dst[start+i] ^= clientMask[i&3]
	}
	return dst
}

// frame is one parsed server frame; payload aliases the input.
type frame struct {
	op      byte
	fin     bool
	payload []byte
}

// parseFrame parses the frame at the start of b. It returns the number of
// bytes consumed, 0 when b holds no complete frame yet, or -1 when the frame
// is larger than maxFrame.
func parseFrame(b []byte, f *frame) int {
	if len(b) < 2 {
		return 0
	}
	f.op = b[0] & 0x0f
	f.fin = b[0]&0x80 != 0
	masked := b[1]&0x80 != 0
	n := uint64(b[1] & 0x7f)
	h := 2
	switch n {
	case 126:
		if len(b) < 4 {
			return 0
		}
		n = uint64(binary.BigEndian.Uint16(b[2:]))
		h = 4
	case 127:
		if len(b) < 10 {
			return 0
		}
		n = binary.BigEndian.Uint64(b[2:])
		h = 10
	}
	if n > maxFrame {
		return -1
	}
	var mask []byte
	if masked { // servers must not mask; tolerate it anyway
		if len(b) < h+4 {
			return 0
		}
		mask = b[h : h+4]
		h += 4
	}
	end := h + int(n)
	if len(b) < end {
		return 0
	}
	f.payload = b[h:end]
	if masked {
		for i := range f.payload {
			f.payload[i] ^= mask[i&3]
		}
	}
	return end
}
