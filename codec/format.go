package codec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Format is a wire encoding of frames, chosen per connection at connect time.
type Format uint8

const (
	// FormatJSON sends each frame as one JSON object in a text WebSocket message.
	FormatJSON Format = iota
	// FormatMsgpack sends each frame as one msgpack map in a binary WebSocket message.
	FormatMsgpack

	numFormats
)

// NumFormats is the number of wire formats, for tables indexed by Format.
const NumFormats = int(numFormats)

// ParseFormat maps the connect URL's format parameter to a Format; the empty
// string means JSON.
func ParseFormat(s string) (Format, error) {
	switch s {
	case "", "json":
		return FormatJSON, nil
	case "msgpack":
		return FormatMsgpack, nil
	}
	return 0, Errorf(CodeBadRequest, "unknown format %q: use json or msgpack", Clip(s))
}

func (f Format) String() string {
	switch f {
	case FormatJSON:
		return "json"
	case FormatMsgpack:
		return "msgpack"
	}
	return fmt.Sprintf("format(%d)", uint8(f))
}

// Binary reports whether frames of f travel in binary WebSocket messages.
func (f Format) Binary() bool { return f == FormatMsgpack }

// Decode parses one frame. It checks structure and field types, not the
// semantics of a request (channel rules, direction): that is the receiver's job.
// Errors are *Error with CodeBadFrame, CodeUnknownType, CodeBadRequest or
// CodeUnsupportedOption; with the last two, the returned Frame still has
// the Type, Ref and Channel that could be read, to address the refusal.
func (f Format) Decode(b []byte) (Frame, error) {
	if f == FormatMsgpack {
		return decodeMsgpack(b)
	}
	return decodeJSON(b)
}

// Encode encodes one frame.
func (f Format) Encode(fr *Frame) ([]byte, error) {
	if f == FormatMsgpack {
		return encodeMsgpack(fr)
	}
	return encodeJSON(fr)
}

// EncodeMessage encodes the message frame that delivers m to subscribers.
// It is called once per message per format; the result is shared by all
// subscribers in that format.
func (f Format) EncodeMessage(m *Message) ([]byte, error) {
	return f.Encode(&Frame{Type: FrameMessage, Channel: m.Channel, Msg: *m})
}

// WireData returns a payload (compact JSON, as Message.Data holds it) as
// format f carries it in the data field of a message frame: for JSON the
// bytes themselves, for msgpack the native msgpack value with map keys
// sorted (docs/protocol.md §9.4). These are the bytes deltas are computed
// between (docs/protocol.md §6.1).
func (f Format) WireData(data []byte) ([]byte, error) {
	if f == FormatMsgpack {
		return jsonToMsgpack(data)
	}
	return data, nil
}

// DataFromWire is the inverse of WireData, for a receiver that rebuilt a
// payload from a delta: it checks the bytes are one value of format f and
// returns it as compact JSON (Message.Data). Errors are CodeBadRequest.
func (f Format) DataFromWire(wire []byte) ([]byte, error) {
	if f == FormatMsgpack {
		r := bytes.NewReader(wire)
		dec := getDecoder(r)
		err := dec.Skip()
		if err == nil {
			putDecoder(dec)
		}
		if err != nil || r.Len() > 0 {
			return nil, Errorf(CodeBadRequest, "data is not one msgpack value")
		}
		return msgpackToJSON(wire)
	}
	if !json.Valid(wire) {
		return nil, Errorf(CodeBadRequest, "data is not one JSON value")
	}
	return compactJSON(wire), nil
}

// MaxRewind is the most messages a rewind may ask for.
const MaxRewind = 1000

