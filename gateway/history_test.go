package gateway_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/feedgate/feedgate/client"
	"github.com/feedgate/feedgate/codec"
	"github.com/feedgate/feedgate/gateway"
	"github.com/feedgate/feedgate/internal/edgetest"
)

func publishN(tb testing.TB, c *client.Client, ch string, from, to int) {
	tb.Helper()
	for i := from; i <= to; i++ {
		if _, err := c.Publish(edgetest.Ctx10(tb), ch, fmt.Appendf(nil, `{"n":%d}`, i), client.PublishOptions{}); err != nil {
			tb.Fatal(err)
		}
	}
}

func expectN(tb testing.TB, c *client.Client, from, to int) client.Message {
	tb.Helper()
	var m client.Message
	for i := from; i <= to; i++ {
		m = edgetest.NextMessage(tb, c)
		if want := fmt.Sprintf(`{"n":%d}`, i); string(m.Data) != want {
			tb.Fatalf("got %s, want %s", m.Data, want)
		}
	}
	return m
}

// expectNothing checks that nothing more was sent to c: an attach reply
// keeps its place behind every frame queued before it, and the client
// files frames in order, so whatever was sent earlier is in Messages() by
// the time the barrier attach returns.
func expectNothing(tb testing.TB, c *client.Client) {
	tb.Helper()
	edgetest.MustAttach(tb, c, "barrier", codec.AttachOptions{PublishOnly: true})
	select {
	case m := <-c.Messages():
		tb.Fatalf("unexpected message %s %s", m.Channel, m.Data)
	default:
	}
}

func TestRewind(t *testing.T) {
	e := edgetest.MustStartEdge(t, gateway.Config{}, nil)
	pub := edgetest.MustDial(t, e.URL, client.Options{})
	edgetest.MustAttach(t, pub, "r", codec.AttachOptions{PublishOnly: true})
	publishN(t, pub, "r", 1, 5)

	for _, f := range []codec.Format{codec.FormatJSON, codec.FormatMsgpack} {
		c := edgetest.MustDial(t, e.URL, client.Options{Format: f})
		edgetest.MustAttach(t, c, "r", codec.AttachOptions{Rewind: 3})
		expectN(t, c, 3, 5)
		d := edgetest.MustDial(t, e.URL, client.Options{Format: f})
		edgetest.MustAttach(t, d, "r", codec.AttachOptions{RewindFor: time.Minute})
		expectN(t, d, 1, 5)
	}
	c := edgetest.MustDial(t, e.URL, client.Options{})
	edgetest.MustAttach(t, c, "r", codec.AttachOptions{Rewind: 100})
	expectN(t, c, 1, 5)
	publishN(t, pub, "r", 6, 6)
	expectN(t, c, 6, 6)
	expectNothing(t, c)
}

func TestResume(t *testing.T) {
	e := edgetest.MustStartEdge(t, gateway.Config{HistorySize: 10}, nil)
	pub := edgetest.MustDial(t, e.URL, client.Options{})
	edgetest.MustAttach(t, pub, "x", codec.AttachOptions{PublishOnly: true})

	c := edgetest.MustDial(t, e.URL, client.Options{})
	at, err := c.AttachInfo(edgetest.Ctx10(t), "x", codec.AttachOptions{})
	if err != nil || at.Continuity != codec.ContinuityFresh || at.Pos == "" {
		t.Fatalf("fresh attach: %+v %v", at, err)
	}
	publishN(t, pub, "x", 1, 5)
	last := expectN(t, c, 1, 5)
	c.Close()

	t.Run("resumed", func(t *testing.T) {
		publishN(t, pub, "x", 6, 8)
		d := edgetest.MustDial(t, e.URL, client.Options{Format: codec.FormatMsgpack})
		at, err := d.AttachInfo(edgetest.Ctx10(t), "x", codec.AttachOptions{Resume: last.Pos})
		if err != nil || at.Continuity != codec.ContinuityResumed {
			t.Fatalf("resume: %+v %v", at, err)
		}
		expectN(t, d, 6, 8)
		publishN(t, pub, "x", 9, 9)
		expectN(t, d, 9, 9)
		expectNothing(t, d)
	})
	t.Run("nothing missed", func(t *testing.T) {
		d := edgetest.MustDial(t, e.URL, client.Options{})
		// The attached pos of a fresh attach is a valid resume point too.
		at, err := d.AttachInfo(edgetest.Ctx10(t), "x", codec.AttachOptions{})
		if err != nil {
			t.Fatal(err)
		}
		d2 := edgetest.MustDial(t, e.URL, client.Options{})
		at2, err := d2.AttachInfo(edgetest.Ctx10(t), "x", codec.AttachOptions{Resume: at.Pos})
		if err != nil || at2.Continuity != codec.ContinuityResumed {
			t.Fatalf("resume at the head: %+v %v", at2, err)
		}
		expectNothing(t, d2)
	})
	t.Run("lost", func(t *testing.T) {
		// 12 more messages: the history of 10 no longer reaches back to last.
		publishN(t, pub, "x", 10, 21)
		d := edgetest.MustDial(t, e.URL, client.Options{})
		at, err := d.AttachInfo(edgetest.Ctx10(t), "x", codec.AttachOptions{Resume: last.Pos})
		if err != nil || at.Continuity != codec.ContinuityLost {
			t.Fatalf("resume beyond history: %+v %v", at, err)
		}
		expectNothing(t, d)
		publishN(t, pub, "x", 22, 22)
		expectN(t, d, 22, 22)
	})
	t.Run("unknown origin", func(t *testing.T) {
		d := edgetest.MustDial(t, e.URL, client.Options{})
		at, err := d.AttachInfo(edgetest.Ctx10(t), "x", codec.AttachOptions{Resume: "1.zzzzzzzz-5"})
		if err != nil || at.Continuity != codec.ContinuityLost {
			t.Fatalf("resume from another world: %+v %v", at, err)
		}
	})
}

