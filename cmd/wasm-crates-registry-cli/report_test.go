package main

import (
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// printed returns what printReport writes for a report body.
func printed(t *testing.T, body []byte) []byte {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	printReport(&reportWithBody{Report: body})
	os.Stdout = stdout
	w.Close()
	out, _ := io.ReadAll(r)
	return out
}

// The sandbox's refusals and the notes of a report are printed, with the
// control characters their author controls neutralised.
func TestPrintReportShowsRefusals(t *testing.T) {
	body, err := json.Marshal(&registry.ReportBody{
		Outcome: registry.OutcomeTestPass, Wasm: registry.WasmCompatible,
		Targets: []registry.TargetReport{{Target: "x86_64-unknown-linux-gnu", Outcome: registry.OutcomeTestPass, Refusals: []registry.Refusal{
			{Action: "network-attempt", Detail: "127.0.0.1:23392", Count: 3},
			{Action: "write-outside", Detail: "/etc/\x1b[31mevil", Count: 1},
		}}},
		Notes: []string{"x86_64-unknown-linux-gnu: code of the crate tried to reach the network (127.0.0.1:23392)"},
	})
	if err != nil {
		t.Fatal(err)
	}
	out := printed(t, body)
	for _, want := range []string{"sandbox refusals (x86_64-unknown-linux-gnu)", "network-attempt", "127.0.0.1:23392 (×3)", "/etc/?[31mevil", "tried to reach the network"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "\x1b") {
		t.Errorf("an escape sequence reached the terminal:\n%q", out)
	}
}

// A builds verdict is printed with its reason and the dependencies the
// reporting node lacked, neutralised like any text a report carries.
func TestPrintReportShowsBuildsReason(t *testing.T) {
	body, err := json.Marshal(&registry.ReportBody{
		Outcome: registry.OutcomeBrokenDeps, Wasm: registry.WasmBuilds,
		Reason:      "Its tests were not run under wazero on this node: the tests' dev-dependencies (quickcheck ^1\x1b[2J) cannot all be resolved.",
		MissingDeps: []string{"quickcheck ^1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	out := printed(t, body)
	for _, want := range []string{"Its tests were not run under wazero on this node", "missing dependencies", "quickcheck ^1"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "\x1b") {
		t.Errorf("an escape sequence reached the terminal:\n%q", out)
	}
}

// The configurations tested and the benchmark ratios are printed.
func TestPrintReportShowsConfigsAndBenches(t *testing.T) {
	body, err := json.Marshal(&registry.ReportBody{
		Outcome: registry.OutcomeTestPass, Wasm: registry.WasmCompatible, Config: "no-default-features features=wasm",
		Configs: []registry.ConfigReport{
			{Name: "default", Source: "default", Wasm: registry.WasmIncompatible, Outcome: registry.OutcomeBuildFail, Message: "it does not compile for wasm32-wasip1"},
			{Name: "no-default-features features=wasm", Source: "wasm-crates-registry", Wasm: registry.WasmCompatible, Outcome: registry.OutcomeTestPass, Message: "2 tests passed"},
		},
		Benches: []registry.BenchComparison{
			{Name: "heavy", Iterations: 5, NativeUS: 44900, WasmUS: 35100, Ratio: 782},
			{Name: "nightly", Note: "needs a nightly toolchain\x1b[2J"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	out := printed(t, body)
	for _, want := range []string{"configuration", "no-default-features features=wasm (the crate's declared wasm configuration)",
		"configurations tested:", "incompatible", "heavy", "5 runs", "0.78× native", "needs a nightly toolchain"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "\x1b") {
		t.Errorf("an escape sequence reached the terminal:\n%q", out)
	}
}
