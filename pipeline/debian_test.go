package pipeline

import (
	"slices"
	"strings"
	"testing"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// Real crates that no one here wrote, from Debian's packages
// (librust-*-dev under /usr/share/cargo/registry). The expected outcomes
// were first established by hand: Debian's cargo 1.65 with rustc 1.63 and
// the directory source, `cargo test --no-run --target wasm32-wasi`, the
// wazero CLI on each test binary, and rustup's cargo for the native tests
// (docs/PIPELINE.md, "Verified by hand").

func TestDebianItoa(t *testing.T) {
	t.Parallel()
	b := runFixture(t, debianDir(t, "itoa-1.0.1")).body
	if b.Outcome != registry.OutcomeTestPass || b.Wasm != registry.WasmCompatible || !b.Dual {
		t.Fatalf("outcome %s wasm %s dual %v (%s)", b.Outcome, b.Wasm, b.Dual, b.Message)
	}
	// tests/test.rs has 9 tests; the library's own test binary has none.
	wantCounts(t, targetOf(t, b, testPipeline(t).host), 9, 0, 0, 0, 0)
	wantCounts(t, targetOf(t, b, TargetWasip1), 9, 0, 0, 0, 0)
	if n := targetOf(t, b, TargetWasip1).Tests.Binaries; n != 2 {
		t.Errorf("wasm test binaries %d, want 2", n)
	}
	if b.Timing == nil || b.Timing.Compared != 9 {
		t.Errorf("timing %+v, want 9 compared", b.Timing)
	}
}

func TestDebianSemver(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("semver's 32 tests in four binaries take a while")
	}
	b := runFixture(t, debianDir(t, "semver-1.0.14")).body
	if b.Outcome != registry.OutcomeTestPass || b.Wasm != registry.WasmCompatible {
		t.Fatalf("outcome %s wasm %s (%s)", b.Outcome, b.Wasm, b.Message)
	}
	// test_autotrait 1, test_identifier 2, test_version 10, test_version_req 19.
	wantCounts(t, targetOf(t, b, testPipeline(t).host), 32, 0, 0, 0, 0)
	wantCounts(t, targetOf(t, b, TargetWasip1), 32, 0, 0, 0, 0)
	if n := targetOf(t, b, TargetWasip1).Tests.Binaries; n != 5 {
		t.Errorf("wasm test binaries %d, want 5", n)
	}
	if c := testOf(t, b, "test:test_version_req::test_basic"); c.Native != registry.TestPassed || c.Wasm != registry.TestPassed {
		t.Errorf("test_basic: %+v", c)
	}
}

// memchr's tests need quickcheck, which Debian does not package here: the
// library builds for every target, its tests cannot be resolved. That is
// the node's gap, not the crate's: verdict builds, naming quickcheck.
func TestDebianMemchr(t *testing.T) {
	t.Parallel()
	b := runFixture(t, debianDir(t, "memchr-2.5.0")).body
	if b.Outcome != registry.OutcomeBrokenDeps || b.Wasm != registry.WasmBuilds {
		t.Fatalf("outcome %s wasm %s (%s)", b.Outcome, b.Wasm, b.Message)
	}
	if !strings.Contains(b.Reason, "quickcheck") || !slices.ContainsFunc(b.MissingDeps, func(s string) bool { return strings.HasPrefix(s, "quickcheck") }) {
		t.Errorf("reason %q, missing_deps %q: quickcheck not named", b.Reason, b.MissingDeps)
	}
	for _, tr := range b.Targets {
		if tr.Outcome == registry.OutcomeToolchainMissing {
			continue
		}
		if tr.Build != buildOK {
			t.Errorf("%s: build %s (%s)", tr.Target, tr.Build, tr.Message)
		}
	}
	w := targetOf(t, b, TargetWasip1)
	if w.Outcome != registry.OutcomeBrokenDeps || !strings.Contains(w.Message, "quickcheck") || w.Tests != nil {
		t.Errorf("wasip1: %s %q tests %+v", w.Outcome, w.Message, w.Tests)
	}
	for _, p := range b.Breakdown {
		if p.Name == "wasm-tests" && p.Max != 0 {
			t.Errorf("wasm-tests scored %d/%d though the tests could not be resolved", p.Points, p.Max)
		}
	}
}

// ryu needs no-panic (an optional dependency no default feature enables)
// and, for its tests, num_cpus and rand 0.5: none is packaged. The library
// builds without no-panic; the tests cannot be resolved (verdict builds).
func TestDebianRyu(t *testing.T) {
	t.Parallel()
	b := runFixture(t, debianDir(t, "ryu-1.0.2")).body
	if b.Outcome != registry.OutcomeBrokenDeps || b.Wasm != registry.WasmBuilds {
		t.Fatalf("outcome %s wasm %s (%s)", b.Outcome, b.Wasm, b.Message)
	}
	if tr := targetOf(t, b, TargetWasmUnknown); tr.Build != buildOK {
		t.Errorf("wasm32-unknown-unknown: %s (%s)", tr.Build, tr.Message)
	}
	if !strings.Contains(strings.Join(b.Notes, "\n"), "no-panic") {
		t.Errorf("notes do not say that no-panic was left out: %q", b.Notes)
	}
	if w := targetOf(t, b, TargetWasip1); !strings.Contains(w.Message, "num_cpus") || !strings.Contains(w.Message, "rand") {
		t.Errorf("wasip1 message %q does not name the missing dev-dependencies", w.Message)
	}
}
