package gateway

import "encoding/binary"

// WebSocket opcodes (RFC 6455, section 5.2).
const (
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPong   = 0xA
)

// appendFrame appends one complete, unmasked (server-to-client) WebSocket
// frame with the FIN bit set. A message frame is built once and its bytes
// are written to every subscriber, so nothing is framed per subscriber.
func appendFrame(dst []byte, opcode byte, payload []byte) []byte {
	return appendFrameFlags(dst, opcode, 0, payload)
}

// rsv1 marks a compressed message (permessage-deflate, RFC 7692).
const rsv1 = 0x40

// appendFrameFlags is appendFrame with the RSV bits given in flags.
func appendFrameFlags(dst []byte, opcode, flags byte, payload []byte) []byte {
	n := len(payload)
	b0 := 0x80 | flags | opcode
	switch {
	case n < 126:
		dst = append(dst, b0, byte(n))
	case n <= 0xFFFF:
		dst = append(dst, b0, 126)
		dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	default:
		dst = append(dst, b0, 127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	return append(dst, payload...)
}

// closeFrame builds a close frame with a status code and a reason, which
// RFC 6455 limits to 123 bytes.
func closeFrame(code int, reason string) []byte {
	if len(reason) > 123 {
		reason = reason[:123]
	}
	p := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(reason)), uint16(code))
	return appendFrame(nil, opClose, append(p, reason...))
}
