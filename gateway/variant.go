package gateway

import (
	"bytes"
	"compress/flate"
	"sync"

	"github.com/feedgate/feedgate/codec"
)

// Prepared frames and the subscriber seam.
//
// A message is prepared once per wire variant that some subscriber needs,
// lazily, as complete transport frames (for WebSocket: the frame header
// on), and the bytes are shared read-only by every subscriber of that
// variant. A variant is format (json | msgpack) × kind (full payload |
// VCDIFF delta against the channel's previous message) × transport ×
// compression. Only the WebSocket transport exists; an SSE transport is one
// more transport value and framing case in prepare. Compressed frames are
// permessage-deflate without context takeover (RFC 7692): no
// per-connection state enters them, so one compressed frame is shared by
// every subscriber of its variant. The fan-out never looks further into a subscriber than its
// variant and its enqueue.

// variant indexes the prepared frames of a message.
type variant uint8

// Kinds of payload in a message frame.
const (
	kindFull  = 0 // data: the payload itself
	kindDelta = 1 // delta: the payload as a delta against the channel's previous message
	numKinds  = 2
	// numTransports: WebSocket only, for now.
	numTransports = 1
	// numCompressions: none, or permessage-deflate.
	numCompressions = 2
	numVariants     = codec.NumFormats * numKinds * numTransports * numCompressions
	// deflateStep is added to a variant for its compressed twin.
	deflateStep = codec.NumFormats * numKinds * numTransports
)

// fullVariant is the variant of full frames in format f over WebSocket,
// compressed if deflate.
func fullVariant(f codec.Format, deflate bool) variant {
	if deflate {
		return variant(int(f) + deflateStep)
	}
	return variant(f)
}

func (v variant) format() codec.Format { return codec.Format(int(v) % codec.NumFormats) }
func (v variant) kind() int            { return int(v) / codec.NumFormats % numKinds }
func (v variant) deflated() bool       { return int(v) >= deflateStep }

// delta is v's delta variant (same format and transport).
func (v variant) delta() variant {
	return variant(int(v) - v.kind()*codec.NumFormats + kindDelta*codec.NumFormats)
}

func (v variant) String() string {
	s := v.format().String()
	if v.kind() == kindDelta {
		s += "+vcdiff"
	}
	if v.deflated() {
		s += "+deflate"
	}
	return s
}

// prepare wraps an encoded frame in its transport's framing, compressed
// for a deflated variant.
func prepare(v variant, payload []byte) []byte {
	if v.deflated() {
		return appendDeflated(make([]byte, 0, len(payload)/2+16), dataOpcode(v.format()), payload)
	}
	return appendFrame(make([]byte, 0, len(payload)+10), dataOpcode(v.format()), payload)
}

// deflaters are flate writers at BestSpeed: a message is compressed once
// and written to every subscriber of its variant, so speed counts more
// than the last few bytes.
var deflaters = sync.Pool{New: func() any {
	w, _ := flate.NewWriter(nil, flate.BestSpeed)
	return w
}}

// appendDeflated appends payload as one compressed WebSocket message, or
// as a plain one if compressing would not make it smaller
// (compressed: RFC 7692 §7.2.1, a DEFLATE block ended by a sync flush,
// whose trailing 0x00 0x00 0xff 0xff is removed, and RSV1 set), with no
// context taken over from any earlier message.
func appendDeflated(dst []byte, opcode byte, payload []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(payload)/2 + 16)
	w := deflaters.Get().(*flate.Writer)
	w.Reset(&buf)
	_, _ = w.Write(payload) // writes to a bytes.Buffer do not fail
	_ = w.Flush()
	deflaters.Put(w)
	z := bytes.TrimSuffix(buf.Bytes(), []byte{0, 0, 0xff, 0xff})
	if len(z) >= len(payload) {
		// Incompressible (a msgpack delta often is): RFC 7692 lets each
		// message go compressed or not, so this one goes plain.
		return appendFrame(dst, opcode, payload)
	}
	return appendFrameFlags(dst, opcode, rsv1, z)
}

// subscriber is what a channel needs of a subscriber: the variant of full
// frames it takes, and ways to queue frames for it. The methods never
// block; they are called with the channel's lock held.
type subscriber interface {
	// wire is the variant of the full frames it takes.
	wire() variant
	// enqueue queues a prepared message frame; a subscriber that cannot
	// take it ends as a slow consumer.
	enqueue(frame []byte)
	// enqueueReplay queues a frame of a replay (rewind or resume), within
	// the replays' own allowance (replay.go).
	enqueueReplay(frame []byte)
	// offer queues a prepared message frame if there is room, and reports
	// false, changing nothing, if there is not (conflated subscribers keep
	// the message pending instead). A closing subscriber drops it (true).
	offer(frame []byte) bool
	// send queues a reply or control frame (attached, detached, …) encoded
	// for this subscriber alone.
	send(fr *codec.Frame)
	// encode encodes a frame for this subscriber alone, in its transport's
	// framing, to be queued in line with its messages with enqueue.
	encode(fr *codec.Frame) []byte
}

var _ subscriber = (*conn)(nil)

func (c *conn) wire() variant { return fullVariant(c.format, c.deflate) }

func (c *conn) offer(frame []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		c.srv.stats.drop(c.reason, 1)
		return true
	}
	if !c.roomLocked(len(frame)) {
		return false
	}
	c.appendLocked(frame)
	return true
}

// entry.tried has a bit per variant.
var _ = [8 - numVariants]struct{}{}

// offersDeflate reports whether a client's Sec-WebSocket-Extensions offers
// permessage-deflate, by the rule the WebSocket library negotiates it with
// (an offer whose name starts with it): the two must agree, since the
// library decompresses what the client sends and the edge compresses what
// it writes itself.
func offersDeflate(header []byte) bool {
	for _, ext := range bytes.Split(header, []byte(",")) {
		if bytes.HasPrefix(bytes.TrimSpace(ext), []byte("permessage-deflate")) {
			return true
		}
	}
	return false
}
