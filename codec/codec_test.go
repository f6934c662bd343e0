package codec

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

func TestValidateChannel(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"odds:football:123", true},
		{"a", true},
		{"A-Z_0.9@x/y=z", true},
		{strings.Repeat("x", MaxChannelLen), true},
		{"", false},
		{strings.Repeat("x", MaxChannelLen+1), false},
		{"with space", false},
		{"ünicode", false},
		{"nul\x00", false},
		{"star*", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateChannel(tc.name)
			if (err == nil) != tc.ok {
				t.Fatalf("ValidateChannel(%q) = %v, want ok=%v", tc.name, err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidChannel) {
				t.Fatalf("error %v is not ErrInvalidChannel", err)
			}
		})
	}
}

func TestDecodeClientFrames(t *testing.T) {
	for _, f := range []Format{FormatJSON, FormatMsgpack} {
		t.Run(f.String(), func(t *testing.T) {
			in := []Frame{
				{Type: FrameAttach, Ref: 1, Channel: "odds:1"},
				{Type: FrameAttach, Ref: 2, Channel: "odds:2", Options: AttachOptions{PublishOnly: true}},
				{Type: FrameAttach, Ref: 5, Channel: "odds:2", Options: AttachOptions{Resume: "1.k2x7q9aa-2s_m3ddq01b-a"}},
				{Type: FrameAttach, Ref: 6, Channel: "odds:2", Options: AttachOptions{Rewind: 50}},
				{Type: FrameAttach, Ref: 7, Channel: "odds:2", Options: AttachOptions{RewindFor: 90 * time.Second}},
				{Type: FrameDetach, Ref: 3, Channel: "odds:1"},
				{Type: FramePublish, Ref: 4, Channel: "odds:1", Msg: Message{Channel: "odds:1", ID: "p-1", Name: "price", Data: []byte(`{"market":"1x2","prices":[1.95,3.4,4.1],"n":-7,"big":18446744073709551615,"s":"é\"","ok":true,"z":null}`)}},
				{Type: FrameHeartbeat},
			}
			for _, want := range in {
				b, err := f.Encode(&want)
				if err != nil {
					t.Fatalf("encode %v: %v", want.Type, err)
				}
				got, err := f.Decode(b)
				if err != nil {
					t.Fatalf("decode %v: %v", want.Type, err)
				}
				if got.Type != want.Type || got.Ref != want.Ref || got.Channel != want.Channel || got.Options != want.Options ||
					got.Msg.ID != want.Msg.ID || got.Msg.Name != want.Msg.Name {
					t.Fatalf("round trip: got %+v, want %+v", got, want)
				}
				if want.Msg.Data != nil && !jsonEqual(t, got.Msg.Data, want.Msg.Data) {
					t.Fatalf("data round trip: got %s, want %s", got.Msg.Data, want.Msg.Data)
				}
			}
		})
	}
}

