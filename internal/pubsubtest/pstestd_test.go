package pubsubtest

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
)

// TestNoPstestInTestBinaries: no test binary of this module links pstest,
// so `go test -race` never instruments its data races.
func TestNoPstestInTestBinaries(t *testing.T) {
	out, err := exec.Command("go", "list", "github.com/feedgate/feedgate/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []string
	for _, pkg := range strings.Fields(string(out)) {
		if pkg != "github.com/feedgate/feedgate/internal/cmd/pstestd" { // the one place it belongs
			pkgs = append(pkgs, pkg)
		}
	}
	out, err = exec.Command("go", append([]string{"list", "-deps", "-test"}, pkgs...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasSuffix(pkg, "/pstest") {
			t.Errorf("a test binary links %s: start pstest with MustStartPstest (a child process) instead", pkg)
		}
	}
}

// TestPstestdNotRaceBuilt: the child process is built without -race, even
// when GOFLAGS asks for it.
func TestPstestdNotRaceBuilt(t *testing.T) {
	t.Setenv("GOFLAGS", "-race")
	srv := MustStartPstest(t) // builds pstestd if no test has yet
	if srv.Fake == nil {
		t.Fatal("no control of pstest")
	}
	bin := pstestdBinary(t)
	t.Logf("pstestd: %s", bin)
	out, err := exec.Command("go", "version", "-m", bin).CombinedOutput()
	if err != nil {
		t.Fatalf("go version -m: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "-race=true") {
		t.Errorf("pstestd was built with -race:\n%s", out)
	}
}

// TestPstestdControls: an ack lost by DropAcks leaves the message to be
// redelivered once SetClockOffset moves past its ack deadline; an ack sent
// with dropping off is kept.
func TestPstestdControls(t *testing.T) {
	srv := MustStartPstest(t)
	c := MustClient(t, srv, "p")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topic, sub := "projects/p/topics/t", "projects/p/subscriptions/s-lossy"
	if _, err := c.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: topic}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{Name: sub, Topic: topic, AckDeadlineSeconds: 10}); err != nil {
		t.Fatal(err)
	}
	publish := func(data string) {
		t.Helper()
		if _, err := c.TopicAdminClient.Publish(ctx, &pubsubpb.PublishRequest{Topic: topic, Messages: []*pubsubpb.PubsubMessage{{Data: []byte(data)}}}); err != nil {
			t.Fatal(err)
		}
	}
	// pull returns the data of the next non-empty pull, and acks it.
	pull := func() []string {
		t.Helper()
		for ctx.Err() == nil {
			resp, err := c.SubscriptionAdminClient.Pull(ctx, &pubsubpb.PullRequest{Subscription: sub, MaxMessages: 10})
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.ReceivedMessages) == 0 {
				continue
			}
			var data, ids []string
			for _, m := range resp.ReceivedMessages {
				data = append(data, string(m.Message.Data))
				ids = append(ids, m.AckId)
			}
			if err := c.SubscriptionAdminClient.Acknowledge(ctx, &pubsubpb.AcknowledgeRequest{Subscription: sub, AckIds: ids}); err != nil {
				t.Fatal(err)
			}
			return data
		}
		t.Fatal("nothing pulled within 30s")
		return nil
	}

	srv.Fake.DropAcks(t, "-lossy")
	publish("1")
	if got := pull(); len(got) != 1 || got[0] != "1" {
		t.Fatalf("pulled %q, want [1]", got)
	}
	if d := srv.Fake.Dropped(t); d.Acks != 1 {
		t.Fatalf("%+v dropped, want 1 ack", d)
	}
	srv.Fake.DropAcks(t, "")
	srv.Fake.SetClockOffset(t, time.Minute) // past the 10s ack deadline
	if got := pull(); len(got) != 1 || got[0] != "1" {
		t.Fatalf("after the clock jump pulled %q, want the lost ack's message 1 again", got)
	}
	// That ack was kept: past its deadline again, only the new message comes.
	srv.Fake.SetClockOffset(t, 2*time.Minute)
	publish("2")
	if got := pull(); len(got) != 1 || got[0] != "2" {
		t.Fatalf("pulled %q, want [2] (an ack sent with dropping off was lost)", got)
	}
	if d := srv.Fake.Dropped(t); d.Acks != 1 {
		t.Fatalf("%+v dropped, want still 1 ack", d)
	}
}
