// Package chart draws the dashboard's charts as inline SVG: grouped
// horizontal bars (native against wasm per test, per benchmark, sizes,
// memory) and a line over versions (the score). Charts are server-rendered
// and need no JavaScript; every mark carries a <title> with its exact value,
// which browsers show on hover and screen readers read.
//
// Every chart is an <svg class="chart"> with data-points set to the number
// of marks it draws, and each mark has class "mark", so a test can check
// what is on the page without reading pixels.
package chart

import (
	"fmt"
	"html/template"
	"math"
	"strings"
)

// Series names one value of each group and its colour class (styled by the
// page: s0, s1, …).
type Series struct {
	Name string
}

// Group is one row of a bar chart: a label and one value per series; a
// value below zero is missing (not drawn).
type Group struct {
	Label  string
	Values []float64
}

// Format turns a value into text, like "1.2 ms" or "3.4 KiB".
type Format func(float64) string

const (
	labelW  = 220 // px for the row labels
	plotW   = 460 // px for the bars
	valueW  = 90  // px for the value text right of the longest bar
	barH    = 12
	barGap  = 3
	groupGp = 10
	legendH = 22
)

// Bars draws a grouped horizontal bar chart. Scale is linear from zero to
// the largest value; when the values span more than two orders of
// magnitude the scale is logarithmic, and the chart says so.
func Bars(title string, series []Series, groups []Group, f Format) template.HTML {
	maxV, minV := 0.0, math.Inf(1)
	points := 0
	for _, g := range groups {
		for _, v := range g.Values {
			if v < 0 {
				continue
			}
			points++
			maxV = max(maxV, v)
			if v > 0 {
				minV = min(minV, v)
			}
		}
	}
	logScale := maxV > 0 && !math.IsInf(minV, 1) && maxV/minV > 100
	scale := func(v float64) float64 {
		if maxV <= 0 || v <= 0 {
			return 0
		}
		if logScale {
			lo := math.Log10(minV) - 0.3
			return plotW * (math.Log10(v) - lo) / (math.Log10(maxV) - lo)
		}
		return plotW * v / maxV
	}
	rowH := len(series)*(barH+barGap) + groupGp
	height := legendH + len(groups)*rowH + 4
	width := labelW + plotW + valueW
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart bars" xmlns="http://www.w3.org/2000/svg" role="img" width="%d" height="%d" viewBox="0 0 %d %d" data-points="%d" aria-label="%s">`,
		width, height, width, height, points, esc(title))
	fmt.Fprintf(&b, `<title>%s</title>`, esc(title))
	x := labelW
	for i, s := range series {
		fmt.Fprintf(&b, `<rect class="s%d" x="%d" y="4" width="10" height="10"/><text x="%d" y="13">%s</text>`, i, x, x+14, esc(s.Name))
		x += 14 + 8*len(s.Name) + 16
	}
	if logScale {
		fmt.Fprintf(&b, `<text class="note" x="%d" y="13">log scale</text>`, width-70)
	}
	for gi, g := range groups {
		y := legendH + gi*rowH
		fmt.Fprintf(&b, `<text class="label" x="%d" y="%d" text-anchor="end">%s</text>`, labelW-6, y+barH, esc(clip(g.Label, 32)))
		for si, v := range g.Values {
			if v < 0 || si >= len(series) {
				continue
			}
			by := y + si*(barH+barGap)
			w := scale(v)
			fmt.Fprintf(&b, `<rect class="mark s%d" x="%d" y="%d" width="%.1f" height="%d"><title>%s · %s: %s</title></rect>`,
				si, labelW, by, max(w, 1), barH, esc(g.Label), esc(series[si].Name), esc(f(v)))
			fmt.Fprintf(&b, `<text class="value" x="%.1f" y="%d">%s</text>`, float64(labelW)+max(w, 1)+4, by+barH-2, esc(f(v)))
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// Point is one point of a line chart; a point without a value (Y < 0) is
// a gap, shown on the axis as "–".
type Point struct {
	Label string
	Y     float64
}

// Line draws points left to right, joined where consecutive points both
// have values, on a fixed 0..yMax scale (the score's 0..100).
func Line(title string, points []Point, yMax float64, f Format) template.HTML {
	const w, h, left, bottom, top = 640, 200, 40, 36, 12
	n := 0
	for _, p := range points {
		if p.Y >= 0 {
			n++
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart line" xmlns="http://www.w3.org/2000/svg" role="img" width="%d" height="%d" viewBox="0 0 %d %d" data-points="%d" aria-label="%s">`,
		w, h, w, h, n, esc(title))
	fmt.Fprintf(&b, `<title>%s</title>`, esc(title))
	plotH := float64(h - bottom - top)
	for _, t := range []float64{0, yMax / 2, yMax} {
		y := float64(top) + plotH*(1-t/yMax)
		fmt.Fprintf(&b, `<line class="grid" x1="%d" x2="%d" y1="%.1f" y2="%.1f"/><text class="axis" x="%d" y="%.1f" text-anchor="end">%s</text>`, left, w-8, y, y, left-4, y+4, esc(f(t)))
	}
	step := float64(w-left-60) / float64(max(1, len(points)-1))
	if len(points) == 1 {
		step = 0
	}
	var path []string
	for i, p := range points {
		x := float64(left+12) + step*float64(i)
		fmt.Fprintf(&b, `<text class="axis" x="%.1f" y="%d" text-anchor="middle">%s</text>`, x, h-bottom+16, esc(clip(p.Label, 12)))
		if p.Y < 0 {
			path = append(path, "")
			continue
		}
		y := float64(top) + plotH*(1-min(p.Y, yMax)/yMax)
		path = append(path, fmt.Sprintf("%.1f,%.1f", x, y))
		fmt.Fprintf(&b, `<circle class="mark" cx="%.1f" cy="%.1f" r="4"><title>%s: %s</title></circle>`, x, y, esc(p.Label), esc(f(p.Y)))
	}
	// Segments between consecutive points that both have values.
	for i := 1; i < len(path); i++ {
		if path[i-1] != "" && path[i] != "" {
			fmt.Fprintf(&b, `<polyline class="link" points="%s %s"/>`, path[i-1], path[i])
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func esc(s string) string { return template.HTMLEscapeString(s) }

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
