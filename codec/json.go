package codec

import (
	"encoding/json"
	"errors"
)

type jsonFrame struct {
	Type       string                     `json:"type"`
	Ref        uint64                     `json:"ref,omitempty"`
	Channel    string                     `json:"channel,omitempty"`
	Options    map[string]json.RawMessage `json:"options,omitempty"`
	ID         string                     `json:"id,omitempty"`
	Name       string                     `json:"name,omitempty"`
	Data       json.RawMessage            `json:"data,omitempty"`
	Time       int64                      `json:"time,omitempty"`
	Code       int                        `json:"code,omitempty"`
	Message    string                     `json:"message,omitempty"`
	Reconnect  bool                       `json:"reconnect,omitempty"`
	Pos        string                     `json:"pos,omitempty"`
	Continuity string                     `json:"continuity,omitempty"`
}

type jsonFrameOut struct {
	Type       string          `json:"type"`
	Ref        uint64          `json:"ref,omitempty"`
	Channel    string          `json:"channel,omitempty"`
	Options    map[string]any  `json:"options,omitempty"`
	ID         string          `json:"id,omitempty"`
	Name       string          `json:"name,omitempty"`
	Data       json.RawMessage `json:"data,omitempty"`
	Time       int64           `json:"time,omitempty"`
	Code       int             `json:"code,omitempty"`
	Message    string          `json:"message,omitempty"`
	Reconnect  bool            `json:"reconnect,omitempty"`
	Pos        string          `json:"pos,omitempty"`
	Continuity string          `json:"continuity,omitempty"`
}

func decodeJSON(b []byte) (Frame, error) {
	var w jsonFrame
	if err := json.Unmarshal(b, &w); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			if te.Field == "" {
				return Frame{}, Errorf(CodeBadFrame, "a frame must be a JSON object")
			}
			return partial(w.Type, w.Ref, w.Channel), Errorf(CodeBadRequest, "field %q must be a %s", te.Field, te.Type)
		}
		return Frame{}, Errorf(CodeBadFrame, "malformed JSON: %v", err)
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
		// Unmarshal has validated it; keep our own compact copy (the input
		// buffer is reused by the reader).
		fr.Msg.Data = compactJSON(w.Data)
	}
	if w.Code != 0 || w.Message != "" {
		fr.Err = &Error{Code: Code(w.Code), Message: w.Message}
	}
	var err error
	fr.Options, err = wireOptions(w.Options, func(r json.RawMessage, v any) error { return json.Unmarshal(r, v) })
	if err != nil {
		return partial(w.Type, w.Ref, w.Channel), err
	}
	return fr, nil
}

func encodeJSON(fr *Frame) ([]byte, error) {
	w := jsonFrameOut{
		Type:       fr.Type.String(),
		Ref:        fr.Ref,
		Channel:    fr.Channel,
		Options:    encodeOptions(fr.Options),
		ID:         fr.Msg.ID,
		Name:       fr.Msg.Name,
		Data:       fr.Msg.Data,
		Time:       fr.Msg.Time,
		Reconnect:  fr.Reconnect,
		Pos:        fr.Pos,
		Continuity: string(fr.Continuity),
	}
	if fr.Err != nil {
		w.Code, w.Message = int(fr.Err.Code), fr.Err.Message
	}
	return json.Marshal(&w)
}

func unknownType(t string) error {
	if t == "" {
		return Errorf(CodeUnknownType, "frame has no type")
	}
	if len(t) > 32 {
		t = t[:32] + "…"
	}
	return Errorf(CodeUnknownType, "unknown frame type %q", t)
}

// partial is what a refused frame still tells: its type, ref and channel,
// so that the refusal can answer the request it was (a nack for a publish).
// Decode returns it alongside an error when the frame's envelope was
// readable but a field was not.
func partial(typ string, ref uint64, channel string) Frame {
	return Frame{Type: parseFrameType(typ), Ref: ref, Channel: channel}
}
