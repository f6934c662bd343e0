// Command peer is the comparison server of the load-test suite: a small
// WebSocket fan-out server built on github.com/centrifugal/centrifuge with its
// in-memory broker, configured with the library's defaults.
//
//	GET  /connection/websocket        Centrifuge bidirectional WebSocket (JSON protocol)
//	POST /api/publish?channel=CH      body = publication data (a JSON value)
//	GET  /readyz                      200 once the node runs
//
// Every connection is accepted anonymously, may subscribe to any channel and
// may publish to any channel from the client side (publish command).
// -debug-addr serves net/http/pprof.
package main

import (
	"context"
	"flag"
	"io"
	"log"
	"net/http"
	_ "net/http/pprof" // served on -debug-addr only
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/centrifugal/centrifuge"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8200", "listen address")
	debugAddr := flag.String("debug-addr", "", "if set, serve net/http/pprof on this address")
	flag.Parse()

	node, err := centrifuge.New(centrifuge.Config{LogLevel: centrifuge.LogLevelNone})
	if err != nil {
		log.Fatal(err)
	}
	node.OnConnecting(func(ctx context.Context, e centrifuge.ConnectEvent) (centrifuge.ConnectReply, error) {
		return centrifuge.ConnectReply{Credentials: &centrifuge.Credentials{UserID: ""}}, nil
	})
	node.OnConnect(func(c *centrifuge.Client) {
		c.OnSubscribe(func(e centrifuge.SubscribeEvent, cb centrifuge.SubscribeCallback) {
			cb(centrifuge.SubscribeReply{}, nil)
		})
		c.OnPublish(func(e centrifuge.PublishEvent, cb centrifuge.PublishCallback) {
			cb(centrifuge.PublishReply{}, nil)
		})
	})
	if err := node.Run(); err != nil {
		log.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.Handle("/connection/websocket", centrifuge.NewWebsocketHandler(node, centrifuge.WebsocketConfig{
		CheckOrigin: func(*http.Request) bool { return true },
	}))
	mux.HandleFunc("POST /api/publish", func(w http.ResponseWriter, r *http.Request) {
		ch := r.URL.Query().Get("channel")
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if ch == "" || err != nil || len(body) == 0 {
			http.Error(w, "need ?channel= and a body", http.StatusBadRequest)
			return
		}
		if _, err := node.Publish(ch, body); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, "{}")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })

	if *debugAddr != "" {
		go func() { log.Print(http.ListenAndServe(*debugAddr, http.DefaultServeMux)) }()
	}
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 20 * time.Second}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
		<-sig
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = node.Shutdown(ctx)
		os.Exit(0)
	}()
	log.Printf("centrifuge peer listening on %s", *addr)
	log.Fatal(srv.ListenAndServe())
}
