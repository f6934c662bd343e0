package suite

import (
	"strconv"
	"time"

	"github.com/feedgate/feedgate/bench/loadgen"
)

// quietMax bounds the wait for a quiet machine before each window: on a
// machine shared with other work the window then runs anyway and its
// other-CPU figure shows the disturbance.
const quietMax = 60 * time.Second

// load is one target under load: its server, subscribers and publishers.
type load struct {
	proc    *Proc
	r       *loadgen.Reader
	pubs    []loadgen.Publisher
	seq     []int64                // last sequence per channel
	subsPer []int64                // subscribers per channel
	aux     []func() time.Duration // CPU time of other parts of the system under test
	// conflated subscribers get a channel's latest message, not every one:
	// the window waits until each has its channel's last message, and
	// counts those that have not as lost (Step.Stale).
	conflated bool
}

// auxCPU sums the CPU time of the other parts of the system under test.
func (l *load) auxCPU() float64 {
	var t time.Duration
	for _, f := range l.aux {
		t += f()
	}
	return t.Seconds()
}

// maxAttempts bounds how often a window disturbed by other processes (more
// than noiseCPU % of a core) is measured again.
const maxAttempts = 3

// measure runs window until one is undisturbed, at most maxAttempts times,
// and returns the last.
func (l *load) measure(s *Suite, label string, rate float64, dur, drain time.Duration, pick func(int64) int) Step {
	var st Step
	for a := 1; a <= maxAttempts; a++ {
		st = l.window(rate, dur, drain, pick)
		st.Attempts = a
		if st.OtherCPU <= noiseCPU {
			break
		}
		s.printf("%s rate=%.0f: attempt %d disturbed: other processes used %.0f%% of a core (p99 %.1f ms)\n",
			label, rate, a, st.OtherCPU, st.P99)
	}
	return st
}

// window publishes at rate for dur, waits for the deliveries to drain (at
// most drain), and returns the window's figures. Messages that arrive after
// the drain count as lost here (and as late in the next window).
func (l *load) window(rate float64, dur, drain time.Duration, pick func(int64) int) Step {
	start := make([]int64, len(l.seq))
	for i, v := range l.seq {
		start[i] = v + 1
	}
	qt := time.Now()
	waitQuiet(func() float64 { return l.proc.CPUTime().Seconds() + cpuSelf() + l.auxCPU() }, quietMax)
	quietWait := time.Since(qt).Seconds()
	l.r.SetWindowStart(start)
	l.r.Take()
	pub0 := loadgen.Sum(l.pubs)
	fail0 := make([]int64, len(l.seq))
	for _, p := range l.pubs {
		p.AddFailures(fail0)
	}
	all0, irq0 := cpuStat()
	cpu0, gen0, aux0, t0 := l.proc.CPUTime(), cpuSelf(), l.auxCPU(), time.Now()

	sent := make([]int64, len(l.seq))
	dr := loadgen.Drive(l.pubs, l.seq, sent, loadgen.Schedule{Rate: rate, Dur: dur, Pick: pick})
	// HTTP publishers queue: wait (bounded) until every queued request ended.
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		p := loadgen.Sum(l.pubs)
		if p.Sent+p.Errors-pub0.Sent-pub0.Errors >= dr.Sent {
			break
		}
	}
	// Refused messages are publish errors, not losses.
	fail := make([]int64, len(l.seq))
	for _, p := range l.pubs {
		p.AddFailures(fail)
	}
	var expected int64
	for ci, n := range sent {
		expected += (n - (fail[ci] - fail0[ci])) * l.subsPer[ci]
	}
	var stale int64
	for end := time.Now().Add(drain); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if l.conflated {
			if stale = l.r.Stale(l.seq); stale == 0 {
				break
			}
		} else if w := l.r.Peek(); w.Received-w.Dups >= expected {
			break
		}
	}
	if l.conflated {
		stale = l.r.Stale(l.seq)
	}
	w := l.r.Take()
	wall := time.Since(t0).Seconds()
	srv, gen, aux := (l.proc.CPUTime() - cpu0).Seconds(), cpuSelf()-gen0, l.auxCPU()-aux0
	all1, irq1 := cpuStat()
	pub := loadgen.Sum(l.pubs)
	st := Step{
		Rate: rate, Sent: dr.Sent, Expected: expected,
		PubRate:     float64(dr.Sent) / dr.Elapsed.Seconds(),
		PubErrors:   pub.Errors - pub0.Errors + dr.Failed + dr.Unsent,
		PubAcked:    pub.Acked - pub0.Acked,
		PubBehindMs: float64(dr.MaxBehind) / 1e6,
		Received:    w.Received, Dups: w.Dups, Reorders: w.Reorders, Late: w.Late,
		Lost:        max(expected-(w.Received-w.Dups), 0),
		DeltaFrames: w.DeltaFrames, DeltaChecked: w.DeltaChecked, DeltaErrors: w.DeltaErrors,
		DelivPerSec:  float64(w.Received-w.Dups) / dr.Elapsed.Seconds(),
		ServerCPU:    100 * srv / wall,
		GenCPU:       100 * gen / wall,
		AuxCPU:       100 * aux / wall,
		OtherCPU:     100 * max(all1-all0-srv-gen-aux, 0) / wall,
		SoftIRQ:      100 * (irq1 - irq0) / wall,
		QuietWaitSec: quietWait,
		ServerRSSMB:  float64(l.proc.RSS()) / (1 << 20),
		RxBytes:      w.RxBytes, TxBytes: pub.TxBytes - pub0.TxBytes,
		Errors: w.Errors, Disconnects: w.Disconnects,
		Seconds: dr.Elapsed.Seconds(),
	}
	if w.Received > 0 {
		st.RxPerDeliv = float64(w.RxBytes) / float64(w.Received)
	}
	if expected > 0 {
		st.RxPerUpdate = float64(w.RxBytes) / float64(expected)
	}
	if l.conflated {
		st.Lost, st.Stale = stale, stale
	}
	st.fillLatency(w.Hist)
	return st
}

func (l *load) close() {
	closeAll(l.pubs)
	if l.r != nil {
		l.r.Close()
	}
	if l.proc != nil {
		l.proc.Stop()
	}
}

// roundRobin names nch channels prefix0, prefix1, ... and returns n
// subscribers, subscriber i on channel i mod nch, with the count per channel.
func roundRobin(prefix string, nch, n int) ([]string, []*loadgen.Sub, []int64) {
	channels := make([]string, nch)
	for i := range channels {
		channels[i] = prefix + strconv.Itoa(i)
	}
	subs := make([]*loadgen.Sub, n)
	per := make([]int64, nch)
	for i := range subs {
		subs[i] = loadgen.NewSub(i, []int32{int32(i % nch)})
		per[i%nch]++
	}
	return channels, subs, per
}
