package gateway_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/feedgate/feedgate/codec"
	"github.com/feedgate/feedgate/gateway"
	"github.com/feedgate/feedgate/internal/edgetest"
)

// TestInvalidUTF8TextCloses1007: a text message that is not UTF-8 fails the
// connection with close code 1007 (RFC 6455 §7.4.1, §8.1).
func TestInvalidUTF8TextCloses1007(t *testing.T) {
	e := edgetest.MustStartEdge(t, gateway.Config{}, nil)
	for _, format := range []string{"json", "msgpack"} {
		t.Run(format, func(t *testing.T) {
			ws, _, err := websocket.DefaultDialer.DialContext(edgetest.Ctx10(t), e.URL+"/v1/ws?format="+format, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ws.Close()
			if err := ws.WriteMessage(websocket.TextMessage, []byte("{\"type\":\"heartbeat\",\"x\":\"\xff\xfe\"}")); err != nil {
				t.Fatal(err)
			}
			_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
			for {
				_, b, err := ws.ReadMessage()
				if err == nil {
					t.Logf("frame before the close: %q", b)
					continue
				}
				var ce *websocket.CloseError
				if !asCloseError(err, &ce) || ce.Code != websocket.CloseInvalidFramePayloadData || ce.Text == "" {
					t.Fatalf("got %v, want close 1007 with a reason", err)
				}
				return
			}
		})
	}
}

func asCloseError(err error, ce **websocket.CloseError) bool {
	c, ok := err.(*websocket.CloseError)
	*ce = c
	return ok
}

// TestLongChannelOverHTTP: an over-long channel name in the URL gets the
// protocol's JSON invalid_channel error, not a plain-text refusal of the
// HTTP server; one too long for the server to read gets a JSON 431.
func TestLongChannelOverHTTP(t *testing.T) {
	e := edgetest.MustStartEdge(t, gateway.Config{}, nil)
	for _, n := range []int{129, 3000, 10 << 10} {
		status, code := 400, codec.CodeInvalidChannel
		if n > 4096 {
			status, code = 431, codec.CodeBadRequest
		}
		ch := strings.Repeat("c", n)
		for _, tc := range []struct{ method, path string }{
			{"POST", "/messages"},
			{"GET", "/history"},
		} {
			// The edge answers a head it cannot read and closes the
			// connection without reading the rest, so the client may see
			// a reset instead of the answer: try a few times.
			var resp *http.Response
			var err error
			for try := 0; try < 10; try++ {
				req, _ := http.NewRequestWithContext(edgetest.Ctx10(t), tc.method, e.API+"/v1/channels/"+ch+tc.path, strings.NewReader(`{"data":1}`))
				if resp, err = http.DefaultClient.Do(req); err == nil || n <= 4096 {
					break
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			var body struct {
				Error struct {
					Code int    `json:"code"`
					Name string `json:"name"`
				} `json:"error"`
			}
			derr := json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode != status || derr != nil || body.Error.Code != int(code) {
				t.Errorf("%s %d-byte channel: status %d, %s, body %+v (%v)", tc.method, n, resp.StatusCode, resp.Header.Get("Content-Type"), body, derr)
			}
		}
	}
}

// TestDeepPublishNacked: a publish nested deeper than encoding/json reads
// is answered with a nack carrying its ref, so the publisher does not wait.
func TestDeepPublishNacked(t *testing.T) {
	e := edgetest.MustStartEdge(t, gateway.Config{}, nil)
	ws, _, err := websocket.DefaultDialer.DialContext(edgetest.Ctx10(t), e.URL+"/v1/ws?format=json", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	deep := strings.Repeat("[", 10001) + strings.Repeat("]", 10001)
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"publish","ref":7,"channel":"c","data":`+deep+`}`)); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, b, err := ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		fr, err := codec.FormatJSON.Decode(b)
		if err != nil || fr.Type == codec.FrameHeartbeat {
			continue
		}
		if fr.Type != codec.FrameNack || fr.Ref != 7 || fr.Channel != "c" || fr.Err == nil || fr.Err.Code != codec.CodeBadRequest {
			t.Fatalf("got %s", b)
		}
		return
	}
}

// TestRefusalsDoNotEchoInput: refusals built by the gateway from client
// data repeat at most a short prefix of it.
func TestRefusalsDoNotEchoInput(t *testing.T) {
	e := edgetest.MustStartEdge(t, gateway.Config{}, nil)
	long := strings.Repeat("9", 60000)
	t.Run("http body", func(t *testing.T) {
		status, body := httpPublish(t, e.API+"/v1/channels/c/messages", "", `{"data":1,"id":`+long+`}`)
		if status != 400 || len(body) > 300 {
			t.Errorf("status %d, %d-byte body: %.120s…", status, len(body), body)
		}
	})
	t.Run("detach", func(t *testing.T) {
		ws, _, err := websocket.DefaultDialer.DialContext(edgetest.Ctx10(t), e.URL+"/v1/ws?format=json", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"detach","ref":3,"channel":"`+strings.Repeat("c", 30000)+`"}`)); err != nil {
			t.Fatal(err)
		}
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			_, b, err := ws.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			fr, err := codec.FormatJSON.Decode(b)
			if err != nil || fr.Type != codec.FrameError {
				continue
			}
			if fr.Ref != 3 || fr.Err.Code != codec.CodeNotAttached || len(fr.Err.Message) > 200 {
				t.Fatalf("ref %d, code %v, %d-byte message", fr.Ref, fr.Err.Code, len(fr.Err.Message))
			}
			return
		}
	})
}
