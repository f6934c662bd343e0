// Command pstestd runs the client library's pstest Pub/Sub server in a
// process of its own, for tests. pstest has data races of its own (it
// rewrites a message's AckId while a gRPC stream marshals it), so it must
// not run inside a test binary built with -race: pubsubtest builds this
// command without -race and starts it as a child process.
//
// It listens on two loopback ports chosen by the kernel and prints them as
// its first line on stdout:
//
//	pstestd grpc=127.0.0.1:PORT control=127.0.0.1:PORT
//
// The control port is plain HTTP, for exactly what tests need of pstest
// beyond the Pub/Sub API:
//
//	POST /clock?offset=2m      pstest's clock runs this far ahead of the real one
//	POST /drop-acks?match=-b   lose the acks and ack-deadline changes of the
//	                           subscriptions whose name contains -b ("" stops)
//	GET  /state                {"clock_offset_ns":..,"acks_dropped":..,"modacks_dropped":..}
//
// It exits when its standard input closes (the test process is gone) or
// on SIGTERM/SIGKILL.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("pstestd: ")
	d := &ackDropper{}
	var offset atomic.Int64 // nanoseconds added to pstest's clock
	srv := pstest.NewServerWithAddress("127.0.0.1:0",
		pstest.ServerReactorOption{FuncName: "Acknowledge", Reactor: d},
		pstest.ServerReactorOption{FuncName: "ModifyAckDeadline", Reactor: d})
	srv.SetTimeNowFunc(func() time.Time { return time.Now().Add(time.Duration(offset.Load())) })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /clock", func(w http.ResponseWriter, r *http.Request) {
		off, err := time.ParseDuration(r.URL.Query().Get("offset"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		offset.Store(int64(off))
	})
	mux.HandleFunc("POST /drop-acks", func(w http.ResponseWriter, r *http.Request) {
		d.setMatch(r.URL.Query().Get("match"))
	})
	mux.HandleFunc("GET /state", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]int64{
			"clock_offset_ns": offset.Load(),
			"acks_dropped":    d.acks.Load(),
			"modacks_dropped": d.modacks.Load(),
		})
	})
	go func() { log.Fatal(http.Serve(ln, mux)) }()

	fmt.Printf("pstestd grpc=%s control=%s\n", srv.Addr, ln.Addr())
	io.Copy(io.Discard, os.Stdin)
}

// ackDropper is a pstest reactor that, while it has a match, loses the acks
// and ack-deadline extensions sent for subscriptions whose name contains it:
// the subscriber believes it acked, the server never hears of it, and the
// messages are redelivered once their ack deadline lapses. That is what a
// lost ack or a network blip does to a real subscription.
type ackDropper struct {
	mu    sync.Mutex // guards match
	match string     // "" drops nothing

	acks    atomic.Int64 // ack IDs lost so far
	modacks atomic.Int64 // ack-deadline changes lost so far
}

func (d *ackDropper) setMatch(m string) {
	d.mu.Lock()
	d.match = m
	d.mu.Unlock()
}

func (d *ackDropper) drops(sub string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.match != "" && strings.Contains(sub, d.match)
}

// React implements pstest.Reactor.
func (d *ackDropper) React(req any) (handled bool, ret any, err error) {
	switch r := req.(type) {
	case *pubsubpb.AcknowledgeRequest:
		if d.drops(r.Subscription) {
			d.acks.Add(int64(len(r.AckIds)))
			return true, nil, nil
		}
	case *pubsubpb.ModifyAckDeadlineRequest:
		if d.drops(r.Subscription) {
			d.modacks.Add(int64(len(r.AckIds)))
			return true, nil, nil
		}
	}
	return false, nil, nil
}
