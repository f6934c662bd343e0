package codec

import (
	"bytes"
	"errors"
	"hash/crc32"
	"testing"
	"time"

	"github.com/feedgate/feedgate/codec/vcdiff"
)

func TestDeltaOptions(t *testing.T) {
	for _, f := range []Format{FormatJSON, FormatMsgpack} {
		t.Run(f.String(), func(t *testing.T) {
			in := &Frame{Type: FrameAttach, Ref: 1, Channel: "odds:x", Options: AttachOptions{
				Delta: DeltaVCDIFF, Conflate: 1500 * time.Millisecond, ConflateKey: "market_id", Resume: "2.0"}}
			got, err := f.Decode(mustEncode(t, f, in))
			if err != nil {
				t.Fatal(err)
			}
			if got.Options != in.Options {
				t.Fatalf("options: got %+v, want %+v", got.Options, in.Options)
			}
		})
	}
	fr, err := FormatJSON.Decode([]byte(`{"type":"attach","channel":"c","options":{"delta":""}}`))
	if err != nil || fr.Options.Delta != "" {
		t.Fatalf(`delta "" means none: %+v %v`, fr.Options, err)
	}
}

// TestDeltaFrame: a delta message frame carries the delta bytes (base64 in
// JSON, bin in msgpack), the base's id and CRC, and no data; a receiver
// rebuilds the payload from the base's wire bytes.
func TestDeltaFrame(t *testing.T) {
	prev := []byte(`{"market_id":"m1","sel":[{"id":1,"p":1.95},{"id":2,"p":3.4}],"status":"open"}`)
	next := []byte(`{"market_id":"m1","sel":[{"id":1,"p":2.05},{"id":2,"p":3.3}],"status":"open"}`)
	for _, f := range []Format{FormatJSON, FormatMsgpack} {
		t.Run(f.String(), func(t *testing.T) {
			src, err := f.WireData(prev)
			if err != nil {
				t.Fatal(err)
			}
			tgt, err := f.WireData(next)
			if err != nil {
				t.Fatal(err)
			}
			d := vcdiff.Encode(src, tgt)
			in := &Frame{Type: FrameMessage, Channel: "c", Msg: Message{ID: "b", Time: 7}, Pos: "2.0",
				Delta: d, Base: "a", BaseCRC: crc32.ChecksumIEEE(src)}
			b := mustEncode(t, f, in)
			if f == FormatJSON && !bytes.Contains(b, []byte(`"base_crc":`)) {
				t.Fatalf("no base_crc in %s", b)
			}
			got, err := f.Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if got.Base != "a" || got.BaseCRC != crc32.ChecksumIEEE(src) || !bytes.Equal(got.Delta, d) || got.Msg.Data != nil {
				t.Fatalf("decoded %+v", got)
			}
			out, err := vcdiff.Decode(src, got.Delta, MaxDeltaPayload)
			if err != nil {
				t.Fatal(err)
			}
			data, err := f.DataFromWire(out)
			if err != nil {
				t.Fatal(err)
			}
			// The same payload a full frame gives.
			full, err := f.Decode(mustEncode(t, f, &Frame{Type: FrameMessage, Channel: "c", Msg: Message{ID: "b", Data: next}}))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(data, full.Msg.Data) || !bytes.Equal(out, full.Wire) {
				t.Fatalf("rebuilt %s (wire %x), full frame %s (wire %x)", data, out, full.Msg.Data, full.Wire)
			}
		})
	}
}

// TestWireDataDeterministic: msgpack maps are written with sorted keys, so
// one payload always has the same wire bytes (a delta base must).
func TestWireDataDeterministic(t *testing.T) {
	data := []byte(`{"z":1,"a":{"y":[1,{"q":2,"b":3}],"c":"x"},"m":null,"k":true,"e":1.5}`)
	first, err := FormatMsgpack.WireData(data)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		b, _ := FormatMsgpack.WireData(data)
		if !bytes.Equal(b, first) {
			t.Fatalf("encoding %d differs: %x vs %x", i, b, first)
		}
	}
	fr, err := FormatMsgpack.Decode(mustEncode(t, FormatMsgpack, &Frame{Type: FrameMessage, Channel: "c", Msg: Message{ID: "i", Data: data}}))
	if err != nil || !bytes.Equal(fr.Wire, first) {
		t.Fatalf("full frame's data is not WireData: %x vs %x (%v)", fr.Wire, first, err)
	}
}

func TestDataFromWireRefuses(t *testing.T) {
	for _, tc := range []struct {
		f  Format
		in []byte
	}{
		{FormatJSON, []byte(`{"a":`)},
		{FormatJSON, []byte(`1 2`)},
		{FormatMsgpack, []byte{0x92, 0x01}},       // truncated array
		{FormatMsgpack, []byte{0x01, 0x02}},       // two values
		{FormatMsgpack, []byte{0xc4, 0x01, 0x00}}, // bin
		{FormatMsgpack, nil},
	} {
		if _, err := tc.f.DataFromWire(tc.in); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%v %x: err %v, want bad_request", tc.f, tc.in, err)
		}
	}
}
