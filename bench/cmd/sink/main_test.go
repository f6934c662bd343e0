package main

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/feedgate/feedgate/bench/loadgen"
)

// TestSink opens subscribed connections to the sink with the epoll dialer,
// then cycles connections through it for a moment: every one must be
// answered, and the readiness check must get 200.
func TestSink(t *testing.T) {
	ln, addr, err := listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go serve(ln) // runs until the test binary exits
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("readyz: %v %v", resp, err)
	}
	resp.Body.Close()

	tg := loadgen.Target{Name: "sink", Kind: loadgen.Ours, Addr: addr, Format: "json"}
	r, err := loadgen.NewReader(tg, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	channels := make([]string, 4)
	subs := make([]*loadgen.Sub, 100)
	for i := range channels {
		channels[i] = fmt.Sprint("c", i)
	}
	for i := range subs {
		subs[i] = loadgen.NewSub(i, []int32{int32(i % 4), int32((i + 1) % 4)})
	}
	if cr := loadgen.Connect(r, subs, channels, 32, 100, 10*time.Second); cr.Attached != 100 || cr.Failed != 0 {
		t.Fatalf("%+v", cr)
	}
	r.DropAll()
	rr := loadgen.ConnectRate(r, loadgen.RateOptions{Channels: channels, InFlight: 16, Window: 200 * time.Millisecond, DialTimeout: 5 * time.Second})
	if rr.Failed != 0 || rr.Attached == 0 || rr.Attached != rr.Started {
		t.Fatalf("%+v", rr)
	}
	if _, _, err := listen("192.0.2.1:80"); err == nil {
		t.Fatal("listened outside loopback")
	}
}
