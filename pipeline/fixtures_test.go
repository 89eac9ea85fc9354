package pipeline

import (
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// The fixture crates under testdata/crates are each written for one case
// of the pipeline's outcome classification (DESIGN.md §5); their outcomes
// are asserted exactly.

func TestFixturePureCompute(t *testing.T) {
	t.Parallel()
	b := runFixture(t, fixtureDir("pure")).body
	if b.Outcome != registry.OutcomeTestPass || b.Wasm != registry.WasmCompatible || !b.Dual {
		t.Fatalf("outcome %s wasm %s dual %v; want test-pass compatible dual (%s)", b.Outcome, b.Wasm, b.Dual, b.Message)
	}
	host := testPipeline(t).host
	// Natively the should_panic test passes; under wazero libtest reports it
	// ignored, so the like-with-like comparison leaves it out.
	wantCounts(t, targetOf(t, b, host), 6, 0, 1, 0, 0)
	wantCounts(t, targetOf(t, b, TargetWasip1), 5, 0, 2, 0, 0)
	if c := targetOf(t, b, TargetWasip1).Tests.Binaries; c != 2 {
		t.Errorf("wasm test binaries = %d, want 2 (lib and tests/api.rs)", c)
	}
	sp := testOf(t, b, "lib::tests::div_by_zero_panics")
	if sp.Native != registry.TestPassed || sp.Wasm != registry.TestIgnored || sp.Note == "" || sp.Ratio != 0 {
		t.Errorf("should_panic test: %+v; want passed natively, ignored in wasm, with a note, not compared", sp)
	}
	if ig := testOf(t, b, "lib::tests::expensive_ignored"); ig.Native != registry.TestIgnored || ig.Wasm != registry.TestIgnored {
		t.Errorf("#[ignore] test: %+v", ig)
	}
	api := testOf(t, b, "test:api::public_api")
	if api.Native != registry.TestPassed || api.Wasm != registry.TestPassed {
		t.Errorf("integration test: %+v", api)
	}
	if b.Timing == nil || b.Timing.Compared != 5 {
		t.Fatalf("timing %+v; want 5 tests compared", b.Timing)
	}
	if b.Timing.Timed == 0 || b.Timing.NativeUS == 0 || b.Timing.WasmUS == 0 || b.Timing.Ratio == 0 {
		t.Errorf("timing %+v: the sort test takes measurable time on both sides", b.Timing)
	}
	if sm := testOf(t, b, "lib::tests::sort_many"); sm.Ratio == 0 {
		t.Errorf("sort_many is timed on both sides but has no ratio: %+v", sm)
	}
	t.Logf("timing %+v", *b.Timing)
	// The wasm times of timed tests come from a second run without
	// wazero's interruption checks, which slow tight loops several times.
	if b.Timing.Retimed != b.Timing.Timed {
		t.Errorf("timing %+v: %d of %d timed wasm tests were timed again without interruption checks", b.Timing, b.Timing.Retimed, b.Timing.Timed)
	}
	uu := targetOf(t, b, TargetWasmUnknown)
	if uu.Outcome != registry.OutcomeTestSkipped || uu.Build != buildOK {
		t.Errorf("wasm32-unknown-unknown: %s/%s", uu.Outcome, uu.Build)
	}
	var cdylib *registry.WasmModule
	for i := range uu.Modules {
		if strings.HasPrefix(uu.Modules[i].Name, "cdylib:") {
			cdylib = &uu.Modules[i]
		}
	}
	if cdylib == nil || cdylib.Size == 0 || cdylib.Gzip == 0 || cdylib.Gzip >= cdylib.Size || len(cdylib.Imports) != 0 {
		t.Errorf("cdylib module %+v; want a module with sizes and no imports", cdylib)
	}
	wasi := targetOf(t, b, TargetWasip1)
	if len(wasi.Modules) == 0 || wasi.Modules[0].Imports[0].Module != "wasi_snapshot_preview1" {
		t.Errorf("wasip1 test module imports: %+v", wasi.Modules)
	}
	if wasi.PeakMemory == 0 || wasi.PeakMemory%65536 != 0 {
		t.Errorf("wasm peak memory %d; want a whole number of pages", wasi.PeakMemory)
	}
	if targetOf(t, b, host).PeakMemory == 0 {
		t.Error("native peak RSS missing")
	}
	if !b.GCReady {
		t.Errorf("GC checks %+v; want all pass", b.GCChecks)
	}
	if len(b.GCChecks) != gcChecksPerReport {
		t.Errorf("%d GC checks, want %d", len(b.GCChecks), gcChecksPerReport)
	}
	for _, c := range b.GCChecks {
		if c.Reason == "" {
			t.Errorf("GC check %s has no reason", c.Name)
		}
	}
	if b.Score < 90 || b.Gate != registry.GateCurated {
		t.Errorf("score %d gate %s; want ≥90 and curated: %+v", b.Score, b.Gate, b.Breakdown)
	}
	if len(b.Deps) != 1 || b.Deps[0].Name != "wcr-fx-pure" || b.Deps[0].Depth != 0 {
		t.Errorf("deps %+v; want only the crate itself", b.Deps)
	}
	if len(b.Toolchains) == 0 || b.Wazero == "" || b.Pipeline != Scheme {
		t.Errorf("toolchains %+v wazero %q pipeline %q", b.Toolchains, b.Wazero, b.Pipeline)
	}
	for _, tr := range b.Targets {
		if tr.Outcome != registry.OutcomeToolchainMissing && tr.Toolchain == "" {
			t.Errorf("target %s does not say which toolchain built it", tr.Target)
		}
	}
}

func TestFixtureFSAndThreads(t *testing.T) {
	t.Parallel()
	b := runFixture(t, fixtureDir("fsthreads")).body
	if b.Outcome != registry.OutcomeTestFail || b.Wasm != registry.WasmPartial || b.Dual {
		t.Fatalf("outcome %s wasm %s dual %v; want test-fail partial (%s)", b.Outcome, b.Wasm, b.Dual, b.Message)
	}
	wantCounts(t, targetOf(t, b, testPipeline(t).host), 3, 0, 0, 0, 0)
	wantCounts(t, targetOf(t, b, TargetWasip1), 1, 2, 0, 0, 0)
	for _, name := range []string{"lib::tests::file_roundtrip", "lib::tests::thread_sum"} {
		if c := testOf(t, b, name); c.Native != registry.TestPassed || c.Wasm != registry.TestFailed {
			t.Errorf("%s: %+v; want passed natively, failed in wasm", name, c)
		}
	}
	if b.Gate != registry.GateNeedsReview {
		t.Errorf("gate %s, want needs-review (score %d)", b.Gate, b.Score)
	}
	if !strings.Contains(logsText(b), "thread_sum") {
		t.Errorf("no log excerpt for the failing wasm test:\n%s", logsText(b))
	}
}

func TestFixtureCDependency(t *testing.T) {
	t.Parallel()
	b := runFixture(t, fixtureDir("cdep")).body
	if b.Outcome != registry.OutcomeBuildFail || b.Wasm != registry.WasmIncompatible || b.Gate != registry.GateRejected {
		t.Fatalf("outcome %s wasm %s gate %s; want build-fail incompatible rejected (%s)", b.Outcome, b.Wasm, b.Gate, b.Message)
	}
	native := targetOf(t, b, testPipeline(t).host)
	if native.Outcome != registry.OutcomeTestPass {
		t.Errorf("native: %s (%s)", native.Outcome, native.Message)
	}
	wantCounts(t, native, 2, 0, 0, 0, 0)
	for _, name := range []string{TargetWasmUnknown, TargetWasip1} {
		if tr := targetOf(t, b, name); tr.Build != buildFailed || tr.Outcome != registry.OutcomeBuildFail {
			t.Errorf("%s: build %s outcome %s", name, tr.Build, tr.Outcome)
		}
	}
	if b.BrokenBy != "wcr-fx-cdep-sys@0.1.0" {
		t.Errorf("broken by %q, want wcr-fx-cdep-sys@0.1.0", b.BrokenBy)
	}
	sys := depOf(b, "wcr-fx-cdep-sys")
	if sys == nil || !sys.Held || sys.Source != sourceRegistry || !sys.Breaks || sys.Wasm != registry.WasmIncompatible {
		t.Errorf("wcr-fx-cdep-sys dep: %+v; want held, from the registry, breaking, known incompatible", sys)
	}
	if cc := depOf(b, "cc"); cc == nil || cc.Source != sourceDirectory || cc.Kind != registry.DepBuild || cc.Held {
		t.Errorf("cc dep: %+v; want a build dependency from the directory source", cc)
	}
	if !strings.Contains(logsText(b), "clang") {
		t.Errorf("log excerpt does not show the C compiler failure:\n%s", logsText(b))
	}
}

func TestFixtureTargetSpecificDependency(t *testing.T) {
	t.Parallel()
	b := runFixture(t, fixtureDir("targetdep")).body
	if b.Outcome != registry.OutcomeTestPass || b.Wasm != registry.WasmCompatible {
		t.Fatalf("outcome %s wasm %s; want test-pass compatible (%s)", b.Outcome, b.Wasm, b.Message)
	}
	wantCounts(t, targetOf(t, b, testPipeline(t).host), 2, 0, 0, 0, 0)
	wantCounts(t, targetOf(t, b, TargetWasip1), 2, 0, 0, 0, 0)
	if d := depOf(b, "getrandom"); d != nil {
		t.Errorf("getrandom is in the wasm dependency tree: %+v", d)
	}
}

func TestFixtureGetrandomEverywhere(t *testing.T) {
	t.Parallel()
	b := runFixture(t, fixtureDir("getrandom")).body
	if b.Outcome != registry.OutcomeBuildFail || b.Wasm != registry.WasmIncompatible {
		t.Fatalf("outcome %s wasm %s; want build-fail incompatible (%s)", b.Outcome, b.Wasm, b.Message)
	}
	wantCounts(t, targetOf(t, b, testPipeline(t).host), 1, 0, 0, 0, 0)
	if b.BrokenBy != "getrandom@0.2.8" {
		t.Errorf("broken by %q, want getrandom@0.2.8", b.BrokenBy)
	}
	if d := depOf(b, "getrandom"); d == nil || !d.Breaks || d.Source != sourceDirectory || d.Held || d.Depth != 1 {
		t.Errorf("getrandom dep: %+v", d)
	}
	if !strings.Contains(targetOf(t, b, TargetWasmUnknown).Message, "getrandom") {
		t.Errorf("wasm32-unknown-unknown message does not name the dependency: %s", targetOf(t, b, TargetWasmUnknown).Message)
	}
}

func TestFixtureOneFailingTest(t *testing.T) {
	t.Parallel()
	b := runFixture(t, fixtureDir("onefail")).body
	if b.Outcome != registry.OutcomeTestFail || b.Wasm != registry.WasmPartial {
		t.Fatalf("outcome %s wasm %s (%s)", b.Outcome, b.Wasm, b.Message)
	}
	wantCounts(t, targetOf(t, b, testPipeline(t).host), 5, 1, 0, 0, 0)
	wantCounts(t, targetOf(t, b, TargetWasip1), 5, 1, 0, 0, 0)
	c := testOf(t, b, "lib::tests::d_wrong_on_purpose")
	if c.Native != registry.TestFailed || c.Wasm != registry.TestFailed {
		t.Errorf("failing test: %+v", c)
	}
	if b.Timing == nil || b.Timing.Compared != 5 {
		t.Errorf("timing %+v; want 5 compared", b.Timing)
	}
	if !strings.Contains(logsText(b), "this test is meant to fail") {
		t.Errorf("log excerpts lack the failing assertion:\n%s", logsText(b))
	}
}

func TestFixtureTestNeverEnds(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("waits for the per-test deadline twice")
	}
	b := runFixture(t, fixtureDir("hang")).body
	if b.Outcome != registry.OutcomeTimeout {
		t.Fatalf("outcome %s (%s)", b.Outcome, b.Message)
	}
	host := testPipeline(t).host
	wantCounts(t, targetOf(t, b, host), 3, 0, 0, 1, 0)
	wantCounts(t, targetOf(t, b, TargetWasip1), 3, 0, 0, 1, 0)
	if targetOf(t, b, host).Outcome != registry.OutcomeTimeout {
		t.Errorf("native outcome %s", targetOf(t, b, host).Outcome)
	}
	c := testOf(t, b, "lib::tests::b_spins_forever")
	if c.Native != registry.TestTimeout || c.Wasm != registry.TestTimeout {
		t.Errorf("spinning test: %+v", c)
	}
	for _, name := range []string{"lib::tests::a_before", "lib::tests::c_after", "lib::tests::d_last"} {
		if c := testOf(t, b, name); c.Native != registry.TestPassed || c.Wasm != registry.TestPassed {
			t.Errorf("%s: %+v; the other tests must still be counted", name, c)
		}
	}
}

