package suite

import (
	"fmt"
	"strconv"
	"time"

	"github.com/feedgate/feedgate/bench/loadgen"
)

// StormParams: subscribers dropped at once by the generator reconnect
// immediately while publishing goes on.
type StormParams struct {
	Subscribers int     `json:"subscribers"`
	Channels    int     `json:"channels"` // subscriber i attaches to channel i mod channels
	Rate        float64 `json:"rate_msg_per_sec"`
	Publishers  int     `json:"websocket_publishers"`
	BaselineSec float64 `json:"baseline_window_sec"`
	WindowSec   float64 `json:"storm_window_sec"`
	DropAtSec   float64 `json:"drop_at_sec"` // into the storm window
	DrainSec    float64 `json:"max_drain_sec"`
	Concurrency int     `json:"reconnect_dials_in_flight"` // goroutine dialer (loadgen.ConnectBlocking)
	Resume      string  `json:"resume"`
	// The peer's history, which its recovery needs: the bounds of our
	// edge's default history (-history-size 1000, -history-age 2m).
	PeerHistorySize int     `json:"peer_history_size"`
	PeerHistoryTTL  float64 `json:"peer_history_ttl_sec"`
}

// peerArgs are the peer's flags for the storm: history and recovery on.
func (p StormParams) peerArgs() []string {
	return []string{"-history-size", strconv.Itoa(p.PeerHistorySize), "-history-ttl", fmt.Sprintf("%gs", p.PeerHistoryTTL)}
}

func stormParams(quick bool) StormParams {
	p := StormParams{Subscribers: 10000, Channels: 100, Rate: 200, Publishers: 2, BaselineSec: 5, WindowSec: 15,
		DropAtSec: 3, DrainSec: 5, Concurrency: 128,
		Resume: "both resume. ours: the generator keeps, per subscriber and channel, the pos of the last message received " +
			"(or of the attached reply before any message) and re-attaches with options.resume set to it; " +
			"its edge keeps its default history (1000 messages / 2 min per channel). " +
			"peer: Centrifuge with history (peer_history_size / peer_history_ttl_sec per channel, in-memory broker) and " +
			"SubscribeOptions.EnableRecovery; the generator keeps the subscribe reply's epoch and the highest publication offset " +
			"and re-subscribes with recover:true, epoch, offset (recovered publications come in the subscribe reply). " +
			"Continuity counts the answers: resumed (ours \"resumed\", peer recovered:true), lost (ours \"lost\", peer recovered:false), fresh",
		PeerHistorySize: 1000, PeerHistoryTTL: 120}
	if quick {
		p.Subscribers, p.BaselineSec, p.WindowSec, p.DropAtSec, p.DrainSec = 2000, 2, 6, 2, 3
	}
	return p
}

func (s *Suite) storm() *ScenarioResult {
	p := stormParams(s.opt.Quick)
	sr := s.section("reconnect-storm", p)
	for _, server := range s.servers(sr, "ours", "peer") {
		sr.Runs = append(sr.Runs, s.stormRun(server, p))
	}
	get := func(f func(*StormFig) float64) func(*RunResult) (float64, bool) {
		return column(func(r *RunResult) *StormFig { return r.Storm }, f)
	}
	figs := []figure{
		{"dropped", get(func(f *StormFig) float64 { return float64(f.Dropped) })},
		{"all re-attached after s", get(func(f *StormFig) float64 { return f.ReconnectSec })},
		{"re-attached", get(func(f *StormFig) float64 { return float64(f.Reattached) })},
		{"reconnects/s", get(func(f *StormFig) float64 { return f.ReconnPerSec })},
		{"server CPU % while reconnecting", get(func(f *StormFig) float64 { return f.ServerCPUPct })},
		{"lost per subscriber", get(func(f *StormFig) float64 { return f.LostPerSub })},
		{"continuity resumed", get(func(f *StormFig) float64 { return float64(f.Continuity.Resumed) })},
		{"continuity lost", get(func(f *StormFig) float64 { return float64(f.Continuity.Lost) })},
		{"continuity fresh", get(func(f *StormFig) float64 { return float64(f.Continuity.Fresh) })},
	}
	figs = append(figs, stepFigures(func(r *RunResult) *Step {
		if r.Storm == nil {
			return nil
		}
		return &r.Storm.Window
	})...)
	s.emit(compare(fmt.Sprintf("reconnect storm: %d subscribers dropped at once (storm window)", p.Subscribers), sr.Runs, figs))
	s.emit(compare("reconnect storm: baseline window before the drop", sr.Runs, stepFigures(func(r *RunResult) *Step {
		if len(r.Steps) == 0 {
			return nil
		}
		return &r.Steps[0]
	})))
	return sr
}

