package e2e

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/feedgate/feedgate/client"
	"github.com/feedgate/feedgate/codec"
	"github.com/feedgate/feedgate/internal/pubsubtest"
)

// TestFaultRestartResume (issue 7, item 5): edge B is killed with SIGKILL
// under 5 reconnecting subscribers while a publisher on edge A goes on at
// 200 msg/s, and started again on the same port, with a new edge ID (a
// replaced pod) or the same one. The restarted edge replays the last minute
// of the shard topics (their message retention) into its history before it
// serves attaches, so every subscriber resumes: continuity `resumed`, with
// every message it missed while B was away, in order, none twice, and no
// `lost`. Before the replay, each got `lost` with 10 to 1,042 messages
// missing.
func TestFaultRestartResume(t *testing.T) {
	if !pubsubtest.EmulatorAvailable() {
		if os.Getenv("CI") != "" {
			t.Fatal("needs Google's Pub/Sub emulator (gcloud), required on CI")
		}
		t.Skip("needs Google's Pub/Sub emulator (gcloud): pstest's Seek drops payloads, so it cannot replay history")
	}
	bin := mustBuildEdge(t)
	srv := pubsubtest.MustStartEmulator(t)
	env := []string{"PUBSUB_EMULATOR_HOST=" + srv.Addr}
	for _, tc := range []struct {
		name   string
		sameID bool
	}{{"new-id", false}, {"same-id", true}} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := "warm-" + tc.name
			args := func(id string) []string {
				return []string{"-backbone", "pubsub", "-pubsub-project", project, "-pubsub-prefix", prefix, "-pubsub-shards", "2",
					"-log-level", "warn", "-edge-id", id, "-warm-history", "1m"}
			}
			a := mustStartEdgeProc(t, bin, env, args(prefix+"-a")...)
			baddr := fmt.Sprintf("127.0.0.1:%d", pubsubtest.FreePort(t))
			b := startEdgeProcAt(t, baddr, bin, env, args(prefix+"-b")...)
			b.mustBeReady(t)

			channels := channelNames(prefix, 4)
			const subscribers, perChannel = 5, 300
			var resumed, lost atomic.Int64
			sessions := make([]*client.Session, subscribers)
			trackers := make(map[*tracker]string, subscribers)
			for i := range subscribers {
				s := client.NewSession(client.SessionOptions{
					URLs:       []string{b.url},
					Options:    client.Options{Format: codec.Format(i % 2), Buffer: 1 << 12},
					MinBackoff: 20 * time.Millisecond,
					MaxBackoff: 500 * time.Millisecond,
					Logger:     quietLog(),
					OnAttached: func(_ string, at client.Attached) {
						switch at.Continuity {
						case codec.ContinuityResumed:
							resumed.Add(1)
						case codec.ContinuityLost:
							lost.Add(1)
						}
					},
				})
				t.Cleanup(func() { s.Close() })
				sessions[i] = s
				tr := newTracker()
				ch := channels[i%len(channels)]
				trackers[tr] = ch
				go func() {
					for m := range s.Messages() {
						tr.add(m)
					}
				}()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err := s.Attach(ctx, ch, codec.AttachOptions{})
				cancel()
				if err != nil {
					t.Fatalf("subscriber %d attach: %v", i, err)
				}
			}

			pub := client.NewSession(client.SessionOptions{URLs: []string{a.url}, Logger: quietLog()})
			defer pub.Close()
			var (
				wg        sync.WaitGroup
				b2        *edgeProc
				killedAt  int
				restarted time.Time
			)
			published := publishTicks(t, pub, channels, perChannel, 200, func(i int) {
				if i != perChannel*len(channels)/3 {
					return
				}
				killedAt = i
				if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				b.exited <- <-b.exited // reaped; the cleanup reads it again
				// Started again at once on the same port, while the
				// publisher goes on: what it publishes meanwhile, and what
				// B had not yet delivered, must come from the replay.
				wg.Go(func() {
					restarted = time.Now()
					b2 = startEdgeProcAt(t, baddr, bin, env, args(prefix+"-b")...)
				})
			})
			wg.Wait()
			b2.mustBeReady(t)
			ready := time.Since(restarted)
			waitAll(t, pub, trackers, perChannel, 90*time.Second)

			f := sumFigures(published, expectedOf(trackers, perChannel))
			reconnects := 0
			for _, s := range sessions {
				reconnects += s.Stats().Connects - 1
			}
			ff := faultFigures{published: published, delivered: f.delivered, lost: f.lost, duplicated: f.dups, reordered: f.reorders,
				signalledLost: int(lost.Load())}
			ff.check(t, "restart-resume/"+tc.name, fmt.Sprintf("subscribers=%d killed_after=%d reconnections=%d resumed=%d ready_after_restart=%v latency %s",
				subscribers, killedAt, reconnects, resumed.Load(), ready.Round(time.Millisecond), percentiles(f.latencies)))
			if lost.Load() != 0 {
				t.Errorf("%d re-attaches answered lost: the restarted edge's history did not cover what its subscribers missed", lost.Load())
			}
			if reconnects < subscribers || resumed.Load() < int64(subscribers) {
				t.Errorf("%d reconnections and %d resumed re-attaches for %d subscribers of the killed edge: want each to reconnect and resume", reconnects, resumed.Load(), subscribers)
			}
		})
	}
}