func TestFixtureUnboundedAllocation(t *testing.T) {
	t.Parallel()
	b := runFixture(t, fixtureDir("oom")).body
	if b.Outcome != registry.OutcomeOOM {
		t.Fatalf("outcome %s (%s)", b.Outcome, b.Message)
	}
	host := testPipeline(t).host
	wantCounts(t, targetOf(t, b, host), 2, 0, 0, 0, 1)
	wantCounts(t, targetOf(t, b, TargetWasip1), 2, 0, 0, 0, 1)
	if c := testOf(t, b, "lib::tests::b_grows_without_bound"); c.Native != registry.TestOOM || c.Wasm != registry.TestOOM {
		t.Errorf("allocating test: %+v", c)
	}
	limit := testLimits().TestMemory
	if p := targetOf(t, b, TargetWasip1).PeakMemory; p < limit/2 || p > limit {
		t.Errorf("wasm peak memory %d; want close to the limit %d", p, limit)
	}
	for _, c := range b.GCChecks {
		if c.Name == gcBoundedMemory && c.Pass {
			t.Error("bounded-memory-growth passes for a crate that ran out of memory")
		}
	}
}

func TestFixtureBuildScriptEscape(t *testing.T) {
	t.Parallel()
	const probe = "/usr/local/wcr-fx-escape-probe"
	_ = os.Remove(probe)
	var connections atomic.Int32
	ln, err := net.Listen("tcp", "127.0.0.1:47391")
	if err == nil {
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				connections.Add(1)
				c.Close()
			}
		}()
	} else {
		t.Logf("cannot listen on the probe port, so the network check relies on the build's log: %v", err)
	}
	fr := runFixture(t, fixtureDir("escape"))
	b := fr.body
	if b.Outcome != registry.OutcomeSandboxViolation {
		t.Fatalf("outcome %s (%s)", b.Outcome, b.Message)
	}
	for _, tr := range b.Targets {
		if tr.Outcome != registry.OutcomeToolchainMissing && tr.Outcome != registry.OutcomeSandboxViolation {
			t.Errorf("%s: outcome %s, want sandbox-violation", tr.Target, tr.Outcome)
		}
	}
	if _, err := os.Stat(probe); err == nil {
		_ = os.Remove(probe)
		t.Errorf("the build script wrote %s on the host", probe)
	}
	time.Sleep(100 * time.Millisecond)
	if n := connections.Load(); n != 0 {
		t.Errorf("the build script reached the host's network %d times", n)
	}
	logs := logsText(b)
	// The sandbox has its own network namespace: nothing listens on its
	// loopback, so the connection is refused there while the host's
	// listener on the same port sees nothing.
	for _, want := range []string{"connect 127.0.0.1:47391: Connection refused", "/usr/local/wcr-fx-escape-probe: Read-only file system", "escaped-from-build.txt: Read-only file system"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log excerpts lack %q:\n%s", want, logs)
		}
	}
}

func TestFixtureProcMacro(t *testing.T) {
	t.Parallel()
	b := runFixture(t, fixtureDir("macro")).body
	if b.Outcome != registry.OutcomeTestPass || b.Wasm != registry.WasmCompatible {
		t.Fatalf("outcome %s wasm %s (%s)", b.Outcome, b.Wasm, b.Message)
	}
	wantCounts(t, targetOf(t, b, testPipeline(t).host), 2, 0, 0, 0, 0)
	wantCounts(t, targetOf(t, b, TargetWasip1), 2, 0, 0, 0, 0)
	if c := testOf(t, b, "test:expand::sums_at_compile_time"); c.Native != registry.TestPassed || c.Wasm != registry.TestPassed {
		t.Errorf("macro test: %+v", c)
	}
}
