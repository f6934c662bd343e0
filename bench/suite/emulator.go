package suite

import (
	"fmt"
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
	logPath := filepath.Join(logDir, "pubsub-emulator.log")
	exited, err := startLogged(cmd, logPath)
	if err != nil {
		return nil, err
	}
	e := &emulator{cmd: cmd, Addr: addr, exited: exited}
	if err := waitHTTP("http://"+addr+"/", false, 90*time.Second, 250*time.Millisecond, exited); err != nil {
		e.stop()
		return nil, fmt.Errorf("pubsub emulator on %s %v: %s", addr, err, tail(logPath, 5))
	}
	return e, nil
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
