package oddsfeed

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/feedgate/feedgate/codec"
)

var t0 = time.Date(2026, 3, 1, 19, 45, 0, 0, time.UTC)

func mustNew(tb testing.TB, c Config) *Feed {
	tb.Helper()
	f, err := New(c)
	if err != nil {
		tb.Fatal(err)
	}
	return f
}

func TestDeterminism(t *testing.T) {
	a := mustNew(t, Config{Seed: 7, BurstProb: 0.002}).Take(10000, t0)
	t.Run("same seed, same bytes", func(t *testing.T) {
		b := mustNew(t, Config{Seed: 7, BurstProb: 0.002}).Take(10000, t0)
		for i := range a {
			if a[i].Channel != b[i].Channel || a[i].Key != b[i].Key || !bytes.Equal(a[i].Payload, b[i].Payload) {
				t.Fatalf("update %d differs:\n%s %s\n%s %s", i, a[i].Channel, a[i].Payload, b[i].Channel, b[i].Payload)
			}
		}
	})
	t.Run("split takes, same stream", func(t *testing.T) {
		f := mustNew(t, Config{Seed: 7, BurstProb: 0.002})
		var b []Update
		for len(b) < len(a) {
			// Stamps restart with each Take: compare what does not carry time.
			b = append(b, f.Take(min(777, len(a)-len(b)), t0)...)
		}
		for i := range a {
			if a[i].Channel != b[i].Channel || a[i].Kind != b[i].Kind || a[i].Step != b[i].Step ||
				!bytes.Equal(stripTime(a[i].Payload), stripTime(b[i].Payload)) {
				t.Fatalf("update %d differs", i)
			}
		}
	})
	t.Run("other seed, other stream", func(t *testing.T) {
		b := mustNew(t, Config{Seed: 8}).Take(1000, t0)
		same := 0
		for i := range b {
			if bytes.Equal(a[i].Payload, b[i].Payload) {
				same++
			}
		}
		if same > 10 {
			t.Fatalf("%d of 1000 updates identical across seeds", same)
		}
	})
	t.Run("Move is repeatable per market", func(t *testing.T) {
		f, g := mustNew(t, Config{Seed: 3}), mustNew(t, Config{Seed: 3})
		var fa, ga [][]byte
		for i := range 50 {
			fa = append(fa, f.Move(5, t0).Payload)
			f.Move(10+i%40, t0) // other markets move in between on f only
			ga = append(ga, g.Move(5, t0).Payload)
		}
		for i := range fa {
			if !bytes.Equal(fa[i], ga[i]) {
				t.Fatalf("move %d of market 5 depends on other markets:\n%s\n%s", i, fa[i], ga[i])
			}
		}
		if bytes.Equal(fa[0], fa[1]) {
			t.Fatal("two moves gave the same document")
		}
	})
}

// stripTime removes the updated_at value.
func stripTime(p []byte) []byte {
	i := bytes.Index(p, []byte(`"updated_at":"`))
	j := bytes.IndexByte(p[i+14:], '"')
	return append(append([]byte(nil), p[:i]...), p[i+14+j:]...)
}

// countBy returns how many updates each event slot got, price moves only.
func priceMovesByEvent(us []Update, events int) []int {
	n := make([]int, events)
	for _, u := range us {
		if u.Kind == KindPrice {
			n[u.Event]++
		}
	}
	return n
}

func TestHotness(t *testing.T) {
	ratio := func(skew float64) (top, median int, topEvent int) {
		us := mustNew(t, Config{Seed: 11, Skew: skew}).Take(100000, t0)
		n := priceMovesByEvent(us, 200)
		topEvent = slices.Index(n, slices.Max(n))
		s := slices.Clone(n)
		slices.Sort(s)
		return s[len(s)-1], s[len(s)/2], topEvent
	}
	top, median, ev := ratio(1)
	t.Logf("skew 1.0: top event %d price moves, median %d", top, median)
	if ev != 0 {
		t.Errorf("the hottest event is slot %d, want 0", ev)
	}
	if top < 30*median {
		t.Errorf("skew 1.0: top %d is not 30x the median %d", top, median)
	}
	// Expected share of slot 0: 1/H(200) ≈ 17%.
	if share := float64(top) / 100000; share < 0.14 || share > 0.20 {
		t.Errorf("skew 1.0: top event share %.3f, want about 0.17", share)
	}
	top2, median2, _ := ratio(0.3)
	t.Logf("skew 0.3: top event %d price moves, median %d", top2, median2)
	if top2 > 5*median2 {
		t.Errorf("skew 0.3: top %d is more than 5x the median %d: the skew is not applied", top2, median2)
	}
}

