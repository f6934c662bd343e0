package suite

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/feedgate/feedgate/bench/loadgen"
	"github.com/feedgate/feedgate/internal/oddsfeed"
)

// FanoutDeltaParams: one channel of odds documents, many subscribers, our
// edge alone, with VCDIFF delta subscribers against full ones.
type FanoutDeltaParams struct {
	Subscribers int       `json:"subscribers"`
	Rates       []float64 `json:"rates_msg_per_sec"`
	WindowSec   float64   `json:"window_sec"`
	DrainSec    float64   `json:"max_drain_sec"`
	StopP99Ms   float64   `json:"stop_when_p99_ms_above"`
	Payload     string    `json:"payload"`
	Order       string    `json:"order"`
}

func fanoutDeltaParams(quick bool) FanoutDeltaParams {
	p := FanoutDeltaParams{Subscribers: 5000, Rates: []float64{50, 100, 200, 400}, WindowSec: 12, DrainSec: 5, StopP99Ms: 200,
		Payload: "internal/oddsfeed at seed 42 (100 events x 20 markets), market slot 0 on the one channel: message k is its k-th price move, " +
			"the whole market document with the ts/seq/ci head; every window restarts the feed, so both variants publish the same documents",
		Order: "one edge process and one WebSocket publisher for the whole scenario; at each rate one window of full subscribers and one of " +
			"delta subscribers (all closed and replaced between windows), full first at the 1st, 3rd, ... rate and delta first at the others"}
	if quick {
		p.Subscribers, p.Rates, p.WindowSec, p.DrainSec = 1000, []float64{100, 400}, 3, 3
	}
	return p
}

// fanoutDelta measures what delta subscribers cost our edge's fan-out: the
// edge computes a message's delta once and writes the same bytes to every
// delta subscriber, so at equal deliveries the server's CPU should barely
// differ (the target: delta subscribers cost at most 10 % of throughput).
func (s *Suite) fanoutDelta() *ScenarioResult {
	p := fanoutDeltaParams(s.opt.Quick)
	sr := s.section("fanout-delta", p)
	if len(s.servers(sr, "ours")) == 0 {
		return sr
	}
	full := &RunResult{Server: "ours", Target: "ours-json", Variant: "full"}
	delta := &RunResult{Server: "ours", Target: "ours-json-vcdiff", Variant: "delta"}
	sr.Runs = []*RunResult{full, delta}
	fail := func(err error) *ScenarioResult {
		full.Error, delta.Error = err.Error(), err.Error()
		s.printf("fanout-delta: %v\n", err)
		return sr
	}
	proc, t, err := s.start("ours", "json", nil, nil)
	if err != nil {
		return fail(err)
	}
	defer proc.Stop()
	feedCfg := oddsfeed.Config{Events: 100, MarketsPerEvent: 20, Seed: 42}
	feed, err := oddsfeed.New(feedCfg)
	if err != nil {
		return fail(err)
	}
	channels := []string{feed.Channel(0)}
	// The publisher's payload is switched per window: a fresh feed (the
	// same documents again) and a fresh record of what was published.
	type source struct {
		payload loadgen.Payload
		rec     *loadgen.Published
	}
	var cur atomic.Pointer[source]
	next := func() *source {
		f, _ := oddsfeed.New(feedCfg)
		rec := loadgen.NewPublished()
		src := &source{rec.Record(loadgen.Odds(f)), rec}
		cur.Store(src)
		return src
	}
	next()
	pay := func(dst []byte, ts, seq int64, ci int) []byte { return cur.Load().payload(dst, ts, seq, ci) }
	pubs, err := publishers(t, channels, 1, pay)
	if err != nil {
		return fail(err)
	}
	defer closeAll(pubs)
	seq := make([]int64, 1)
	win, drain := secs(p.WindowSec), secs(p.DrainSec)
	stopped := map[*RunResult]bool{}
	for k, rate := range p.Rates {
		order := []*RunResult{full, delta}
		if k%2 == 1 {
			order = []*RunResult{delta, full}
		}
		for _, run := range order {
			if stopped[run] {
				continue
			}
			tt := t
			tt.Name = run.Target
			if run == delta {
				tt.Delta = "vcdiff"
			}
			src := next()
			st, err := s.fanoutDeltaWindow(tt, proc, pubs, seq, channels, src.rec, run == delta, p.Subscribers, rate, win, drain)
			if err != nil {
				run.Error = err.Error()
				s.printf("fanout-delta %s: %v\n", run.Target, err)
				if st.Rate != 0 {
					run.Steps = append(run.Steps, st) // the failed checks stay in the results
				}
				stopped[run] = true
				continue
			}
			run.Steps = append(run.Steps, st)
			s.printStep("fanout-delta "+run.Target, &st)
			if st.GenCPU >= 90 {
				s.note(sr, "%s at %.0f msg/s: the generator used %.0f%% of its core: this step may measure the generator, not the server", run.Target, rate, st.GenCPU)
			}
			if st.P99 > p.StopP99Ms || st.Lost > 0 {
				stopped[run] = true
			}
		}
	}
	ratio := [][2]*RunResult{{delta, full}}
	figs := func(pick func(*RunResult) *Step) []figure {
		return append(stepFigures(pick),
			stepFig("server CPU µs/delivery", func(s *Step) float64 { return cpuPerDelivery(s) }, pick),
			stepFig("delta frames % of deliveries", func(s *Step) float64 {
				if s.Received == 0 {
					return 0
				}
				return 100 * float64(s.DeltaFrames) / float64(s.Received)
			}, pick),
			stepFig("delta check failures", func(s *Step) float64 { return float64(s.DeltaErrors) }, pick))
	}
	for _, rate := range p.Rates {
		rate := rate
		pick := func(r *RunResult) *Step {
			for i := range r.Steps {
				if r.Steps[i].Rate == rate {
					return &r.Steps[i]
				}
			}
			return nil
		}
		s.emit(comparePairs(fmt.Sprintf("fanout-delta at %.0f msg/s, %d subscribers, odds documents", rate, p.Subscribers), sr.Runs, figs(pick), ratio))
	}
	knee := func(r *RunResult) *Step { return kneeStep(r, p.StopP99Ms) }
	s.emit(comparePairs(fmt.Sprintf("fanout-delta knee: highest step with p99 <= %.0f ms and no loss", p.StopP99Ms), sr.Runs, []figure{
		stepFig("knee publish rate msg/s", func(s *Step) float64 { return s.Rate }, knee),
		stepFig("knee deliveries/s", func(s *Step) float64 { return s.DelivPerSec }, knee),
		stepFig("server CPU % at the knee", func(s *Step) float64 { return s.ServerCPU }, knee),
		stepFig("server CPU µs/delivery at the knee", func(s *Step) float64 { return cpuPerDelivery(s) }, knee),
	}, ratio))
	return sr
}

