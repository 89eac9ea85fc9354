package chart

import (
	"encoding/xml"
	"fmt"
	"html/template"
	"io"
	"strconv"
	"strings"
	"testing"
)

// marks parses an SVG chart as XML and returns its data-points attribute,
// the number of elements of class "mark", the widths of the bars and the
// text of every <title>.
func marks(t *testing.T, svg template.HTML) (declared, counted int, widths []float64, titles []string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(string(svg)))
	inTitle := false
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("chart is not well-formed XML: %v\n%s", err, svg)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			attr := map[string]string{}
			for _, a := range e.Attr {
				attr[a.Name.Local] = a.Value
			}
			if e.Name.Local == "svg" {
				declared, _ = strconv.Atoi(attr["data-points"])
			}
			if strings.HasPrefix(attr["class"], "mark") {
				counted++
				if w, err := strconv.ParseFloat(attr["width"], 64); err == nil {
					widths = append(widths, w)
				}
			}
			inTitle = e.Name.Local == "title"
		case xml.CharData:
			if inTitle {
				titles = append(titles, string(e))
			}
		case xml.EndElement:
			inTitle = false
		}
	}
	return
}

func ms(v float64) string { return fmt.Sprintf("%.1f ms", v) }

func TestBarsDrawEveryValueToScale(t *testing.T) {
	svg := Bars("time per test", []Series{{"native"}, {"wasm"}}, []Group{
		{"a", []float64{1, 2}},
		{"b", []float64{4, -1}}, // no wasm time: not drawn
		{"c", []float64{0.5, 8}},
	}, ms)
	declared, counted, widths, titles := marks(t, svg)
	if declared != 5 || counted != 5 {
		t.Fatalf("data-points %d, marks %d; want 5 and 5", declared, counted)
	}
	// Linear: 8 is the full width, 4 half of it.
	if widths[4] != plotW || widths[2] != plotW/2 {
		t.Errorf("bar widths %v: want 8 → %d and 4 → %d", widths, plotW, plotW/2)
	}
	if !strings.Contains(strings.Join(titles, "|"), "c · wasm: 8.0 ms") {
		t.Errorf("titles %q lack the exact value of a bar", titles)
	}
	if strings.Contains(string(svg), "log scale") {
		t.Error("a chart spanning 16× says log scale")
	}
}

func TestBarsSwitchToLogScale(t *testing.T) {
	svg := Bars("sizes", []Series{{"raw"}}, []Group{{"small", []float64{10}}, {"big", []float64{100000}}}, ms)
	_, _, widths, _ := marks(t, svg)
	if !strings.Contains(string(svg), "log scale") || widths[0] < 20 {
		t.Errorf("values 10 and 100000 drawn %v without a readable log scale", widths)
	}
}

// TestChartsEscapeWhatACrateControls: test names come from the crate, so
// markup in them stays text.
func TestChartsEscapeWhatACrateControls(t *testing.T) {
	evil := `</svg><script>alert(1)</script><svg x="`
	svg := Bars(evil, []Series{{evil}}, []Group{{evil, []float64{1}}}, ms)
	if strings.Contains(string(svg), "<script>") {
		t.Fatalf("markup from a label reached the page: %s", svg)
	}
	declared, counted, _, titles := marks(t, svg)
	if declared != 1 || counted != 1 || !strings.Contains(titles[1], "</svg><script>") {
		t.Errorf("escaped chart: %d/%d marks, titles %q", declared, counted, titles)
	}
	line := Line(evil, []Point{{evil, 50}}, 100, ms)
	if strings.Contains(string(line), "<script>") {
		t.Fatalf("markup from a label reached the line chart: %s", line)
	}
}

func TestLineSkipsMissingPoints(t *testing.T) {
	svg := Line("score", []Point{{"1.0.0", 40}, {"1.1.0", -1}, {"1.2.0", 80}, {"2.0.0", 90}}, 100, ms)
	declared, counted, _, _ := marks(t, svg)
	if declared != 3 || counted != 3 {
		t.Fatalf("data-points %d, marks %d; want 3 (one version untested)", declared, counted)
	}
	if n := strings.Count(string(svg), "<polyline"); n != 1 {
		t.Errorf("%d segments; want 1 (only 1.2.0–2.0.0 are consecutive with values)", n)
	}
	if one := Line("score", []Point{{"1.0.0", 50}}, 100, ms); !strings.Contains(string(one), `data-points="1"`) {
		t.Errorf("a single point: %s", one)
	}
}
