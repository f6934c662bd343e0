package pubsubtest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"github.com/feedgate/feedgate/internal/edgetest"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Server is a running Pub/Sub API server.
type Server struct {
	Name string // "pstest" or "emulator"
	Addr string // host:port, plaintext gRPC
	// Fake controls the pstest server (nil for the emulator), for tests
	// that move its clock or lose acks.
	Fake *Fake
}

// EdgeArgs are the flags an edge process needs on this server: pstest's
// Seek drops payloads, so an edge on pstest does not replay history at start.
func (s Server) EdgeArgs() []string {
	if s.Name == "pstest" {
		return []string{"-warm-history", "0"}
	}
	return nil
}

// MustStartPstest starts the client library's pstest server on loopback, in
// a process of its own (see internal/cmd/pstestd), and kills it at the end
// of the test. pstest has data races of its own; out of process, the race
// detector of a -race test binary never sees them.
func MustStartPstest(tb testing.TB) Server {
	tb.Helper()
	bin := pstestdBinary(tb)
	cmd := exec.Command(bin)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL} // gone with the test process, even if it is killed
	var stderr edgetest.SyncBuffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe() // pstestd exits when this closes
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start pstestd: %v", err)
	}
	exited := make(chan struct{})
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- line
		io.Copy(io.Discard, stdout)
		cmd.Wait()
		close(exited)
	}()
	tb.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		stdin.Close()
		<-exited
	})
	var line string
	select {
	case line = <-lines:
	case <-time.After(60 * time.Second):
		tb.Fatalf("pstestd said nothing within 60s: %s", stderr.String())
	}
	var grpcAddr, ctlAddr string
	if _, err := fmt.Sscanf(line, "pstestd grpc=%s control=%s", &grpcAddr, &ctlAddr); err != nil {
		select { // if it died, all it said is in stderr once it is reaped
		case <-exited:
		case <-time.After(5 * time.Second):
		}
		tb.Fatalf("pstestd: first line %q: %v; stderr: %s", line, err, stderr.String())
	}
	return Server{Name: "pstest", Addr: grpcAddr, Fake: &Fake{base: "http://" + ctlAddr}}
}

// pstestdBinary builds internal/cmd/pstestd, without -race, once per test
// process.
func pstestdBinary(tb testing.TB) string {
	tb.Helper()
	pstestd.once.Do(func() {
		dir, err := buildDir()
		if err != nil {
			pstestd.err = err
			return
		}
		bin := filepath.Join(dir, "pstestd")
		cmd := exec.Command("go", "build", "-o", bin, "github.com/feedgate/feedgate/internal/cmd/pstestd")
		cmd.Env = append(os.Environ(), "GOFLAGS="+withoutRace(os.Getenv("GOFLAGS")))
		if out, err := cmd.CombinedOutput(); err != nil {
			pstestd.err = fmt.Errorf("go build internal/cmd/pstestd: %v\n%s", err, out)
			return
		}
		pstestd.bin = bin
	})
	if pstestd.err != nil {
		tb.Fatal(pstestd.err)
	}
	return pstestd.bin
}

var pstestd struct {
	once sync.Once
	bin  string
	err  error
}

// buildDir is where pstestd is built: beside the test binary when that is
// in go test's own work directory ($TMPDIR/go-build.../b001, which go test
// removes when it ends), else a new temporary directory, left behind.
func buildDir() (string, error) {
	if exe, err := os.Executable(); err == nil {
		dir := filepath.Dir(exe)
		rel, err := filepath.Rel(os.TempDir(), dir)
		if err == nil && filepath.IsLocal(rel) && strings.HasPrefix(rel, "go-build") && strings.Contains(rel, string(filepath.Separator)) {
			return dir, nil
		}
	}
	return os.MkdirTemp("", "pstestd-")
}

// withoutRace drops -race from a GOFLAGS value.
func withoutRace(goflags string) string {
	var keep []string
	for _, f := range strings.Fields(goflags) {
		if f != "-race" && f != "-race=true" {
			keep = append(keep, f)
		}
	}
	return strings.Join(keep, " ")
}

// EmulatorAvailable reports whether gcloud (with its Pub/Sub emulator) is on PATH.
func EmulatorAvailable() bool {
	_, err := exec.LookPath("gcloud")
	return err == nil
}

// Servers returns the servers a backbone test should run against: pstest
// always, and Google's emulator when gcloud is installed. On CI (CI set)
// the emulator is required: its absence fails the test instead of quietly
// narrowing coverage.
func Servers(tb testing.TB) []func(testing.TB) Server {
	tb.Helper()
	out := []func(testing.TB) Server{MustStartPstest}
	switch {
	case EmulatorAvailable():
		out = append(out, MustStartEmulator)
	case os.Getenv("CI") != "":
		tb.Fatal("CI: gcloud (Pub/Sub emulator) is not installed; .ci/run must provide it")
	default:
		tb.Log("Google Pub/Sub emulator not found (install the Google Cloud SDK with the pubsub-emulator component); running against pstest only")
	}
	return out
}

// MustStartEmulator starts Google's Pub/Sub emulator on a free loopback port
// and stops it (its whole process group) at the end of the test.
func MustStartEmulator(tb testing.TB) Server {
	tb.Helper()
	e := MustStartEmulatorAt(tb, fmt.Sprintf("127.0.0.1:%d", FreePort(tb)))
	return e.Server()
}

// Emulator is Google's Pub/Sub emulator on a fixed address, which a test
// can kill and start again, empty: a backbone that crashed and came back
// with nothing.
type Emulator struct {
	tb   testing.TB
	addr string

	mu   sync.Mutex // guards kill
	kill func()     // kills the running process; nil when none runs
}

// MustStartEmulatorAt starts the emulator on addr. The end of the test kills
// whichever process runs then (registered now, so it runs after the
// cleanups of what the test starts later, such as edges).
func MustStartEmulatorAt(tb testing.TB, addr string) *Emulator {
	tb.Helper()
	e := &Emulator{tb: tb, addr: addr}
	tb.Cleanup(e.Kill)
	e.Start()
	return e
}

// Server describes the emulator for clients.
func (e *Emulator) Server() Server { return Server{Name: "emulator", Addr: e.addr} }

// Kill kills the running emulator (its whole process group) with SIGKILL.
func (e *Emulator) Kill() {
	e.mu.Lock()
	k := e.kill
	e.kill = nil
	e.mu.Unlock()
	if k != nil {
		k()
	}
}

// Start starts the emulator, empty, and waits until it listens.
func (e *Emulator) Start() {
	tb := e.tb
	tb.Helper()
	cmd := exec.Command("gcloud", "beta", "emulators", "pubsub", "start",
		"--host-port="+e.addr, "--project=test", "--quiet")
	cmd.Env = append(os.Environ(), "CLOUDSDK_CORE_DISABLE_PROMPTS=1")
	var out edgetest.SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL} // gone with the test process, even if it is killed
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start emulator: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	e.mu.Lock()
	e.kill = func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
	e.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", e.addr)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-exited:
			tb.Fatalf("emulator exited: %s", out.String())
		case <-ctx.Done():
			tb.Fatalf("emulator not listening on %s after 60s: %s", e.addr, out.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// MustClient returns a Pub/Sub client of srv, closed at the end of the test.
func MustClient(tb testing.TB, srv Server, project string) *pubsub.Client {
	tb.Helper()
	c, err := pubsub.NewClient(context.Background(), project,
		option.WithEndpoint(srv.Addr), option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}
