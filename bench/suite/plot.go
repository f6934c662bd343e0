package suite

import (
	"fmt"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// plots writes the PNG figures for the scenarios measured so far.
func (s *Suite) plots() error {
	for _, sr := range s.res.Scenarios {
		var err error
		switch sr.Name {
		case "fanout":
			err = s.plotFanout(sr)
		case "oddsfeed":
			for _, v := range variants(sr) {
				err = errorsJoin(err, s.plotCDF("latency_cdf_oddsfeed_"+strings.TrimPrefix(v, "skew=")+".png",
					"oddsfeed "+v+": end-to-end latency CDF", runsOf(sr, v), firstStep))
			}
		case "idle":
			err = s.plotIdle(sr)
		case "reconnect-storm":
			err = s.plotStorm(sr)
		case "cross-edge":
			if len(sr.Runs) > 0 {
				err = s.plotCDF("latency_cdf_crossedge.png", "cross-edge: end-to-end latency CDF", sr.Runs, firstStep)
			}
		}
		if err != nil {
			return fmt.Errorf("plot %s: %w", sr.Name, err)
		}
	}
	return nil
}

func errorsJoin(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func firstStep(r *RunResult) *Step {
	if len(r.Steps) == 0 {
		return nil
	}
	return &r.Steps[0]
}

func variants(sr *ScenarioResult) []string {
	var vs []string
	for _, r := range sr.Runs {
		if len(vs) == 0 || vs[len(vs)-1] != r.Variant {
			vs = append(vs, r.Variant)
		}
	}
	return vs
}

func runsOf(sr *ScenarioResult, variant string) []*RunResult {
	var out []*RunResult
	for _, r := range sr.Runs {
		if r.Variant == variant {
			out = append(out, r)
		}
	}
	return out
}

func (s *Suite) save(p *plot.Plot, name string) error {
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.XOffs, p.Legend.YOffs = vg.Points(10), vg.Points(-5)
	return p.Save(7*vg.Inch, 4.5*vg.Inch, filepath.Join(s.dir, name))
}

// lines adds one line with points per named series, in order.
func lines(p *plot.Plot, names []string, series []plotter.XYs) error {
	var args []any
	for i := range names {
		if len(series[i]) > 0 {
			args = append(args, names[i], series[i])
		}
	}
	if len(args) == 0 {
		return nil
	}
	return plotutil.AddLinePoints(p, args...)
}

// plotCDF draws the latency CDF (x: ms, log scale; y: percentile) of one
// step per run.
func (s *Suite) plotCDF(name, title string, runs []*RunResult, pick func(*RunResult) *Step) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "end-to-end latency (ms, log scale)"
	p.Y.Label.Text = "percentile"
	p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	var names []string
	var series []plotter.XYs
	for _, r := range runs {
		st := pick(r)
		if st == nil || len(st.CDF) == 0 {
			continue
		}
		xy := make(plotter.XYs, 0, len(st.CDF))
		for _, pt := range st.CDF {
			xy = append(xy, plotter.XY{X: max(pt[0], 0.01), Y: pt[1]})
		}
		names = append(names, r.Target)
		series = append(series, xy)
	}
	if len(series) == 0 {
		return nil
	}
	if err := lines(p, names, series); err != nil {
		return err
	}
	return s.save(p, name)
}

func (s *Suite) plotFanout(sr *ScenarioResult) error {
	d, l := plot.New(), plot.New()
	d.Title.Text = "fanout: deliveries/s against publish rate (1 channel)"
	d.X.Label.Text, d.Y.Label.Text = "publish rate (msg/s)", "deliveries/s"
	l.Title.Text = "fanout: p99 latency against publish rate"
	l.X.Label.Text, l.Y.Label.Text = "publish rate (msg/s)", "p99 end-to-end latency (ms)"
	var ticks []plot.Tick
	if len(sr.Runs) > 0 {
		for _, st := range sr.Params.(FanoutParams).Rates {
			ticks = append(ticks, plot.Tick{Value: st, Label: fmt.Sprintf("%.0f", st)})
		}
	}
	for _, pl := range []*plot.Plot{d, l} {
		pl.X.Scale, pl.X.Tick.Marker = plot.LogScale{}, plot.ConstantTicks(ticks)
	}
	var yt []plot.Tick
	for _, v := range []float64{1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6, 2e6, 5e6, 1e7} {
		label := fmt.Sprintf("%gk", v/1e3)
		if v >= 1e6 {
			label = fmt.Sprintf("%gM", v/1e6)
		}
		yt = append(yt, plot.Tick{Value: v, Label: label})
	}
	d.Y.Scale, d.Y.Tick.Marker = plot.LogScale{}, plot.ConstantTicks(yt)
	var names []string
	var dv, lv []plotter.XYs
	common := map[float64]int{}
	for _, r := range sr.Runs {
		var a, b plotter.XYs
		for _, st := range r.Steps {
			a = append(a, plotter.XY{X: st.Rate, Y: st.DelivPerSec})
			b = append(b, plotter.XY{X: st.Rate, Y: st.P99})
			common[st.Rate]++
		}
		names, dv, lv = append(names, r.Target), append(dv, a), append(lv, b)
	}
	if err := lines(d, names, dv); err != nil {
		return err
	}
	if err := lines(l, names, lv); err != nil {
		return err
	}
	if err := s.save(d, "fanout_deliveries.png"); err != nil {
		return err
	}
	if err := s.save(l, "fanout_p99.png"); err != nil {
		return err
	}
	// The CDF at the highest rate every run reached.
	best := 0.0
	for rate, n := range common {
		if n == len(sr.Runs) && rate > best {
			best = rate
		}
	}
	if best == 0 {
		return nil
	}
	return s.plotCDF("latency_cdf_fanout.png", fmt.Sprintf("fanout at %.0f msg/s: end-to-end latency CDF", best), sr.Runs,
		func(r *RunResult) *Step {
			for i := range r.Steps {
				if r.Steps[i].Rate == best {
					return &r.Steps[i]
				}
			}
			return nil
		})
}

func (s *Suite) plotIdle(sr *ScenarioResult) error {
	var rss, heap plotter.Values
	var names []string
	for _, r := range sr.Runs {
		if r.Idle == nil || r.Server == "sink" { // the connection-rate yardstick: its memory means nothing
			continue
		}
		names = append(names, r.Target)
		rss = append(rss, r.Idle.RSSPerConnKB)
		heap = append(heap, r.Idle.HeapPerConnKB)
	}
	if len(names) == 0 {
		return nil
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("idle: server memory per subscribed connection (%d connections)", sr.Runs[0].Idle.Conns)
	p.Y.Label.Text = "KB per connection"
	w := vg.Points(30)
	b1, err := plotter.NewBarChart(rss, w)
	if err != nil {
		return err
	}
	b2, err := plotter.NewBarChart(heap, w)
	if err != nil {
		return err
	}
	b1.Color, b2.Color = plotutil.Color(0), plotutil.Color(1)
	b1.Offset, b2.Offset = -w/2, w/2
	p.Add(b1, b2)
	p.Legend.Add("RSS delta / connection", b1)
	p.Legend.Add("Go heap delta / connection", b2)
	p.NominalX(names...)
	p.Y.Max *= 1.3 // room for the legend
	return s.save(p, "memory_per_conn.png")
}

func (s *Suite) plotStorm(sr *ScenarioResult) error {
	p := plot.New()
	p.Title.Text = "reconnect storm: subscribers attached after the drop"
	p.X.Label.Text, p.Y.Label.Text = "seconds since all connections were closed", "attached subscribers"
	var names []string
	var series []plotter.XYs
	for _, r := range sr.Runs {
		if r.Storm == nil {
			continue
		}
		var xy plotter.XYs
		for _, pt := range r.Storm.AttachedCurve {
			xy = append(xy, plotter.XY{X: pt[0], Y: pt[1]})
		}
		names, series = append(names, r.Target), append(series, xy)
	}
	if len(series) == 0 {
		return nil
	}
	if err := lines(p, names, series); err != nil {
		return err
	}
	return s.save(p, "reconnect_storm.png")
}
