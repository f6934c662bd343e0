package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/api/iterator"

	"github.com/feedgate/feedgate/internal/edgetest"
	"github.com/feedgate/feedgate/internal/pubsubtest"
)

// mustBuildEdge builds cmd/edge into a temporary directory.
func mustBuildEdge(tb testing.TB) string {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), "edge")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/feedgate/feedgate/cmd/edge")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build cmd/edge: %v\n%s", err, out)
	}
	return bin
}

type edgeProc struct {
	cmd     *exec.Cmd
	url     string
	metrics string // http://127.0.0.1:port/metrics
	log     *bytes.Buffer
	exited  chan error
}

func mustStartEdgeProc(tb testing.TB, bin string, env []string, args ...string) *edgeProc {
	tb.Helper()
	p := startEdgeProcAt(tb, fmt.Sprintf("127.0.0.1:%d", pubsubtest.FreePort(tb)), bin, env, args...)
	p.mustBeReady(tb)
	return p
}

// startEdgeProcAt starts an edge process listening on addr, without waiting
// for it (mustBeReady does); it is killed at the end of the test. It may be
// called from any goroutine.
func startEdgeProcAt(tb testing.TB, addr, bin string, env []string, args ...string) *edgeProc {
	maddr := fmt.Sprintf("127.0.0.1:%d", pubsubtest.FreePort(tb))
	p := &edgeProc{url: "ws://" + addr, metrics: "http://" + maddr + "/metrics", log: &bytes.Buffer{}, exited: make(chan error, 1)}
	// -open: these tests are about the backbone, not access control; they
	// say so rather than rely on a default.
	p.cmd = exec.Command(bin, append([]string{"-addr", addr, "-metrics-addr", maddr, "-open"}, args...)...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stderr = p.log
	// Gone with the test process, even if that is killed (a timeout).
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		tb.Error(err)
		close(p.exited)
		return p
	}
	go func() { p.exited <- p.cmd.Wait() }()
	tb.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
		if tb.Failed() {
			tb.Logf("edge %s log:\n%s", addr, p.log.String())
		}
	})
	return p
}

// mustBeReady waits for the edge to answer /readyz with 200. An edge
// restarted with the same ID is ready only once the previous process's
// leases expired (about 12 s); one that replays history, once the replay
// is over.
func (p *edgeProc) mustBeReady(tb testing.TB) {
	tb.Helper()
	addr := strings.TrimPrefix(p.url, "ws://")
	edgetest.WaitForWithin(tb, "edge process ready on "+addr, 60*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// TestTwoEdgeProcesses runs the fan-in scenario against two edge processes
// (the real binary) sharing one Pub/Sub server, then stops them with
// SIGTERM: each exits cleanly and deletes its subscriptions.
func TestTwoEdgeProcesses(t *testing.T) {
	bin := mustBuildEdge(t)
	for _, start := range pubsubtest.Servers(t) {
		srv := start(t)
		t.Run(srv.Name, func(t *testing.T) {
			env := []string{"PUBSUB_EMULATOR_HOST=" + srv.Addr}
			common := []string{"-backbone", "pubsub", "-pubsub-project", project, "-pubsub-prefix", "procs", "-pubsub-shards", "2", "-log-level", "warn"}
			common = append(common, srv.EdgeArgs()...)
			a := mustStartEdgeProc(t, bin, env, append(common, "-edge-id", "proc-a")...)
			b := mustStartEdgeProc(t, bin, env, append(common, "-edge-id", "proc-b")...)
			k := 8
			if srv.Name == "emulator" {
				k = 40
			}
			fanInScenario(t, []string{a.url, b.url}, k, 90*time.Second)

			// Each edge's subscriptions: "procs-<k>-<id>", with "_<origin>"
			// after it when the edge replays history (the emulator).
			admin := pubsubtest.MustClient(t, srv, project).SubscriptionAdminClient
			subscriptions := func() []string {
				var out []string
				it := admin.ListSubscriptions(context.Background(), &pubsubpb.ListSubscriptionsRequest{Project: "projects/" + project})
				for {
					sub, err := it.Next()
					if err == iterator.Done {
						return out
					}
					if err != nil {
						t.Fatalf("list subscriptions: %v", err)
					}
					for _, id := range []string{"proc-a", "proc-b"} {
						for k := 0; k < 2; k++ {
							base := fmt.Sprintf("projects/%s/subscriptions/procs-%d-%s", project, k, id)
							if sub.Name == base || strings.HasPrefix(sub.Name, base+"_") {
								out = append(out, sub.Name)
							}
						}
					}
				}
			}
			if subs := subscriptions(); len(subs) != 4 {
				t.Fatalf("the two running edges have subscriptions %q, want 2 each", subs)
			}
			for _, p := range []*edgeProc{a, b} {
				if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
				select {
				case err := <-p.exited:
					if err != nil {
						t.Fatalf("edge exited with %v:\n%s", err, p.log.String())
					}
					p.exited <- err // for the cleanup
				case <-time.After(30 * time.Second):
					t.Fatalf("edge did not stop within 30s of SIGTERM")
				}
			}
			if subs := subscriptions(); len(subs) != 0 {
				t.Errorf("subscriptions %q left after a graceful stop, want none", subs)
			}
		})
	}
}

// TestMetrics: the edge process exports its counters and latency histograms
// for Prometheus.
func TestMetrics(t *testing.T) {
	p := mustStartEdgeProc(t, mustBuildEdge(t), nil)
	api := "http://" + p.url[len("ws://"):]
	for i := 0; i < 3; i++ {
		resp, err := http.Post(api+"/v1/channels/m/messages", "application/json", strings.NewReader(`{"data":1}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	resp, err := http.Get(p.metrics)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{"feedgate_backbone_published_total 3", "feedgate_connections ", "feedgate_backbone_gaps_total 0",
		// The latency histograms, one observation per message.
		`feedgate_publish_duration_seconds_count{outcome="acked"} 3`,
		"feedgate_delivery_lag_seconds_count 3",
		`feedgate_fanout_duration_seconds_count{subscribers="0"} 3`,
		`feedgate_publish_duration_seconds_bucket{outcome="acked",le="10"} 3`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
}