func (s *Suite) stormRun(server string, p StormParams) *RunResult {
	run := &RunResult{Server: server, Target: server}
	var args []string
	if server == "peer" {
		args = p.peerArgs()
	}
	proc, t, err := s.start(server, "json", args, nil)
	if err != nil {
		run.Error = err.Error()
		s.printf("reconnect-storm %s: %v\n", server, err)
		return run
	}
	run.Target = t.Name
	channels, subs, subsPer := roundRobin("storm:", p.Channels, p.Subscribers)
	l := &load{proc: proc, seq: make([]int64, p.Channels), subsPer: subsPer}
	defer l.close()
	if l.r, err = loadgen.NewReader(t, p.Channels); err != nil {
		run.Error = err.Error()
		return run
	}
	l.r.EnableResume()
	want := int64(p.Subscribers)
	cr := loadgen.Connect(l.r, subs, channels, p.Concurrency, want, connectTimeout(p.Subscribers))
	run.Connect = &cr
	run.ConnPerSec = float64(cr.Attached) / cr.Elapsed.Seconds()
	if cr.Attached < want {
		run.Error = fmt.Sprintf("only %d of %d subscribers attached: %s", cr.Attached, p.Subscribers, cr.FirstErr)
		return run
	}
	if l.pubs, err = publishers(t, channels, p.Publishers, loadgen.Padded(300)); err != nil {
		run.Error = err.Error()
		return run
	}
	n := int64(p.Channels)
	pick := func(i int64) int { return int(i % n) }
	base := l.measure(s, "reconnect-storm "+t.Name+" baseline", p.Rate, secs(p.BaselineSec), secs(p.DrainSec), pick)
	run.Steps = append(run.Steps, base)
	s.printStep("reconnect-storm "+t.Name+" baseline", &base)

	f := &StormFig{}
	var cont0 loadgen.Continuity // subscription answers before the drop
	stormDone := make(chan struct{})
	go func() {
		defer close(stormDone)
		time.Sleep(secs(p.DropAtSec))
		cont0 = l.r.Continuity()
		t0, cpu0 := time.Now(), proc.CPUTime()
		f.Dropped = l.r.DropAll()
		sample := make(chan struct{})
		go func() { // the attached curve, every 50 ms, bounded by the connect timeout
			defer close(sample)
			end := t0.Add(connectTimeout(p.Subscribers))
			for time.Now().Before(end) {
				a := l.r.Attached()
				f.AttachedCurve = append(f.AttachedCurve, [2]float64{time.Since(t0).Seconds(), float64(a)})
				if a >= want {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
		// The goroutine dialer, as in earlier runs, so the figures stay
		// comparable.
		rc := loadgen.ConnectBlocking(l.r, subs, channels, p.Concurrency, want, connectTimeout(p.Subscribers))
		<-sample
		f.Reattached = rc.Attached
		f.ReconnectSec = rc.Elapsed.Seconds()
		if rc.Attached >= want {
			f.ReconnectSec = l.r.LastAttach().Sub(t0).Seconds()
		}
		f.ReconnPerSec = float64(rc.Attached) / f.ReconnectSec
		f.ServerCPUPct = 100 * (proc.CPUTime() - cpu0).Seconds() / time.Since(t0).Seconds()
	}()
	f.Window = l.window(p.Rate, secs(p.WindowSec), secs(p.DrainSec), pick)
	<-stormDone
	f.Continuity = l.r.Continuity().Sub(cont0) // after the window: every reply has come
	f.LostPerSub = float64(f.Window.Lost) / float64(p.Subscribers)
	run.Storm = f
	s.printf("reconnect-storm %s: dropped %d, all %d re-attached after %.2fs (%.0f/s); continuity: %d resumed, %d lost, %d fresh\n",
		t.Name, f.Dropped, f.Reattached, f.ReconnectSec, f.ReconnPerSec, f.Continuity.Resumed, f.Continuity.Lost, f.Continuity.Fresh)
	s.printStep("reconnect-storm "+t.Name+" storm window", &f.Window)
	return run
}
