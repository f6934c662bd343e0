package pubsubtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/pstest"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Server is a running Pub/Sub API server.
type Server struct {
	Name string // "pstest" or "emulator"
	Addr string // host:port, plaintext gRPC
	// Fake is the pstest server itself (nil for the emulator), for tests
	// that control its clock.
	Fake *pstest.Server
}

// MustStartPstest starts the client library's pstest server on loopback.
func MustStartPstest(tb testing.TB) Server {
	return MustStartPstestWith(tb)
}

// MustStartPstestWith starts pstest with reactors (see AckDropper).
func MustStartPstestWith(tb testing.TB, opts ...pstest.ServerReactorOption) Server {
	tb.Helper()
	srv := pstest.NewServerWithAddress("127.0.0.1:0", opts...)
	tb.Cleanup(func() { srv.Close() })
	return Server{Name: "pstest", Addr: srv.Addr, Fake: srv}
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
	port := FreePort(tb)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command("gcloud", "beta", "emulators", "pubsub", "start",
		"--host-port="+addr, "--project=test", "--quiet")
	cmd.Env = append(os.Environ(), "CLOUDSDK_CORE_DISABLE_PROMPTS=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start emulator: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	tb.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-exited:
			tb.Fatalf("emulator exited: %s", out.String())
		case <-ctx.Done():
			tb.Fatalf("emulator not listening on %s after 60s: %s", addr, out.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	return Server{Name: "emulator", Addr: addr}
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