func TestHistoryEndpoint(t *testing.T) {
	e := edgetest.MustStartEdge(t, gateway.Config{}, nil)
	pub := edgetest.MustDial(t, e.URL, client.Options{})
	edgetest.MustAttach(t, pub, "h", codec.AttachOptions{PublishOnly: true})
	publishN(t, pub, "h", 1, 7)
	type page struct {
		Messages []struct {
			ID, Pos, Cursor string
			Data            json.RawMessage
		}
		Next string
	}
	get := func(q string) (int, page) {
		resp, err := http.Get(e.API + "/v1/channels/h/history" + q)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var p page
		_ = json.NewDecoder(resp.Body).Decode(&p)
		return resp.StatusCode, p
	}
	var got []string
	q := "?limit=3"
	for pages := 0; pages < 10; pages++ {
		status, p := get(q)
		if status != 200 {
			t.Fatalf("status %d", status)
		}
		for _, m := range p.Messages {
			got = append(got, string(m.Data))
		}
		if p.Next == "" {
			break
		}
		q = "?limit=3&before=" + p.Next
	}
	want := []string{`{"n":7}`, `{"n":6}`, `{"n":5}`, `{"n":4}`, `{"n":3}`, `{"n":2}`, `{"n":1}`}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("history pages: %v, want %v", got, want)
	}
	for _, q := range []string{"?limit=0", "?limit=x", "?limit=1001", "?before=x", "?before=0"} {
		if status, _ := get(q); status != 400 {
			t.Errorf("%s: status %d, want 400", q, status)
		}
	}
	if status, p := get(""); status != 200 || len(p.Messages) != 7 || p.Messages[0].Pos == "" {
		t.Fatalf("default page: %d %+v", status, p)
	}
}

// TestNoMessageAfterDetached: while a publisher floods a channel, a
// subscriber attaches and detaches repeatedly; between detached and the
// next attached it never receives a message of the channel.
func TestNoMessageAfterDetached(t *testing.T) {
	e := edgetest.MustStartEdge(t, gateway.Config{}, nil)
	pub := edgetest.MustDial(t, e.URL, client.Options{})
	edgetest.MustAttach(t, pub, "flood", codec.AttachOptions{PublishOnly: true})
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := pub.Publish(edgetest.Ctx10(t), "flood", []byte(`1`), client.PublishOptions{}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	ws := edgetest.MustDialRaw(t, e.URL)
	attached := false
	for round := 0; round < 200; round++ {
		typ := "attach"
		if attached {
			typ = "detach"
		}
		if err := ws.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, `{"type":%q,"ref":%d,"channel":"flood"}`, typ, round+1)); err != nil {
			t.Fatal(err)
		}
		for {
			_, b, err := ws.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			var fr struct{ Type string }
			_ = json.Unmarshal(b, &fr)
			if fr.Type == "message" && !attached && typ == "attach" {
				t.Fatalf("round %d: a message arrived after detached, before attached: %s", round, b)
			}
			if fr.Type == "attached" || fr.Type == "detached" {
				attached = fr.Type == "attached"
				break
			}
		}
		// After detached, the next round's attach reads every frame up to
		// its attached on the same connection: a message of the channel
		// among them came after detached (the check above).
	}
	close(stop)
	<-done
}
