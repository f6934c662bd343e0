package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/feedgate/feedgate/client"
	"github.com/feedgate/feedgate/codec"
	"github.com/feedgate/feedgate/internal/edgetest"
)

// TestFaultRestartSameID (issue 7, item 3): edge B is frozen with SIGSTOP
// for 2 s, killed with SIGKILL and started again with the same -edge-id
// (so it reuses its subscriptions, with what the dead process had leased
// on them) while a publisher on edge A goes on at 50 msg/s. Once B says it
// is ready, a subscriber on B gets the live stream, in order, without a
// stall: the previous process's leases have expired and B's streams were
// restarted before /readyz turned 200.
func TestFaultRestartSameID(t *testing.T) {
	bin := mustBuildEdge(t)
	srv := bestServer(t)
	env := []string{"PUBSUB_EMULATOR_HOST=" + srv.Addr}
	args := func(id string) []string {
		args := []string{"-backbone", "pubsub", "-pubsub-project", project, "-pubsub-prefix", "restart", "-pubsub-shards", "2", "-log-level", "warn", "-edge-id", id}
		return append(args, srv.EdgeArgs()...)
	}
	a := mustStartEdgeProc(t, bin, env, args("restart-a")...)
	b := mustStartEdgeProc(t, bin, env, args("restart-b")...)
	const ch = "restart:1"

	pub := edgetest.MustDial(t, a.url, client.Options{})
	edgetest.MustAttach(t, pub, ch, codec.AttachOptions{PublishOnly: true})
	stop := make(chan struct{})
	done := make(chan int, 1)
	go func() {
		s := 0
		defer func() { done <- s }()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for ; ; s++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_, err := pub.Publish(ctx, ch, fmt.Appendf(nil, `{"seq":%d}`, s), client.PublishOptions{ID: fmt.Sprint("m", s)})
			cancel()
			if err != nil {
				t.Errorf("publish %d: %v", s, err)
				return
			}
		}
	}()
	defer func() { close(stop); <-done }()

	before := edgetest.MustDial(t, b.url, client.Options{Buffer: 1 << 14})
	edgetest.MustAttach(t, before, ch, codec.AttachOptions{})
	edgetest.NextMessage(t, before)

	// Freeze, then kill: the process dies with messages leased to it.
	if err := b.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // the fault's duration
	if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	b.exited <- <-b.exited // reaped; the cleanup reads it again
	restarted := time.Now()
	b2 := mustStartEdgeProc(t, bin, env, args("restart-b")...)
	ready := time.Since(restarted)

	// Ready means delivering: the next messages arrive in order and
	// without a stall longer than a lease period.
	sub := edgetest.MustDial(t, b2.url, client.Options{Buffer: 1 << 14})
	edgetest.MustAttach(t, sub, ch, codec.AttachOptions{})
	attached := time.Now()
	var o orderCheck
	first := true
	var firstAfter, stall time.Duration
	start := 0
	last := time.Now()
	const want = 250 // 5 s of the stream
	for o.delivered < want {
		select {
		case m := <-sub.Messages():
			now := time.Now()
			if first {
				firstAfter = now.Sub(attached)
				var p struct{ Seq int }
				if err := json.Unmarshal(m.Data, &p); err != nil {
					t.Fatal(err)
				}
				start, o.next = p.Seq, p.Seq
				first = false
			}
			stall = max(stall, now.Sub(last))
			last = now
			o.add(t, m.Data)
		case <-time.After(60 * time.Second):
			// Generous on purpose (a busy machine must not fail it); the
			// stall it guards against was endless with the old code, and
			// the figure line shows the real one.
			t.Fatalf("restarted edge B said it was ready after %v but delivered %d messages, then nothing for 60 s", ready.Round(time.Millisecond), o.delivered)
		}
	}
	f := faultFigures{published: o.next - start, delivered: o.delivered, duplicated: o.dups, reordered: o.reorder,
		lost: (o.next - start) - (o.delivered - o.dups)}
	f.check(t, "restart-same-id", fmt.Sprintf("ready_after_restart=%v first_message_after_attach=%v longest_stall=%v",
		ready.Round(time.Millisecond), firstAfter.Round(time.Millisecond), stall.Round(time.Millisecond)))
}
