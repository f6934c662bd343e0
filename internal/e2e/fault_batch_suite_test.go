package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/feedgate/feedgate/client"
	"github.com/feedgate/feedgate/codec"
	"github.com/feedgate/feedgate/internal/edgetest"
	"github.com/feedgate/feedgate/internal/pubsubtest"
)

// faultFigures is the line every fault-suite scenario prints: what was
// published, what subscribers got, and every way the promise can break.
// lost counts messages missing without a signal; signalled_lost those a
// subscriber was told it lost; spurious_lost signals with nothing missing.
type faultFigures struct {
	published, delivered, lost, duplicated, reordered, spuriousLost, signalledLost int
}

func (f faultFigures) check(t *testing.T, name, extra string) {
	t.Helper()
	t.Logf("FAULT %s: published=%d delivered=%d lost=%d duplicated=%d reordered=%d spurious_lost=%d signalled_lost=%d %s",
		name, f.published, f.delivered, f.lost, f.duplicated, f.reordered, f.spuriousLost, f.signalledLost, extra)
	if f.lost != 0 || f.duplicated != 0 || f.reordered != 0 {
		t.Errorf("%s: %d lost unsignalled, %d duplicated, %d reordered: all must be 0", name, f.lost, f.duplicated, f.reordered)
	}
}

// orderCheck follows one subscriber's stream of {"seq":n} payloads on one
// channel, where the publisher's sequence is 0, 1, 2, ...
type orderCheck struct {
	next                     int
	delivered, dups, reorder int
}

func (o *orderCheck) add(t *testing.T, data []byte) {
	var p struct{ Seq int }
	if err := json.Unmarshal(data, &p); err != nil {
		t.Fatalf("payload %s: %v", data, err)
	}
	o.delivered++
	switch {
	case p.Seq == o.next:
		o.next++
	case p.Seq < o.next:
		o.dups++
	default:
		o.reorder++
		o.next = p.Seq + 1
	}
}

type batchResult struct {
	Results []struct {
		ID    string `json:"id"`
		Error *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	} `json:"results"`
}

// postBatch publishes seqs [from, to) in one HTTP request, each with the
// id "m<seq>", and returns the HTTP status and how many were accepted. The
// accepted ones must be a prefix: none accepted after a refused one.
func postBatch(t *testing.T, api, channel string, from, to int) (status, accepted int) {
	t.Helper()
	var b bytes.Buffer
	b.WriteString(`{"messages":[`)
	for s := from; s < to; s++ {
		if s > from {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":"m%d","data":{"seq":%d}}`, s, s)
	}
	b.WriteString(`]}`)
	resp, err := http.Post(api+"/v1/channels/"+channel+"/messages", "application/json", &b)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r batchResult
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("batch answer: %v", err)
	}
	if resp.StatusCode == http.StatusRequestEntityTooLarge {
		return resp.StatusCode, 0
	}
	if len(r.Results) != to-from {
		t.Fatalf("batch answer has %d results for %d messages", len(r.Results), to-from)
	}
	refused := false
	firstRefusal := ""
	for i, res := range r.Results {
		switch {
		case res.Error == nil && refused:
			t.Fatalf("batch [%d,%d): message %d accepted after an earlier one was refused (%s): a hole", from, to, from+i, firstRefusal)
		case res.Error == nil:
			accepted++
		case !refused:
			refused = true
			firstRefusal = fmt.Sprintf("message %d: %d %s", from+i, res.Error.Code, res.Error.Message)
		}
	}
	return resp.StatusCode, accepted
}

// TestFaultBatchOrder (issue 7, item 1): large HTTP batches against an edge
// whose in-flight limit they exceed, and a batch that meets a backbone cut.
// Each answer accepts a prefix; retrying from the first refused message, as
// the protocol says, every subscriber on both edges receives every message
// once, in order. A batch over the cap is refused whole.
func TestFaultBatchOrder(t *testing.T) {
	srv := bestServer(t)
	proxy := pubsubtest.MustStartProxy(t, srv.Addr)
	proxied := srv
	proxied.Addr = proxy.Addr
	cfgA := relayConfig(proxied, "batch-a", "batch")
	cfgA.MaxPendingPublishes = 50
	a := mustStartRelayEdge(t, cfgA)
	b := mustStartRelayEdge(t, relayConfig(srv, "batch-b", "batch"))
	const ch, total = "batch:1", 2000
	var subs []*client.Client
	for _, u := range []string{a.URL, b.URL} {
		for _, f := range []codec.Format{codec.FormatJSON, codec.FormatMsgpack} {
			c := edgetest.MustDial(t, u, client.Options{Format: f, Buffer: total + 100})
			edgetest.MustAttach(t, c, ch, codec.AttachOptions{})
			subs = append(subs, c)
		}
	}

	if st, _ := postBatch(t, a.API, ch, 0, 1001); st != http.StatusRequestEntityTooLarge {
		t.Fatalf("a batch of 1001 answered %d, want 413", st)
	}

	// Publish 0..total in batches of 1000, retrying from the first refused
	// message; the backbone path is cut for a moment in the middle.
	rounds, refusedRounds := 0, 0
	cut := false
	for next := 0; next < total; {
		if next >= total/2 && !cut {
			cut = true
			proxy.Down()
			time.AfterFunc(time.Second, proxy.Up)
		}
		st, n := postBatch(t, a.API, ch, next, min(next+1000, total))
		rounds++
		if st != http.StatusOK {
			refusedRounds++
		}
		next += n
		if rounds > 2000 {
			t.Fatalf("no progress: %d of %d accepted after %d requests", next, total, rounds)
		}
	}
	f := faultFigures{published: total}
	for i, c := range subs {
		var o orderCheck
		deadline := time.After(60 * time.Second)
		for o.next < total && o.delivered < 2*total {
			select {
			case m := <-c.Messages():
				o.add(t, m.Data)
			case <-deadline:
				t.Fatalf("subscriber %d: %d of %d messages within 60s", i, o.next, total)
			}
		}
		f.delivered += o.delivered
		f.duplicated += o.dups
		f.reordered += o.reorder
		f.lost += total - (o.delivered - o.dups)
	}
	// Nothing beyond: a late duplicate would come with the marker's
	// predecessors, and the marker is published after everything above.
	for _, c := range subs[:1] {
		if st, n := postBatch(t, a.API, ch, total, total+1); st != http.StatusOK || n != 1 {
			t.Fatalf("marker: status %d", st)
		}
		m := edgetest.NextMessage(t, c)
		if !strings.Contains(string(m.Data), fmt.Sprintf(`"seq":%d`, total)) {
			t.Errorf("after the stream: got %s, want the marker", m.Data)
		}
	}
	f.check(t, "batch-order", fmt.Sprintf("requests=%d refused_answers=%d subscribers=%d", rounds, refusedRounds, len(subs)))
}
