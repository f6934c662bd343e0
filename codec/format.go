package codec

import "fmt"

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
	return 0, Errorf(CodeBadRequest, "unknown format %q: use json or msgpack", s)
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
// Errors are *Error with CodeBadFrame, CodeUnknownType or CodeBadRequest.
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

// wireOptions turns the options map of an attach frame into AttachOptions,
// refusing unknown keys so that a client never silently loses a behaviour it
// asked for. parseBool decodes one raw value in the frame's own encoding.
func wireOptions[R ~[]byte](opts map[string]R, parseBool func(R) (bool, error)) (AttachOptions, error) {
	var o AttachOptions
	for k, v := range opts {
		switch k {
		case "publish_only":
			b, err := parseBool(v)
			if err != nil {
				return o, Errorf(CodeBadRequest, "options.publish_only must be a boolean")
			}
			o.PublishOnly = b
		case "delta", "rewind", "resume":
			return o, Errorf(CodeUnsupportedOption, "option %q is not supported by this edge yet", k)
		default:
			return o, Errorf(CodeUnsupportedOption, "unknown option %q", k)
		}
	}
	return o, nil
}

func encodeOptions(o AttachOptions) map[string]bool {
	if !o.PublishOnly {
		return nil
	}
	return map[string]bool{"publish_only": true}
}
