package codec

import (
	"encoding/json"
	"strconv"
)

// The backbone envelope: how a Message travels as a Pub/Sub message. Data is
// the payload (compact JSON) unchanged; everything else is in attributes,
// which Pub/Sub carries without parsing and which stay readable in the
// console. The ordering key is the channel name.
const (
	envVersion = "1"

	attrVersion = "v"  // envelope version, "1"
	attrChannel = "ch" // channel name
	attrID      = "id" // message ID
	attrName    = "n"  // event name, omitted when empty
	attrTime    = "t"  // origin accept time, Unix milliseconds, decimal
	attrOrigin  = "o"  // origin edge
	attrSeq     = "s"  // sequence number at the origin, decimal
	attrPrev    = "p"  // previous possibly accepted sequence number, decimal
)

// Envelope is a Message in its backbone form.
type Envelope struct {
	Data        []byte
	Attributes  map[string]string
	OrderingKey string
}

// EncodeEnvelope returns m's backbone form. Data shares m.Data's bytes.
func EncodeEnvelope(m *Message) Envelope {
	attrs := make(map[string]string, 8)
	attrs[attrVersion] = envVersion
	attrs[attrChannel] = m.Channel
	attrs[attrID] = m.ID
	if m.Name != "" {
		attrs[attrName] = m.Name
	}
	attrs[attrTime] = strconv.FormatInt(m.Time, 10)
	attrs[attrOrigin] = m.Origin
	attrs[attrSeq] = strconv.FormatUint(m.Seq, 10)
	attrs[attrPrev] = strconv.FormatUint(m.Prev, 10)
	return Envelope{Data: m.Data, Attributes: attrs, OrderingKey: m.Channel}
}

// DecodeEnvelope rebuilds a Message from its backbone form and validates it:
// anything on a shard topic may have been written by another program, so it
// is checked as carefully as client input.
func DecodeEnvelope(data []byte, attrs map[string]string) (Message, error) {
	if v := attrs[attrVersion]; v != envVersion {
		return Message{}, Errorf(CodeBadFrame, "envelope version %q is not supported", v)
	}
	m := Message{
		Channel: attrs[attrChannel],
		ID:      attrs[attrID],
		Name:    attrs[attrName],
		Data:    data,
	}
	if err := ValidateChannel(m.Channel); err != nil {
		return Message{}, err
	}
	if m.ID == "" || len(m.ID) > MaxIDLen {
		return Message{}, Errorf(CodeBadFrame, "envelope message id is missing or too long")
	}
	if len(m.Name) > MaxNameLen {
		return Message{}, Errorf(CodeBadFrame, "envelope name is too long")
	}
	t, err := strconv.ParseInt(attrs[attrTime], 10, 64)
	if err != nil {
		return Message{}, Errorf(CodeBadFrame, "envelope time %q is not an integer", attrs[attrTime])
	}
	m.Time = t
	m.Origin = attrs[attrOrigin]
	if !ValidOrigin(m.Origin) {
		return Message{}, Errorf(CodeBadFrame, "envelope origin %q is invalid", m.Origin)
	}
	if m.Seq, err = strconv.ParseUint(attrs[attrSeq], 10, 64); err != nil || m.Seq == 0 {
		return Message{}, Errorf(CodeBadFrame, "envelope sequence %q is invalid", attrs[attrSeq])
	}
	if m.Prev, err = strconv.ParseUint(attrs[attrPrev], 10, 64); err != nil || m.Prev >= m.Seq {
		return Message{}, Errorf(CodeBadFrame, "envelope previous sequence %q is invalid", attrs[attrPrev])
	}
	if !json.Valid(data) {
		return Message{}, Errorf(CodeBadFrame, "envelope data is not a JSON value")
	}
	return m, nil
}
