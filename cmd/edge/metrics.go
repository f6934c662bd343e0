package main

import (
	"context"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/feedgate/feedgate/backbone"
	"github.com/feedgate/feedgate/gateway"
)

// statsSource is what both backbones report.
type statsSource interface{ Stats() *backbone.Stats }

// newMetrics exposes the gateway's and the backbone's counters as
// OpenTelemetry instruments, exported for Prometheus. The instruments are
// observed at scrape time from counters the hot path keeps anyway: metrics
// cost nothing per message.
func newMetrics(srv *gateway.Server, bb statsSource) (http.Handler, func(context.Context) error, error) {
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, nil, err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	m := mp.Meter("github.com/feedgate/feedgate")

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
		bbGaps     = counter("feedgate.backbone.gaps", "Messages whose predecessor from the same origin never arrived (loss).")
		bbReorder  = counter("feedgate.backbone.reorders", "Messages that arrived behind a later one of their origin.")
		bbBad      = counter("feedgate.backbone.malformed", "Backbone messages that failed to decode.")
	)
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		st := srv.Stats()
		o.ObserveInt64(conns, st.Connections)
		o.ObserveInt64(deliveries, int64(st.Delivered))
		o.ObserveInt64(slow, int64(st.SlowConsumers))
		o.ObserveInt64(bad, int64(st.BadFrames))
		o.ObserveInt64(idle, int64(st.IdleDrops))
		o.ObserveInt64(stuck, int64(st.WriteTimeouts))
		b := bb.Stats()
		o.ObserveInt64(bbIn, int64(b.Delivered.Load()))
		o.ObserveInt64(bbDup, int64(b.Duplicates.Load()))
		o.ObserveInt64(bbPub, int64(b.Published.Load()))
		o.ObserveInt64(bbPubErr, int64(b.PublishErrors.Load()))
		o.ObserveInt64(bbRetry, int64(b.Retries.Load()))
		o.ObserveInt64(bbGaps, int64(b.Gaps.Load()))
		o.ObserveInt64(bbReorder, int64(b.Reorders.Load()))
		o.ObserveInt64(bbBad, int64(b.Malformed.Load()))
		return nil
	}, conns, deliveries, slow, bad, idle, stuck, bbIn, bbDup, bbPub, bbPubErr, bbRetry, bbGaps, bbReorder, bbBad)
	if err != nil {
		return nil, nil, err
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), mp.Shutdown, nil
}
