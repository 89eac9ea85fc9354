package web

import (
	"context"
	"fmt"
	"html/template"
	"slices"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/node"
	"github.com/wasmrust/wasm-crates-registry/node/web/chart"
)

// Bounds of what a crate page draws, so that a crate with thousands of
// tests or versions still gives a readable page of bounded size.
const (
	maxChartTests    = 40 // the tests with the longest wasm time
	maxChartBenches  = 40
	maxMatrixVersion = 12 // the newest versions in the target matrix
)

// crateCharts are the crate page's pictures. A chart with nothing to draw
// is empty and not shown.
type crateCharts struct {
	Tests   template.HTML // native and wasm time per test
	Benches template.HTML // native and wasm time per benchmark
	Sizes   template.HTML // wasm module sizes, raw and gzip
	Memory  template.HTML // peak memory per target
	Score   template.HTML // the score over versions
	// TestsShown and TestsTimed say how many timed tests the chart shows
	// of how many there are.
	TestsShown, TestsTimed int
	Matrix                 *targetMatrix
}

// targetMatrix is the outcome per target for each of the newest versions.
type targetMatrix struct {
	Targets []string
	Rows    []matrixRow
}

type matrixRow struct {
	Release  *node.Release
	Outcomes []string // per Targets; "" where the version's report has no such target
}

func msOf(v float64) string { return fmt.Sprintf("%.2f ms", v/1000) }
func bytesOf(v float64) string {
	if v < 0 {
		return ""
	}
	return humanBytes(uint64(v))
}
func scoreOf(v float64) string { return fmt.Sprintf("%.0f", v) }

// reportCharts draws what one report measured.
func reportCharts(b *registry.ReportBody) crateCharts {
	var c crateCharts
	if b == nil {
		return c
	}
	var timed []registry.TestComparison
	for _, t := range b.Tests {
		if t.NativeUS > 0 && t.WasmUS > 0 {
			timed = append(timed, t)
		}
	}
	c.TestsTimed = len(timed)
	slices.SortStableFunc(timed, func(x, y registry.TestComparison) int { return cmpDesc(x.WasmUS, y.WasmUS) })
	timed = timed[:min(len(timed), maxChartTests)]
	c.TestsShown = len(timed)
	if len(timed) > 0 {
		groups := make([]chart.Group, len(timed))
		for i, t := range timed {
			groups[i] = chart.Group{Label: t.Name, Values: []float64{float64(t.NativeUS), float64(t.WasmUS)}}
		}
		c.Tests = chart.Bars("Time per test, native and under wazero", []chart.Series{{Name: "native"}, {Name: "wasm"}}, groups, msOf)
	}
	var benches []chart.Group
	for _, bc := range b.Benches {
		if bc.NativeUS > 0 && bc.WasmUS > 0 && len(benches) < maxChartBenches {
			benches = append(benches, chart.Group{Label: bc.Name, Values: []float64{float64(bc.NativeUS), float64(bc.WasmUS)}})
		}
	}
	if len(benches) > 0 {
		c.Benches = chart.Bars("Time per benchmark, native and under wazero", []chart.Series{{Name: "native"}, {Name: "wasm"}}, benches, msOf)
	}
	var sizes, mem []chart.Group
	for _, t := range b.Targets {
		for _, m := range t.Modules {
			gz := -1.0
			if m.Gzip > 0 {
				gz = float64(m.Gzip)
			}
			sizes = append(sizes, chart.Group{Label: t.Target + " " + m.Name, Values: []float64{float64(m.Size), gz}})
		}
		if t.PeakMemory > 0 {
			mem = append(mem, chart.Group{Label: t.Target, Values: []float64{float64(t.PeakMemory)}})
		}
	}
	if len(sizes) > 0 {
		c.Sizes = chart.Bars("Wasm module sizes", []chart.Series{{Name: "raw"}, {Name: "gzip"}}, sizes, bytesOf)
	}
	if len(mem) > 0 {
		c.Memory = chart.Bars("Peak memory while testing (wasm: linear memory; native: RSS)", []chart.Series{{Name: "peak"}}, mem, bytesOf)
	}
	return c
}

func cmpDesc(a, b uint64) int {
	switch {
	case a > b:
		return -1
	case a < b:
		return 1
	}
	return 0
}

// scoreChart is the score of each version, oldest first; a version without
// a trusted report is a gap.
func scoreChart(versions []*node.Release) template.HTML {
	var pts []chart.Point
	any := false
	for _, v := range versions {
		y := -1.0
		if v.Score != nil {
			y, any = float64(*v.Score), true
		}
		pts = append(pts, chart.Point{Label: v.Version, Y: y})
	}
	if !any {
		return ""
	}
	return chart.Line("Score over versions", pts, 100, scoreOf)
}

// matrix is the target matrix of the newest versions, newest first, from
// each version's current trusted report.
func (h *Handler) matrix(ctx context.Context, versions []*node.Release) (*targetMatrix, error) {
	m := &targetMatrix{}
	col := map[string]int{}
	type row struct {
		rel     *node.Release
		targets map[string]string
	}
	var rows []row
	for i := len(versions) - 1; i >= 0 && len(rows) < maxMatrixVersion; i-- {
		v := versions[i]
		r := row{rel: v, targets: map[string]string{}}
		if v.Score != nil { // a trusted report exists
			tests, err := h.n.TestsFor(ctx, v.Subject)
			if err != nil {
				return nil, err
			}
			for _, rep := range tests.Reports {
				if !rep.Trusted || !rep.Current || rep.Body == nil {
					continue
				}
				for _, t := range rep.Body.Targets {
					if t.Extra {
						continue
					}
					if _, ok := col[t.Target]; !ok {
						col[t.Target] = len(m.Targets)
						m.Targets = append(m.Targets, t.Target)
					}
					r.targets[t.Target] = t.Outcome
				}
				break
			}
		}
		rows = append(rows, r)
	}
	if len(m.Targets) == 0 {
		return nil, nil
	}
	for _, r := range rows {
		mr := matrixRow{Release: r.rel, Outcomes: make([]string, len(m.Targets))}
		for t, o := range r.targets {
			mr.Outcomes[col[t]] = o
		}
		m.Rows = append(m.Rows, mr)
	}
	return m, nil
}
