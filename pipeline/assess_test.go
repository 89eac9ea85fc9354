package pipeline

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	registry "github.com/wasmrust/wasm-crates-registry"
)

var updateAssess = flag.Bool("update", false, "rewrite testdata/assemble/*.want.json from the current assess")

// readFacts decodes a facts file strictly: a misspelt field is an error,
// not a silently missing fact.
func readFacts(t *testing.T, path string) assessFacts {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var f assessFacts
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return f
}

// Every testdata/assemble/NAME.facts.json, judged by assess, gives exactly
// testdata/assemble/NAME.want.json (rewritten with -update).
func TestAssembleGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "assemble", "*.facts.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 4 {
		t.Fatalf("%d facts files, want at least one per verdict", len(files))
	}
	for _, in := range files {
		name := strings.TrimSuffix(filepath.Base(in), ".facts.json")
		t.Run(name, func(t *testing.T) {
			a := assess(readFacts(t, in))
			got, err := json.MarshalIndent(a, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			want := filepath.Join("testdata", "assemble", name+".want.json")
			if *updateAssess {
				if err := os.WriteFile(want, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			exp, err := os.ReadFile(want)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, exp) {
				t.Errorf("assess(%s) differs from %s:\n--- got\n%s", in, want, got)
			}
		})
	}
}

// The same facts give the same assessment, whatever was judged before.
func TestAssembleDeterministic(t *testing.T) {
	path := filepath.Join("testdata", "assemble", "partial.facts.json")
	a1, _ := json.Marshal(assess(readFacts(t, path)))
	_ = assess(readFacts(t, filepath.Join("testdata", "assemble", "compatible.facts.json")))
	a2, _ := json.Marshal(assess(readFacts(t, path)))
	if !bytes.Equal(a1, a2) {
		t.Fatalf("two judgements of one set of facts differ:\n%s\n%s", a1, a2)
	}
}

// A facts file with a field assess does not know is refused, so a golden
// case cannot silently test less than it says.
func TestAssembleFactsStrict(t *testing.T) {
	dec := json.NewDecoder(strings.NewReader(`{"wasip1": {"report": {"target": "wasm32-wasip1", "outcome": "test-pass"}, "host_fail": true}, "gates": {}}`))
	dec.DisallowUnknownFields()
	var f assessFacts
	if err := dec.Decode(&f); err == nil {
		t.Fatal("a misspelt fact was accepted")
	}
}

// One hand-checked case per verdict (docs/PIPELINE.md, scoring and
// verdicts): the figures below are worked out from the rules, not copied
// from the code's output.
func TestAssembleByHand(t *testing.T) {
	load := func(name string) assessment {
		return assess(readFacts(t, filepath.Join("testdata", "assemble", name+".facts.json")))
	}

	t.Run("compatible", func(t *testing.T) {
		a := load("compatible")
		if a.Wasm != registry.WasmCompatible || a.Reason != "" {
			t.Errorf("verdict %q (%q), want compatible without a reason", a.Wasm, a.Reason)
		}
		if a.Outcome != registry.OutcomeTestPass || a.Message != "wasm32-wasip1: 2 tests passed" {
			t.Errorf("outcome %q %q", a.Outcome, a.Message)
		}
		if !a.Dual {
			t.Error("tests pass natively and under wazero: dual")
		}
		// lib::adds is timed (4000 µs native, 12000 µs wasm: ratio 3000‰);
		// lib::quick is below the timing floor.
		if a.Timing == nil || a.Timing.Compared != 2 || a.Timing.Timed != 1 || a.Timing.NativeUS != 4000 || a.Timing.WasmUS != 12000 || a.Timing.Ratio != 3000 {
			t.Errorf("timing %+v", a.Timing)
		}
		if len(a.Tests) != 2 || a.Tests[0].Ratio != 3000 || a.Tests[1].Note == "" {
			t.Errorf("tests %+v", a.Tests)
		}
		if !a.GCReady {
			t.Errorf("no shared memory, atomics, env imports or glue, and tests bounded: GC-ready; checks %+v", a.GCChecks)
		}
		if a.BrokenBy != "" {
			t.Errorf("broken by %q", a.BrokenBy)
		}
	})

	t.Run("builds", func(t *testing.T) {
		a := load("builds")
		if a.Wasm != registry.WasmBuilds {
			t.Fatalf("verdict %q, want builds", a.Wasm)
		}
		want := "Its tests were not run under wazero on this node: the tests' dev-dependencies (proptest) cannot all be resolved."
		if a.Reason != want {
			t.Errorf("reason %q, want %q", a.Reason, want)
		}
		if a.Outcome != registry.OutcomeBrokenDeps || a.Dual {
			t.Errorf("outcome %q dual %v", a.Outcome, a.Dual)
		}
		if a.Tests != nil || a.Timing != nil {
			t.Errorf("no test ran, yet tests %+v timing %+v", a.Tests, a.Timing)
		}
	})

	t.Run("partial", func(t *testing.T) {
		a := load("partial")
		if a.Wasm != registry.WasmPartial || a.Reason != "" {
			t.Errorf("verdict %q (%q), want partial", a.Wasm, a.Reason)
		}
		if a.Outcome != registry.OutcomeTestFail {
			t.Errorf("outcome %q, want wasm32-wasip1's test-fail", a.Outcome)
		}
		wantMsg := "wasm32-wasip1: 1 of 2 tests failed; it does not build for wasm32-unknown-unknown: getrandom@0.2.8 fails to build"
		if a.Message != wantMsg {
			t.Errorf("message %q, want %q", a.Message, wantMsg)
		}
		if a.BrokenBy != "getrandom@0.2.8" || len(a.Deps) != 2 || a.Deps[0].Breaks || !a.Deps[1].Breaks {
			t.Errorf("broken by %q, deps %+v: getrandom breaks the build", a.BrokenBy, a.Deps)
		}
		if a.GCReady {
			t.Error("an env import is not GC-ready")
		}
		if a.Timing == nil || a.Timing.Compared != 1 || a.Timing.Ratio != 1800 {
			t.Errorf("timing %+v: lib::a 5000 µs native, 9000 µs wasm", a.Timing)
		}
	})

	t.Run("incompatible", func(t *testing.T) {
		a := load("incompatible")
		if a.Wasm != registry.WasmIncompatible || a.Outcome != registry.OutcomeBuildFail {
			t.Errorf("verdict %q outcome %q", a.Wasm, a.Outcome)
		}
		if a.Gate != registry.GateRejected {
			t.Errorf("gate %q: a crate that builds for no wasm target is rejected", a.Gate)
		}
		if a.BrokenBy != "inc@0.1.0" || !a.Deps[0].Breaks {
			t.Errorf("broken by %q, deps %+v: the crate itself", a.BrokenBy, a.Deps)
		}
		if a.GCReady {
			t.Error("nothing was built, so nothing is GC-ready")
		}
		if a.Score >= 30 {
			t.Errorf("score %d for a crate that builds for no wasm target", a.Score)
		}
	})
}
