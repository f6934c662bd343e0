package codec

import (
	"bytes"
	"runtime"
	"testing"
)

// The msgpack library's DecodeRaw leaves its recording buffer switched on when
// the value is truncated, and Decoder.Reset does not switch it off: a pooled
// decoder that once failed inside a raw field would then copy every byte it
// later reads into that buffer, for as long as it lives. (The fuzzer found it:
// workers slowed to a halt.) decodeMsgpack must not hand such a decoder back.
func TestMsgpackDecoderNotPoisoned(t *testing.T) {
	// {"type":"publish","data": <bin32 claiming 1 MiB, 3 bytes present>}
	truncated := []byte{0x82, 0xa4, 't', 'y', 'p', 'e', 0xa7, 'p', 'u', 'b', 'l', 'i', 's', 'h',
		0xa4, 'd', 'a', 't', 'a', 0xc6, 0x00, 0x10, 0x00, 0x00, 1, 2, 3}
	big := bytes.Repeat([]byte("x"), 60_000)
	good := mustEncode(t, FormatMsgpack, &Frame{Type: FramePublish, Ref: 1, Channel: "c", Msg: Message{Name: string(big)}})
	allocs := func() uint64 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for i := 0; i < 200; i++ {
			if _, err := FormatMsgpack.Decode(good); err != nil {
				t.Fatal(err)
			}
		}
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	clean := allocs()
	if _, err := FormatMsgpack.Decode(truncated); err == nil {
		t.Fatal("truncated frame decoded")
	}
	// The frame has no raw field after "name", so nothing would switch a
	// poisoned decoder's recording off: every decode would copy the frame.
	if after := allocs(); after > clean*3/2 {
		t.Fatalf("decoding 200 frames of 60 KB allocated %d MB after a truncated frame, %d MB before: a pooled decoder is recording",
			after>>20, clean>>20)
	}
}
