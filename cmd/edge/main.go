// Command edge runs one edge of the gateway.
//
// With no configuration it runs on its own with the in-process backbone:
//
//	go run ./cmd/edge
//
// Every flag can also be set by the environment variable named in its help.
// See README.md ("Configuration").
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof" // served only on -debug-addr
	"os"
	"os/signal"
	"regexp"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/feedgate/feedgate/auth"
	"github.com/feedgate/feedgate/backbone"
	"github.com/feedgate/feedgate/gateway"
)

// Compile-time checks that the implementations satisfy the gateway's seams.
var (
	_ gateway.Backbone    = (*backbone.Relay)(nil)
	_ gateway.Backbone    = (*backbone.Local)(nil)
	_ gateway.Authorizer  = (*auth.Authorizer)(nil)
	_ gateway.TokenIssuer = (*auth.Authorizer)(nil)
	_ gateway.Revoker     = (*auth.Authorizer)(nil)

	_ gateway.HealthChecker  = (*backbone.Relay)(nil)
	_ gateway.BatchPublisher = (*backbone.Relay)(nil)
	_ gateway.BatchPublisher = (*backbone.Local)(nil)
)

type options struct {
	addr, debugAddr, metricsAddr, backbone, project, prefix, edgeID, apiKeys, logLevel string
	shards                                                                             int
	createTopics                                                                       bool
	shutdownTimeout, heartbeat, publishTimeout, drainPeriod, historyAge, gapWait       time.Duration
	warmHistory                                                                        time.Duration
	historySize                                                                        int
	sendQueue, maxFrame                                                                int
	deflate                                                                            bool
	limits                                                                             gateway.Limits // rates, connection caps (limits.go)
	allowedOrigins                                                                     []string
	tlsCert, tlsKey                                                                    string
	auth                                                                               authOptions
}