func TestBursts(t *testing.T) {
	const steps = 150000
	for _, p := range []float64{0.004, 0.001} {
		t.Run(fmt.Sprint(p), func(t *testing.T) {
			cfg := Config{Seed: 5, BurstProb: p, GoalSuspendSteps: 500}
			f := mustNew(t, cfg)
			var us []Update
			for range steps {
				us = f.Step(us, t0)
			}
			burstSteps := map[int64]int{} // step → event
			suspendedAt := map[string]int64{}
			reopened := 0
			for _, u := range us {
				switch {
				case u.Burst && u.Kind == KindSuspend:
					if ev, ok := burstSteps[u.Step]; ok && ev != u.Event {
						t.Fatalf("step %d suspends markets of events %d and %d", u.Step, ev, u.Event)
					}
					burstSteps[u.Step] = u.Event
					suspendedAt[u.Key] = u.Step
				case u.Burst && u.Kind == KindReopen:
					at, ok := suspendedAt[u.Key]
					if !ok || u.Step-at != 500 {
						t.Fatalf("market %s reopened at step %d, suspended at %d (known %v)", u.Key, u.Step, at, ok)
					}
					reopened++
				}
			}
			want := p * steps
			got := float64(len(burstSteps))
			t.Logf("BurstProb %v: %v goal steps over %d steps, want %.0f; %d markets reopened", p, got, steps, want, reopened)
			// 4 standard deviations of a binomial count.
			if tol := 4 * math.Sqrt(want); math.Abs(got-want) > tol {
				t.Errorf("%v bursts, want %.0f ± %.0f", got, want, tol)
			}
			if st := f.Stats(); st.Bursts != int64(got) {
				t.Errorf("Stats.Bursts %d, counted %v", st.Bursts, got)
			}
			if reopened == 0 {
				t.Error("no market reopened after a goal")
			}
		})
	}
	t.Run("negative means never", func(t *testing.T) {
		f := mustNew(t, Config{Seed: 5, BurstProb: -1})
		for _, u := range f.Take(100000, t0) {
			if u.Burst {
				t.Fatalf("burst update at step %d with BurstProb < 0", u.Step)
			}
		}
	})
}

