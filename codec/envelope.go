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
		return Message{}, Errorf(CodeBadFrame, "envelope version %q is not supported", Clip(v))
	}
	m := Message{
		Channel: attrs[attrChannel],
		ID:      attrs[attrID],
		Name:    attrs[attrName],
		Data:    data,
	}
	if err := ValidateWireChannel(m.Channel); err != nil {
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
		return Message{}, Errorf(CodeBadFrame, "envelope time %q is not an integer", Clip(attrs[attrTime]))
	}
	m.Time = t
	m.Origin = attrs[attrOrigin]
	if !ValidOrigin(m.Origin) {
		return Message{}, Errorf(CodeBadFrame, "envelope origin %q is invalid", Clip(m.Origin))
	}
	if m.Seq, err = strconv.ParseUint(attrs[attrSeq], 10, 64); err != nil || m.Seq == 0 {
		return Message{}, Errorf(CodeBadFrame, "envelope sequence %q is invalid", Clip(attrs[attrSeq]))
	}
	if m.Prev, err = strconv.ParseUint(attrs[attrPrev], 10, 64); err != nil || m.Prev >= m.Seq {
		return Message{}, Errorf(CodeBadFrame, "envelope previous sequence %q is invalid", Clip(attrs[attrPrev]))
	}
	if !json.Valid(data) {
		return Message{}, Errorf(CodeBadFrame, "envelope data is not a JSON value")
	}
	return m, nil
}

// Beacons: an origin edge's periodic statement, per shard topic, of the last
// accepted sequence number of each channel it published on lately. A
// receiving edge that has delivered less of that origin knows messages are
// owed to it even when nothing newer arrives (a stalled subscription, a lost
// last message). A beacon travels without an ordering key, so a stuck key
// cannot hold it up.
const (
	attrKind   = "k" // "b" for a beacon; absent for a message
	kindBeacon = "b"
	// MaxBeaconChannels bounds the channels of one beacon (its data stays
	// well under Pub/Sub's 10 MB message limit).
	MaxBeaconChannels = 4096
)

// Beacon is an origin's last accepted sequence number per channel.
type Beacon struct {
	Origin string
	Seqs   map[string]uint64
}

// IsBeacon reports whether a backbone message's attributes mark a beacon.
func IsBeacon(attrs map[string]string) bool { return attrs[attrKind] == kindBeacon }

// EncodeBeacon returns b's backbone form (no ordering key).
func EncodeBeacon(b *Beacon) Envelope {
	data, _ := json.Marshal(b.Seqs) // map[string]uint64 always marshals
	return Envelope{Data: data, Attributes: map[string]string{attrVersion: envVersion, attrKind: kindBeacon, attrOrigin: b.Origin}}
}

// DecodeBeacon rebuilds and validates a Beacon.
func DecodeBeacon(data []byte, attrs map[string]string) (Beacon, error) {
	if v := attrs[attrVersion]; v != envVersion || !IsBeacon(attrs) {
		return Beacon{}, Errorf(CodeBadFrame, "not a version %s beacon", envVersion)
	}
	b := Beacon{Origin: attrs[attrOrigin]}
	if !ValidOrigin(b.Origin) {
		return Beacon{}, Errorf(CodeBadFrame, "beacon origin %q is invalid", Clip(b.Origin))
	}
	if err := json.Unmarshal(data, &b.Seqs); err != nil {
		return Beacon{}, Errorf(CodeBadFrame, "beacon data is not a channel->sequence object")
	}
	if len(b.Seqs) > MaxBeaconChannels {
		return Beacon{}, Errorf(CodeBadFrame, "beacon names more than %d channels", MaxBeaconChannels)
	}
	for ch, seq := range b.Seqs {
		if ValidateWireChannel(ch) != nil || seq == 0 {
			return Beacon{}, Errorf(CodeBadFrame, "beacon entry %q: %d is invalid", Clip(ch), seq)
		}
	}
	return b, nil
}
