package codec

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"unicode/utf8"
)

// Payloads are JSON values. Inside the edge and on the backbone a payload is
// kept as compact JSON; msgpack clients send and receive the same value as
// native msgpack (maps with string keys, arrays, strings, numbers, booleans,
// nil). The conversion happens once per message and format, never per
// subscriber.

// maxDataDepth bounds nesting so that a hostile payload cannot exhaust the
// stack of the converters below.
const maxDataDepth = 64

func compactJSON(raw []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(raw))
	if err := json.Compact(&buf, raw); err != nil {
		return append([]byte(nil), raw...)
	}
	return buf.Bytes()
}

// jsonToMsgpack re-encodes one JSON value as msgpack. Integers that fit int64
// or uint64 stay integers; other numbers become float64.
func jsonToMsgpack(data []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, Errorf(CodeBadRequest, "data is not a JSON value: %s", Clip(err.Error()))
	}
	v, err := fromJSONValue(v, 0)
	if err != nil {
		return nil, err
	}
	return marshalCompact(v)
}

func fromJSONValue(v any, depth int) (any, error) {
	if depth > maxDataDepth {
		return nil, Errorf(CodeBadRequest, "data is nested deeper than %d levels", maxDataDepth)
	}
	switch x := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			if i == 0 && x[0] == '-' {
				// "-0" is the JSON text of a negative-zero float (it is what a
				// msgpack -0.0 becomes); as integer 0 it would come back as
				// "0" and JSON and msgpack subscribers would see different
				// values.
				return math.Copysign(0, -1), nil
			}
			return i, nil
		}
		if u, err := strconv.ParseUint(string(x), 10, 64); err == nil {
			return u, nil
		}
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			return nil, Errorf(CodeBadRequest, "data has a number out of range: %s", Clip(string(x)))
		}
		return f, nil
	case map[string]any:
		for k, e := range x {
			c, err := fromJSONValue(e, depth+1)
			if err != nil {
				return nil, err
			}
			x[k] = c
		}
	case []any:
		for i, e := range x {
			c, err := fromJSONValue(e, depth+1)
			if err != nil {
				return nil, err
			}
			x[i] = c
		}
	}
	return v, nil
}

// msgpackToJSON converts one msgpack value to compact JSON. Values JSON cannot
// carry (binary strings, non-string map keys, NaN and infinities, extension
// types) are refused with CodeBadRequest rather than silently altered.
func msgpackToJSON(raw []byte) ([]byte, error) {
	dec := getDecoder(bytes.NewReader(raw))
	v, err := dec.DecodeInterface()
	if err != nil {
		return nil, Errorf(CodeBadRequest, "data is not a msgpack value: %s", Clip(err.Error()))
	}
	putDecoder(dec)
	if err := checkJSONable(v, 0); err != nil {
		return nil, err
	}
	out, err := marshalJSON(v)
	if err != nil {
		return nil, Errorf(CodeBadRequest, "data cannot be represented as JSON: %s", Clip(err.Error()))
	}
	return out, nil
}

func checkJSONable(v any, depth int) error {
	if depth > maxDataDepth {
		return Errorf(CodeBadRequest, "data is nested deeper than %d levels", maxDataDepth)
	}
	switch x := v.(type) {
	case string:
		if !utf8.ValidString(x) {
			return Errorf(CodeBadRequest, "data has a string that is not valid UTF-8")
		}
		return nil
	case nil, bool, int8, int16, int32, int64, uint8, uint16, uint32, uint64:
		return nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return Errorf(CodeBadRequest, "data has a NaN or infinite number")
		}
		return nil
	case float32:
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return Errorf(CodeBadRequest, "data has a NaN or infinite number")
		}
		return nil
	case []any:
		for _, e := range x {
			if err := checkJSONable(e, depth+1); err != nil {
				return err
			}
		}
		return nil
	case map[any]any:
		return Errorf(CodeBadRequest, "data map keys must be strings")
	case map[string]any:
		for k, e := range x {
			if !utf8.ValidString(k) {
				return Errorf(CodeBadRequest, "data has a map key that is not valid UTF-8")
			}
			if err := checkJSONable(e, depth+1); err != nil {
				return err
			}
		}
		return nil
	case []byte:
		return Errorf(CodeBadRequest, "data has a binary string; send text (e.g. base64) instead")
	default:
		return Errorf(CodeBadRequest, "data has a value of type %T that JSON cannot carry", v)
	}
}
