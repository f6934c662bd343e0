package suite

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Machine describes where the figures were measured.
type Machine struct {
	NProc     int    `json:"nproc"`
	CPUModel  string `json:"cpu_model"`
	Kernel    string `json:"kernel"`
	GoVersion string `json:"go_version"`
	MemTotal  string `json:"mem_total"`
	NoFile    uint64 `json:"nofile_limit"`
	Clock     string `json:"clocksource"`
}

// DescribeMachine reads the machine's description from /proc and uname.
func DescribeMachine() Machine {
	m := Machine{NProc: OnlineCPUs(), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Sysname[:]) + " " + unix.ByteSliceToString(u.Release[:]) +
			" " + unix.ByteSliceToString(u.Machine[:])
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				m.MemTotal = strings.TrimSpace(v)
			}
		}
	}
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil {
		m.NoFile = rl.Max
	}
	if b, err := os.ReadFile("/sys/devices/system/clocksource/clocksource0/current_clocksource"); err == nil {
		m.Clock = strings.TrimSpace(string(b))
	}
	return m
}

// cpuSelf returns the generator's own user+system CPU time (getrusage).
func cpuSelf() float64 {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// cpuStat returns, from the first line of /proc/stat, the CPU time spent
// in processes (user, nice, system) and in soft interrupts (where much of
// the loopback's TCP work lands, charged to no process), in seconds.
func cpuStat() (procs, softirq float64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, 0
	}
	v := func(i int) float64 { n, _ := strconv.ParseInt(f[i], 10, 64); return float64(n) / clkTck }
	return v(1) + v(2) + v(3), v(7)
}

// waitQuiet waits, at most max, until the processes other than the known
// ones (server, generator, other parts of the system under test; known
// returns their CPU time in seconds) use less than noiseCPU % of a core over
// half a second, and returns that share as last measured.
func waitQuiet(known func() float64, max time.Duration) float64 {
	other := 0.0
	for end := time.Now().Add(max); ; {
		p0, _ := cpuStat()
		k0, t0 := known(), time.Now()
		time.Sleep(500 * time.Millisecond)
		p1, _ := cpuStat()
		other = 100 * (p1 - p0 - (known() - k0)) / time.Since(t0).Seconds()
		if other < noiseCPU || time.Now().After(end) {
			return other
		}
	}
}

// coreBusy returns, per CPU from /proc/stat's cpuN lines, the time it
// spent busy (user, nice, system, irq, softirq) in seconds: unlike a
// process's own times it includes the soft interrupts that ran on the core,
// where much of the loopback's TCP work lands.
func coreBusy() []float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil
	}
	var out []float64
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		n, err := strconv.Atoi(f[0][3:])
		if err != nil || n < 0 || n > 4096 {
			continue
		}
		for len(out) <= n {
			out = append(out, 0)
		}
		v := func(i int) float64 { x, _ := strconv.ParseInt(f[i], 10, 64); return float64(x) / clkTck }
		out[n] = v(1) + v(2) + v(3) + v(6) + v(7)
	}
	return out
}

// coreSplit returns the busy seconds between two coreBusy readings of the
// server's core and of all the other cores (the generator's) together.
func coreSplit(a, b []float64, serverCore int) (server, others float64) {
	for i := range min(len(a), len(b)) {
		if i == serverCore {
			server += b[i] - a[i]
		} else {
			others += b[i] - a[i]
		}
	}
	return server, others
}