// wireOptions turns the options map of an attach frame into AttachOptions,
// refusing unknown keys so that a client never silently loses a behaviour it
// asked for. dec decodes one raw value, in the frame's own encoding, into
// the value v points to.
func wireOptions[R ~[]byte](opts map[string]R, dec func(raw R, v any) error) (AttachOptions, error) {
	var o AttachOptions
	for k, v := range opts {
		switch k {
		case "publish_only":
			if dec(v, &o.PublishOnly) != nil {
				return o, Errorf(CodeBadRequest, "options.publish_only must be a boolean")
			}
		case "rewind":
			var n int64
			var d string
			switch {
			case dec(v, &n) == nil:
				if n < 0 || n > MaxRewind {
					return o, Errorf(CodeBadRequest, "options.rewind must be between 0 and %d messages", MaxRewind)
				}
				o.Rewind = int(n)
			case dec(v, &d) == nil:
				dur, err := time.ParseDuration(d)
				if err != nil || dur <= 0 {
					return o, Errorf(CodeBadRequest, "options.rewind must be a message count or a duration such as \"30s\"")
				}
				o.RewindFor = dur
			default:
				return o, Errorf(CodeBadRequest, "options.rewind must be a message count or a duration such as \"30s\"")
			}
		case "resume":
			if dec(v, &o.Resume) != nil {
				return o, Errorf(CodeBadRequest, "options.resume must be a string")
			}
			if _, err := ParseToken(o.Resume); err != nil {
				return o, err
			}
		case "delta":
			if dec(v, &o.Delta) != nil {
				return o, Errorf(CodeBadRequest, "options.delta must be a string")
			}
			if o.Delta != "" && o.Delta != DeltaVCDIFF {
				return o, Errorf(CodeUnsupportedOption, "delta format %q is not supported: use %q", Clip(o.Delta), DeltaVCDIFF)
			}
		case "conflate":
			var d string
			if dec(v, &d) != nil {
				return o, Errorf(CodeBadRequest, "options.conflate must be a duration such as \"1s\"")
			}
			dur, err := time.ParseDuration(d)
			if err != nil || dur < MinConflate || dur > MaxConflate {
				return o, Errorf(CodeBadRequest, "options.conflate must be a duration from %v to %v, such as \"1s\"", MinConflate, MaxConflate)
			}
			o.Conflate = dur
		case "conflate_key":
			if dec(v, &o.ConflateKey) != nil {
				return o, Errorf(CodeBadRequest, "options.conflate_key must be a string")
			}
			if o.ConflateKey == "" || len(o.ConflateKey) > MaxConflateKey {
				return o, Errorf(CodeBadRequest, "options.conflate_key must be a field name of 1 to %d bytes", MaxConflateKey)
			}
		default:
			return o, Errorf(CodeUnsupportedOption, "unknown option %q", Clip(k))
		}
	}
	if o.Resume != "" && (o.Rewind > 0 || o.RewindFor > 0) {
		return o, Errorf(CodeBadRequest, "options.resume and options.rewind exclude each other")
	}
	if o.PublishOnly && (o.Resume != "" || o.Rewind > 0 || o.RewindFor > 0 || o.Delta != "" || o.Conflate > 0) {
		return o, Errorf(CodeBadRequest, "options.publish_only receives nothing: it excludes rewind, resume, delta and conflate")
	}
	if o.ConflateKey != "" && o.Conflate == 0 {
		return o, Errorf(CodeBadRequest, "options.conflate_key needs options.conflate")
	}
	return o, nil
}

func encodeOptions(o AttachOptions) map[string]any {
	m := map[string]any{}
	if o.PublishOnly {
		m["publish_only"] = true
	}
	if o.Rewind > 0 {
		m["rewind"] = o.Rewind
	}
	if o.RewindFor > 0 {
		m["rewind"] = o.RewindFor.String()
	}
	if o.Resume != "" {
		m["resume"] = o.Resume
	}
	if o.Delta != "" {
		m["delta"] = o.Delta
	}
	if o.Conflate > 0 {
		m["conflate"] = o.Conflate.String()
	}
	if o.ConflateKey != "" {
		m["conflate_key"] = o.ConflateKey
	}
	if len(m) == 0 {
		return nil
	}
	return m
}
