package oddsfeed

import (
	"bytes"
	"compress/flate"
	"testing"
)

// granularity measures what docs/oddsfeed.md argues: a delta against the
// previous message of the channel is small when the channel is one market
// (the base is the same document, a few values changed) and not when the
// channel is a whole event (the base is usually another market). Deflate
// with the base as preset dictionary stands in for a delta encoder: it
// copies from the base what also occurs there. It returns the mean sizes
// over the price moves among the first n updates: deflated alone, against
// the market's previous document, against the event's previous document.
func granularity(tb testing.TB, n int) (full, perMarket, perEvent float64) {
	f := mustNew(tb, Config{Seed: 4})
	prevMarket := map[string][]byte{}
	prevEvent := map[int][]byte{}
	var buf bytes.Buffer
	size := func(p, base []byte) float64 {
		buf.Reset()
		w, _ := flate.NewWriterDict(&buf, flate.DefaultCompression, base)
		w.Write(p)
		w.Close()
		return float64(buf.Len())
	}
	moves := 0.0
	for _, u := range f.Take(n, t0) {
		pm, okm := prevMarket[u.Key]
		pe, oke := prevEvent[u.Event]
		if okm && oke && u.Kind == KindPrice {
			moves++
			full += size(u.Payload, nil)
			perMarket += size(u.Payload, pm)
			perEvent += size(u.Payload, pe)
		}
		prevMarket[u.Key] = u.Payload
		prevEvent[u.Event] = u.Payload
	}
	return full / moves, perMarket / moves, perEvent / moves
}

func TestGranularityDeltas(t *testing.T) {
	// A short sample: flate is slow under the race detector. The
	// benchmark below measures a long one.
	full, perMarket, perEvent := granularity(t, 150)
	t.Logf("deflated alone %.0f B; against the previous message of a per-market channel %.0f B, of a per-event channel %.0f B", full, perMarket, perEvent)
	if perMarket*2 > perEvent || perEvent > full {
		t.Errorf("per-market base %.0f B, per-event %.0f B, alone %.0f B", perMarket, perEvent, full)
	}
}

// BenchmarkGranularity reports the mean compressed sizes of granularity
// over 20,000 updates (the figures in docs/oddsfeed.md).
func BenchmarkGranularity(b *testing.B) {
	var full, perMarket, perEvent float64
	for b.Loop() {
		full, perMarket, perEvent = granularity(b, 20000)
	}
	b.ReportMetric(full, "B-alone")
	b.ReportMetric(perMarket, "B-vs-market")
	b.ReportMetric(perEvent, "B-vs-event")
}
