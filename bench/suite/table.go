package suite

import (
	"fmt"
	"io"
	"strings"
)

// table is a figure table: one column per run, then ratio columns.
type table struct {
	title string
	cols  []string
	rows  [][]string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) print(w io.Writer) {
	width := make([]int, len(t.cols))
	for i, c := range t.cols {
		width[i] = len(c)
	}
	for _, r := range t.rows {
		for i, c := range r {
			width[i] = max(width[i], len(c))
		}
	}
	fmt.Fprintf(w, "\n%s\n", t.title)
	line := func(cells []string) {
		for i, c := range cells {
			if i == 0 {
				fmt.Fprintf(w, "  %-*s", width[i], c)
			} else {
				fmt.Fprintf(w, "  %*s", width[i], c)
			}
		}
		fmt.Fprintln(w)
	}
	line(t.cols)
	for _, r := range t.rows {
		line(r)
	}
}

func (t *table) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n**%s**\n\n| %s |\n|%s\n", t.title, strings.Join(t.cols, " | "), strings.Repeat("---|", len(t.cols)))
	for _, r := range t.rows {
		fmt.Fprintf(&b, "| %s |\n", strings.Join(r, " | "))
	}
	return b.String()
}

// figure is one row of a comparison table.
type figure struct {
	name string
	get  func(*RunResult) (float64, bool)
}

// column reads one figure of a run's scenario result (picked by pick), or
// nothing when the run has none (it failed, or the scenario left it out).
func column[T any](pick func(*RunResult) *T, f func(*T) float64) func(*RunResult) (float64, bool) {
	return func(r *RunResult) (float64, bool) {
		if v := pick(r); v != nil {
			return f(v), true
		}
		return 0, false
	}
}

// ofServer is v, except for the sink, whose memory says nothing about a
// server: its memory rows stay empty.
func ofServer[T any](r *RunResult, v *T) *T {
	if r.Server == "sink" {
		return nil
	}
	return v
}

func stepFig(name string, f func(*Step) float64, pick func(*RunResult) *Step) figure {
	return figure{name, column(pick, f)}
}

// stepFigures are the rows every publishing window prints.
func stepFigures(pick func(*RunResult) *Step) []figure {
	return []figure{
		stepFig("published msg/s", func(s *Step) float64 { return s.PubRate }, pick),
		stepFig("deliveries/s", func(s *Step) float64 { return s.DelivPerSec }, pick),
		stepFig("p50 ms", func(s *Step) float64 { return s.P50 }, pick),
		stepFig("p90 ms", func(s *Step) float64 { return s.P90 }, pick),
		stepFig("p99 ms", func(s *Step) float64 { return s.P99 }, pick),
		stepFig("p99.9 ms", func(s *Step) float64 { return s.P999 }, pick),
		stepFig("max ms", func(s *Step) float64 { return s.Max }, pick),
		stepFig("lost", func(s *Step) float64 { return float64(s.Lost) }, pick),
		stepFig("duplicates", func(s *Step) float64 { return float64(s.Dups) }, pick),
		stepFig("reorders", func(s *Step) float64 { return float64(s.Reorders) }, pick),
		stepFig("publish errors", func(s *Step) float64 { return float64(s.PubErrors) }, pick),
		stepFig("wire bytes/delivery", func(s *Step) float64 { return s.RxPerDeliv }, pick),
		stepFig("server CPU %", func(s *Step) float64 { return s.ServerCPU }, pick),
		stepFig("generator CPU %", func(s *Step) float64 { return s.GenCPU }, pick),
		stepFig("rest of system CPU % (2nd edge, emulator)", func(s *Step) float64 { return s.AuxCPU }, pick),
		stepFig("softirq CPU % (loopback TCP)", func(s *Step) float64 { return s.SoftIRQ }, pick),
		stepFig("other processes CPU % (noise)", func(s *Step) float64 { return s.OtherCPU }, pick),
		stepFig("server RSS MB", func(s *Step) float64 { return s.ServerRSSMB }, pick),
	}
}

// compare builds a table of figs over runs, with a ratio column ours/X for
// every run of ours against every peer, ceiling and sink run.
func compare(title string, runs []*RunResult, figs []figure) *table {
	var ratios [][2]*RunResult
	for _, a := range runs {
		if a.Server != "ours" {
			continue
		}
		for _, b := range runs {
			if b.Server == "peer" || b.Server == "ceiling" || b.Server == "sink" {
				ratios = append(ratios, [2]*RunResult{a, b})
			}
		}
	}
	return comparePairs(title, runs, figs, ratios)
}

// comparePairs builds a table of figs over runs with a ratio column a/b for
// every pair given.
func comparePairs(title string, runs []*RunResult, figs []figure, pairs [][2]*RunResult) *table {
	t := &table{title: title, cols: []string{"figure"}}
	type pair struct{ a, b *RunResult }
	var ratios []pair
	for _, r := range runs {
		t.cols = append(t.cols, r.Target)
	}
	for _, p := range pairs {
		ratios = append(ratios, pair{p[0], p[1]})
		t.cols = append(t.cols, p[0].Target+"/"+p[1].Target)
	}
	for _, f := range figs {
		row := []string{f.name}
		for _, r := range runs {
			if v, ok := f.get(r); ok {
				row = append(row, num(v))
			} else {
				row = append(row, "-")
			}
		}
		for _, p := range ratios {
			a, oka := f.get(p.a)
			b, okb := f.get(p.b)
			switch {
			case !oka || !okb:
				row = append(row, "-")
			case b == 0 && a == 0:
				row = append(row, "=")
			case b == 0:
				row = append(row, "inf")
			default:
				row = append(row, fmt.Sprintf("%.2f", a/b))
			}
		}
		t.add(row...)
	}
	return t
}

func num(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 100 || v == float64(int64(v)):
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}
