package suite

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// emulator is Google's Pub/Sub emulator started by the suite.
type emulator struct {
	cmd    *exec.Cmd
	Addr   string
	exited chan struct{}
}

// startEmulator runs `gcloud beta emulators pubsub start` on a free
// loopback port in its own process group and waits (up to 90 s) until it
// answers HTTP.
func startEmulator(gcloud, logDir string) (*emulator, error) {
	addr := FreeAddr()
	dataDir := filepath.Join(logDir, "pubsub-data")
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, err
	}
	cmd := exec.Command(gcloud, "beta", "emulators", "pubsub", "start", "--host-port="+addr, "--project=bench",
		"--data-dir="+dataDir, "--quiet")
	lf, err := os.Create(filepath.Join(logDir, "pubsub-emulator.log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, err
	}
	e := &emulator{cmd: cmd, Addr: addr, exited: make(chan struct{})}
	go func() { cmd.Wait(); lf.Close(); close(e.exited) }()
	c := http.Client{Timeout: 2 * time.Second}
	for end := time.Now().Add(90 * time.Second); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		select {
		case <-e.exited:
			return nil, fmt.Errorf("pubsub emulator exited: %s", tail(lf.Name(), 5))
		default:
		}
		if resp, err := c.Get("http://" + addr + "/"); err == nil {
			resp.Body.Close()
			return e, nil
		}
	}
	e.stop()
	return nil, fmt.Errorf("pubsub emulator not answering on %s after 90 s", addr)
}

// stop ends the emulator's whole process group (gcloud starts a JVM).
func (e *emulator) stop() {
	pg := -e.cmd.Process.Pid
	syscall.Kill(pg, syscall.SIGTERM)
	select {
	case <-e.exited:
	case <-time.After(5 * time.Second):
	}
	syscall.Kill(pg, syscall.SIGKILL) // the JVM may outlive gcloud's wrapper
	<-e.exited
}

// CPUTime is the CPU time of the emulator's live processes (gcloud's wrapper
// and the JVM).
func (e *emulator) CPUTime() time.Duration { return groupCPU(e.cmd.Process.Pid) }
