package suite

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/feedgate/feedgate/bench/loadgen"
)

// FanoutParams: one channel, many subscribers, publish rate stepped up
// until p99 exceeds StopP99Ms or a message is lost.
type FanoutParams struct {
	Subscribers  int       `json:"subscribers"`
	Rates        []float64 `json:"rates_msg_per_sec"`
	WindowSec    float64   `json:"window_sec"`
	DrainSec     float64   `json:"max_drain_sec"`
	PayloadBytes int       `json:"payload_bytes"`
	StopP99Ms    float64   `json:"stop_when_p99_ms_above"`
	Publisher    string    `json:"publisher"`
}

func fanoutParams(quick bool) FanoutParams {
	p := FanoutParams{Subscribers: 5000, Rates: []float64{20, 40, 100, 200, 400, 800}, WindowSec: 12, DrainSec: 5,
		PayloadBytes: 300, StopP99Ms: 200,
		Publisher: "ours, peer: 1 WebSocket publisher; ceiling: HTTP POST with 16 requests in flight (it has no WebSocket publish; its reorders may come from the concurrent requests)"}
	if quick {
		p.Subscribers, p.Rates, p.WindowSec, p.DrainSec = 1000, []float64{20, 100, 400}, 3, 3
	}
	return p
}

func (s *Suite) fanout() *ScenarioResult {
	p := fanoutParams(s.opt.Quick)
	sr := s.section("fanout", p)
	for _, server := range s.servers(sr, "ours", "peer", "ceiling") {
		run := s.fanoutRun(server, p, sr)
		sr.Runs = append(sr.Runs, run)
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
		s.emit(compare(fmt.Sprintf("fanout at %.0f msg/s, %d subscribers", rate, p.Subscribers), sr.Runs, stepFigures(pick)))
	}
	knee := figure{"knee deliveries/s", func(r *RunResult) (float64, bool) {
		k := kneeStep(r, p.StopP99Ms)
		if k == nil {
			return 0, false
		}
		return k.DelivPerSec, true
	}}
	kneeRate := figure{"knee publish rate msg/s", func(r *RunResult) (float64, bool) {
		k := kneeStep(r, p.StopP99Ms)
		if k == nil {
			return 0, false
		}
		return k.Rate, true
	}}
	s.emit(compare("fanout knee: highest step with p99 <= 200 ms and no loss", sr.Runs, []figure{kneeRate, knee}))
	return sr
}

// kneeStep is the highest-rate step without loss and within the p99 bound.
func kneeStep(r *RunResult, p99 float64) *Step {
	var k *Step
	for i := range r.Steps {
		if st := &r.Steps[i]; st.Lost == 0 && st.P99 <= p99 {
			k = st
		}
	}
	return k
}

func (s *Suite) fanoutRun(server string, p FanoutParams, sr *ScenarioResult) *RunResult {
	run := &RunResult{Server: server, Target: server}
	proc, t, err := s.start(server, "json", nil, nil)
	if err != nil {
		run.Error = err.Error()
		s.printf("fanout %s: %v\n", server, err)
		return run
	}
	run.Target = t.Name
	l := &load{proc: proc, seq: make([]int64, 1), subsPer: []int64{int64(p.Subscribers)}}
	defer l.close()
	channels := []string{"fanout"}
	if l.r, err = loadgen.NewReader(t, 1); err != nil {
		run.Error = err.Error()
		return run
	}
	subs := make([]*loadgen.Sub, p.Subscribers)
	for i := range subs {
		subs[i] = loadgen.NewSub(i, []int32{0})
	}
	cr := loadgen.Connect(l.r, subs, channels, 64, int64(p.Subscribers), connectTimeout(p.Subscribers))
	run.Connect = &cr
	run.ConnPerSec = float64(cr.Attached) / cr.Elapsed.Seconds()
	s.printf("fanout %s: %d subscribers attached in %.2fs (%s)\n", t.Name, cr.Attached, cr.Elapsed.Seconds(), cr.FirstErr)
	if cr.Attached < int64(p.Subscribers) {
		run.Error = fmt.Sprintf("only %d of %d subscribers attached: %s", cr.Attached, p.Subscribers, cr.FirstErr)
		return run
	}
	if l.pubs, err = publishers(t, channels, 1, loadgen.Padded(p.PayloadBytes)); err != nil {
		run.Error = err.Error()
		return run
	}
	win, drain := secs(p.WindowSec), secs(p.DrainSec)
	zero := func(int64) int { return 0 }
	for _, rate := range p.Rates {
		st := l.measure(s, "fanout "+t.Name, rate, win, drain, zero)
		run.Steps = append(run.Steps, st)
		s.printStep("fanout "+t.Name, &st)
		if st.GenCPU >= 90 {
			s.note(sr, "%s at %.0f msg/s: the generator used %.0f%% of its core: this step may measure the generator, not the server", t.Name, rate, st.GenCPU)
		}
		if st.P99 > p.StopP99Ms || st.Lost > 0 {
			break
		}
	}
	if s.opt.Profile {
		s.profile(sr, l, run, p, win, drain)
	}
	return run
}

