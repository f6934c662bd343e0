package codec

import (
	"testing"
)

var benchOdds = []byte(`{"market":"match-odds","event":"ev-9182","suspended":false,"selections":[{"id":1,"name":"Home","price":1.95},{"id":2,"name":"Draw","price":3.4},{"id":3,"name":"Away","price":4.1}],"ts":1795400410213}`)

// BenchmarkEncodeMessage is the per-message cost of fan-out: one encode per
// wire format, shared by every subscriber in that format.
func BenchmarkEncodeMessage(b *testing.B) {
	m := Message{Channel: "odds:ev-9182", ID: "k2x7q9aa:1z", Name: "price", Data: benchOdds, Time: 1795400410213, Origin: "k2x7q9aa", Seq: 71}
	for _, f := range []Format{FormatJSON, FormatMsgpack} {
		b.Run(f.String(), func(b *testing.B) {
			b.ReportAllocs()
			var n int
			for b.Loop() {
				out, err := f.Encode(&Frame{Type: FrameMessage, Channel: m.Channel, Msg: m, Pos: "1.k2x7q9aa-1z"})
				if err != nil {
					b.Fatal(err)
				}
				n = len(out)
			}
			b.ReportMetric(float64(n), "bytes/frame")
		})
	}
}

// BenchmarkDecodePublish is the per-publish cost on the reader.
func BenchmarkDecodePublish(b *testing.B) {
	for _, f := range []Format{FormatJSON, FormatMsgpack} {
		in, err := f.Encode(&Frame{Type: FramePublish, Ref: 42, Channel: "odds:ev-9182", Msg: Message{Name: "price", Data: benchOdds}})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(f.String(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := f.Decode(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEncodeReply: small control frames (ack, attached), per request.
func BenchmarkEncodeReply(b *testing.B) {
	for _, f := range []Format{FormatJSON, FormatMsgpack} {
		b.Run(f.String(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := f.Encode(&Frame{Type: FrameAck, Ref: 42, Channel: "odds:ev-9182", Msg: Message{ID: "k2x7q9aa:1z"}}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
