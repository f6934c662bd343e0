package e2e

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/feedgate/feedgate/client"
)

// tick is the payload the continuity tests publish: publisher, sequence
// number per publisher and channel, and the publish time.
type tick struct {
	Pub int    `json:"pub"`
	Seq int    `json:"seq"`
	TS  int64  `json:"ts"`
	Pad string `json:"pad,omitempty"`
	// Marker marks the barrier waitAll publishes after the ticks: it
	// counts as no message.
	Marker bool `json:"marker,omitempty"`
}

func tickData(pub, seq int) []byte { return tickDataPadded(pub, seq, 0) }

func tickDataPadded(pub, seq, pad int) []byte {
	b, _ := json.Marshal(tick{Pub: pub, Seq: seq, TS: time.Now().UnixNano(), Pad: strings.Repeat("x", pad)})
	return b
}

// tracker checks one subscriber's stream: every (channel, publisher)
// sequence must arrive once, in order.
type tracker struct {
	mu        sync.Mutex
	next      map[string]int // channel/pub -> next expected seq
	got       map[string]int // distinct messages per channel
	markers   map[string]int // markers received per channel
	delivered int
	dups      int
	reorders  int
	latencies []time.Duration
}

func newTracker() *tracker {
	return &tracker{next: map[string]int{}, got: map[string]int{}, markers: map[string]int{}}
}

func (tr *tracker) add(m client.Message) {
	var t tick
	if err := json.Unmarshal(m.Data, &t); err != nil {
		panic(fmt.Sprintf("bad payload %s", m.Data))
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if t.Marker {
		tr.markers[m.Channel]++
		return
	}
	tr.delivered++
	tr.latencies = append(tr.latencies, time.Duration(time.Now().UnixNano()-t.TS))
	key := fmt.Sprintf("%s/%d", m.Channel, t.Pub)
	switch want := tr.next[key]; {
	case t.Seq == want:
		tr.next[key]++
		tr.got[m.Channel]++
	case t.Seq < want:
		tr.dups++ // seen already: a repeat
	default:
		tr.reorders++ // ahead of a missing one; count what was skipped as lost
		tr.got[m.Channel]++
		tr.next[key] = t.Seq + 1
	}
}

// count is the number of distinct in-order messages received on channel.
func (tr *tracker) count(channel string) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.got[channel]
}

// marked reports whether a marker has arrived on channel.
func (tr *tracker) marked(channel string) bool {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.markers[channel] > 0
}

// figures sums trackers against what was published to each (published per
// subscriber expected) and prints the one line every fault test reports.
type figures struct {
	published, expected, delivered, lost, dups, reorders int
	latencies                                            []time.Duration
}

func sumFigures(published int, subs map[*tracker]int) figures {
	f := figures{published: published}
	for tr, want := range subs {
		tr.mu.Lock()
		got := 0
		for _, n := range tr.got {
			got += n
		}
		f.expected += want
		f.delivered += tr.delivered
		f.lost += max(0, want-got)
		f.dups += tr.dups
		f.reorders += tr.reorders
		f.latencies = append(f.latencies, tr.latencies...)
		tr.mu.Unlock()
	}
	return f
}

func (f figures) log(t *testing.T, name string, extra string) {
	t.Helper()
	t.Logf("FIGURES %s: published=%d delivered=%d (expected %d) lost=%d duplicated=%d out_of_order=%d %s",
		name, f.published, f.delivered, f.expected, f.lost, f.dups, f.reorders, extra)
	if f.lost != 0 || f.dups != 0 || f.reorders != 0 {
		t.Errorf("%s: lost %d, duplicated %d, out of order %d: all must be 0", name, f.lost, f.dups, f.reorders)
	}
}

func percentiles(ds []time.Duration) string {
	if len(ds) == 0 {
		return "n=0"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return fmt.Sprintf("n=%d p50=%v p90=%v p99=%v max=%v", len(s),
		at(0.50).Round(10*time.Microsecond), at(0.90).Round(10*time.Microsecond), at(0.99).Round(10*time.Microsecond), s[len(s)-1].Round(10*time.Microsecond))
}
