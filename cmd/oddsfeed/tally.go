package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/feedgate/feedgate/internal/oddsfeed"
)

// tally counts outcomes; safe for concurrent use.
type tally struct {
	mu                   sync.Mutex
	gen, acked, unconf   int64
	genBytes, ackedBytes int64
	refused, retried     map[string]int64 // by error code name
	firstAck, lastAck    time.Time
}

func newTally() *tally {
	return &tally{refused: map[string]int64{}, retried: map[string]int64{}}
}

func (t *tally) generated(bytes int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.gen++
	t.genBytes += int64(bytes)
}

func (t *tally) ack(n int, bytes int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	if t.acked == 0 {
		t.firstAck = now
	}
	t.lastAck = now
	t.acked += int64(n)
	t.ackedBytes += int64(bytes)
}

func (t *tally) refuse(code string, n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.refused[code] += int64(n)
}

func (t *tally) retry(code string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.retried[code]++
}

func (t *tally) unconfirmed(n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.unconf += int64(n)
}

func (t *tally) progressLine(n int64, el time.Duration) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return fmt.Sprintf("%6.1fs: %d generated, %d acked, %d refused", el.Seconds(), n, t.acked, sumOf(t.refused))
}

func sumOf(m map[string]int64) int64 {
	var s int64
	for _, v := range m {
		s += v
	}
	return s
}

// summary is what a run did.
type summary struct {
	Transport, Edge       string
	Generated, Acked      int64
	GeneratedBytes, Bytes int64 // payload bytes generated, acknowledged
	Refused, Retried      map[string]int64
	Unconfirmed           int64
	GenTime, AckTime      time.Duration
	Feed                  oddsfeed.Stats
}

func (t *tally) summary(o options, st oddsfeed.Stats, genTime time.Duration) summary {
	t.mu.Lock()
	defer t.mu.Unlock()
	return summary{Transport: o.transport, Edge: o.edge, Generated: t.gen, Acked: t.acked,
		GeneratedBytes: t.genBytes, Bytes: t.ackedBytes, Refused: maps.Clone(t.refused), Retried: maps.Clone(t.retried),
		Unconfirmed: t.unconf, GenTime: genTime, AckTime: t.lastAck.Sub(t.firstAck), Feed: st}
}

// clean reports whether every generated update was acknowledged.
func (s summary) clean() bool { return s.Acked == s.Generated && s.Generated > 0 }

func perSec(n float64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return n / d.Seconds()
}

func codes(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	var b []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		b = append(b, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(b, ", ")
}

func (s summary) print(w io.Writer) {
	var kinds []string
	for k := range oddsfeed.NumKinds {
		kinds = append(kinds, fmt.Sprintf("%v %d", oddsfeed.Kind(k), s.Feed.ByKind[k]))
	}
	fmt.Fprintf(w, "generated:   %d updates in %.2fs (%.0f/s), %.2f MB of payload: %s; %d goal bursts\n",
		s.Generated, s.GenTime.Seconds(), perSec(float64(s.Generated), s.GenTime), float64(s.GeneratedBytes)/1e6,
		strings.Join(kinds, ", "), s.Feed.Bursts)
	fmt.Fprintf(w, "published:   over %s to %s\n", s.Transport, s.Edge)
	fmt.Fprintf(w, "acked:       %d (%.0f/s between the first and last ack), %.2f MB of payload (%.2f MB/s)\n",
		s.Acked, perSec(float64(s.Acked), s.AckTime), float64(s.Bytes)/1e6, perSec(float64(s.Bytes)/1e6, s.AckTime))
	fmt.Fprintf(w, "refused:     %s\n", codes(s.Refused))
	retried := codes(s.Retried)
	if s.Transport == "ws" {
		retried = "inside client.Session (retryable nacks and lost connections; not counted)"
	}
	fmt.Fprintf(w, "retried:     %s\n", retried)
	fmt.Fprintf(w, "unconfirmed: %d (no outcome within -timeout, or abandoned at a signal)\n", s.Unconfirmed)
}
