package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/feedgate/feedgate/auth"
	"github.com/feedgate/feedgate/backbone"
	"github.com/feedgate/feedgate/gateway"
	"github.com/feedgate/feedgate/internal/edgetest"
)

// BenchmarkObserver: the cost the histograms add per message.
func BenchmarkObserver(b *testing.B) {
	x, err := newMetrics()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		x.Published(time.Duration(i%5000)*time.Microsecond, nil)
		x.Delivered(time.Duration(i%5000)*time.Microsecond, time.Millisecond, i%6000)
	}
}

// TestEndReasonMetrics: connection ends and dropped frames are exported
// with one series per reason, zeros included.
func TestEndReasonMetrics(t *testing.T) {
	x, err := newMetrics()
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.NewStatic(nil)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := gateway.New(gateway.Config{Authorizer: a}, backbone.NewLocal(backbone.LocalConfig{}))
	if err != nil {
		t.Fatal(err)
	}
	if err := x.observe(srv, backbone.NewLocal(backbone.LocalConfig{})); err != nil {
		t.Fatal(err)
	}
	mfs, err := x.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for r := range gateway.NumEndReasons {
		want["feedgate_connection_ends_total/"+r.String()] = true
		want["feedgate_dropped_frames_total/"+r.String()] = true
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" {
					delete(want, mf.GetName()+"/"+l.GetValue())
				}
			}
		}
	}
	if len(want) > 0 {
		t.Fatalf("missing series: %v", want)
	}
}

// TestRefusalMetrics: refusals are exported with one series per reason,
// zeros included, with the count of a refusal that happened.
func TestRefusalMetrics(t *testing.T) {
	x, err := newMetrics()
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.NewStatic(nil)
	if err != nil {
		t.Fatal(err)
	}
	e := edgetest.MustStartEdge(t, gateway.Config{Authorizer: a, AllowedOrigins: []string{"https://odds.example.com"}}, nil)
	if err := x.observeLimits(e.Srv); err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set("Origin", "https://evil.example.com")
	if _, resp, err := websocket.DefaultDialer.Dial(e.URL+"/v1/ws", h); err == nil || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("upgrade from another origin: %v", err)
	}
	mfs, err := x.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "feedgate_refusals_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" {
					got[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	for r := range gateway.NumRefusals {
		want := 0.0
		if r == gateway.RefusedOrigin {
			want = 1
		}
		if v, ok := got[r.String()]; !ok || v != want {
			t.Errorf("feedgate_refusals_total{reason=%q} = %v (present %v), want %v", r, v, ok, want)
		}
	}
}
