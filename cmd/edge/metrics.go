package main

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/feedgate/feedgate/backbone"
	"github.com/feedgate/feedgate/gateway"
)

// statsSource is what both backbones report.
type statsSource interface{ Stats() *backbone.Stats }

// metrics exposes the gateway's and the backbone's counters as
// OpenTelemetry instruments, exported for Prometheus, plus three latency
// histograms recorded once per message. The counters are observed at scrape
// time from counters the hot path keeps anyway.
type metrics struct {
	reg      *prometheus.Registry
	mp       *sdkmetric.MeterProvider
	m        metric.Meter
	publish  metric.Float64Histogram
	lag      metric.Float64Histogram
	fanout   metric.Float64Histogram
	acked    metric.MeasurementOption
	refused  metric.MeasurementOption
	noAttrs  metric.MeasurementOption
	fanSizes []metric.MeasurementOption
}

// latencyBuckets (seconds) resolve what matters for odds: single
// milliseconds up to the seconds of an outage.
var latencyBuckets = []float64{0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10}

func newMetrics() (*metrics, error) {
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	x := &metrics{reg: reg, mp: mp, m: mp.Meter("github.com/feedgate/feedgate")}
	hist := func(name, desc string) metric.Float64Histogram {
		h, _ := x.m.Float64Histogram(name, metric.WithDescription(desc), metric.WithUnit("s"),
			metric.WithExplicitBucketBoundaries(latencyBuckets...))
		return h
	}
	x.publish = hist("feedgate.publish.duration", "From a publish reaching the backbone to its ack or nack (outcome=acked|refused).")
	x.lag = hist("feedgate.delivery.lag", "From the origin edge accepting a message to this edge starting its fan-out (across edges: the backbone plus clock difference).")
	x.fanout = hist("feedgate.fanout.duration", "Time to queue one message to all of this edge's subscribers of its channel (by subscribers bucket).")
	x.acked = metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", "acked")))
	x.refused = metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", "refused")))
	x.noAttrs = metric.WithAttributeSet(attribute.NewSet())
	for _, b := range fanoutSizeBuckets {
		x.fanSizes = append(x.fanSizes, metric.WithAttributeSet(attribute.NewSet(attribute.String("subscribers", b.label))))
	}
	return x, nil
}

// fanoutSizeBuckets label the fan-out histogram by audience size (a bounded
// set of labels, unlike the channel name).
var fanoutSizeBuckets = []struct {
	max   int
	label string
}{{0, "0"}, {10, "1-10"}, {100, "11-100"}, {1000, "101-1000"}, {10000, "1001-10000"}, {int(^uint(0) >> 1), "10001+"}}

// Published implements gateway.Observer.
func (x *metrics) Published(d time.Duration, err error) {
	opt := x.acked
	if err != nil {
		opt = x.refused
	}
	x.publish.Record(context.Background(), d.Seconds(), opt)
}

// Delivered implements gateway.Observer.
func (x *metrics) Delivered(lag, fanout time.Duration, subscribers int) {
	ctx := context.Background()
	x.lag.Record(ctx, max(lag, 0).Seconds(), x.noAttrs)
	i := 0
	for subscribers > fanoutSizeBuckets[i].max {
		i++
	}
	x.fanout.Record(ctx, fanout.Seconds(), x.fanSizes[i])
}

func (x *metrics) handler() http.Handler { return promhttp.HandlerFor(x.reg, promhttp.HandlerOpts{}) }

