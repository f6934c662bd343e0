package gateway

import (
	"github.com/feedgate/feedgate/codec"
)

// Prepared frames and the subscriber seam.
//
// A message is prepared once per wire variant that some subscriber needs,
// lazily, as complete transport frames (for WebSocket: the frame header
// on), and the bytes are shared read-only by every subscriber of that
// variant. A variant is format (json | msgpack) × kind (full payload |
// VCDIFF delta against the channel's previous message) × transport. Only
// the WebSocket transport exists; an SSE transport is one more transport
// value and framing case in prepare, and compressed frames (e.g.
// permessage-deflate without context takeover, shareable because no
// per-connection state enters them) would be one more dimension of the
// same index. The fan-out never looks further into a subscriber than its
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
	numVariants   = codec.NumFormats * numKinds * numTransports
)

// fullVariant is the variant of full frames in format f over WebSocket.
func fullVariant(f codec.Format) variant { return variant(f) }

func (v variant) format() codec.Format { return codec.Format(int(v) % codec.NumFormats) }
func (v variant) kind() int            { return int(v) / codec.NumFormats % numKinds }

// delta is v's delta variant (same format and transport).
func (v variant) delta() variant {
	return variant(int(v) - v.kind()*codec.NumFormats + kindDelta*codec.NumFormats)
}

func (v variant) String() string {
	if v.kind() == kindDelta {
		return v.format().String() + "+vcdiff"
	}
	return v.format().String()
}

// prepare wraps an encoded frame in its transport's framing.
func prepare(v variant, payload []byte) []byte {
	return appendFrame(make([]byte, 0, len(payload)+10), dataOpcode(v.format()), payload)
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

func (c *conn) wire() variant { return fullVariant(c.format) }

func (c *conn) offer(frame []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		c.srv.stats.drop(c.reason, 1)
		return true
	}
	if c.queued+len(frame) > c.srv.cfg.SendQueueBytes {
		return false
	}
	c.queue = append(c.queue, frame)
	c.queued += len(frame)
	c.scheduleLocked()
	return true
}

// entry.tried has a bit per variant.
var _ = [8 - numVariants]struct{}{}