// version is the module version and VCS revision the binary was built
// from, as the Go toolchain recorded them.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, st := range bi.Settings {
		switch st.Key {
		case "vcs.revision":
			v += " " + st.Value
		case "vcs.modified":
			if st.Value == "true" {
				v += " (modified)"
			}
		}
	}
	return v
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "edge:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string, lookup func(string) (string, bool)) (options, error) {
	var o options
	ev := &environ{lookup: lookup}
	fs := flag.NewFlagSet("edge", flag.ContinueOnError)
	str := func(p *string, name, env, def, usage string) {
		fs.StringVar(p, name, ev.str(env, def), usage+" (env "+env+")")
	}
	str(&o.addr, "addr", "EDGE_ADDR", ":8080", "listen address for WebSocket and HTTP")
	str(&o.metricsAddr, "metrics-addr", "EDGE_METRICS_ADDR", "", "if set, serve Prometheus metrics at /metrics on this address (e.g. :9090)")
	str(&o.debugAddr, "debug-addr", "EDGE_DEBUG_ADDR", "", "if set, serve net/http/pprof on this address (keep it private)")
	str(&o.backbone, "backbone", "EDGE_BACKBONE", "auto", "local | pubsub | auto (pubsub when a project is set)")
	str(&o.project, "pubsub-project", "EDGE_PUBSUB_PROJECT", "", "Google Cloud project of the shard topics")
	str(&o.prefix, "pubsub-prefix", "EDGE_PUBSUB_PREFIX", "feedgate", "shard topic prefix: topics are <prefix>-<k>")
	str(&o.edgeID, "edge-id", "EDGE_ID", "", "this edge's unique ID, names its subscriptions (default: hostname + random)")
	str(&o.apiKeys, "api-keys", "EDGE_API_KEYS", "", "comma-separated API keys id:secret, each allowed every channel operation (per-key capabilities: -keys-file)")
	str(&o.logLevel, "log-level", "EDGE_LOG_LEVEL", "info", "debug | info | warn | error")
	fs.IntVar(&o.shards, "pubsub-shards", ev.int("EDGE_PUBSUB_SHARDS", 8), "number of shard topics, the same on every edge (env EDGE_PUBSUB_SHARDS)")
	fs.BoolVar(&o.createTopics, "create-topics", ev.bool("EDGE_CREATE_TOPICS", ev.str("PUBSUB_EMULATOR_HOST", "") != ""), "create missing shard topics at start (env EDGE_CREATE_TOPICS; default true with an emulator)")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", ev.duration("EDGE_SHUTDOWN_TIMEOUT", 30*time.Second), "how long a graceful stop may take (env EDGE_SHUTDOWN_TIMEOUT)")
	fs.DurationVar(&o.heartbeat, "heartbeat", ev.duration("EDGE_HEARTBEAT", 20*time.Second), "heartbeat interval; clients silent for 3x this are dropped (env EDGE_HEARTBEAT)")
	fs.DurationVar(&o.publishTimeout, "publish-timeout", ev.duration("EDGE_PUBLISH_TIMEOUT", 5*time.Second), "how long a publish may wait for Pub/Sub before it is nacked (env EDGE_PUBLISH_TIMEOUT)")
	fs.DurationVar(&o.gapWait, "gap-wait", ev.duration("EDGE_GAP_WAIT", 15*time.Second), "how long a message that arrived ahead of a missing predecessor waits for it before subscribers are told of the loss (env EDGE_GAP_WAIT)")
	fs.DurationVar(&o.drainPeriod, "drain-period", ev.duration("EDGE_DRAIN_PERIOD", 5*time.Second), "on SIGTERM, spread the clients' reconnect-elsewhere disconnects over this long (env EDGE_DRAIN_PERIOD)")
	fs.DurationVar(&o.historyAge, "history-age", ev.duration("EDGE_HISTORY_AGE", 2*time.Minute), "keep each channel's messages this long for rewind and resume (env EDGE_HISTORY_AGE)")
	fs.DurationVar(&o.warmHistory, "warm-history", ev.duration("EDGE_WARM_HISTORY", time.Minute), "at start, replay this much of the Pub/Sub topics (topics need message retention) so that clients of a restarted edge resume; at most -history-age; 0 turns it off, as pstest needs (env EDGE_WARM_HISTORY)")
	fs.IntVar(&o.historySize, "history-size", ev.int("EDGE_HISTORY_SIZE", 1000), "keep at most this many messages per channel (env EDGE_HISTORY_SIZE)")
	fs.IntVar(&o.sendQueue, "send-queue-bytes", ev.int("EDGE_SEND_QUEUE_BYTES", 1<<20), "per-connection send queue limit; past it a client is dropped as a slow consumer (env EDGE_SEND_QUEUE_BYTES)")
	fs.IntVar(&o.maxFrame, "max-frame-bytes", ev.int("EDGE_MAX_FRAME_BYTES", 64<<10), "largest client frame accepted (env EDGE_MAX_FRAME_BYTES)")
	fs.BoolVar(&o.deflate, "deflate", ev.bool("EDGE_DEFLATE", false), "offer permessage-deflate (no context takeover) to clients that ask; pays for full JSON frames only (env EDGE_DEFLATE)")
	lf := limitFlags(fs, ev, &o)
	authFlags(fs, ev, &o.auth)
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if err := lf.finish(&o); err != nil {
		ev.errs = append(ev.errs, err)
	}
	if len(ev.errs) > 0 {
		return o, errors.Join(ev.errs...)
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	return o, nil
}