// observe registers the counters of srv and bb.
func (x *metrics) observe(srv *gateway.Server, bb statsSource) error {
	m := x.m
	gauge := func(name, desc string) metric.Int64ObservableGauge {
		g, _ := m.Int64ObservableGauge(name, metric.WithDescription(desc))
		return g
	}
	counter := func(name, desc string) metric.Int64ObservableCounter {
		c, _ := m.Int64ObservableCounter(name, metric.WithDescription(desc))
		return c
	}
	var (
		conns      = gauge("feedgate.connections", "Open client connections.")
		deliveries = counter("feedgate.deliveries", "Message frames queued to subscribers.")
		slow       = counter("feedgate.slow_consumers", "Connections dropped because their send queue overflowed.")
		bad        = counter("feedgate.bad_frames", "Client frames refused as malformed or invalid.")
		idle       = counter("feedgate.idle_drops", "Connections dropped for not answering heartbeats.")
		stuck      = counter("feedgate.write_timeouts", "Connections dropped because a write made no progress.")
		bbIn       = counter("feedgate.backbone.delivered", "Messages the backbone handed to this edge (after dedup).")
		bbDup      = counter("feedgate.backbone.duplicates", "Messages dropped by the dedup cache.")
		bbPub      = counter("feedgate.backbone.published", "Publishes accepted by the backbone.")
		bbPubErr   = counter("feedgate.backbone.publish_errors", "Publishes refused or timed out (nacked).")
		bbRetry    = counter("feedgate.backbone.publish_retries", "Publishes of a message ID already accepted or in flight.")
		bbGaps     = counter("feedgate.backbone.gaps", "Gaps in an origin's sequence not filled within the gap wait (loss, signalled to subscribers).")
		bbReorder  = counter("feedgate.backbone.reorders", "Messages that arrived ahead of a missing predecessor and were held back.")
		bbFilled   = counter("feedgate.backbone.filled", "Held messages released in order once their predecessor arrived.")
		bbLate     = counter("feedgate.backbone.late", "Copies dropped because their origin's sequence had moved past them (after a gap was given up).")
		bbRestarts = counter("feedgate.backbone.stream_restarts", "Subscription streams restarted: after a reconnection, a stall announced by beacons, or a silent subscription.")
		bbStalls   = counter("feedgate.backbone.stalls", "Channels found owed messages (announced by their origin's beacon) for longer than the ack deadline.")
		cGaps      = counter("feedgate.continuity.gaps", "Continuity frames sent to a channel's subscribers for a gap that could not be filled.")
		cBroken    = counter("feedgate.continuity.broken", "Continuity frames sent to one subscriber that resumed ahead of this edge.")
		cLate      = counter("feedgate.continuity.late", "Messages that arrived beyond the lateness bound.")
		dPrepared  = counter("feedgate.prepared_frames", "Message frames encoded, by variant (json, msgpack, json+vcdiff, msgpack+vcdiff): at most one per message per variant.")
		dDeltas    = counter("feedgate.delta.frames", "Delta frames queued to subscribers that asked for deltas.")
		dFull      = counter("feedgate.delta.full", "Full frames queued to subscribers that asked for deltas (first message, after a gap or a skipped message, or a delta not smaller).")
		dConflated = counter("feedgate.conflated", "Messages a conflated subscriber did not get because a later one of its conflation key superseded it.")
		bbBad      = counter("feedgate.backbone.malformed", "Backbone messages that failed to decode.")
		ends       = counter("feedgate.connection_ends", "Connections ended, by reason (the first that applied).")
		dropped    = counter("feedgate.dropped_frames", "Frames queued for a connection and never written, by the reason it ended.")
	)
	var reasons [gateway.NumEndReasons]metric.ObserveOption
	for r := range gateway.NumEndReasons {
		reasons[r] = metric.WithAttributeSet(attribute.NewSet(attribute.String("reason", r.String())))
	}
	_, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		st := srv.Stats()
		o.ObserveInt64(conns, st.Connections)
		o.ObserveInt64(deliveries, int64(st.Delivered))
		o.ObserveInt64(slow, int64(st.SlowConsumers))
		o.ObserveInt64(bad, int64(st.BadFrames))
		o.ObserveInt64(idle, int64(st.IdleDrops))
		o.ObserveInt64(stuck, int64(st.WriteTimeouts))
		for r := range gateway.NumEndReasons {
			o.ObserveInt64(ends, int64(st.Ends[r]), reasons[r])
			o.ObserveInt64(dropped, int64(st.Dropped[r]), reasons[r])
		}
		b := bb.Stats()
		o.ObserveInt64(bbIn, int64(b.Delivered.Load()))
		o.ObserveInt64(bbDup, int64(b.Duplicates.Load()))
		o.ObserveInt64(bbPub, int64(b.Published.Load()))
		o.ObserveInt64(bbPubErr, int64(b.PublishErrors.Load()))
		o.ObserveInt64(bbRetry, int64(b.Retries.Load()))
		o.ObserveInt64(bbGaps, int64(b.Gaps.Load()))
		o.ObserveInt64(bbReorder, int64(b.Reorders.Load()))
		o.ObserveInt64(bbBad, int64(b.Malformed.Load()))
		o.ObserveInt64(bbFilled, int64(b.Filled.Load()))
		o.ObserveInt64(bbLate, int64(b.Late.Load()))
		o.ObserveInt64(bbRestarts, int64(b.StreamRestarts.Load()))
		o.ObserveInt64(bbStalls, int64(b.Stalls.Load()))
		cs := srv.ContinuityStats()
		o.ObserveInt64(cGaps, int64(cs.Gaps))
		o.ObserveInt64(cBroken, int64(cs.Broken))
		o.ObserveInt64(cLate, int64(cs.Late))
		ds := srv.DeltaStats()
		for v, n := range ds.Prepared {
			o.ObserveInt64(dPrepared, int64(n), metric.WithAttributeSet(attribute.NewSet(attribute.String("variant", v))))
		}
		o.ObserveInt64(dDeltas, int64(ds.Deltas))
		o.ObserveInt64(dFull, int64(ds.Full))
		o.ObserveInt64(dConflated, int64(ds.Conflated))
		return nil
	}, conns, deliveries, slow, bad, idle, stuck, ends, dropped, bbIn, bbDup, bbPub, bbPubErr, bbRetry, bbGaps, bbReorder, bbBad,
		bbFilled, bbLate, bbRestarts, bbStalls, cGaps, cBroken, cLate, dPrepared, dDeltas, dFull, dConflated)
	return err
}

