package codec

import "time"

// wireFrame is a frame as both encodings carry it, in both directions: the
// same field names in JSON and msgpack. R is the encoding's raw-value type
// (json.RawMessage or msgpack.RawMessage): Data and option values stay raw
// until the format-specific code converts them.
type wireFrame[R ~[]byte] struct {
	Type       string       `json:"type" msgpack:"type"`
	Ref        uint64       `json:"ref,omitempty" msgpack:"ref,omitempty"`
	Channel    string       `json:"channel,omitempty" msgpack:"channel,omitempty"`
	Options    map[string]R `json:"options,omitempty" msgpack:"options,omitempty"`
	ID         string       `json:"id,omitempty" msgpack:"id,omitempty"`
	Name       string       `json:"name,omitempty" msgpack:"name,omitempty"`
	Data       R            `json:"data,omitempty" msgpack:"data,omitempty"`
	Delta      []byte       `json:"delta,omitempty" msgpack:"delta,omitempty"`
	Base       string       `json:"base,omitempty" msgpack:"base,omitempty"`
	BaseCRC    uint32       `json:"base_crc,omitempty" msgpack:"base_crc,omitempty"`
	Time       int64        `json:"time,omitempty" msgpack:"time,omitempty"`
	Code       int          `json:"code,omitempty" msgpack:"code,omitempty"`
	Message    string       `json:"message,omitempty" msgpack:"message,omitempty"`
	RetryAfter int64        `json:"retry_after,omitempty" msgpack:"retry_after,omitempty"`
	Reconnect  bool         `json:"reconnect,omitempty" msgpack:"reconnect,omitempty"`
	Pos        string       `json:"pos,omitempty" msgpack:"pos,omitempty"`
	Continuity string       `json:"continuity,omitempty" msgpack:"continuity,omitempty"`
	Token      string       `json:"token,omitempty" msgpack:"token,omitempty"`
}

// toWire copies fr's fields into a wireFrame, except Data; options are
// encoded with marshal, the encoding's own.
func toWire[R ~[]byte](fr *Frame, marshal func(any) ([]byte, error)) (wireFrame[R], error) {
	w := wireFrame[R]{
		Type:       fr.Type.String(),
		Ref:        fr.Ref,
		Channel:    fr.Channel,
		ID:         fr.Msg.ID,
		Name:       fr.Msg.Name,
		Time:       fr.Msg.Time,
		Reconnect:  fr.Reconnect,
		Pos:        fr.Pos,
		Continuity: string(fr.Continuity),
		Token:      fr.Token,
		Delta:      fr.Delta,
		Base:       fr.Base,
		BaseCRC:    fr.BaseCRC,
	}
	if fr.Err != nil {
		w.Code, w.Message = int(fr.Err.Code), fr.Err.Message
		w.RetryAfter = fr.Err.RetryAfterMillis()
	}
	for k, v := range encodeOptions(fr.Options) {
		raw, err := marshal(v)
		if err != nil {
			return w, err
		}
		if w.Options == nil {
			w.Options = make(map[string]R)
		}
		w.Options[k] = R(raw)
	}
	return w, nil
}

// fromWire builds a Frame from w, except Data; options are decoded with
// unmarshal, the encoding's own. A refused frame still returns what could
// be read of it (see partial).
func fromWire[R ~[]byte](w *wireFrame[R], unmarshal func(R, any) error) (Frame, error) {
	fr := Frame{
		Type:       parseFrameType(w.Type),
		Ref:        w.Ref,
		Channel:    w.Channel,
		Reconnect:  w.Reconnect,
		Pos:        w.Pos,
		Continuity: Continuity(w.Continuity),
		Token:      w.Token,
		Msg:        Message{Channel: w.Channel, ID: w.ID, Name: w.Name, Time: w.Time},
		Delta:      w.Delta,
		Base:       w.Base,
		BaseCRC:    w.BaseCRC,
	}
	if fr.Type == FrameInvalid {
		return Frame{Ref: w.Ref, Channel: w.Channel}, unknownType(w.Type)
	}
	if w.Code != 0 || w.Message != "" {
		fr.Err = &Error{Code: Code(w.Code), Message: w.Message}
		if w.RetryAfter > 0 { // a negative wait means none
			fr.Err.RetryAfter = time.Duration(min(w.RetryAfter, MaxRetryAfter.Milliseconds())) * time.Millisecond
		}
	}
	var err error
	if fr.Options, err = wireOptions(w.Options, unmarshal); err != nil {
		return partial(w.Type, w.Ref, w.Channel), err
	}
	return fr, nil
}

func unknownType(t string) error {
	if t == "" {
		return Errorf(CodeUnknownType, "frame has no type")
	}
	return Errorf(CodeUnknownType, "unknown frame type %q", Clip(t))
}

// partial is what a refused frame still tells: its type, ref and channel,
// so that the refusal can answer the request it was (a nack for a publish).
// Decode returns it alongside an error when the frame's envelope was
// readable but a field was not.
func partial(typ string, ref uint64, channel string) Frame {
	return Frame{Type: parseFrameType(typ), Ref: ref, Channel: channel}
}
