package codec

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
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
			return partial(w.Type, w.Ref, w.Channel), Errorf(CodeBadRequest, "field %q must be a %s", Clip(te.Field), te.Type)
		}
		if se, ok := err.(*json.SyntaxError); ok && strings.Contains(se.Error(), "exceeded max depth") {
			// encoding/json refuses the whole frame before reading any of
			// it; read the envelope by hand so the refusal answers the
			// request (a nack for a publish) instead of leaving it hanging.
			typ, ref, channel, obj := jsonEnvelope(b)
			if !obj {
				return Frame{}, Errorf(CodeBadFrame, "a frame must be a JSON object")
			}
			return partial(typ, ref, channel), Errorf(CodeBadRequest, "frame is nested deeper than %d levels", maxJSONDepth)
		}
		return Frame{}, Errorf(CodeBadFrame, "malformed JSON: %s", Clip(err.Error()))
	}
	fr, err := fromWire(&w, func(r json.RawMessage, v any) error { return json.Unmarshal(r, v) })
	if err != nil {
		return fr, err
	}
	if len(w.Data) > 0 {
		// Unmarshal has validated it; keep our own compact copy (the input
		// buffer is reused by the reader).
		fr.Msg.Data = compactJSON(w.Data)
		fr.Wire = fr.Msg.Data
	}
	return fr, nil
}

// maxJSONDepth is encoding/json's nesting limit (its scanner's
// maxNestingDepth); a deeper frame is refused whole by json.Unmarshal.
const maxJSONDepth = 10000

// jsonEnvelope reads the top-level "type", "ref" and "channel" of a JSON
// object token by token, skipping other values without a depth limit. It
// returns what it read before the end or the first problem; a field of the
// wrong type is left zero. obj reports whether b begins an object.
func jsonEnvelope(b []byte) (typ string, ref uint64, channel string, obj bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return
	}
	obj = true
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return
		}
		name, _ := k.(string)
		switch {
		case strings.EqualFold(name, "type"): // names match as json.Unmarshal matches them
			err = dec.Decode(&typ)
		case strings.EqualFold(name, "ref"):
			err = dec.Decode(&ref)
		case strings.EqualFold(name, "channel"):
			err = dec.Decode(&channel)
		default:
			err = skipJSONValue(dec)
		}
		if err != nil {
			var te *json.UnmarshalTypeError
			if !errors.As(err, &te) {
				return
			}
		}
	}
	return
}

// skipJSONValue reads past one value, however deep.
func skipJSONValue(dec *json.Decoder) error {
	depth := 0
	for {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		switch t {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 0 {
			return nil
		}
	}
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
