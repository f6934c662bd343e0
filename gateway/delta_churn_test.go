package gateway_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/feedgate/feedgate/codec/vcdiff"
	"github.com/feedgate/feedgate/gateway"
	"github.com/feedgate/feedgate/internal/edgetest"
)

// deltaChecker follows one JSON subscriber's stream on a channel and checks
// every delta against the base it holds (protocol.md §6.1: "A delta's base
// is always the last message the subscriber got on the channel").
type deltaChecker struct {
	t        *testing.T
	payloads *sync.Map // id -> published compact JSON
	mu       sync.Mutex
	heldID   string
	held     []byte
	msgs     int
	deltas   int
	problems []string
	lastPos  string
	attached int
}

func (s *deltaChecker) frame(b []byte) {
	var f struct {
		Type    string          `json:"type"`
		ID      string          `json:"id"`
		Data    json.RawMessage `json:"data"`
		Delta   []byte          `json:"delta"`
		Base    string          `json:"base"`
		BaseCRC uint32          `json:"base_crc"`
		Pos     string          `json:"pos"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		s.fail("frame %q: %v", b, err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch f.Type {
	case "attached":
		s.attached++
		s.heldID, s.held = "", nil
	case "detached", "continuity":
		s.heldID, s.held = "", nil
	case "message":
		s.msgs++
		want, _ := s.payloads.Load(f.ID)
		var got []byte
		if f.Delta != nil {
			s.deltas++
			if f.Base != s.heldID {
				s.failLocked("delta for %s has base %q, but the subscriber holds %q", f.ID, f.Base, s.heldID)
				s.heldID, s.held = "", nil
				return
			}
			if crc32.ChecksumIEEE(s.held) != f.BaseCRC {
				s.failLocked("delta for %s: base_crc %d does not match the held %s", f.ID, f.BaseCRC, s.heldID)
				return
			}
			d, err := vcdiff.Decode(s.held, f.Delta, 1<<16)
			if err != nil {
				s.failLocked("delta for %s: %v", f.ID, err)
				return
			}
			got = d
		} else {
			got = []byte(f.Data)
		}
		if want != nil && !bytes.Equal(got, want.([]byte)) {
			s.failLocked("message %s: payload %s, published %s", f.ID, got, want)
		}
		s.heldID, s.held = f.ID, got
		s.lastPos = f.Pos
	}
}

func (s *deltaChecker) fail(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failLocked(format, args...)
}

func (s *deltaChecker) failLocked(format string, args ...any) {
	if len(s.problems) < 10 {
		s.problems = append(s.problems, fmt.Sprintf(format, args...))
	}
}

// TestDeltaBaseHoldsUnderOptionChurn: one publisher bursts odds markets on
// a channel (small price changes, so deltas pay) while a subscriber keeps
// re-attaching with random combinations of delta, conflate (+key), rewind
// and resume, and sometimes detaches. Every delta must name, and apply to,
// the message the subscriber last got on the channel. (From a fault probe,
// where it held; kept as a regression test.)
func TestDeltaBaseHoldsUnderOptionChurn(t *testing.T) { deltaChurn(t, false) }

// TestDeltaBaseHoldsForConflatedSlowReader: the same with a small send queue,
// conflation on every attach, and a reader that stalls now and then, so
// that held messages wait for room (offer fails) and windows flush late.
func TestDeltaBaseHoldsForConflatedSlowReader(t *testing.T) { deltaChurn(t, true) }

func deltaChurn(t *testing.T, slow bool) {
	cfg := gateway.Config{Authorizer: mustStatic(t, keyA), HistorySize: 30}
	if slow {
		cfg.SendQueueBytes = 6 << 10
	}
	e := edgetest.MustStartEdge(t, cfg, nil)
	var payloads sync.Map
	const channel = "odds:churn"
	rng := rand.New(rand.NewPCG(1, 2))
	var pubMu sync.Mutex
	seq := 0
	publish := func(n int) {
		pubMu.Lock()
		defer pubMu.Unlock()
		var b strings.Builder
		b.WriteString(`{"messages":[`)
		for i := range n {
			seq++
			if i > 0 {
				b.WriteByte(',')
			}
			market := fmt.Sprintf("m%d", seq%3)
			data := fmt.Sprintf(`{"market":%q,"v":%d,"sel":[{"id":"s1","p":"1.%02d"},{"id":"s2","p":"3.40"},{"id":"s3","p":"4.%02d"}],"pad":%q}`,
				market, seq, seq%97, (seq*7)%97, strings.Repeat("abcdefgh", 20))
			id := fmt.Sprintf("u%d", seq)
			payloads.Store(id, []byte(data))
			fmt.Fprintf(&b, `{"id":%q,"data":%s}`, id, data)
		}
		b.WriteString(`]}`)
		req, _ := http.NewRequest("POST", e.API+"/v1/channels/"+channel+"/messages", strings.NewReader(b.String()))
		req.Header.Set("Authorization", "Bearer "+keyA)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return
		}
		resp.Body.Close()
	}
	sub := &deltaChecker{t: t, payloads: &payloads}
	ws := edgetest.MustDialRaw(t, e.URL)
	readerDone := make(chan struct{})
	rng2 := rand.New(rand.NewPCG(5, 6))
	go func() {
		defer close(readerDone)
		for {
			_, b, err := ws.ReadMessage()
			if err != nil {
				return
			}
			sub.frame(b)
			if slow && rng2.IntN(20) == 0 {
				time.Sleep(time.Duration(rng2.IntN(200)) * time.Millisecond) // a stalled reader
			}
		}
	}()
	send := func(v any) {
		if err := ws.WriteJSON(v); err != nil {
			t.Fatal(err)
		}
	}
	send(map[string]any{"type": "attach", "ref": 1, "channel": channel, "options": map[string]any{"delta": "vcdiff"}})
	stop := make(chan struct{})
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			publish(1 + rng.IntN(5))
			time.Sleep(2 * time.Millisecond) // pacing of the feed, not a wait for a condition
		}
	}()
	orng := rand.New(rand.NewPCG(3, 4))
	deadline := time.Now().Add(4 * time.Second)
	for ref := 2; time.Now().Before(deadline); ref++ {
		opts := map[string]any{"delta": "vcdiff"}
		switch orng.IntN(6) {
		case 0:
			opts["rewind"] = 1 + orng.IntN(40)
		case 1:
			sub.mu.Lock()
			p := sub.lastPos
			sub.mu.Unlock()
			if p != "" {
				opts["resume"] = p
			}
		case 2:
			opts["conflate"] = "100ms"
		case 3:
			opts["conflate"] = "100ms"
			opts["conflate_key"] = "market"
		case 4:
			opts["conflate"] = "100ms"
			opts["rewind"] = 1 + orng.IntN(40)
		case 5:
			send(map[string]any{"type": "detach", "ref": ref, "channel": channel})
		}
		if slow {
			opts["conflate"] = "100ms"
			delete(opts, "resume")
		}
		send(map[string]any{"type": "attach", "ref": ref, "channel": channel, "options": opts})
		time.Sleep(time.Duration(20+orng.IntN(150)) * time.Millisecond) // let the stream run between re-attaches
	}
	close(stop)
	<-pubDone
	_ = ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""))
	select {
	case <-readerDone:
	case <-time.After(10 * time.Second):
		t.Fatal("reader did not end")
	}
	sub.mu.Lock()
	defer sub.mu.Unlock()
	t.Logf("%d messages, %d deltas, %d attached", sub.msgs, sub.deltas, sub.attached)
	if sub.deltas == 0 {
		t.Fatal("no delta at all: the test did not exercise deltas")
	}
	for _, p := range sub.problems {
		t.Error(p)
	}
}
