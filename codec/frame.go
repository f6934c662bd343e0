package codec

import "time"

// FrameType identifies a frame on the client wire.
type FrameType uint8

// Frame types. Client to edge: Attach, Detach, Publish, Heartbeat. Edge to
// client: Attached, Detached, Ack, Nack, Message, Error, Heartbeat,
// Disconnect, Continuity.
const (
	FrameInvalid FrameType = iota
	FrameAttach
	FrameAttached
	FrameDetach
	FrameDetached
	FramePublish
	FrameAck
	FrameNack
	FrameMessage
	FrameError
	FrameHeartbeat
	FrameDisconnect
	// FrameContinuity tells a subscriber, mid-stream, that continuity on a
	// channel is lost: messages it should have had before the next one
	// cannot be sent (Channel, Continuity: ContinuityLost, and Pos: the
	// channel's position before the gap).
	FrameContinuity
	// FrameAuth renews a connection's capability token in place (Token):
	// answered by ack (with Ref) or error; see docs/protocol.md §4.5.
	FrameAuth
)

var frameNames = [...]string{
	FrameInvalid:    "",
	FrameAttach:     "attach",
	FrameAttached:   "attached",
	FrameDetach:     "detach",
	FrameDetached:   "detached",
	FramePublish:    "publish",
	FrameAck:        "ack",
	FrameNack:       "nack",
	FrameMessage:    "message",
	FrameError:      "error",
	FrameHeartbeat:  "heartbeat",
	FrameDisconnect: "disconnect",
	FrameContinuity: "continuity",
	FrameAuth:       "auth",
}

func (t FrameType) String() string {
	if int(t) < len(frameNames) {
		return frameNames[t]
	}
	return "invalid"
}

func parseFrameType(s string) FrameType {
	for i, n := range frameNames {
		if i > 0 && n == s {
			return FrameType(i)
		}
	}
	return FrameInvalid
}

// AttachOptions are a subscriber's per-channel options, given on attach. They
// are the seam for per-subscriber behaviour (deltas, rewind, resume come in
// later protocol versions; an edge refuses options it does not implement with
// CodeUnsupportedOption rather than ignoring them).
type AttachOptions struct {
	// PublishOnly attaches the channel for publishing without receiving its
	// messages (a feed publisher on thousands of markets).
	PublishOnly bool
	// Rewind asks for the channel's last Rewind messages from history
	// before live ones; RewindFor for those of the last RewindFor.
	Rewind    int
	RewindFor time.Duration
	// Resume is a resume token (the pos of the last message received):
	// the edge sends exactly the messages after it, then live ones.
	Resume string
	// Delta asks for message payloads as deltas against the previous
	// message of the channel when the subscriber holds it: DeltaVCDIFF or
	// "" (none). See docs/protocol.md §6.1.
	Delta string
	// Conflate asks for at most one message per Conflate per channel, or
	// per conflation key if ConflateKey names a top-level field of the
	// payload; superseded messages are dropped, latest wins
	// (docs/protocol.md §6.2). 0: no conflation.
	Conflate    time.Duration
	ConflateKey string
}

// DeltaVCDIFF is the value of the delta attach option for VCDIFF deltas
// (RFC 3284), the one delta format of protocol v1.
const DeltaVCDIFF = "vcdiff"

// Conflation bounds: a shorter interval would save little over no
// conflation and cost a timer per subscriber each time; a longer one would
// hide a market for longer than any odds screen tolerates.
const (
	MinConflate     = 100 * time.Millisecond
	MaxConflate     = time.Minute
	MaxConflateKey  = 64 // bytes of a conflate_key field name
	MaxDeltaPayload = 64 << 10
)

// Frame is one decoded frame of the client wire protocol, in either
// encoding. Which fields are meaningful depends on Type (docs/protocol.md).
type Frame struct {
	Type FrameType
	// Ref correlates a request (attach, detach, publish) with its reply
	// (attached, detached, ack, nack, error). Chosen by the client; 0 means none.
	Ref     uint64
	Channel string
	Options AttachOptions
	// Msg is the message of a publish (Channel is copied into Msg.Channel)
	// or of a message frame; for ack, Msg.ID is the ID the message got.
	Msg Message
	// Err is set for nack, error and disconnect.
	Err *Error
	// Reconnect, on disconnect, tells the client whether to reconnect.
	Reconnect bool
	// Pos is a resume token: on a message frame, the subscriber's position
	// after that message; on attached, the position the stream starts from;
	// on a continuity frame, the position before the gap.
	Pos string
	// Continuity, on attached, says how the stream relates to the resume
	// token or rewind asked for; on a continuity frame it is
	// ContinuityLost.
	Continuity Continuity
	// Token is the capability token of an auth frame.
	Token string

	// Delta, on a message frame, replaces the payload: a VCDIFF delta
	// whose source is the wire payload of the message Base (its id), and
	// whose target is this message's wire payload (see Format.WireData).
	// BaseCRC is the CRC-32 (IEEE) of the source, for the receiver to
	// check that it holds the right base. Msg.Data is then empty.
	Delta   []byte
	Base    string
	BaseCRC uint32
	// Wire is the payload as the frame's format carries it (Format.WireData
	// of Msg.Data). Decode sets it on frames with data; Encode, if it is
	// set, writes it instead of converting Msg.Data again (the edge
	// converts once per message and keeps the bytes as a delta base).
	Wire []byte
}