// cpuPerDelivery is the server's CPU time per delivered message, µs.
func cpuPerDelivery(s *Step) float64 {
	if s.DelivPerSec == 0 {
		return 0
	}
	return s.ServerCPU / 100 * 1e6 / s.DelivPerSec
}

// fanoutDeltaWindow connects n subscribers (delta ones when tt asks), runs
// one window, and closes them.
func (s *Suite) fanoutDeltaWindow(tt loadgen.Target, proc *Proc, pubs []loadgen.Publisher, seq []int64, channels []string,
	rec *loadgen.Published, delta bool, n int, rate float64, win, drain time.Duration) (Step, error) {
	r, err := loadgen.NewReader(tt, 1)
	if err != nil {
		return Step{}, err
	}
	defer r.Close()
	if delta {
		r.EnableDelta(channels, rec)
	}
	subs := make([]*loadgen.Sub, n)
	for i := range subs {
		subs[i] = loadgen.NewSub(i, []int32{0})
	}
	cr := loadgen.Connect(r, subs, channels, 64, int64(n), connectTimeout(n))
	if cr.Attached < int64(n) {
		return Step{}, fmt.Errorf("only %d of %d subscribers attached: %s", cr.Attached, n, cr.FirstErr)
	}
	l := &load{proc: proc, r: r, pubs: pubs, seq: seq, subsPer: []int64{int64(n)}}
	st := l.measure(s, "fanout-delta "+tt.Name, rate, win, drain, func(int64) int { return 0 })
	if st.DeltaErrors > 0 {
		return st, fmt.Errorf("%d delta checks failed, the first: %s", st.DeltaErrors, r.DeltaErr())
	}
	return st, nil
}
