package suite

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/feedgate/feedgate/bench/loadgen"
)

// Options configure one suite run.
type Options struct {
	Name       string   // results go to OutRoot/Name
	OutRoot    string   // e.g. bench/results
	Quick      bool     // short windows, smaller counts (about two minutes in all)
	Scenarios  []string // fanout, fanout-delta, oddsfeed, idle, connect-rate, reconnect-storm, cross-edge
	Targets    []string // ours, peer, ceiling, sink (empty: all available)
	Profile    bool     // capture CPU and allocation profiles at the fanout knee
	BenchDir   string   // the bench module's directory
	CeilingDir string   // shared/ceiling sources
	ServerCore int      // CPU for servers (-1: no pinning)
	Out        io.Writer
}

// AllScenarios lists the scenarios in the order "all" runs them.
var AllScenarios = []string{"fanout", "fanout-delta", "oddsfeed", "idle", "connect-rate", "reconnect-storm", "cross-edge"}

// Suite is one run of the scenarios.
type Suite struct {
	opt     Options
	bin     *Binaries
	res     *Results
	dir     string // results directory
	tmp     string // binaries and server logs
	md      strings.Builder
	started []*Proc // servers started for the current scenario
}

// Run builds the servers, runs the chosen scenarios and writes the results.
func Run(opt Options) error {
	tmp, err := os.MkdirTemp("", "feedgate-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	s := &Suite{opt: opt, tmp: tmp, dir: filepath.Join(opt.OutRoot, opt.Name)}
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return err
	}
	s.printf("building servers in %s ...\n", tmp)
	if s.bin, err = Build(opt.BenchDir, opt.CeilingDir, tmp); err != nil {
		return err
	}
	s.res = &Results{Name: opt.Name, Quick: opt.Quick, Started: time.Now().UTC(), Machine: DescribeMachine()}
	s.setup()
	for _, name := range opt.Scenarios {
		var sr *ScenarioResult
		switch name {
		case "fanout":
			sr = s.fanout()
		case "fanout-delta":
			sr = s.fanoutDelta()
		case "oddsfeed":
			sr = s.oddsfeed()
		case "idle":
			sr = s.idle()
		case "connect-rate":
			sr = s.connRate()
		case "reconnect-storm":
			sr = s.storm()
		case "cross-edge":
			sr = s.crossEdge()
		default:
			return fmt.Errorf("unknown scenario %q (have %s)", name, strings.Join(AllScenarios, ", "))
		}
		s.noteServerLogs(sr)
		s.res.Scenarios = append(s.res.Scenarios, sr)
		s.res.Finished = time.Now().UTC()
		if err := s.write(); err != nil { // after every scenario, so a stopped run keeps what it measured
			return err
		}
	}
	s.printf("\nresults: %s\n", s.dir)
	// A subscriber that would have rebuilt a wrong payload fails the run.
	for _, sr := range s.res.Scenarios {
		for _, r := range sr.Runs {
			for _, st := range r.Steps {
				if st.DeltaErrors > 0 {
					return fmt.Errorf("%s %s %s: %d delta checks failed (%s)", sr.Name, r.Target, r.Variant, st.DeltaErrors, r.Error)
				}
			}
		}
	}
	return nil
}

func (s *Suite) printf(format string, a ...any) { fmt.Fprintf(s.opt.Out, format, a...) }

// setup records and prints the machine and how the run is arranged.
func (s *Suite) setup() {
	m := s.res.Machine
	pin := "servers unpinned"
	if s.opt.ServerCore >= 0 {
		pin = fmt.Sprintf("each server alone on CPU %d (taskset, GOMAXPROCS=1); generator pinned to the other CPU(s)", s.opt.ServerCore)
	}
	s.res.Setup = []string{
		fmt.Sprintf("machine: %d CPUs (%s), %s, %s, memory %s, clocksource %s, nofile %d",
			m.NProc, m.CPUModel, m.Kernel, m.GoVersion, m.MemTotal, m.Clock, m.NoFile),
		pin,
		"generator: one process; subscribers read by one epoll loop over raw sockets; latency = receive time - publisher's timestamp in the payload (same clock)",
		"all traffic on 127.0.0.0/8",
	}
	if s.bin.Edge == "" {
		s.res.Setup = append(s.res.Setup, "ours: skipped: "+s.bin.EdgeWhy)
	} else {
		s.res.Setup = append(s.res.Setup, "ours: cmd/edge built from "+s.bin.EdgeSource)
	}
	if s.bin.Ceiling == "" {
		s.res.Setup = append(s.res.Setup, "ceiling: skipped: "+s.bin.CeilingWhy)
	}
	for _, l := range s.res.Setup {
		s.printf("%s\n", l)
	}
}

func (s *Suite) write() error {
	if err := writeJSON(filepath.Join(s.dir, "results.json"), s.res); err != nil {
		return err
	}
	var md strings.Builder
	fmt.Fprintf(&md, "# Load-test results: %s\n\n", s.res.Name)
	for _, l := range s.res.Setup {
		fmt.Fprintf(&md, "- %s\n", l)
	}
	fmt.Fprintf(&md, "- run %s to %s\n", s.res.Started.Format(time.RFC3339), s.res.Finished.Format(time.RFC3339))
	md.WriteString(s.md.String())
	if err := os.WriteFile(filepath.Join(s.dir, "summary.md"), []byte(md.String()), 0o644); err != nil {
		return err
	}
	return s.plots()
}

