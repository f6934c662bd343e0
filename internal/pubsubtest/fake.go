package pubsubtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// Fake controls an out-of-process pstest server (internal/cmd/pstestd)
// over its loopback HTTP control port. Call its methods from the goroutine
// of tb's test: they fail tb on a control error.
type Fake struct {
	base string // http://127.0.0.1:port
}

// SetClockOffset makes pstest's clock run d ahead of the real one: ack
// deadlines lapse and retention ends as if d had passed.
func (f *Fake) SetClockOffset(tb testing.TB, d time.Duration) {
	tb.Helper()
	f.post(tb, "/clock", url.Values{"offset": {d.String()}})
}

// DropAcks makes pstest lose the acks and ack-deadline changes sent for
// subscriptions whose name contains match (none when match is ""): the
// subscriber believes it acked, the server never hears of it, and the
// messages are redelivered once their ack deadline lapses. That is what a
// lost ack or a network blip does to a real subscription.
func (f *Fake) DropAcks(tb testing.TB, match string) {
	tb.Helper()
	f.post(tb, "/drop-acks", url.Values{"match": {match}})
}

// Dropped is what DropAcks has lost so far.
type Dropped struct {
	Acks    int64 `json:"acks_dropped"`    // ack IDs
	Modacks int64 `json:"modacks_dropped"` // ack-deadline changes
}

// Dropped returns what DropAcks has lost so far.
func (f *Fake) Dropped(tb testing.TB) Dropped {
	tb.Helper()
	resp, err := http.Get(f.base + "/state")
	if err != nil {
		tb.Fatalf("pstestd state: %v", err)
	}
	defer resp.Body.Close()
	var d Dropped
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		tb.Fatalf("pstestd state: %v", err)
	}
	return d
}

func (f *Fake) post(tb testing.TB, path string, q url.Values) {
	tb.Helper()
	resp, err := http.Post(f.base+path+"?"+q.Encode(), "", nil)
	if err != nil {
		tb.Fatalf("pstestd %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		tb.Fatalf("pstestd %s: %s", path, fmt.Sprint(resp.Status, " ", string(b)))
	}
}