// TestDocuments checks every payload of a long fixed-seed sample: valid
// JSON that decodes into Document and encodes back to the same bytes, a
// valid channel, prices on the ladder, a sane overround, small moves,
// versions that count, consistent statuses.
func TestDocuments(t *testing.T) {
	f := mustNew(t, Config{Seed: 9, BurstProb: 0.003, SettleProb: 0.005, SuspendProb: 0.01, GoalSuspendSteps: 1000, SuspendSteps: 500})
	us := f.Take(20000, t0)
	last := map[string]Document{}
	var moves, unchanged int
	var ticks []int
	for i, u := range us {
		if !json.Valid(u.Payload) {
			t.Fatalf("update %d: invalid JSON: %s", i, u.Payload)
		}
		var d Document
		dec := json.NewDecoder(bytes.NewReader(u.Payload))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&d); err != nil {
			t.Fatalf("update %d: %v: %s", i, err, u.Payload)
		}
		again, err := json.Marshal(d)
		if err != nil || !bytes.Equal(again, u.Payload) {
			t.Fatalf("update %d does not round-trip (%v):\n%s\n%s", i, err, u.Payload, again)
		}
		if err := codec.ValidatePublish(&codec.Message{Channel: u.Channel, Data: u.Payload}); err != nil {
			t.Fatalf("update %d: the edge would refuse it: %v", i, err)
		}
		if u.Key != d.MarketID || !strings.HasPrefix(u.Channel, "odds:football:"+d.EventID+":m") ||
			!strings.HasSuffix(d.MarketID, u.Channel[strings.LastIndexByte(u.Channel, ':')+1:]) {
			t.Fatalf("update %d: channel %q key %q for event %q market %q", i, u.Channel, u.Key, d.EventID, d.MarketID)
		}
		if n := len(d.Selections); n < 2 || n > 20 {
			t.Fatalf("update %d: %d selections", i, n)
		}
		overround := 0.0
		for _, s := range d.Selections {
			p, ok := ParsePrice(s.Price)
			if !ok || !OnLadder(p) {
				t.Fatalf("update %d: price %q is not on the ladder", i, s.Price)
			}
			overround += 100 / float64(p)
			want := map[string]string{"open": "active", "suspended": "suspended"}[d.Status]
			if d.Status != "settled" && s.Status != want {
				t.Fatalf("update %d: selection status %q in a %s market", i, s.Status, d.Status)
			}
		}
		if d.Status != "settled" && (overround < 1.0 || overround > 1.45) {
			t.Fatalf("update %d: overround %.3f: %s", i, overround, u.Payload)
		}
		prev, seen := last[u.Key]
		switch {
		case !seen:
		case d.Version != prev.Version+1:
			t.Fatalf("update %d: version %d after %d", i, d.Version, prev.Version)
		case u.Kind == KindPrice:
			moves++
			changed := 0
			for k, s := range d.Selections {
				p, _ := ParsePrice(s.Price)
				q, _ := ParsePrice(prev.Selections[k].Price)
				if p == q {
					continue
				}
				changed++
				// A price move is one or two shifts: two ticks for the
				// selection moved, at most 1/8 of the probability of the
				// one that absorbs it, rounded to the ladder.
				if rel := math.Abs(float64(p-q)) / float64(q); rel > 0.3+5*float64(TickSize(q))/float64(q) {
					t.Fatalf("update %d: price %s → %s in one move", i, prev.Selections[k].Price, s.Price)
				}
				ticks = append(ticks, ladderDistance(q, p))
			}
			if changed == 0 {
				unchanged++
			}
			if changed > 4 {
				t.Fatalf("update %d: %d prices changed in one move", i, changed)
			}
		}
		switch u.Kind {
		case KindPrice, KindReopen, KindOpen:
			if d.Status != "open" {
				t.Fatalf("update %d: %v update with status %q", i, u.Kind, d.Status)
			}
		case KindSuspend:
			if d.Status != "suspended" {
				t.Fatalf("update %d: suspend with status %q", i, d.Status)
			}
		case KindSettle:
			won := 0
			for _, s := range d.Selections {
				if s.Status == "won" {
					won++
				} else if s.Status != "lost" {
					t.Fatalf("update %d: settled selection status %q", i, s.Status)
				}
			}
			if d.Status != "settled" || won != 1 {
				t.Fatalf("update %d: settle with status %q and %d winners", i, d.Status, won)
			}
		}
		last[u.Key] = d
	}
	slices.Sort(ticks)
	t.Logf("%d price moves, %d changed no price; ticks per changed price: median %d, p99 %d, max %d",
		moves, unchanged, ticks[len(ticks)/2], ticks[len(ticks)*99/100], ticks[len(ticks)-1])
	if unchanged*100 > moves {
		t.Errorf("%d of %d price moves changed no price", unchanged, moves)
	}
	if med, p99 := ticks[len(ticks)/2], ticks[len(ticks)*99/100]; med > 2 || p99 > 6 {
		t.Errorf("moves of median %d ticks, p99 %d: moves are not small", med, p99)
	}
	st := f.Stats()
	for k := range NumKinds {
		if st.ByKind[k] == 0 {
			t.Errorf("no update of kind %v in the sample", Kind(k))
		}
	}
}

// ladderDistance is the number of ladder ticks between two prices.
func ladderDistance(a, b int) int {
	if a > b {
		a, b = b, a
	}
	n := 0
	for p := a; p < b; p += TickSize(p) {
		n++
	}
	return n
}

func TestSizes(t *testing.T) {
	f := mustNew(t, Config{Seed: 1})
	f.Take(30000, t0)
	st := f.Stats()
	two, twenty := st.BySelections[2].Mean(), st.BySelections[20].Mean()
	t.Logf("mean payload %d B (min %d, max %d); 2 selections %.0f B, 20 selections %.0f B",
		st.Bytes/st.Updates, st.MinBytes, st.MaxBytes, two, twenty)
	if two < 250 || two > 450 {
		t.Errorf("2-selection market %.0f B, want about 300-400", two)
	}
	if twenty < 1200 || twenty > 2200 {
		t.Errorf("20-selection market %.0f B, want about 1.2-2 KB", twenty)
	}
}

