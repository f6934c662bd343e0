package suite

import (
	"fmt"
	"time"

	"github.com/feedgate/feedgate/bench/loadgen"
)

// IdleParams: many subscribed connections that receive nothing.
type IdleParams struct {
	Connections int     `json:"connections"`
	Channels    int     `json:"channels"`        // connection i attaches to channel i mod channels
	Concurrency int     `json:"dials_in_flight"` // epoll dialer (loadgen.Connect)
	SettleSec   float64 `json:"settle_sec"`      // wait before reading memory
}

func idleParams(quick bool) IdleParams {
	p := IdleParams{Connections: 19000, Channels: 100, Concurrency: 512, SettleSec: 2}
	if quick {
		p.Connections, p.SettleSec = 3000, 1
	}
	return p
}

func (s *Suite) idle() *ScenarioResult {
	p := idleParams(s.opt.Quick)
	sr := s.section("idle", p)
	for _, server := range s.servers(sr, "ours", "peer", "sink") {
		sr.Runs = append(sr.Runs, s.idleRun(server, p, sr))
	}
	get := func(f func(*IdleFig) float64) func(*RunResult) (float64, bool) {
		return column(func(r *RunResult) *IdleFig { return r.Idle }, f)
	}
	// The sink's memory says nothing about a server: its rows stay empty.
	mem := func(f func(*IdleFig) float64) func(*RunResult) (float64, bool) {
		return column(func(r *RunResult) *IdleFig { return ofServer(r, r.Idle) }, f)
	}
	s.emit(compare(fmt.Sprintf("idle: %d subscribed connections", p.Connections), sr.Runs, []figure{
		{"connections", get(func(f *IdleFig) float64 { return float64(f.Conns) })},
		{"connections/s while connecting", get(func(f *IdleFig) float64 { return f.ConnPerSec })},
		{"RSS before MB", mem(func(f *IdleFig) float64 { return f.RSSBeforeMB })},
		{"RSS after MB", mem(func(f *IdleFig) float64 { return f.RSSAfterMB })},
		{"RSS per connection KB", mem(func(f *IdleFig) float64 { return f.RSSPerConnKB })},
		{"Go heap per connection KB", mem(func(f *IdleFig) float64 { return f.HeapPerConnKB })},
		{"server CPU % while connecting", get(func(f *IdleFig) float64 { return f.ServerCPUPct })},
		{"generator CPU % while connecting", get(func(f *IdleFig) float64 { return f.GenCPUPct })},
		{"server's core busy % while connecting", get(func(f *IdleFig) float64 { return f.ServerCoreBusyPct })},
		{"generator's core busy % while connecting", get(func(f *IdleFig) float64 { return f.GenCoreBusyPct })},
		{"dial errors", get(func(f *IdleFig) float64 { return float64(f.DialErrors) })},
		{"time to attached p50 ms while connecting", get(func(f *IdleFig) float64 { return f.AttachP50Ms })},
		{"time to attached p99 ms while connecting", get(func(f *IdleFig) float64 { return f.AttachP99Ms })},
	}))
	return sr
}

// startQuiet starts server (JSON) with a reader for channels, lets it settle
// for settleSec, and waits for the machine to be quiet (warning if it never
// is). The caller closes the load.
func (s *Suite) startQuiet(scenario, server string, channels int, settleSec float64) (*load, loadgen.Target, error) {
	proc, t, err := s.start(server, "json", nil, nil)
	if err != nil {
		s.printf("%s %s: %v\n", scenario, server, err)
		return nil, t, err
	}
	l := &load{proc: proc}
	if l.r, err = loadgen.NewReader(t, channels); err != nil {
		l.close()
		return nil, t, err
	}
	time.Sleep(secs(settleSec))
	if other := waitQuiet(func() float64 { return proc.CPUTime().Seconds() + cpuSelf() }, quietMax); other > noiseCPU {
		s.printf("warning: %s %s: other processes use %.0f%% of a core: the machine is not quiet\n", scenario, t.Name, other)
	}
	return l, t, nil
}

