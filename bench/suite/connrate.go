package suite

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/feedgate/feedgate/bench/loadgen"
)

// ConnRateParams: the sustained rate of new subscribed connections. For a
// bounded window the generator keeps a fixed number of connections in
// flight, each connecting, upgrading, attaching to one channel, waiting for
// the reply and closing.
type ConnRateParams struct {
	WindowSec   float64 `json:"window_sec"`
	InFlight    int     `json:"connections_in_flight"` // from socket() until subscribed and closed
	Channels    int     `json:"channels"`              // connection k attaches to channel k mod channels
	DialTimeout float64 `json:"dial_timeout_sec"`      // per connection
	SettleSec   float64 `json:"settle_sec"`            // between the server's start and the window
	SourceAddrs int     `json:"source_addresses"`      // loopback source addresses connections rotate over
	Closing     string  `json:"closing"`
}

func connRateParams(quick bool) ConnRateParams {
	p := ConnRateParams{WindowSec: 5, InFlight: 512, Channels: 100, DialTimeout: 10, SettleSec: 1,
		SourceAddrs: loadgen.SourceAddrs, Closing: "the generator closes each connection (FIN) once subscribed; its TIME_WAITs spread over the source addresses"}
	if quick {
		p.WindowSec = 2
	}
	return p
}

func (s *Suite) connRate() *ScenarioResult {
	p := connRateParams(s.opt.Quick)
	sr := s.section("connect-rate", p)
	for _, server := range s.servers(sr, "ours", "peer", "sink") {
		sr.Runs = append(sr.Runs, s.connRateRun(server, p, sr))
	}
	get := func(f func(*ConnRateFig) float64) func(*RunResult) (float64, bool) {
		return column(func(r *RunResult) *ConnRateFig { return r.ConnRate }, f)
	}
	s.emit(compare(fmt.Sprintf("connect-rate: connect, upgrade, attach, close; %d in flight for %gs", p.InFlight, p.WindowSec), sr.Runs, []figure{
		{"subscribed connections/s", get(func(f *ConnRateFig) float64 { return f.PerSec })},
		{"subscribed in window", get(func(f *ConnRateFig) float64 { return float64(f.InWindow) })},
		{"time to attached p50 ms", get(func(f *ConnRateFig) float64 { return f.P50 })},
		{"time to attached p90 ms", get(func(f *ConnRateFig) float64 { return f.P90 })},
		{"time to attached p99 ms", get(func(f *ConnRateFig) float64 { return f.P99 })},
		{"time to attached max ms", get(func(f *ConnRateFig) float64 { return f.Max })},
		{"dial errors", get(func(f *ConnRateFig) float64 { return float64(f.Failed) })},
		{"server CPU %", get(func(f *ConnRateFig) float64 { return f.ServerCPUPct })},
		{"generator CPU %", get(func(f *ConnRateFig) float64 { return f.GenCPUPct })},
		{"softirq CPU % (loopback TCP)", get(func(f *ConnRateFig) float64 { return f.SoftIRQPct })},
		{"server's core busy %", get(func(f *ConnRateFig) float64 { return f.ServerCoreBusyPct })},
		{"generator's core busy %", get(func(f *ConnRateFig) float64 { return f.GenCoreBusyPct })},
		{"other processes CPU % (noise)", get(func(f *ConnRateFig) float64 { return f.OtherCPUPct })},
		{"server RSS MB after", column(func(r *RunResult) *ConnRateFig { return ofServer(r, r.ConnRate) },
			func(f *ConnRateFig) float64 { return f.ServerRSSMB })},
	}))
	return sr
}

// ConnRateFig is the connect-rate scenario's figure.
type ConnRateFig struct {
	loadgen.RateResult
	ServerCPUPct float64 `json:"server_cpu_pct"`
	GenCPUPct    float64 `json:"gen_cpu_pct"`
	SoftIRQPct   float64 `json:"softirq_cpu_pct"`
	// Busy time of the server's core and of the generator's (all others),
	// soft interrupts included, from /proc/stat; pinned runs only.
	ServerCoreBusyPct float64      `json:"server_core_busy_pct,omitempty"`
	GenCoreBusyPct    float64      `json:"gen_core_busy_pct,omitempty"`
	OtherCPUPct       float64      `json:"other_cpu_pct"`
	ServerRSSMB       float64      `json:"server_rss_mb"`
	CDF               [][2]float64 `json:"attach_cdf"` // (time to attached ms, percentile)
}