// section starts a scenario: prints its parameters.
func (s *Suite) section(name string, params any) *ScenarioResult {
	b, _ := json.Marshal(params)
	s.printf("\n=== scenario %s\nparams: %s\n", name, b)
	fmt.Fprintf(&s.md, "\n## %s\n\nparams: `%s`\n", name, b)
	return &ScenarioResult{Name: name, Params: params}
}

func (s *Suite) note(sr *ScenarioResult, format string, a ...any) {
	n := fmt.Sprintf(format, a...)
	sr.Notes = append(sr.Notes, n)
	s.printf("note: %s\n", n)
	fmt.Fprintf(&s.md, "\n- note: %s\n", n)
}

func (s *Suite) emit(t *table) {
	t.print(s.opt.Out)
	s.md.WriteString(t.markdown())
}

// servers returns which of want are selected and available; it notes the
// others in sr.
func (s *Suite) servers(sr *ScenarioResult, want ...string) []string {
	var out []string
	for _, w := range want {
		if len(s.opt.Targets) > 0 && !slices.Contains(s.opt.Targets, w) {
			continue
		}
		switch {
		case w == "ours" && s.bin.Edge == "":
			s.note(sr, "ours skipped: %s", s.bin.EdgeWhy)
		case w == "ceiling" && s.bin.Ceiling == "":
			s.note(sr, "ceiling skipped: %s", s.bin.CeilingWhy)
		default:
			out = append(out, w)
		}
	}
	return out
}

// start starts one server pinned as configured and returns the load
// generator's target for it.
func (s *Suite) start(server, format string, extraArgs, env []string) (*Proc, loadgen.Target, error) {
	return s.startSpec(server, format, extraArgs, env, 0)
}

// startWait starts our edge with a long readiness wait (a Pub/Sub backbone
// creates topics and subscriptions first).
func (s *Suite) startWait(server string, extraArgs, env []string) (*Proc, loadgen.Target, error) {
	return s.startSpec(server, "json", extraArgs, env, 90*time.Second)
}

func (s *Suite) startSpec(server, format string, extraArgs, env []string, wait time.Duration) (*Proc, loadgen.Target, error) {
	addr := FreeAddr()
	spec := ServerSpec{Name: server, Addr: addr, Core: s.opt.ServerCore, ReadyPath: "/readyz", Env: env, ReadyWait: wait}
	t := loadgen.Target{Name: server, Addr: addr}
	switch server {
	case "ours":
		spec.Bin = s.bin.Edge
		spec.Args = []string{"-addr", addr}
		if s.bin.EdgeHas("open") {
			// The generator connects and publishes without credentials: the
			// suite measures the data path (auth costs are measured in auth).
			spec.Args = append(spec.Args, "-open")
		}
		if s.bin.EdgeHas("debug-addr") {
			spec.DebugAddr = FreeAddr()
			spec.Args = append(spec.Args, "-debug-addr", spec.DebugAddr)
		}
		t.Kind, t.Format, t.Name = loadgen.Ours, format, "ours-"+format
	case "peer":
		spec.Bin = s.bin.Peer
		spec.DebugAddr = FreeAddr()
		spec.Args = []string{"-addr", addr, "-debug-addr", spec.DebugAddr}
		t.Kind = loadgen.Peer
	case "sink":
		spec.Bin = s.bin.Sink
		spec.Args = []string{"-addr", addr}
		t.Kind, t.Format = loadgen.Ours, "json"
	case "ceiling":
		spec.Bin = s.bin.Ceiling
		spec.Args = []string{"-addr", addr, "-mode", "coalesce"}
		spec.ReadyPath = "/stats"
		t.Kind = loadgen.Ceiling
	}
	spec.Args = append(spec.Args, extraArgs...)
	p, err := Start(spec, s.tmp)
	if err == nil {
		s.started = append(s.started, p)
	}
	return p, t, err
}

// ceilingPosters is how many HTTP requests the generator keeps in flight to
// the ceiling server, which has no WebSocket publish: its POST returns only
// once the flusher took the message, so one request at a time would cap the
// rate near one message per flusher pass.
const ceilingPosters = 16

// publishers returns the publishers for a target: n WebSocket publishers
// (channel ci owned by publisher ci%n) for ours and the peer; HTTP POST with
// ceilingPosters concurrent requests for the ceiling.
func publishers(t loadgen.Target, channels []string, n int, payload loadgen.Payload) ([]loadgen.Publisher, error) {
	if t.Kind == loadgen.Ceiling {
		p, err := loadgen.NewHTTPPublisher(t, channels, payload, ceilingPosters, false)
		return []loadgen.Publisher{p}, err
	}
	var pubs []loadgen.Publisher
	for k := 0; k < n; k++ {
		var owned []int
		for ci := k; ci < len(channels); ci += n {
			owned = append(owned, ci)
		}
		p, err := loadgen.NewWSPublisher(t, channels, owned, payload)
		if err != nil {
			closeAll(pubs)
			return nil, err
		}
		pubs = append(pubs, p)
	}
	return pubs, nil
}

func closeAll(pubs []loadgen.Publisher) {
	for _, p := range pubs {
		p.Close()
	}
}

func connectTimeout(n int) time.Duration { return 30*time.Second + time.Duration(n)*5*time.Millisecond }
