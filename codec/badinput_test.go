package codec

import (
	"strings"
	"testing"
)

// TestDeepFrameKeepsRef: a JSON frame nested deeper than encoding/json
// reads is refused with its ref and channel, so the publisher gets a nack.
func TestDeepFrameKeepsRef(t *testing.T) {
	deep := strings.Repeat("[", 10001) + strings.Repeat("]", 10001)
	for name, b := range map[string]string{
		"envelope first": `{"type":"publish","ref":7,"channel":"c","data":` + deep + `}`,
		"envelope after": `{"data":` + deep + `,"type":"publish","ref":7,"channel":"c"}`,
		"other field":    `{"type":"publish","x":{"y":` + deep + `},"ref":7,"channel":"c","data":1}`,
	} {
		t.Run(name, func(t *testing.T) {
			fr, err := FormatJSON.Decode([]byte(b))
			if err == nil {
				t.Fatal("deep frame accepted")
			}
			if fr.Type != FramePublish || fr.Ref != 7 || fr.Channel != "c" {
				t.Errorf("refusal lost the envelope: %+v, %v", fr, err)
			}
			if c := AsError(err).Code; c != CodeBadRequest {
				t.Errorf("code %v, want bad_request", c)
			}
		})
	}
}

// TestDeepNonObject: a deep frame that is not an object is bad_frame, as
// any non-object frame.
func TestDeepNonObject(t *testing.T) {
	_, err := FormatJSON.Decode([]byte(strings.Repeat("[", 10001) + strings.Repeat("]", 10001)))
	if AsError(err).Code != CodeBadFrame {
		t.Errorf("got %v, want bad_frame", err)
	}
}

// TestErrorMessagesBounded: a refusal never echoes unbounded client input.
func TestErrorMessagesBounded(t *testing.T) {
	long := strings.Repeat("9", 60000)
	key := strings.Repeat("k", 60000)
	for name, b := range map[string]string{
		"number":         `{"type":"publish","ref":1,"channel":"c","data":` + long + `e999999}`,
		"unknown option": `{"type":"attach","ref":1,"channel":"c","options":{"` + key + `":1}}`,
		"malformed":      `{"type":"attach","ref":1,"` + key + `"`,
	} {
		t.Run(name, func(t *testing.T) {
			fr, err := FormatJSON.Decode([]byte(b))
			if err == nil {
				m := fr.Msg
				err = ValidatePublish(&m)
			}
			if err == nil {
				_, err = jsonToMsgpack([]byte(long + "e999999"))
			}
			if err == nil {
				t.Fatal("accepted")
			}
			if n := len(AsError(err).Message); n > 200 {
				t.Errorf("message is %d bytes: %.100s…", n, AsError(err).Message)
			}
		})
	}
	if _, err := ParseFormat(key); err == nil || len(AsError(err).Message) > 200 {
		t.Errorf("unknown format: %d bytes", len(AsError(err).Message))
	}
}

// TestMissingTypeKeepsRef pins what docs/protocol.md §3 says: a frame
// without type is refused with unknown_type and keeps its ref and channel.
func TestMissingTypeKeepsRef(t *testing.T) {
	fr, err := FormatJSON.Decode([]byte(`{"ref":5,"channel":"c","data":1}`))
	if AsError(err).Code != CodeUnknownType || fr.Ref != 5 || fr.Channel != "c" || fr.Type != FrameInvalid {
		t.Errorf("%+v, %v", fr, err)
	}
}
