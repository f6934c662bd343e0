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
	Rate           float64   `json:"rate_msg_per_sec"`
	WindowSec      float64   `json:"window_sec"`
	DrainSec       float64   `json:"max_drain_sec"`
	Publishers     int       `json:"websocket_publishers"`
	Spread         string    `json:"publish_spread"`
	Payload        string    `json:"payload"`
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
		Events: 100, MarketsPerEvent: 20, Seed: 42}
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
		var runs []*RunResult
		for _, server := range servers {
			formats := []string{"json"}
			if server == "ours" {
				formats = []string{"json", "msgpack"}
			}
			for _, f := range formats {
				// A fresh feed per run: every run publishes the same documents.
				feed, _ := oddsfeed.New(feedCfg)
				run := s.oddsRun(server, f, variant, p, channels, subSets, subsPer, loadgen.Odds(feed))
				runs = append(runs, run)
				sr.Runs = append(sr.Runs, run)
			}
		}
		first := func(r *RunResult) *Step {
			if len(r.Steps) == 0 {
				return nil
			}
			return &r.Steps[0]
		}
		s.emit(compare(fmt.Sprintf("oddsfeed %s, %d subscribers x %d channels, %.0f msg/s", variant, p.Subscribers, p.ChannelsPerSub, p.Rate),
			runs, stepFigures(first)))
	}
	return sr
}

func (s *Suite) oddsRun(server, format, variant string, p OddsParams, channels []string, subSets [][]int32, subsPer []int64, payload loadgen.Payload) *RunResult {
	run := &RunResult{Server: server, Target: server, Variant: variant}
	proc, t, err := s.start(server, format, nil, nil)
	if err != nil {
		run.Error = err.Error()
		s.printf("oddsfeed %s: %v\n", server, err)
		return run
	}
	run.Target = t.Name
	l := &load{proc: proc, seq: make([]int64, p.Channels), subsPer: subsPer}
	defer l.close()
	if l.r, err = loadgen.NewReader(t, p.Channels); err != nil {
		run.Error = err.Error()
		return run
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
	return run
}
