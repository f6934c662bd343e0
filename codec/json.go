package codec

import (
	"bytes"
	"encoding/json"
	"errors"
	"sync"
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
	w, err := toWire[json.RawMessage](fr, marshalJSON)
	if err != nil {
		return nil, err
	}
	w.Data = fr.Msg.Data
	return marshalJSON(&w)
}

type jsonEncoder struct {
	buf bytes.Buffer
	enc *json.Encoder
}

var jsonEncoders = sync.Pool{New: func() any {
	e := new(jsonEncoder)
	e.enc = json.NewEncoder(&e.buf)
	e.enc.SetEscapeHTML(false)
	return e
}}

// marshalJSON is json.Marshal without HTML escaping: a payload's "&", "<"
// and ">" reach subscribers as the publisher sent them, not as \u0026 etc.
// (six bytes each, and different bytes from what was published).
func marshalJSON(v any) ([]byte, error) {
	e := jsonEncoders.Get().(*jsonEncoder)
	e.buf.Reset()
	err := e.enc.Encode(v)
	var out []byte
	if err == nil {
		b := e.buf.Bytes()
		out = append([]byte(nil), b[:len(b)-1]...) // Encode appends a newline
	}
	if e.buf.Cap() <= 64<<10 { // a rare huge frame's buffer is left to the GC
		jsonEncoders.Put(e)
	}
	return out, err
}
