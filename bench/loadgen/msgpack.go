package loadgen

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
)

func float32frombits(b uint32) float32 { return math.Float32frombits(b) }
func float64frombits(b uint64) float64 { return math.Float64frombits(b) }

// jsonToMsgpack converts one JSON document to msgpack, keeping object key
// order. Integers stay integers. It serves the generator's own control
// messages and payloads, never the hot receive path.
func jsonToMsgpack(dst []byte, src []byte) ([]byte, error) {
	d := json.NewDecoder(bytes.NewReader(src))
	d.UseNumber()
	dst, err := mpValue(dst, d)
	if err != nil {
		return nil, fmt.Errorf("json to msgpack: %w", err)
	}
	return dst, nil
}

func mpValue(dst []byte, d *json.Decoder) ([]byte, error) {
	tok, err := d.Token()
	if err != nil {
		return nil, err
	}
	switch v := tok.(type) {
	case json.Delim:
		var items [][]byte
		for d.More() {
			var item []byte
			if v == '{' {
				k, err := d.Token()
				if err != nil {
					return nil, err
				}
				item = mpString(item, k.(string))
			}
			item, err = mpValue(item, d)
			if err != nil {
				return nil, err
			}
			items = append(items, item)
		}
		if _, err := d.Token(); err != nil { // closing delimiter
			return nil, err
		}
		n := len(items)
		if v == '{' {
			switch {
			case n < 16:
				dst = append(dst, 0x80|byte(n))
			default:
				dst = append(dst, 0xde, byte(n>>8), byte(n))
			}
		} else {
			switch {
			case n < 16:
				dst = append(dst, 0x90|byte(n))
			default:
				dst = append(dst, 0xdc, byte(n>>8), byte(n))
			}
		}
		for _, it := range items {
			dst = append(dst, it...)
		}
		return dst, nil
	case string:
		return mpString(dst, v), nil
	case json.Number:
		if i, err := v.Int64(); err == nil {
			if i >= 0 && i < 128 {
				return append(dst, byte(i)), nil
			}
			dst = append(dst, 0xd3)
			return binary.BigEndian.AppendUint64(dst, uint64(i)), nil
		}
		f, err := v.Float64()
		if err != nil {
			return nil, err
		}
		dst = append(dst, 0xcb)
		return binary.BigEndian.AppendUint64(dst, math.Float64bits(f)), nil
	case bool:
		if v {
			return append(dst, 0xc3), nil
		}
		return append(dst, 0xc2), nil
	case nil:
		return append(dst, 0xc0), nil
	}
	return nil, fmt.Errorf("unexpected token %v", tok)
}

func mpString(dst []byte, s string) []byte {
	n := len(s)
	switch {
	case n < 32:
		dst = append(dst, 0xa0|byte(n))
	case n < 256:
		dst = append(dst, 0xd9, byte(n))
	default:
		dst = append(dst, 0xda, byte(n>>8), byte(n))
	}
	return append(dst, s...)
}