func (s *Suite) idleRun(server string, p IdleParams, sr *ScenarioResult) *RunResult {
	run := &RunResult{Server: server, Target: server}
	// The settle time lets the fresh server reach its resting size.
	l, t, err := s.startQuiet("idle", server, p.Channels, p.SettleSec)
	if err != nil {
		run.Error = err.Error()
		return run
	}
	defer l.close()
	run.Target = t.Name
	proc := l.proc
	channels, subs, _ := roundRobin("idle:", p.Channels, p.Connections)
	heap0, hasHeap := proc.GoHeap()
	core0 := coreBusy()
	rss0, cpu0, gen0, t0 := proc.RSS(), proc.CPUTime(), cpuSelf(), time.Now()
	cr := loadgen.Connect(l.r, subs, channels, p.Concurrency, int64(p.Connections), connectTimeout(p.Connections))
	wall := time.Since(t0).Seconds()
	core1 := coreBusy()
	f := &IdleFig{Conns: cr.Attached, ConnPerSec: float64(cr.Attached) / cr.Elapsed.Seconds(),
		ServerCPUPct: 100 * (proc.CPUTime() - cpu0).Seconds() / wall, GenCPUPct: 100 * (cpuSelf() - gen0) / wall,
		DialErrors: int64(cr.Failed), AttachP50Ms: cr.AttachP50Ms, AttachP99Ms: cr.AttachP99Ms}
	if s.opt.ServerCore >= 0 {
		sc, gc := coreSplit(core0, core1, s.opt.ServerCore)
		f.ServerCoreBusyPct, f.GenCoreBusyPct = 100*sc/wall, 100*gc/wall
	}
	run.Connect = &cr
	run.ConnPerSec = f.ConnPerSec
	time.Sleep(secs(p.SettleSec))
	rss1 := proc.RSS()
	f.RSSBeforeMB, f.RSSAfterMB = float64(rss0)/(1<<20), float64(rss1)/(1<<20)
	if cr.Attached > 0 {
		f.RSSPerConnKB = float64(rss1-rss0) / 1024 / float64(cr.Attached)
	}
	if heap1, ok := proc.GoHeap(); ok && hasHeap && cr.Attached > 0 {
		f.HeapBeforeMB, f.HeapAfterMB = float64(heap0)/(1<<20), float64(heap1)/(1<<20)
		f.HeapPerConnKB = float64(heap1-heap0) / 1024 / float64(cr.Attached)
	}
	run.Idle = f
	if cr.Attached < int64(p.Connections) {
		run.Error = fmt.Sprintf("only %d of %d connections attached: %s", cr.Attached, p.Connections, cr.FirstErr)
	}
	s.printf("idle %s: %d conns at %.0f/s (dial errors %d%s, attached p50 %.1f ms p99 %.1f ms), RSS %.1f -> %.1f MB (%.1f KB/conn), heap %.1f KB/conn, srvCPU=%.0f%% genCPU=%.0f%% busy: server core %.0f%%, generator core %.0f%%\n",
		t.Name, f.Conns, f.ConnPerSec, f.DialErrors, errorKinds(cr.Errors), f.AttachP50Ms, f.AttachP99Ms,
		f.RSSBeforeMB, f.RSSAfterMB, f.RSSPerConnKB, f.HeapPerConnKB, f.ServerCPUPct, f.GenCPUPct, f.ServerCoreBusyPct, f.GenCoreBusyPct)
	if f.GenCPUPct >= 90 || f.GenCoreBusyPct >= 90 {
		s.note(sr, "%s: the generator used %.0f%% of its core while connecting (busy %.0f%% with soft interrupts): connections/s may measure the generator, not the server", t.Name, f.GenCPUPct, f.GenCoreBusyPct)
	}
	return run
}
