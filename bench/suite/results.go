package suite

import (
	"encoding/json"
	"math"
	"os"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/feedgate/feedgate/bench/loadgen"
)

// Results is everything one suite run measured; it is written as
// results.json.
type Results struct {
	Name      string            `json:"name"`
	Quick     bool              `json:"quick"`
	Started   time.Time         `json:"started"`
	Finished  time.Time         `json:"finished"`
	Machine   Machine           `json:"machine"`
	Setup     []string          `json:"setup"`
	Scenarios []*ScenarioResult `json:"scenarios"`
}

// ScenarioResult is one scenario: its parameters and one run per target
// (and variant).
type ScenarioResult struct {
	Name    string       `json:"name"`
	Params  any          `json:"params"`
	Skipped string       `json:"skipped,omitempty"`
	Notes   []string     `json:"notes,omitempty"`
	Runs    []*RunResult `json:"runs"`
}

// RunResult is one server under one scenario variant.
type RunResult struct {
	Target     string                 `json:"target"`  // e.g. "ours-json", "peer", "ceiling"
	Server     string                 `json:"server"`  // ours | peer | ceiling
	Variant    string                 `json:"variant"` // e.g. "skew=1.0"; "" when the scenario has one
	Connect    *loadgen.ConnectResult `json:"connect,omitempty"`
	ConnPerSec float64                `json:"connections_per_sec,omitempty"`
	Steps      []Step                 `json:"steps,omitempty"`
	Idle       *IdleFig               `json:"idle,omitempty"`
	Storm      *StormFig              `json:"storm,omitempty"`
	ConnRate   *ConnRateFig           `json:"connect_rate,omitempty"`
	Error      string                 `json:"error,omitempty"`
}

// Step is one measurement window.
type Step struct {
	Rate                     float64      `json:"rate"`          // target publish rate, msg/s
	PubRate                  float64      `json:"pub_rate"`      // achieved, msg/s
	Sent                     int64        `json:"sent"`          // messages published
	PubErrors                int64        `json:"pub_errors"`    // nacks, failed requests
	PubAcked                 int64        `json:"pub_acked"`     // acknowledgements received
	PubBehindMs              float64      `json:"pub_behind_ms"` // worst lateness of a send against the schedule
	Expected                 int64        `json:"expected"`      // deliveries if nothing were lost
	Received                 int64        `json:"received"`
	Dups                     int64        `json:"dups"`
	Reorders                 int64        `json:"reorders"`
	Late                     int64        `json:"late"`
	Lost                     int64        `json:"lost"`
	DelivPerSec              float64      `json:"deliveries_per_sec"`
	P50, P90, P99, P999, Max float64      // end-to-end latency, ms
	ServerCPU                float64      `json:"server_cpu_pct"`  // % of one core
	GenCPU                   float64      `json:"gen_cpu_pct"`     // generator's own CPU (getrusage), % of one core
	AuxCPU                   float64      `json:"aux_cpu_pct"`     // other parts of the system under test (second edge, Pub/Sub emulator), % of one core
	OtherCPU                 float64      `json:"other_cpu_pct"`   // everything else on the machine (kernel threads, other processes), % of one core
	SoftIRQ                  float64      `json:"softirq_cpu_pct"` // soft interrupts (loopback TCP), % of one core
	QuietWaitSec             float64      `json:"quiet_wait_sec"`  // waited for a quiet machine before the window
	Attempts                 int          `json:"attempts"`        // windows measured until one was undisturbed
	ServerRSSMB              float64      `json:"server_rss_mb"`
	RxBytes                  int64        `json:"rx_bytes"` // bytes read by subscribers
	TxBytes                  int64        `json:"tx_bytes"` // bytes written by publishers
	RxPerDeliv               float64      `json:"rx_bytes_per_delivery"`
	RxPerUpdate              float64      `json:"rx_bytes_per_update"` // bytes read per published message per subscriber of its channel
	DeltaFrames              int64        `json:"delta_frames,omitempty"`
	DeltaChecked             int64        `json:"delta_checked,omitempty"` // messages rebuilt from deltas and compared with the published payload
	DeltaErrors              int64        `json:"delta_errors,omitempty"`
	Stale                    int64        `json:"stale,omitempty"` // conflated: subscriptions that did not get their channel's last message by the end of the drain
	Errors                   int64        `json:"sub_errors"`
	Disconnects              int64        `json:"sub_disconnects"`
	Seconds                  float64      `json:"seconds"` // publishing window
	CDF                      [][2]float64 `json:"cdf"`     // (latency ms, percentile)
}

