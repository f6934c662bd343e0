// Command oddsfeed publishes a simulated live odds feed (internal/oddsfeed)
// through an edge, paced at a rate, and prints what happened:
//
//	go run ./cmd/oddsfeed -edge http://127.0.0.1:8080 -key pub:0123456789abcdef -rate 500 -duration 1m
//
// Every update is the whole document of one market, published on that
// market's channel (odds:<sport>:<event>:m<n>) with the update's kind as the
// message name and an id unique to the run, so retries are idempotent.
// -transport http posts batches to POST /v1/channels/{channel}/messages
// (docs/protocol.md §16.1); -transport ws publishes over WebSocket with the
// Go client's Session, each channel attached publish_only. Either way one
// channel's updates are published one batch or one message at a time, in
// order; a retryable refusal is published again, same id, before anything
// after it on that channel (§10); other refusals are counted by code.
//
// It exits with status 1 when an update was refused or left unconfirmed.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/feedgate/feedgate/internal/oddsfeed"
)

// options are the command's settings, from flags and the environment.
type options struct {
	edge, key, transport, idPrefix string
	feed                           oddsfeed.Config
	duration                       time.Duration
	count                          int64
	workers                        int
	timeout, progress              time.Duration
}

func main() {
	o, err := parseFlags(os.Args[1:], os.LookupEnv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "oddsfeed:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	sum, err := run(ctx, o, os.Stderr, nil)
	sum.print(os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "oddsfeed:", err)
		os.Exit(1)
	}
	if !sum.clean() {
		os.Exit(1)
	}
}

func parseFlags(args []string, lookup func(string) (string, bool), usage io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("oddsfeed", flag.ContinueOnError)
	fs.SetOutput(usage)
	key, _ := lookup("ODDSFEED_KEY")
	fs.StringVar(&o.edge, "edge", "http://127.0.0.1:8080", "edge base URL (http:// or ws://, https:// or wss://)")
	fs.StringVar(&o.key, "key", key, "publisher API key id:secret (env ODDSFEED_KEY); empty for an edge with open publishing")
	fs.StringVar(&o.transport, "transport", "http", "http (batch POST per channel) | ws (WebSocket publish with the Go client)")
	fs.StringVar(&o.idPrefix, "id-prefix", "", "message ids are <prefix>-<n>; default a random prefix per run (the same prefix twice within the edge's dedup window delivers nothing)")
	rate := fs.Float64("rate", 200, "updates per second")
	seed := fs.Uint64("seed", 1, "simulator seed: the same seed publishes the same documents")
	fs.IntVar(&o.feed.Events, "events", 200, "live events")
	fs.IntVar(&o.feed.MarketsPerEvent, "markets", 30, "markets per event")
	fs.IntVar(&o.feed.MaxSelections, "max-selections", 20, "most selections in a market (2 to 100)")
	fs.Float64Var(&o.feed.BurstProb, "burst", 0.0002, "probability that a step is a goal (every market of an event suspended, reopened later); 0 for none")
	fs.Float64Var(&o.feed.SuspendProb, "suspend", 0.002, "probability that a step suspends one market; 0 for none")
	fs.Float64Var(&o.feed.SettleProb, "settle", 0.0005, "probability that a step settles one market (a new market, on a new channel, replaces it); 0 for none")
	fs.DurationVar(&o.duration, "duration", 0, "stop generating after this long (0: until -count, or SIGINT)")
	fs.Int64Var(&o.count, "count", 0, "stop after this many updates (0: until -duration, or SIGINT)")
	fs.IntVar(&o.workers, "workers", 0, "channels are spread over this many publishing workers, each with its own connection (default 8, or enough WebSocket connections for 400 channels each)")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "how long an update may wait for its acknowledgement, retries included, before it is left unconfirmed")
	fs.DurationVar(&o.progress, "progress", 10*time.Second, "print a progress line to stderr this often (0: never)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	o.feed.Seed, o.feed.Rate = *seed, *rate
	// The simulator's zero means its default; here 0 means none.
	for _, p := range []*float64{&o.feed.BurstProb, &o.feed.SuspendProb, &o.feed.SettleProb} {
		if *p == 0 {
			*p = -1
		}
	}
	switch {
	case !(*rate > 0) || math.IsInf(*rate, 0):
		return o, fmt.Errorf("-rate %v: want a positive number", *rate)
	case o.transport != "http" && o.transport != "ws":
		return o, fmt.Errorf("-transport %q: want http or ws", o.transport)
	case o.count < 0 || o.duration < 0 || o.workers < 0 || o.timeout <= 0 || o.progress < 0:
		return o, errors.New("-count, -duration, -workers and -progress must not be negative, -timeout must be positive")
	}
	if _, err := oddsfeed.New(o.feed); err != nil {
		return o, err
	}
	if o.workers == 0 {
		o.workers = 8
		if o.transport == "ws" {
			// An edge allows 512 channels per connection (protocol §13);
			// 400 leaves room for the markets that replace settled ones.
			o.workers = max(o.workers, (o.feed.Events*o.feed.MarketsPerEvent+399)/400)
		}
	}
	if o.idPrefix == "" {
		var b [6]byte
		_, _ = rand.Read(b[:])
		o.idPrefix = "sim" + strconv.FormatUint(o.feed.Seed, 10) + "-" + hex.EncodeToString(b[:])
	}
	return o, nil
}
