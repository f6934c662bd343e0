package suite

import (
	"fmt"
	"slices"

	"github.com/feedgate/feedgate/bench/loadgen"
	"github.com/feedgate/feedgate/internal/oddsfeed"
)

// OddsParams: many channels, subscribers on a few channels each chosen with
// Zipf skew, the payloads of the odds-feed simulator (internal/oddsfeed) at
// a fixed seed, in every wire variant.
type OddsParams struct {
	Channels       int       `json:"channels"`
	Subscribers    int       `json:"subscribers"`
	ChannelsPerSub int       `json:"channels_per_subscriber"`
	Skews          []float64 `json:"zipf_exponents"`
	// VariantSkews are the exponents at which the delta and conflation
	// variants run besides the full ones.
	VariantSkews []float64 `json:"variant_zipf_exponents"`
	Conflate     string    `json:"conflate_interval"`
	Rate         float64   `json:"rate_msg_per_sec"`
	WindowSec    float64   `json:"window_sec"`
	DrainSec     float64   `json:"max_drain_sec"`
	Publishers   int       `json:"websocket_publishers"`
	Spread       string    `json:"publish_spread"`
	Payload      string    `json:"payload"`
	// The simulator's shape: Channels = Events x MarketsPerEvent, one
	// channel per market, channel index i = market i%MarketsPerEvent of
	// event i/MarketsPerEvent.
	Events          int    `json:"sim_events"`
	MarketsPerEvent int    `json:"sim_markets_per_event"`
	Seed            uint64 `json:"sim_seed"`
}

func oddsParams(quick bool) OddsParams {
	p := OddsParams{Channels: 2000, Subscribers: 10000, ChannelsPerSub: 5, Skews: []float64{1.0, 0.6},
		Rate: 1000, WindowSec: 15, DrainSec: 5, Publishers: 4,
		Spread: "uniform: message i goes to channel (i*7919) mod channels; channel rank 0 is the most subscribed",
		Payload: "internal/oddsfeed: message k of a channel is its market's k-th price move, the whole market document " +
			"(2-20 selections, with the ts/seq/ci head about 400-1,560 bytes of JSON, 610 on average), seed 42",
		Events: 100, MarketsPerEvent: 20, Seed: 42, VariantSkews: []float64{1.0}, Conflate: "1s"}
	if quick {
		p.Subscribers, p.WindowSec, p.DrainSec = 2000, 4, 3
	}
	return p
}

func (s *Suite) oddsfeed() *ScenarioResult {
	p := oddsParams(s.opt.Quick)
	sr := s.section("oddsfeed", p)
	feedCfg := oddsfeed.Config{Events: p.Events, MarketsPerEvent: p.MarketsPerEvent, Seed: p.Seed}
	feed, err := oddsfeed.New(feedCfg)
	if err == nil && feed.Markets() != p.Channels {
		err = fmt.Errorf("%d markets for %d channels", feed.Markets(), p.Channels)
	}
	if err != nil {
		s.note(sr, "not run: odds feed simulator: %v", err)
		return sr
	}
	channels := make([]string, p.Channels)
	for i := range channels {
		channels[i] = feed.Channel(i)
	}
	servers := s.servers(sr, "ours", "peer")
	for _, skew := range p.Skews {
		variant := fmt.Sprintf("skew=%.1f", skew)
		z := loadgen.NewZipf(p.Channels, skew, 42)
		subSets := make([][]int32, p.Subscribers)
		subsPer := make([]int64, p.Channels)
		for i := range subSets {
			subSets[i] = z.Distinct(p.ChannelsPerSub)
			for _, c := range subSets[i] {
				subsPer[c]++
			}
		}
		top := slices.Max(subsPer)
		empty := 0
		for _, n := range subsPer {
			if n == 0 {
				empty++
			}
		}
		s.note(sr, "%s: Zipf exponent %.1f: the top channel has %d subscribers, %d channels have none, %.1f deliveries per message on average",
			variant, skew, top, empty, float64(p.Subscribers*p.ChannelsPerSub)/float64(p.Channels))
		var full, delta, confl []*RunResult
		for _, m := range oddsModes(p, servers, slices.Contains(p.VariantSkews, skew)) {
			// A fresh feed per run: every run publishes the same documents.
			feed, _ := oddsfeed.New(feedCfg)
			run := s.oddsRun(m, variant, p, channels, subSets, subsPer, loadgen.Odds(feed))
			sr.Runs = append(sr.Runs, run)
			switch {
			case m.delta:
				delta = append(delta, run)
			case m.conflate != "":
				confl = append(confl, run)
			default:
				full = append(full, run)
			}
		}
		first := func(r *RunResult) *Step {
			if len(r.Steps) == 0 {
				return nil
			}
			return &r.Steps[0]
		}
		title := fmt.Sprintf("oddsfeed %s, %d subscribers x %d channels, %.0f msg/s", variant, p.Subscribers, p.ChannelsPerSub, p.Rate)
		s.emit(compare(title, full, stepFigures(first)))
		if len(delta) > 0 {
			s.emit(compare(title+", deltas (ours VCDIFF, peer fossil)", delta, append(stepFigures(first), deltaFigures(first)...)))
		}
		if len(confl) > 0 {
			s.emit(compare(title+", conflate "+p.Conflate+" (ours; the peer has no conflation)", confl, append(stepFigures(first), deltaFigures(first)...)))
		}
		if len(delta)+len(confl) > 0 {
			s.emit(bytesTable(title+": bytes on the wire", slices.Concat(full, delta, confl), first))
		}
	}
	return sr
}