func TestMarketsAndChannels(t *testing.T) {
	f := mustNew(t, Config{Seed: 2, Events: 7, MarketsPerEvent: 45, MinSelections: 3, MaxSelections: 5, Sport: "ice-hockey"})
	if f.Markets() != 7*45 {
		t.Fatalf("Markets %d", f.Markets())
	}
	seen := map[string]bool{}
	for i := range f.Markets() {
		ch := f.Channel(i)
		if err := codec.ValidateChannel(ch); err != nil {
			t.Fatalf("channel %q: %v", ch, err)
		}
		if seen[ch] {
			t.Fatalf("channel %q used twice", ch)
		}
		seen[ch] = true
		u := f.Move(i, t0)
		if u.Channel != ch {
			t.Fatalf("Move(%d) on %q, Channel says %q", i, u.Channel, ch)
		}
		var d Document
		if err := json.Unmarshal(u.Payload, &d); err != nil {
			t.Fatal(err)
		}
		if n := len(d.Selections); n < 3 || n > 5 {
			t.Fatalf("%d selections, want 3 to 5", n)
		}
		if d.Sport != "ice-hockey" {
			t.Fatalf("sport %q", d.Sport)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for i, c := range []Config{
		{Events: -1},
		{MarketsPerEvent: 10001},
		{MinSelections: 1},
		{MinSelections: 5, MaxSelections: 4},
		{MaxSelections: 101},
		{Rate: -5},
		{Rate: math.NaN()},
		{Skew: -1},
		{BurstProb: 0.5, SettleProb: 0.5},
		{BurstProb: math.NaN()},
		{SuspendSteps: -1},
		{Sport: "Foot Ball"},
		{Sport: strings.Repeat("a", 33)},
	} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			_, err := New(c)
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("New(%+v): %v, want ErrConfig", c, err)
			}
			t.Log(err)
		})
	}
}

func TestLadder(t *testing.T) {
	n := 0
	for p := MinPrice; p <= MaxPrice; p++ {
		if !OnLadder(p) {
			continue
		}
		n++
		s := string(appendPrice(nil, p))
		q, ok := ParsePrice(strings.Trim(s, `"`))
		if !ok || q != p {
			t.Fatalf("price %d written %s read %d %v", p, s, q, ok)
		}
		if p < MaxPrice && !OnLadder(p+TickSize(p)) {
			t.Fatalf("%d + tick %d is off the ladder", p, TickSize(p))
		}
		if floorTick(float64(p)/100+1e-9) != p {
			t.Fatalf("floorTick(%d) = %d", p, floorTick(float64(p)/100))
		}
	}
	// Betfair's ladder has 350 prices from 1.01 to 1000.
	if n != 350 {
		t.Fatalf("%d prices on the ladder, want 350", n)
	}
	for _, s := range []string{"", ".5", "1.", "1.50", "01.5", "+1", "1.x", "1.234", "1e2", "99999999999999999999"} {
		if p, ok := ParsePrice(s); ok {
			t.Errorf("ParsePrice(%q) = %d, want refused", s, p)
		}
	}
}

func FuzzParsePrice(f *testing.F) {
	for _, s := range []string{"1.01", "1.5", "10", "1000", "0", "1.50", "01", "3.7", "-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, ok := ParsePrice(s)
		if !ok {
			return
		}
		if got := string(appendPrice(nil, p)); got != strconv.Quote(s) {
			t.Fatalf("ParsePrice(%q) = %d, written back as %s", s, p, got)
		}
	})
}

func BenchmarkStep(b *testing.B) {
	f := mustNew(b, Config{Seed: 1})
	var us []Update
	var bytes int64
	start := time.Now()
	for b.Loop() {
		us = f.Step(us[:0], t0)
		for _, u := range us {
			bytes += int64(len(u.Payload))
		}
	}
	st := f.Stats()
	el := time.Since(start).Seconds()
	b.ReportMetric(float64(st.Updates)/el, "updates/s")
	b.ReportMetric(float64(bytes)/el/1e6, "MB/s")
}