// observeLimits registers the counters of requests refused for a limit or
// a policy, one series per reason, and the principals the edge remembers.
func (x *metrics) observeLimits(srv *gateway.Server) error {
	refused, _ := x.m.Int64ObservableCounter("feedgate.refusals", metric.WithDescription(
		"Requests refused for a rate limit, a connection cap or the Origin allow-list, by reason (publish_rate_conn|publish_rate_key|attach_rate_conn|attach_rate_key|conns_per_key|edge_full|origin)."))
	keys, _ := x.m.Int64ObservableGauge("feedgate.limits.keys", metric.WithDescription("API keys and token subjects whose limits this edge remembers (bounded: those holding connections, plus at most 65,536 without)."))
	var reasons [gateway.NumRefusals]metric.ObserveOption
	for r := range gateway.NumRefusals {
		reasons[r] = metric.WithAttributeSet(attribute.NewSet(attribute.String("reason", r.String())))
	}
	_, err := x.m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		st := srv.Stats()
		for r := range gateway.NumRefusals {
			o.ObserveInt64(refused, int64(st.Refused[r]), reasons[r])
		}
		o.ObserveInt64(keys, int64(st.Keys))
		return nil
	}, refused, keys)
	return err
}

// observeTLS registers the certificate reloads of r (nothing if r is nil).
func (x *metrics) observeTLS(r *gateway.CertReloader) error {
	if r == nil {
		return nil
	}
	reloads, _ := x.m.Int64ObservableCounter("feedgate.tls.reloads", metric.WithDescription("TLS certificate reloads (outcome=ok: a changed certificate is served; failed: a read or load failed, the previous one stays)."))
	notAfter, _ := x.m.Int64ObservableGauge("feedgate.tls.not_after", metric.WithDescription("Expiry of the served TLS certificate, Unix seconds."))
	ok := metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", "ok")))
	failed := metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", "failed")))
	_, err := x.m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		n, f := r.Reloads()
		o.ObserveInt64(reloads, int64(n), ok)
		o.ObserveInt64(reloads, int64(f), failed)
		if c := r.Certificate(); c != nil && c.Leaf != nil {
			o.ObserveInt64(notAfter, c.Leaf.NotAfter.Unix())
		}
		return nil
	}, reloads, notAfter)
	return err
}