// oddsMode is one wire variant of the oddsfeed scenario.
type oddsMode struct {
	server, format string
	delta          bool   // ours VCDIFF, the peer fossil
	conflate       string // ours only
}

// oddsModes lists the runs at one skew: every full variant, then with
// variants the delta ones and our conflated ones.
func oddsModes(p OddsParams, servers []string, variants bool) []oddsMode {
	var ms []oddsMode
	add := func(delta bool, conflate string) {
		for _, server := range servers {
			formats := []string{"json"}
			if server == "ours" {
				formats = []string{"json", "msgpack"}
			} else if conflate != "" {
				continue // Centrifuge has no conflation
			}
			for _, f := range formats {
				ms = append(ms, oddsMode{server, f, delta, conflate})
			}
		}
	}
	add(false, "")
	if variants {
		add(true, "")
		add(false, p.Conflate)
	}
	return ms
}

// deltaFigures are the rows the delta and conflation tables add.
func deltaFigures(pick func(*RunResult) *Step) []figure {
	return []figure{
		stepFig("wire bytes/update per subscriber", func(s *Step) float64 { return s.RxPerUpdate }, pick),
		stepFig("delta frames % of deliveries", func(s *Step) float64 {
			if s.Received == 0 {
				return 0
			}
			return 100 * float64(s.DeltaFrames) / float64(s.Received)
		}, pick),
		stepFig("messages rebuilt and checked", func(s *Step) float64 { return float64(s.DeltaChecked) }, pick),
		stepFig("delta check failures", func(s *Step) float64 { return float64(s.DeltaErrors) }, pick),
		stepFig("conflated: subscriptions without the last message", func(s *Step) float64 { return float64(s.Stale) }, pick),
	}
}

// bytesTable compares the wire bytes of every variant against the first
// run (ours-json, full): one row per run.
func bytesTable(title string, runs []*RunResult, pick func(*RunResult) *Step) *table {
	t := &table{title: title, cols: []string{"run", "wire bytes/delivery", "wire bytes/update per subscriber", "% of " + runs[0].Target, "deliveries/s", "p50 ms", "p99 ms"}}
	var ref float64
	if st := pick(runs[0]); st != nil {
		ref = st.RxPerUpdate
	}
	for _, r := range runs {
		st := pick(r)
		if st == nil {
			t.add(r.Target, "-", "-", "-", "-", "-", "-")
			continue
		}
		pct := "-"
		if ref > 0 {
			pct = fmt.Sprintf("%.1f", 100*st.RxPerUpdate/ref)
		}
		t.add(r.Target, num(st.RxPerDeliv), num(st.RxPerUpdate), pct, num(st.DelivPerSec), num(st.P50), num(st.P99))
	}
	return t
}

func (s *Suite) oddsRun(m oddsMode, variant string, p OddsParams, channels []string, subSets [][]int32, subsPer []int64, payload loadgen.Payload) *RunResult {
	server := m.server
	run := &RunResult{Server: server, Target: server, Variant: variant}
	var args []string
	if m.delta && server == "peer" {
		args = []string{"-delta"}
	}
	proc, t, err := s.start(server, m.format, args, nil)
	if err != nil {
		run.Error = err.Error()
		s.printf("oddsfeed %s: %v\n", server, err)
		return run
	}
	switch {
	case m.delta && server == "peer":
		t.Delta, t.Name = "fossil", t.Name+"-fossil"
	case m.delta:
		t.Delta, t.Name = "vcdiff", t.Name+"-vcdiff"
	case m.conflate != "":
		t.Conflate, t.Name = m.conflate, t.Name+"-conflate"+m.conflate
	}
	run.Target = t.Name
	l := &load{proc: proc, seq: make([]int64, p.Channels), subsPer: subsPer, conflated: m.conflate != ""}
	defer l.close()
	if l.r, err = loadgen.NewReader(t, p.Channels); err != nil {
		run.Error = err.Error()
		return run
	}
	if m.delta {
		rec := loadgen.NewPublished()
		payload = rec.Record(payload)
		l.r.EnableDelta(channels, rec)
	}
	subs := make([]*loadgen.Sub, p.Subscribers)
	for i := range subs {
		subs[i] = loadgen.NewSub(i, subSets[i])
	}
	cr := loadgen.Connect(l.r, subs, channels, 64, int64(p.Subscribers), connectTimeout(p.Subscribers))
	run.Connect = &cr
	run.ConnPerSec = float64(cr.Attached) / cr.Elapsed.Seconds()
	s.printf("oddsfeed %s %s: %d subscribers attached in %.2fs %s\n", t.Name, variant, cr.Attached, cr.Elapsed.Seconds(), cr.FirstErr)
	if cr.Attached < int64(p.Subscribers) {
		run.Error = fmt.Sprintf("only %d of %d subscribers attached: %s", cr.Attached, p.Subscribers, cr.FirstErr)
		return run
	}
	if l.pubs, err = publishers(t, channels, p.Publishers, payload); err != nil {
		run.Error = err.Error()
		return run
	}
	n := int64(p.Channels)
	st := l.measure(s, "oddsfeed "+t.Name+" "+variant, p.Rate, secs(p.WindowSec), secs(p.DrainSec), func(i int64) int { return int(i * 7919 % n) })
	run.Steps = append(run.Steps, st)
	s.printStep("oddsfeed "+t.Name+" "+variant, &st)
	if st.DeltaErrors > 0 {
		run.Error = fmt.Sprintf("%d delta checks failed, the first: %s", st.DeltaErrors, l.r.DeltaErr())
		s.printf("oddsfeed %s %s: %s\n", t.Name, variant, run.Error)
	}
	return run
}
