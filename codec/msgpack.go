package codec

import (
	"bytes"

	"github.com/vmihailenco/msgpack/v5"
)

type msgpackFrame struct {
	Type       string                        `msgpack:"type"`
	Ref        uint64                        `msgpack:"ref,omitempty"`
	Channel    string                        `msgpack:"channel,omitempty"`
	Options    map[string]msgpack.RawMessage `msgpack:"options,omitempty"`
	ID         string                        `msgpack:"id,omitempty"`
	Name       string                        `msgpack:"name,omitempty"`
	Data       msgpack.RawMessage            `msgpack:"data,omitempty"`
	Time       int64                         `msgpack:"time,omitempty"`
	Code       int                           `msgpack:"code,omitempty"`
	Message    string                        `msgpack:"message,omitempty"`
	Reconnect  bool                          `msgpack:"reconnect,omitempty"`
	Pos        string                        `msgpack:"pos,omitempty"`
	Continuity string                        `msgpack:"continuity,omitempty"`
}

type msgpackFrameOut struct {
	Type       string             `msgpack:"type"`
	Ref        uint64             `msgpack:"ref,omitempty"`
	Channel    string             `msgpack:"channel,omitempty"`
	Options    map[string]any     `msgpack:"options,omitempty"`
	ID         string             `msgpack:"id,omitempty"`
	Name       string             `msgpack:"name,omitempty"`
	Data       msgpack.RawMessage `msgpack:"data,omitempty"`
	Time       int64              `msgpack:"time,omitempty"`
	Code       int                `msgpack:"code,omitempty"`
	Message    string             `msgpack:"message,omitempty"`
	Reconnect  bool               `msgpack:"reconnect,omitempty"`
	Pos        string             `msgpack:"pos,omitempty"`
	Continuity string             `msgpack:"continuity,omitempty"`
}

func decodeMsgpack(b []byte) (Frame, error) {
	if len(b) == 0 {
		return Frame{}, Errorf(CodeBadFrame, "empty frame")
	}
	// A frame must be a map; checking the first byte keeps arrays and scalars
	// from being decoded into the struct by position.
	if c := b[0]; !(c >= 0x80 && c <= 0x8f) && c != 0xde && c != 0xdf {
		return Frame{}, Errorf(CodeBadFrame, "a frame must be a msgpack map")
	}
	var w msgpackFrame
	r := bytes.NewReader(b)
	if err := msgpack.NewDecoder(r).Decode(&w); err != nil {
		return Frame{}, Errorf(CodeBadFrame, "malformed msgpack: %v", err)
	}
	if r.Len() > 0 {
		return Frame{}, Errorf(CodeBadFrame, "malformed msgpack: %d bytes after the frame", r.Len())
	}
	fr := Frame{
		Type:       parseFrameType(w.Type),
		Ref:        w.Ref,
		Channel:    w.Channel,
		Reconnect:  w.Reconnect,
		Pos:        w.Pos,
		Continuity: Continuity(w.Continuity),
		Msg:        Message{Channel: w.Channel, ID: w.ID, Name: w.Name, Time: w.Time},
	}
	if fr.Type == FrameInvalid {
		return Frame{Ref: w.Ref, Channel: w.Channel}, unknownType(w.Type)
	}
	if len(w.Data) > 0 {
		data, err := msgpackToJSON(w.Data)
		if err != nil {
			return partial(w.Type, w.Ref, w.Channel), err
		}
		fr.Msg.Data = data
	}
	if w.Code != 0 || w.Message != "" {
		fr.Err = &Error{Code: Code(w.Code), Message: w.Message}
	}
	var err error
	fr.Options, err = wireOptions(w.Options, func(r msgpack.RawMessage, v any) error { return msgpack.Unmarshal(r, v) })
	if err != nil {
		return partial(w.Type, w.Ref, w.Channel), err
	}
	return fr, nil
}

func encodeMsgpack(fr *Frame) ([]byte, error) {
	w := msgpackFrameOut{
		Type:       fr.Type.String(),
		Ref:        fr.Ref,
		Channel:    fr.Channel,
		Options:    encodeOptions(fr.Options),
		ID:         fr.Msg.ID,
		Name:       fr.Msg.Name,
		Time:       fr.Msg.Time,
		Reconnect:  fr.Reconnect,
		Pos:        fr.Pos,
		Continuity: string(fr.Continuity),
	}
	if len(fr.Msg.Data) > 0 {
		data, err := jsonToMsgpack(fr.Msg.Data)
		if err != nil {
			return nil, err
		}
		w.Data = data
	}
	if fr.Err != nil {
		w.Code, w.Message = int(fr.Err.Code), fr.Err.Message
	}
	return marshalCompact(&w)
}

// marshalCompact encodes v with integers in their smallest msgpack form
// (the library's default writes every int64 in 9 bytes).
func marshalCompact(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(true)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