func (s *Suite) connRateRun(server string, p ConnRateParams, sr *ScenarioResult) *RunResult {
	run := &RunResult{Server: server, Target: server}
	l, t, err := s.startQuiet("connect-rate", server, p.Channels, p.SettleSec)
	if err != nil {
		run.Error = err.Error()
		return run
	}
	defer l.close()
	run.Target = t.Name
	proc := l.proc
	channels, _, _ := roundRobin("rate:", p.Channels, 0)
	// CPU times at the window's start and end, read on the reader goroutine
	// as the dialer starts and stops opening connections.
	var cpu0, cpu1 time.Duration
	var gen0, gen1, all0, all1, irq0, irq1 float64
	var core0, core1 []float64
	mark := func(end bool) {
		if !end {
			core0 = coreBusy()
			all0, irq0 = cpuStat()
			cpu0, gen0 = proc.CPUTime(), cpuSelf()
			return
		}
		cpu1, gen1 = proc.CPUTime(), cpuSelf()
		all1, irq1 = cpuStat()
		core1 = coreBusy()
	}
	rr := loadgen.ConnectRate(l.r, loadgen.RateOptions{Channels: channels, InFlight: p.InFlight,
		Window: secs(p.WindowSec), DialTimeout: secs(p.DialTimeout), Mark: mark})
	f := &ConnRateFig{RateResult: rr, ServerRSSMB: float64(proc.RSS()) / (1 << 20)}
	if w := rr.WindowSec; w > 0 {
		srv, gen := (cpu1 - cpu0).Seconds(), gen1-gen0
		f.ServerCPUPct, f.GenCPUPct = 100*srv/w, 100*gen/w
		f.SoftIRQPct = 100 * (irq1 - irq0) / w
		f.OtherCPUPct = 100 * max(all1-all0-srv-gen, 0) / w
		if s.opt.ServerCore >= 0 {
			sc, gc := coreSplit(core0, core1, s.opt.ServerCore)
			f.ServerCoreBusyPct, f.GenCoreBusyPct = 100*sc/w, 100*gc/w
		}
	}
	if rr.Hist != nil && rr.Hist.TotalCount() > 0 {
		var st Step
		st.fillLatency(rr.Hist)
		f.CDF = st.CDF
	}
	run.ConnRate = f
	run.ConnPerSec = rr.PerSec
	if rr.InWindow == 0 {
		run.Error = "no connection subscribed: " + rr.FirstErr
	}
	s.printf("connect-rate %s: %d subscribed in %.2fs = %.0f/s (%d started, %d after the window), time to attached p50 %.2f ms p99 %.2f ms max %.0f ms, dial errors %d%s, srvCPU=%.0f%% genCPU=%.0f%% softirq=%.0f%% otherCPU=%.0f%% busy: server core %.0f%%, generator core %.0f%%\n",
		t.Name, rr.InWindow, rr.WindowSec, rr.PerSec, rr.Started, rr.Attached-rr.InWindow, rr.P50, rr.P99, rr.Max,
		rr.Failed, errorKinds(rr.Errors), f.ServerCPUPct, f.GenCPUPct, f.SoftIRQPct, f.OtherCPUPct, f.ServerCoreBusyPct, f.GenCoreBusyPct)
	if f.GenCPUPct >= 90 || f.GenCoreBusyPct >= 90 {
		s.note(sr, "%s: the generator used %.0f%% of its core (busy %.0f%% with soft interrupts): the rate may measure the generator, not the server", t.Name, f.GenCPUPct, f.GenCoreBusyPct)
	}
	if f.OtherCPUPct > noiseCPU {
		s.printf("warning: connect-rate %s: %.0f%% of a core went to other processes during the window: the machine was not quiet\n", t.Name, f.OtherCPUPct)
	}
	return run
}

// errorKinds formats dial errors by kind, most frequent first: ": 3 timeout,
// 1 connect: connection refused", or "" when there are none.
func errorKinds(m map[string]int64) string {
	if len(m) == 0 {
		return ""
	}
	keys := slices.SortedFunc(maps.Keys(m), func(a, b string) int {
		if c := cmp.Compare(m[b], m[a]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d %s", m[k], k)
	}
	return ": " + strings.Join(parts, ", ")
}