// IdleFig is the idle scenario's memory figure.
type IdleFig struct {
	Conns         int64   `json:"conns"`
	RSSBeforeMB   float64 `json:"rss_before_mb"`
	RSSAfterMB    float64 `json:"rss_after_mb"`
	RSSPerConnKB  float64 `json:"rss_per_conn_kb"`
	HeapBeforeMB  float64 `json:"heap_before_mb,omitempty"`
	HeapAfterMB   float64 `json:"heap_after_mb,omitempty"`
	HeapPerConnKB float64 `json:"heap_per_conn_kb,omitempty"`
	ConnPerSec    float64 `json:"connections_per_sec"`
	ServerCPUPct  float64 `json:"server_cpu_pct_while_connecting"`
	GenCPUPct     float64 `json:"gen_cpu_pct_while_connecting"`
	DialErrors    int64   `json:"dial_errors"`
	// Busy time (soft interrupts included) of the server's core and the
	// generator's, from /proc/stat; pinned runs only.
	ServerCoreBusyPct float64 `json:"server_core_busy_pct_while_connecting,omitempty"`
	GenCoreBusyPct    float64 `json:"gen_core_busy_pct_while_connecting,omitempty"`
	AttachP50Ms       float64 `json:"attach_p50_ms_while_connecting"` // dial start to attached reply
	AttachP99Ms       float64 `json:"attach_p99_ms_while_connecting"`
}

// StormFig is the reconnect-storm scenario's figure.
type StormFig struct {
	Dropped       int          `json:"dropped"`
	ReconnectSec  float64      `json:"reconnect_sec"` // drop until every subscriber is attached again
	Reattached    int64        `json:"reattached"`
	ReconnPerSec  float64      `json:"reconnects_per_sec"`
	Window        Step         `json:"window"` // publishing window containing the storm
	LostPerSub    float64      `json:"lost_per_sub"`
	AttachedCurve [][2]float64 `json:"attached_curve"` // (s since drop, attached)
	ServerCPUPct  float64      `json:"server_cpu_pct_during_reconnect"`
	// Answers to the re-subscriptions: resumed, lost (history did not
	// cover the gap) or fresh (no position was sent).
	Continuity loadgen.Continuity `json:"continuity"`
}

// fillLatency sets the percentiles and a CDF sampled at log-spaced
// percentiles from h (µs).
func (s *Step) fillLatency(h *hdrhistogram.Histogram) {
	ms := func(q float64) float64 { return float64(h.ValueAtQuantile(q)) / 1000 }
	s.P50, s.P90, s.P99, s.P999 = ms(50), ms(90), ms(99), ms(99.9)
	s.Max = float64(h.Max()) / 1000
	if h.TotalCount() == 0 {
		return
	}
	for _, q := range cdfQuantiles() {
		s.CDF = append(s.CDF, [2]float64{ms(q), q})
	}
}

// cdfQuantiles are 0.5 ... 99.999 with points dense near the tail.
func cdfQuantiles() []float64 {
	var qs []float64
	for q := 1.0; q < 90; q += 4 {
		qs = append(qs, q)
	}
	for k := 1.0; k <= 5; k += 0.25 { // 90, 94.4, ... 99.999
		qs = append(qs, 100-math.Pow(10, 1-k))
	}
	return append(qs, 100)
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
