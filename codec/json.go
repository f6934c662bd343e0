package codec

import (
	"encoding/json"
	"errors"
)

type jsonFrame = wireFrame[json.RawMessage]

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
	fr, err := fromWire(&w, func(r json.RawMessage, v any) error { return json.Unmarshal(r, v) })
	if err != nil {
		return fr, err
	}
	if len(w.Data) > 0 {
		// Unmarshal has validated it; keep our own compact copy (the input
		// buffer is reused by the reader).
		fr.Msg.Data = compactJSON(w.Data)
	}
	return fr, nil
}

func encodeJSON(fr *Frame) ([]byte, error) {
	w, err := toWire[json.RawMessage](fr, json.Marshal)
	if err != nil {
		return nil, err
	}
	w.Data = fr.Msg.Data
	return json.Marshal(&w)
}