// profile re-runs the knee step while capturing CPU and allocation profiles
// from the server's pprof endpoint.
func (s *Suite) profile(sr *ScenarioResult, l *load, run *RunResult, p FanoutParams, win, drain time.Duration) {
	if l.proc.DebugAddr == "" {
		why := "it serves no pprof endpoint"
		if run.Server == "ours" {
			why = "this cmd/edge has no -debug-addr flag (the suite passes one when `edge -h` lists it)"
		}
		s.note(sr, "%s: no profile: %s", run.Target, why)
		return
	}
	k := kneeStep(run, p.StopP99Ms)
	if k == nil {
		k = &run.Steps[0]
	}
	dir := filepath.Join(s.dir, "profiles")
	os.MkdirAll(dir, 0o755)
	dur := max(win, 10*time.Second)
	cpuFile := filepath.Join(dir, run.Target+"-fanout-cpu.pprof")
	errc := make(chan error, 1)
	go func() {
		errc <- l.proc.Fetch(fmt.Sprintf("/debug/pprof/profile?seconds=%d", int(dur.Seconds())-1), cpuFile, dur+30*time.Second)
	}()
	st := l.window(k.Rate, dur, drain, func(int64) int { return 0 })
	err := <-errc
	if err == nil {
		err = l.proc.Fetch("/debug/pprof/allocs", filepath.Join(dir, run.Target+"-fanout-allocs.pprof"), 30*time.Second)
	}
	if err != nil {
		s.note(sr, "%s: profiling failed: %v", run.Target, err)
		return
	}
	s.note(sr, "%s: CPU and allocation profiles at %.0f msg/s (p99 %.1f ms during the profiled window) in %s; view with `go tool pprof -http=127.0.0.1:0 %s`",
		run.Target, k.Rate, st.P99, dir, cpuFile)
}

func (s *Suite) printStep(label string, st *Step) {
	s.printf("%s rate=%.0f: pub=%.0f/s deliv=%.0f/s p50=%.1fms p99=%.1fms max=%.0fms lost=%d dup=%d reord=%d srvCPU=%.0f%% genCPU=%.0f%% otherCPU=%.0f%% B/deliv=%.0f\n",
		label, st.Rate, st.PubRate, st.DelivPerSec, st.P50, st.P99, st.Max, st.Lost, st.Dups, st.Reorders, st.ServerCPU, st.GenCPU, st.OtherCPU, st.RxPerDeliv)
	if st.DeltaFrames > 0 || st.DeltaChecked > 0 || st.Stale > 0 {
		s.printf("%s rate=%.0f: B/update=%.0f delta frames=%d rebuilt+checked=%d check failures=%d stale=%d\n",
			label, st.Rate, st.RxPerUpdate, st.DeltaFrames, st.DeltaChecked, st.DeltaErrors, st.Stale)
	}
	if st.OtherCPU > noiseCPU {
		s.printf("warning: %s: %.0f%% of a core went to other processes during this window: the machine was not quiet\n", label, st.OtherCPU)
	}
}

// noiseCPU is the share of a core (%) used by anything but the server and
// the generator above which a window is flagged as disturbed: kernel threads
// and the loopback's soft interrupts stay well below it on a quiet machine.
const noiseCPU = 15

func secs(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }
