package suite

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ServerSpec says how to start one server under test.
type ServerSpec struct {
	Name      string        // "ours", "peer", "ceiling"
	Bin       string        // built binary
	Args      []string      // flags; the suite adds none
	Env       []string      // extra environment
	Addr      string        // listen address (loopback)
	DebugAddr string        // pprof address, "" if none
	ReadyPath string        // GET path answering 200 when ready
	Core      int           // CPU to pin to with taskset, -1 for none
	ReadyWait time.Duration // how long to wait for readiness (default 20 s)
}

// Proc is a running server.
type Proc struct {
	ServerSpec
	cmd     *exec.Cmd
	LogPath string
	exited  chan struct{}
}

// Start starts the server with GOMAXPROCS=1 (when pinned) and waits up to
// ReadyWait for its readiness path to answer 200.
func Start(s ServerSpec, logDir string) (*Proc, error) {
	var argv []string
	if s.Core >= 0 {
		argv = append(argv, "taskset", "-c", strconv.Itoa(s.Core))
	}
	argv = append(argv, s.Bin)
	argv = append(argv, s.Args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), s.Env...)
	if s.Core >= 0 {
		cmd.Env = append(cmd.Env, "GOMAXPROCS=1")
	}
	logPath := filepath.Join(logDir, s.Name+"-"+strings.ReplaceAll(s.Addr, ":", "_")+".log")
	exited, err := startLogged(cmd, logPath)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", s.Name, err)
	}
	p := &Proc{ServerSpec: s, cmd: cmd, LogPath: logPath, exited: exited}
	if s.ReadyWait == 0 {
		s.ReadyWait = 20 * time.Second
	}
	if err := waitHTTP("http://"+s.Addr+s.ReadyPath, true, s.ReadyWait, 50*time.Millisecond, exited); err != nil {
		p.Stop()
		return nil, fmt.Errorf("%s %v: %s", s.Name, err, tail(logPath, 5))
	}
	return p, nil
}

// startLogged starts cmd in its own process group (killed if the suite
// dies), its output going to logPath; the returned channel is closed when it
// has exited.
func startLogged(cmd *exec.Cmd, logPath string) (exited chan struct{}, err error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, err
	}
	exited = make(chan struct{})
	go func() { cmd.Wait(); lf.Close(); close(exited) }()
	return exited, nil
}

// waitHTTP polls url every poll until it answers (with 200 if want200)
// or wait has passed or the process has exited.
func waitHTTP(url string, want200 bool, wait, poll time.Duration, exited <-chan struct{}) error {
	c := http.Client{Timeout: 2 * time.Second}
	for end := time.Now().Add(wait); time.Now().Before(end); time.Sleep(poll) {
		select {
		case <-exited:
			return errors.New("exited during start")
		default:
		}
		if resp, err := c.Get(url); err == nil {
			resp.Body.Close()
			if !want200 || resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("not ready after %s", wait)
}

// Pid is the server's process id (taskset execs the server in place).
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Stop sends SIGTERM, waits up to 5 s, then kills the process group.
func (p *Proc) Stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
	}
}

// RSS returns the resident set size from /proc/PID/status, in bytes.
func (p *Proc) RSS() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid()))
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// clkTck is USER_HZ, the unit of /proc/PID/stat times; 100 on every Linux
// configuration Go supports here.
const clkTck = 100

// CPUTime returns user+system CPU time used so far, from /proc/PID/stat.
func (p *Proc) CPUTime() time.Duration {
	t, _ := procCPU(strconv.Itoa(p.Pid()))
	return t
}

// procCPU reads a process's user+system time and its process group from
// /proc/PID/stat.
func procCPU(pid string) (time.Duration, int) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, 0
	}
	// Fields after the command name, which is in parentheses.
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, 0
	}
	pgrp, _ := strconv.Atoi(f[2])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / clkTck, pgrp
}

// groupCPU sums the CPU time of the live processes of process group pgid.
func groupCPU(pgid int) time.Duration {
	ents, _ := os.ReadDir("/proc")
	var sum time.Duration
	for _, e := range ents {
		if n := e.Name(); n[0] >= '1' && n[0] <= '9' {
			if t, g := procCPU(n); g == pgid {
				sum += t
			}
		}
	}
	return sum
}

// GoHeap returns the live Go heap (HeapAlloc after a GC) from the server's
// pprof endpoint, when it serves one.
func (p *Proc) GoHeap() (int64, bool) {
	if p.DebugAddr == "" {
		return 0, false
	}
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + p.DebugAddr + "/debug/pprof/heap?gc=1&debug=1")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, false
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "# HeapAlloc = "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// Fetch saves a debug endpoint's body (a profile) to path.
func (p *Proc) Fetch(pathQuery, dst string, timeout time.Duration) error {
	if p.DebugAddr == "" {
		return fmt.Errorf("%s serves no debug address", p.Name)
	}
	c := http.Client{Timeout: timeout}
	resp, err := c.Get("http://" + p.DebugAddr + pathQuery)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", pathQuery, resp.Status)
	}
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}

// FreeAddr returns a loopback address with a port that was free a moment ago.
func FreeAddr() string {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
