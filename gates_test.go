package registry

import (
	"strings"
	"testing"
)

func TestGatesDecide(t *testing.T) {
	g := DefaultGates()
	g.MaxTimeRatio, g.MaxWasmSize, g.MaxPeakMemory = 3, 1<<20, 64<<20
	good := GateInput{Score: 90, Wasm: WasmCompatible, TimeRatio: 2500, WasmSize: 1000, PeakMemory: 1 << 20}
	for _, c := range []struct {
		name   string
		in     func(GateInput) GateInput
		gate   string
		reason string
	}{
		{"within every threshold", func(i GateInput) GateInput { return i }, GateCurated, "within every threshold"},
		{"slow", func(i GateInput) GateInput { i.TimeRatio = 3500; return i }, GateNeedsReview, "3.50× the native time"},
		{"large", func(i GateInput) GateInput { i.WasmSize = 2 << 20; return i }, GateNeedsReview, "max_wasm_size"},
		{"hungry", func(i GateInput) GateInput { i.PeakMemory = 128 << 20; return i }, GateNeedsReview, "max_peak_memory"},
		{"not measured is no failure", func(i GateInput) GateInput { i.TimeRatio, i.WasmSize, i.PeakMemory = 0, 0, 0; return i }, GateCurated, ""},
		{"partial", func(i GateInput) GateInput { i.Wasm = WasmPartial; return i }, GateNeedsReview, "below min_wasm compatible"},
		{"low score", func(i GateInput) GateInput { i.Score = 50; return i }, GateNeedsReview, "below curated_min_score"},
		{"very low score", func(i GateInput) GateInput { i.Score = 10; return i }, GateRejected, "below reject_below_score"},
		{"incompatible", func(i GateInput) GateInput { i.Wasm = WasmIncompatible; return i }, GateRejected, "does not build"},
		{"flagged", func(i GateInput) GateInput { i.Flags = []string{"r1"}; return i }, GateNeedsReview, "flagged by reviewer r1"},
		{"one approval of two", func(i GateInput) GateInput { i.TimeRatio = 3500; i.Approvals = []string{"r1"}; return i }, GateNeedsReview, "1 of the 2"},
		{"two approvals", func(i GateInput) GateInput { i.TimeRatio = 3500; i.Approvals = []string{"r1", "r2"}; return i }, GateCurated, "approved by 2 reviewers"},
		{"a rejection blocks", func(i GateInput) GateInput {
			i.Approvals = []string{"r1", "r2"}
			i.Rejections = []string{"r3"}
			return i
		}, GateRejected, "rejected by reviewer r3"},
	} {
		d := g.Decide(c.in(good))
		if d.Gate != c.gate || !strings.Contains(strings.Join(d.Reasons, "; "), c.reason) {
			t.Errorf("%s: %s %q, want %s with %q", c.name, d.Gate, d.Reasons, c.gate, c.reason)
		}
	}
	g.IgnoreRejections = true
	if d := g.Decide(GateInput{Score: 90, Wasm: WasmCompatible, Rejections: []string{"r"}}); d.Gate != GateCurated {
		t.Errorf("rejections ignored: %+v", d)
	}
	g.Approvals = 0
	if d := g.Decide(GateInput{Score: 90, Wasm: WasmPartial, Approvals: []string{"a", "b", "c"}}); d.Gate != GateNeedsReview {
		t.Errorf("approvals 0 never curates: %+v", d)
	}
	for _, bad := range []Gates{{MinWasm: "gold"}, {MaxTimeRatio: -1}, {Approvals: -1}, {Approvals: 101}} {
		if err := bad.Validate(); KindOf(err) != EINVALID {
			t.Errorf("%+v: %v", bad, err)
		}
	}
}