func run() error {
	o, err := parseFlags(os.Args[1:], os.LookupEnv)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log)
	log.Info("edge starting", "version", version(), "go", runtime.Version())

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	certs, err := newCertReloader(ctx, o, log)
	if err != nil {
		return err
	}

	bb, err := newBackbone(ctx, o, log)
	if err != nil {
		return err
	}
	// Whoever creates the backbone closes it, on every return (after the
	// gateway's Shutdown, with a budget of its own): an edge that fails to
	// start must not leave its subscriptions behind for their TTL.
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := bb.Close(cctx); err != nil {
			log.Error("backbone close", "err", err)
		}
		log.Info("stopped")
	}()
	authz, err := newAuthorizer(ctx, o, log, os.Stderr)
	if err != nil {
		return err
	}
	reloadOnHUP(ctx, authz, log)
	var mx *metrics
	if o.metricsAddr != "" {
		if mx, err = newMetrics(); err != nil {
			return err
		}
		defer mx.mp.Shutdown(context.Background())
	}
	var observer gateway.Observer
	if mx != nil {
		observer = mx
	}
	srv, err := gateway.New(gateway.Config{
		Authorizer:        authz,
		Auth:              o.auth.gatewayAuth(isLocal(bb)),
		Observer:          observer,
		Logger:            log,
		HeartbeatInterval: o.heartbeat,
		SendQueueBytes:    o.sendQueue,
		MaxFrameSize:      o.maxFrame,
		Deflate:           o.deflate,
		DrainPeriod:       o.drainPeriod,
		HistoryAge:        o.historyAge,
		HistorySize:       o.historySize,
		Limits:            o.limits,
		AllowedOrigins:    o.allowedOrigins,
	}, bb)
	if err != nil {
		return err
	}
	if mx != nil {
		if err := mx.observe(srv, bb); err != nil {
			return err
		}
		if err := mx.observeLimits(srv); err != nil {
			return err
		}
		if err := mx.observeTLS(certs); err != nil {
			return err
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", mx.handler())
		mln, err := net.Listen("tcp", o.metricsAddr)
		if err != nil {
			return fmt.Errorf("-metrics-addr: %w", err)
		}
		go func() {
			if err := http.Serve(mln, mux); err != nil {
				log.Error("metrics server", "err", err)
			}
		}()
		log.Info("metrics (Prometheus)", "addr", mln.Addr().String())
	}
	if o.debugAddr != "" {
		go func() {
			log.Info("debug server (pprof)", "addr", o.debugAddr)
			if err := http.ListenAndServe(o.debugAddr, nil); err != nil {
				log.Error("debug server", "err", err)
			}
		}()
	}
	ln, err := gateway.Listen(ctx, o.addr)
	if err != nil {
		return err
	}
	if certs != nil {
		ln = gateway.NewTLSListener(ln, certs)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ctx, ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("stopping: draining connections", "timeout", o.shutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
	defer cancel()
	return srv.Shutdown(sctx)
}

// edgeBackbone is a backbone that reports its counters.
type edgeBackbone interface {
	gateway.Backbone
	statsSource
}

func newBackbone(ctx context.Context, o options, log *slog.Logger) (edgeBackbone, error) {
	kind := o.backbone
	if kind == "auto" {
		kind = "local"
		if o.project != "" {
			kind = "pubsub"
		}
	}
	switch kind {
	case "local":
		log.Info("backbone: in-process (single edge)")
		return backbone.NewLocal(backbone.LocalConfig{Logger: log, Order: backbone.OrderConfig{GapWait: o.gapWait}}), nil
	case "pubsub":
		if o.project == "" {
			return nil, errors.New("-backbone pubsub needs -pubsub-project")
		}
		id := o.edgeID
		if id == "" {
			id = defaultEdgeID()
		}
		emu := os.Getenv("PUBSUB_EMULATOR_HOST")
		log.Info("backbone: Cloud Pub/Sub", "project", o.project, "prefix", o.prefix, "shards", o.shards, "edge_id", id, "emulator", emu)
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return backbone.NewRelay(sctx, backbone.RelayConfig{
			Project:        o.project,
			EmulatorHost:   emu,
			TopicPrefix:    o.prefix,
			Shards:         o.shards,
			EdgeID:         id,
			CreateTopics:   o.createTopics,
			PublishTimeout: o.publishTimeout,
			Order:          backbone.OrderConfig{GapWait: o.gapWait},
			WarmHistory:    min(o.warmHistory, o.historyAge),
			Logger:         log,
		})
	}
	return nil, fmt.Errorf("-backbone %q: want local, pubsub or auto", kind)
}

var notIDChar = regexp.MustCompile(`[^A-Za-z0-9-]+`)

// defaultEdgeID is the hostname (a pod name under Kubernetes) plus a random
// suffix, so that a restarted edge never shares a subscription with its
// predecessor's leftovers.
func defaultEdgeID() string {
	h, _ := os.Hostname()
	h = strings.Trim(notIDChar.ReplaceAllString(h, "-"), "-")
	if len(h) > 40 {
		h = h[:40]
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	if h == "" {
		h = "edge"
	}
	return h + "-" + hex.EncodeToString(b[:])
}

// environ reads flag defaults from environment variables and collects
// those that do not parse: a typo in production configuration must stop
// the edge, not fall back to a default. An empty variable counts as unset.
type environ struct {
	lookup func(string) (string, bool)
	errs   []error
}

func (e *environ) get(k string) (string, bool) {
	v, ok := e.lookup(k)
	return v, ok && v != ""
}

func (e *environ) str(k, def string) string {
	if v, ok := e.get(k); ok {
		return v
	}
	return def
}

func envParse[T any](e *environ, k string, def T, parse func(string) (T, error)) T {
	s, ok := e.get(k)
	if !ok {
		return def
	}
	v, err := parse(s)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s=%q: %w", k, s, err))
		return def
	}
	return v
}

func (e *environ) int(k string, def int) int { return envParse(e, k, def, strconv.Atoi) }

func (e *environ) bool(k string, def bool) bool { return envParse(e, k, def, strconv.ParseBool) }

func (e *environ) duration(k string, def time.Duration) time.Duration {
	return envParse(e, k, def, time.ParseDuration)
}
