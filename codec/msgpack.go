package codec

import (
	"bytes"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

type msgpackFrame = wireFrame[msgpack.RawMessage]

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
	dec := getDecoder(r)
	if err := dec.Decode(&w); err != nil {
		return Frame{}, Errorf(CodeBadFrame, "malformed msgpack: %s", Clip(err.Error()))
	}
	decoders.Put(dec)
	if r.Len() > 0 {
		return Frame{}, Errorf(CodeBadFrame, "malformed msgpack: %d bytes after the frame", r.Len())
	}
	fr, err := fromWire(&w, func(r msgpack.RawMessage, v any) error { return msgpack.Unmarshal(r, v) })
	if err != nil {
		return fr, err
	}
	if len(w.Data) > 0 {
		data, err := msgpackToJSON(w.Data)
		if err != nil {
			return partial(w.Type, w.Ref, w.Channel), err
		}
		fr.Msg.Data = data
		fr.Wire = append([]byte(nil), w.Data...)
	}
	return fr, nil
}

// decoders holds msgpack decoders that finished a decode without error.
//
// It is not the library's own pool (msgpack.GetDecoder): when a raw value
// (our data and option fields) is truncated, the library's DecodeRaw returns
// with its recording buffer still switched on, and Decoder.Reset does not
// switch it off; a decoder put back after such an error would copy every
// byte it reads afterwards into that buffer until the next raw value ends
// well. A decoder whose decode failed is simply dropped.
var decoders = sync.Pool{New: func() any { return msgpack.NewDecoder(nil) }}

func getDecoder(r *bytes.Reader) *msgpack.Decoder {
	dec := decoders.Get().(*msgpack.Decoder)
	dec.Reset(r)
	return dec
}

// putDecoder returns a decoder whose decode succeeded, without its reader
// (which would keep the last frame alive in the pool).
func putDecoder(dec *msgpack.Decoder) {
	dec.Reset(nil)
	decoders.Put(dec)
}

func encodeMsgpack(fr *Frame) ([]byte, error) {
	w, err := toWire[msgpack.RawMessage](fr, marshalCompact)
	if err != nil {
		return nil, err
	}
	if len(fr.Msg.Data) > 0 && fr.Wire == nil {
		if w.Data, err = jsonToMsgpack(fr.Msg.Data); err != nil {
			return nil, err
		}
	}
	if fr.Wire != nil {
		w.Data = fr.Wire
	}
	return marshalCompact(&w)
}

// marshalCompact encodes v with integers in their smallest msgpack form
// (the library's default writes every int64 in 9 bytes).
func marshalCompact(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := msgpack.GetEncoder() // pooled: a new Encoder costs allocations per call
	defer msgpack.PutEncoder(enc)
	enc.Reset(&buf)
	enc.UseCompactInts(true)
	// Map keys sorted: the same value always encodes to the same bytes, so
	// a delta between two msgpack payloads (docs/protocol.md §6.1) touches
	// only what changed.
	enc.SetSortMapKeys(true)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
