// Command peer serves the load-test suite's comparison server (package
// peer: Centrifuge with its in-memory broker) on -addr, and net/http/pprof
// on -debug-addr when set. -history-size and -history-ttl turn on channel
// history and recovery; -delta lets subscribers negotiate fossil deltas.
package main

import (
	"context"
	"flag"
	"log"
	"net/http"
	_ "net/http/pprof" // served on -debug-addr only
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/feedgate/feedgate/bench/peer"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8200", "listen address")
	debugAddr := flag.String("debug-addr", "", "if set, serve net/http/pprof on this address")
	var opt peer.Options
	flag.IntVar(&opt.HistorySize, "history-size", 0, "with -history-ttl: keep this many publications per channel and allow recovery (0: no history, the library default)")
	flag.DurationVar(&opt.HistoryTTL, "history-ttl", 0, "with -history-size: keep publications this long")
	flag.BoolVar(&opt.Delta, "delta", false, "let subscribers negotiate fossil deltas (keeps each channel's last publication as the base when -history-size is 0)")
	flag.Parse()

	node, handler, err := peer.New(opt)
	if err != nil {
		log.Fatal(err)
	}
	if *debugAddr != "" {
		go func() { log.Print(http.ListenAndServe(*debugAddr, http.DefaultServeMux)) }()
	}
	srv := &http.Server{Addr: *addr, Handler: handler, ReadHeaderTimeout: 20 * time.Second}
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
