package codec

import (
	"encoding/json"
	"unicode/utf8"
)

// Field limits, in bytes. They keep per-message metadata (which travels as
// Pub/Sub attributes and in every delivered frame) small and bounded.
const (
	MaxIDLen   = 128 // publisher-supplied message IDs
	MaxNameLen = 128 // event names
)

// Message is one published message: the unit that is relayed through the
// backbone, deduplicated by ID and fanned out to a channel's subscribers.
//
// A Message is immutable once handed to the backbone or the gateway's fan-out:
// every component that receives one may read it from any goroutine.
type Message struct {
	// Channel the message was published on; see ValidateChannel.
	Channel string
	// ID is unique per channel across edges and restarts: the publisher's own
	// (which makes retries idempotent) or one assigned by the origin edge.
	ID string
	// Name is an optional event name chosen by the publisher ("price", "suspend").
	Name string
	// Data is the payload: exactly one JSON value, compact. The msgpack wire
	// variant carries the same value natively (see docs/protocol.md, "Payloads").
	Data []byte
	// Time is when the origin edge accepted the publish, in Unix milliseconds.
	Time int64

	// Origin names the edge instance (and process epoch) that accepted the
	// publish; Seq numbers that origin's messages on this channel from 1.
	// Together they are the message's position.
	Origin string
	Seq    uint64
	// Prev is the Seq of the origin's previous message on this channel that
	// may have been accepted (0 for none). Publishes that were refused leave
	// holes in Seq; Prev skips them, so a receiver that has not seen Prev has
	// lost a message.
	Prev uint64
}

// DedupKey is the key under which duplicates of m are recognised: the same
// message ID on the same channel.
func (m *Message) DedupKey() string {
	return m.Channel + "\x00" + m.ID
}

// ValidatePublish checks a message a client wants to publish: channel name,
// field lengths and that Data is one JSON value. It does not require an ID.
func ValidatePublish(m *Message) error {
	if err := ValidateChannel(m.Channel); err != nil {
		return err
	}
	if len(m.ID) > MaxIDLen {
		return Errorf(CodeBadRequest, "message id is %d bytes, the limit is %d", len(m.ID), MaxIDLen)
	}
	if len(m.Name) > MaxNameLen {
		return Errorf(CodeBadRequest, "name is %d bytes, the limit is %d", len(m.Name), MaxNameLen)
	}
	if !utf8.ValidString(m.ID) || !utf8.ValidString(m.Name) {
		return Errorf(CodeBadRequest, "id and name must be valid UTF-8")
	}
	if len(m.Data) == 0 {
		return Errorf(CodeBadRequest, "data is missing")
	}
	if !json.Valid(m.Data) || !utf8.Valid(m.Data) {
		return Errorf(CodeBadRequest, "data is not a JSON value in valid UTF-8")
	}
	// Every subscriber must be able to receive it: msgpack subscribers get
	// the value converted (numbers beyond float64, too deep nesting fail).
	if _, err := jsonToMsgpack(m.Data); err != nil {
		return err
	}
	return nil
}