func TestEncodeServerFrames(t *testing.T) {
	m := Message{Channel: "c", ID: "e1.7", Name: "price", Data: []byte(`{"p":1.5}`), Time: 1700000000123}
	b, err := FormatJSON.EncodeMessage(&m)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"type":"message","channel":"c","id":"e1.7","name":"price","data":{"p":1.5},"time":1700000000123}`
	if string(b) != want {
		t.Fatalf("json message frame\n got %s\nwant %s", b, want)
	}
	for _, f := range []Format{FormatJSON, FormatMsgpack} {
		for _, fr := range []Frame{
			{Type: FrameMessage, Channel: "c", Msg: m},
			{Type: FrameNack, Ref: 9, Channel: "c", Err: Errorf(CodeBackboneUnavailable, "down")},
			{Type: FrameDisconnect, Err: Errorf(CodeGoingAway, "draining"), Reconnect: true},
		} {
			b, err := f.Encode(&fr)
			if err != nil {
				t.Fatal(err)
			}
			got, err := f.Decode(b)
			if err != nil {
				t.Fatalf("%v %v: %v", f, fr.Type, err)
			}
			if got.Type != fr.Type || got.Reconnect != fr.Reconnect || (fr.Err != nil && *got.Err != *fr.Err) ||
				got.Msg.Time != fr.Msg.Time || got.Msg.ID != fr.Msg.ID {
				t.Fatalf("%v: got %+v want %+v", f, got, fr)
			}
		}
	}
}

// TestRetryAfterWire: an error's RetryAfter travels as retry_after, whole
// milliseconds rounded up, in both formats; a negative value reads as
// none and a huge one as MaxRetryAfter.
func TestRetryAfterWire(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		ms   int64
		back time.Duration
	}{
		{0, 0, 0},
		{time.Nanosecond, 1, time.Millisecond},
		{1500 * time.Microsecond, 2, 2 * time.Millisecond},
		{time.Second, 1000, time.Second},
		{48 * time.Hour, MaxRetryAfter.Milliseconds(), MaxRetryAfter},
	} {
		e := &Error{Code: CodeRateLimited, Message: "slow down", RetryAfter: tc.d}
		if got := e.RetryAfterMillis(); got != tc.ms {
			t.Errorf("RetryAfterMillis(%v) = %d, want %d", tc.d, got, tc.ms)
		}
		for _, f := range []Format{FormatJSON, FormatMsgpack} {
			b, err := f.Encode(&Frame{Type: FrameNack, Ref: 1, Channel: "c", Msg: Message{ID: "m"}, Err: e})
			if err != nil {
				t.Fatal(err)
			}
			if f == FormatJSON && (tc.ms == 0) == strings.Contains(string(b), `"retry_after"`) {
				t.Errorf("%v: %s: retry_after present iff not zero", tc.d, b)
			}
			got, err := f.Decode(b)
			if err != nil {
				t.Fatalf("%v: %v", f, err)
			}
			if got.Err == nil || got.Err.RetryAfter != tc.back || got.Err.Code != CodeRateLimited {
				t.Errorf("%v %v: decoded %+v, want RetryAfter %v", f, tc.d, got.Err, tc.back)
			}
		}
	}
	for in, want := range map[string]time.Duration{
		`{"type":"nack","ref":1,"code":4529,"message":"x","retry_after":-5}`:          0,
		`{"type":"nack","ref":1,"code":4529,"message":"x","retry_after":250}`:         250 * time.Millisecond,
		`{"type":"nack","ref":1,"code":4529,"message":"x","retry_after":9e15}`:        -1, // not an integer: refused
		`{"type":"nack","ref":1,"code":4529,"message":"x","retry_after":99999999999}`: MaxRetryAfter,
	} {
		got, err := FormatJSON.Decode([]byte(in))
		if want < 0 {
			if err == nil {
				t.Errorf("%s: decoded, want refused", in)
			}
			continue
		}
		if err != nil || got.Err == nil || got.Err.RetryAfter != want {
			t.Errorf("%s: %+v %v, want RetryAfter %v", in, got.Err, err, want)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    Format
		in   []byte
		code Code
	}{
		{"json garbage", FormatJSON, []byte(`{"type":`), CodeBadFrame},
		{"json array", FormatJSON, []byte(`[1,2]`), CodeBadFrame},
		{"json trailing", FormatJSON, []byte(`{"type":"heartbeat"} x`), CodeBadFrame},
		{"json no type", FormatJSON, []byte(`{"ref":1}`), CodeUnknownType},
		{"json unknown type", FormatJSON, []byte(`{"type":"subscribe"}`), CodeUnknownType},
		{"json ref string", FormatJSON, []byte(`{"type":"attach","ref":"x"}`), CodeBadRequest},
		{"json option type", FormatJSON, []byte(`{"type":"attach","channel":"c","options":{"publish_only":1}}`), CodeBadRequest},
		{"json delta not a string", FormatJSON, []byte(`{"type":"attach","channel":"c","options":{"delta":true}}`), CodeBadRequest},
		{"json delta unknown format", FormatJSON, []byte(`{"type":"attach","channel":"c","options":{"delta":"fossil"}}`), CodeUnsupportedOption},
		{"json conflate too short", FormatJSON, []byte(`{"type":"attach","channel":"c","options":{"conflate":"10ms"}}`), CodeBadRequest},
		{"json conflate too long", FormatJSON, []byte(`{"type":"attach","channel":"c","options":{"conflate":"2m"}}`), CodeBadRequest},
		{"json conflate number", FormatJSON, []byte(`{"type":"attach","channel":"c","options":{"conflate":1}}`), CodeBadRequest},
		{"json conflate_key alone", FormatJSON, []byte(`{"type":"attach","channel":"c","options":{"conflate_key":"market_id"}}`), CodeBadRequest},
		{"json conflate_key empty", FormatJSON, []byte(`{"type":"attach","channel":"c","options":{"conflate":"1s","conflate_key":""}}`), CodeBadRequest},
		{"json publish_only delta", FormatJSON, []byte(`{"type":"attach","channel":"c","options":{"publish_only":true,"delta":"vcdiff"}}`), CodeBadRequest},
		{"json rewind negative", FormatJSON, []byte(`{"type":"attach","channel":"c","options":{"rewind":-1}}`), CodeBadRequest},
		{"json rewind bad duration", FormatJSON, []byte(`{"type":"attach","channel":"c","options":{"rewind":"soon"}}`), CodeBadRequest},
		{"json resume bad token", FormatJSON, []byte(`{"type":"attach","channel":"c","options":{"resume":"xyz"}}`), CodeBadRequest},
		{"json resume and rewind", FormatJSON, []byte(`{"type":"attach","channel":"c","options":{"resume":"1.a-1","rewind":3}}`), CodeBadRequest},
		{"json unknown option", FormatJSON, []byte(`{"type":"attach","channel":"c","options":{"x":true}}`), CodeUnsupportedOption},
		{"msgpack empty", FormatMsgpack, nil, CodeBadFrame},
		{"msgpack not map", FormatMsgpack, []byte{0x92, 0x01, 0x02}, CodeBadFrame},
		{"msgpack truncated", FormatMsgpack, []byte{0x81, 0xa4, 't', 'y'}, CodeBadFrame},
		{"msgpack trailing", FormatMsgpack, append(mustEncode(t, FormatMsgpack, &Frame{Type: FrameHeartbeat}), 0xc0), CodeBadFrame},
		{"msgpack unknown type", FormatMsgpack, []byte{0x81, 0xa4, 't', 'y', 'p', 'e', 0xa1, 'x'}, CodeUnknownType},
		{"msgpack binary data", FormatMsgpack, []byte{0x82, 0xa4, 't', 'y', 'p', 'e', 0xa7, 'p', 'u', 'b', 'l', 'i', 's', 'h', 0xa4, 'd', 'a', 't', 'a', 0xc4, 0x01, 0x00}, CodeBadRequest},
		{"msgpack int map key", FormatMsgpack, []byte{0x82, 0xa4, 't', 'y', 'p', 'e', 0xa7, 'p', 'u', 'b', 'l', 'i', 's', 'h', 0xa4, 'd', 'a', 't', 'a', 0x81, 0x01, 0x02}, CodeBadRequest},
		{"msgpack NaN", FormatMsgpack, []byte{0x82, 0xa4, 't', 'y', 'p', 'e', 0xa7, 'p', 'u', 'b', 'l', 'i', 's', 'h', 0xa4, 'd', 'a', 't', 'a', 0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 1}, CodeBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.f.Decode(tc.in)
			if err == nil {
				t.Fatalf("Decode(%q) succeeded", tc.in)
			}
			if got := AsError(err).Code; got != tc.code {
				t.Fatalf("Decode(%q) code = %v (%v), want %v", tc.in, got, err, tc.code)
			}
		})
	}
}

func TestValidatePublish(t *testing.T) {
	ok := Message{Channel: "c", Data: []byte(`1`)}
	if err := ValidatePublish(&ok); err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]Message{
		"bad channel": {Channel: "a b", Data: []byte(`1`)},
		"no data":     {Channel: "c"},
		"long id":     {Channel: "c", ID: strings.Repeat("i", MaxIDLen+1), Data: []byte(`1`)},
		"long name":   {Channel: "c", Name: strings.Repeat("n", MaxNameLen+1), Data: []byte(`1`)},
		"bad data":    {Channel: "c", Data: []byte(`{`)},
	} {
		if err := ValidatePublish(&m); err == nil {
			t.Errorf("%s: ValidatePublish succeeded", name)
		}
	}
}

func TestEnvelope(t *testing.T) {
	m := Message{Channel: "odds:9", ID: "e.1", Name: "price", Data: []byte(`{"p":2}`), Time: 42, Origin: "k2x7q9aa", Seq: 7, Prev: 5}
	env := EncodeEnvelope(&m)
	if env.OrderingKey != m.Channel {
		t.Fatalf("ordering key %q", env.OrderingKey)
	}
	got, err := DecodeEnvelope(env.Data, env.Attributes)
	if err != nil {
		t.Fatal(err)
	}
	if got.Channel != m.Channel || got.ID != m.ID || got.Name != m.Name || got.Time != m.Time || !bytes.Equal(got.Data, m.Data) ||
		got.Origin != m.Origin || got.Seq != m.Seq || got.Prev != m.Prev {
		t.Fatalf("got %+v want %+v", got, m)
	}
	for name, attrs := range map[string]map[string]string{
		"no version":  {"ch": "c", "id": "x", "t": "1", "o": "a", "s": "1", "p": "0"},
		"bad channel": {"v": "1", "ch": "a b", "id": "x", "t": "1", "o": "a", "s": "1", "p": "0"},
		"no id":       {"v": "1", "ch": "c", "t": "1", "o": "a", "s": "1", "p": "0"},
		"bad time":    {"v": "1", "ch": "c", "id": "x", "t": "soon", "o": "a", "s": "1", "p": "0"},
		"no origin":   {"v": "1", "ch": "c", "id": "x", "t": "1", "s": "1", "p": "0"},
		"seq zero":    {"v": "1", "ch": "c", "id": "x", "t": "1", "o": "a", "s": "0", "p": "0"},
		"prev ahead":  {"v": "1", "ch": "c", "id": "x", "t": "1", "o": "a", "s": "3", "p": "3"},
	} {
		if _, err := DecodeEnvelope([]byte(`1`), attrs); err == nil {
			t.Errorf("%s: DecodeEnvelope succeeded", name)
		}
	}
	if _, err := DecodeEnvelope([]byte(`{`), env.Attributes); err == nil {
		t.Error("invalid JSON data accepted")
	}
}

func mustEncode(tb testing.TB, f Format, fr *Frame) []byte {
	tb.Helper()
	b, err := f.Encode(fr)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func jsonEqual(tb testing.TB, a, b []byte) bool {
	tb.Helper()
	na, err := jsonToMsgpack(a)
	if err != nil {
		tb.Fatal(err)
	}
	nb, err := jsonToMsgpack(b)
	if err != nil {
		tb.Fatal(err)
	}
	// Both sides went through the same decoder; compare their JSON forms.
	ja, _ := msgpackToJSON(na)
	jb, _ := msgpackToJSON(nb)
	return bytes.Equal(ja, jb)
}

func TestTokens(t *testing.T) {
	p := Position{Watermark: 1767225600000, Seqs: map[string]uint64{"k2x7q9aa": 71, "m3ddq01b": 1}}
	tok := p.Token()
	if tok != "2.mjuohs00_k2x7q9aa-1z_m3ddq01b-1" {
		t.Fatalf("token %q", tok)
	}
	back, err := ParseToken(tok)
	if err != nil || back.Watermark != p.Watermark || back.Seqs["k2x7q9aa"] != 71 || back.Seqs["m3ddq01b"] != 1 || len(back.Seqs) != 2 || back.Overflow {
		t.Fatalf("ParseToken(%q) = %+v, %v", tok, back, err)
	}
	if empty, err := ParseToken(Position{}.Token()); err != nil || len(empty.Seqs) != 0 || empty.Watermark != 0 {
		t.Fatalf("empty token: %+v %v", empty, err)
	}
	if w, err := ParseToken("2.z"); err != nil || w.Watermark != 35 || w.Seqs != nil {
		t.Fatalf("watermark only: %+v %v", w, err)
	}
	t.Run("version 1 tokens parse with watermark 0", func(t *testing.T) {
		v1, err := ParseToken("1.k2x7q9aa-1z_m3ddq01b-1")
		if err != nil || v1.Watermark != 0 || v1.Seqs["k2x7q9aa"] != 71 || len(v1.Seqs) != 2 {
			t.Fatalf("v1: %+v %v", v1, err)
		}
		if v1.Includes("other", 1, 1) {
			t.Fatal("a v1 token includes messages of origins it does not name")
		}
	})
	t.Run("overflow", func(t *testing.T) {
		many := Position{Watermark: 5, Seqs: map[string]uint64{}}
		for i := range MaxTokenOrigins + 1 {
			many.Seqs[fmt.Sprintf("o%d", i)] = 1
		}
		if tok := many.Token(); tok != "2.!" {
			t.Fatalf("%d origins: token %q", len(many.Seqs), tok)
		}
		delete(many.Seqs, "o0")
		if tok := many.Token(); tok == "2.!" || len(tok) > MaxTokenLen {
			t.Fatalf("%d origins: token %q", len(many.Seqs), tok)
		}
		long := Position{Seqs: map[string]uint64{}}
		for i := range 20 {
			long.Seqs[fmt.Sprintf("%032d", i)] = math.MaxUint64
		}
		if tok := long.Token(); tok != "2.!" {
			t.Fatalf("a token over %d bytes: %q", MaxTokenLen, tok)
		}
		if o, err := ParseToken("2.!"); err != nil || !o.Overflow {
			t.Fatalf("overflow token: %+v %v", o, err)
		}
	})
	t.Run("includes", func(t *testing.T) {
		p := Position{Watermark: 100, Seqs: map[string]uint64{"a": 5}}
		for _, c := range []struct {
			o    string
			seq  uint64
			time int64
			want bool
		}{{"a", 5, 1000, true}, {"a", 6, 1, false}, {"b", 9, 100, true}, {"b", 1, 101, false}} {
			if got := p.Includes(c.o, c.seq, c.time); got != c.want {
				t.Errorf("Includes(%s, %d, %d) = %v", c.o, c.seq, c.time, got)
			}
		}
	})
	for _, bad := range []string{"", "3.a-1", "2.", "2.-1", "2.1_a", "2.1_a-0", "2.1.a-1", "2.zzzzzzzzzzzzzz", "2.!x", "1.A-1", "1.a-0", "1.a-1_a-2", "1.a", "1.a-zzzzzzzzzzzzzzzzzz", "1." + strings.Repeat("a-1_", 200)} {
		if _, err := ParseToken(bad); err == nil {
			t.Errorf("ParseToken(%q) succeeded", bad)
		}
	}
}

func TestContinuityFrame(t *testing.T) {
	fr := Frame{Type: FrameContinuity, Channel: "odds:1", Continuity: ContinuityLost, Pos: "2.mjuohs00_k2x7q9aa-1z"}
	b := mustEncode(t, FormatJSON, &fr)
	if want := `{"type":"continuity","channel":"odds:1","pos":"2.mjuohs00_k2x7q9aa-1z","continuity":"lost"}`; string(b) != want {
		t.Fatalf("json continuity frame\n got %s\nwant %s", b, want)
	}
	for _, f := range []Format{FormatJSON, FormatMsgpack} {
		got, err := f.Decode(mustEncode(t, f, &fr))
		if err != nil || got.Type != FrameContinuity || got.Channel != fr.Channel || got.Continuity != ContinuityLost || got.Pos != fr.Pos {
			t.Fatalf("%v: %+v, %v", f, got, err)
		}
	}
}

func TestRefusalKeepsRef(t *testing.T) {
	for _, f := range []Format{FormatJSON, FormatMsgpack} {
		b := mustEncode(t, f, &Frame{Type: FrameAttach, Ref: 11, Channel: "c"})
		b = bytes.Replace(b, []byte("attach"), []byte("nonsen"), 1)
		fr, err := f.Decode(b)
		if AsError(err).Code != CodeUnknownType || fr.Ref != 11 {
			t.Errorf("%v: unknown type: ref %d, err %v", f, fr.Ref, err)
		}
	}
}

func TestMsgpackCompactInts(t *testing.T) {
	b := mustEncode(t, FormatMsgpack, &Frame{Type: FrameAck, Ref: 1, Msg: Message{ID: "x"}})
	// {"type":"ack","ref":1,"id":"x"}: 1 + 5+4 + 4+1 + 3+2 = 20 bytes with
	// a one-byte integer, 28 with the default nine.
	if len(b) != 20 {
		t.Fatalf("ack frame is %d bytes: %x", len(b), b)
	}
	data, err := jsonToMsgpack([]byte(`{"seq":7}`))
	if err != nil || len(data) != 6 {
		t.Fatalf("data {seq:7} is %x (%v)", data, err)
	}
}
