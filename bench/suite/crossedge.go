package suite

import (
	"fmt"
	"os/exec"
	"strconv"

	"github.com/feedgate/feedgate/bench/loadgen"
)

// CrossParams: the latency the Pub/Sub backbone adds between two edges.
type CrossParams struct {
	Channels    int     `json:"channels"`
	Subscribers int     `json:"subscribers"` // subscriber i attaches to channel i mod channels
	Rate        float64 `json:"rate_msg_per_sec"`
	Publishers  int     `json:"websocket_publishers"`
	WindowSec   float64 `json:"window_sec"`
	DrainSec    float64 `json:"max_drain_sec"`
	Layout      string  `json:"layout"`
}

func crossParams(quick bool) CrossParams {
	p := CrossParams{Channels: 20, Subscribers: 1000, Rate: 100, Publishers: 2, WindowSec: 10, DrainSec: 5,
		Layout: "edges pinned to the server CPU (two edges share it); the emulator (a JVM) unpinned"}
	if quick {
		p.WindowSec, p.DrainSec = 4, 3
	}
	return p
}

// crossCase is one arrangement of edges and backbone.
type crossCase struct {
	name   string
	pubsub bool
	edges  int // 1: publisher and subscribers on one edge; 2: publisher on A, subscribers on B
}

func (s *Suite) crossEdge() *ScenarioResult {
	p := crossParams(s.opt.Quick)
	sr := s.section("cross-edge", p)
	if len(s.servers(sr, "ours")) == 0 {
		sr.Skipped = "our edge is not available or not selected"
		return sr
	}
	gcloud, err := exec.LookPath("gcloud")
	switch {
	case err != nil:
		sr.Skipped = "gcloud is not installed: no Pub/Sub emulator"
	case !s.bin.EdgeHas("backbone") || !s.bin.EdgeHas("pubsub-project"):
		sr.Skipped = "cmd/edge has no -backbone/-pubsub-project flags"
	}
	if sr.Skipped != "" {
		s.note(sr, "skipped: %s", sr.Skipped)
		return sr
	}
	emu, err := startEmulator(gcloud, s.tmp)
	if err != nil {
		sr.Skipped = err.Error()
		s.note(sr, "skipped: %s", sr.Skipped)
		return sr
	}
	defer emu.stop()
	s.note(sr, "Pub/Sub emulator on %s", emu.Addr)
	cases := []crossCase{
		{"one-edge-embedded", false, 1},
		{"one-edge-pubsub", true, 1},
		{"two-edges-pubsub", true, 2},
	}
	for i, c := range cases {
		sr.Runs = append(sr.Runs, s.crossRun(c, p, emu, i))
	}
	s.emit(compare("cross-edge: publisher and subscribers on one edge, or publisher on A and subscribers on B", sr.Runs,
		stepFigures(func(r *RunResult) *Step {
			if len(r.Steps) == 0 {
				return nil
			}
			return &r.Steps[0]
		})))
	if base, two := sr.Runs[0], sr.Runs[2]; len(base.Steps) > 0 && len(two.Steps) > 0 {
		b, t := base.Steps[0], two.Steps[0]
		s.note(sr, "backbone adds p50 %+.1f ms, p90 %+.1f ms, p99 %+.1f ms (two edges over the emulator against one edge with the embedded backbone)",
			t.P50-b.P50, t.P90-b.P90, t.P99-b.P99)
	}
	return sr
}

func (s *Suite) crossRun(c crossCase, p CrossParams, emu *emulator, idx int) *RunResult {
	run := &RunResult{Server: "ours", Target: c.name, Variant: c.name}
	var args []string
	var env []string
	if c.pubsub {
		env = []string{"PUBSUB_EMULATOR_HOST=" + emu.Addr}
	}
	edgeArgs := func(id string) []string {
		if !c.pubsub {
			return []string{"-backbone", "local"}
		}
		return append(args, "-backbone", "pubsub", "-pubsub-project", "bench", "-edge-id", id,
			"-pubsub-prefix", "bench"+strconv.Itoa(idx))
	}
	spec := func(id string) []string { return edgeArgs(id) }
	procA, tA, err := s.startWait("ours", spec("a"), env)
	if err != nil {
		run.Error = err.Error()
		s.printf("cross-edge %s: %v\n", c.name, err)
		return run
	}
	procB, tB := procA, tA
	if c.edges == 2 {
		if procB, tB, err = s.startWait("ours", spec("b"), env); err != nil {
			procA.Stop()
			run.Error = err.Error()
			s.printf("cross-edge %s: %v\n", c.name, err)
			return run
		}
		defer procA.Stop()
	}
	channels, subs, subsPer := roundRobin("cross:", p.Channels, p.Subscribers)
	l := &load{proc: procB, seq: make([]int64, p.Channels), subsPer: subsPer}
	if c.pubsub {
		l.aux = append(l.aux, emu.CPUTime)
	}
	if procA != procB {
		l.aux = append(l.aux, procA.CPUTime)
	}
	defer l.close()
	if l.r, err = loadgen.NewReader(tB, p.Channels); err != nil {
		run.Error = err.Error()
		return run
	}
	cr := loadgen.Connect(l.r, subs, channels, 64, int64(p.Subscribers), connectTimeout(p.Subscribers))
	run.Connect = &cr
	if cr.Attached < int64(p.Subscribers) {
		run.Error = fmt.Sprintf("only %d of %d subscribers attached: %s", cr.Attached, p.Subscribers, cr.FirstErr)
		return run
	}
	if l.pubs, err = publishers(tA, channels, p.Publishers, loadgen.Padded(300)); err != nil {
		run.Error = err.Error()
		return run
	}
	n := int64(p.Channels)
	st := l.measure(s, "cross-edge "+c.name, p.Rate, secs(p.WindowSec), secs(p.DrainSec), func(i int64) int { return int(i % n) })
	run.Steps = append(run.Steps, st)
	s.printStep("cross-edge "+c.name, &st)
	return run
}
