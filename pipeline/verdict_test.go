package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
)

func vFixture(name string) string { return filepath.Join("testdata", name) }

// wasmToolchainOlder reports whether the wasm targets are built by an
// older toolchain than the host target (this machine: rustc 1.63 for wasm,
// the newest rustup toolchain natively); the toolchain-age fixtures need it.
func wasmToolchainOlder(t *testing.T) bool {
	t.Helper()
	p := testPipeline(t)
	var host, wasm Toolchain
	for _, st := range p.plan {
		for _, tc := range p.toolchains {
			if tc.ID != st.Toolchain {
				continue
			}
			switch st.Target {
			case p.host:
				host = tc
			case TargetWasip1:
				wasm = tc
			}
		}
	}
	hv, ok1 := parseVersion(host.Version)
	wv, ok2 := parseVersion(wasm.Version)
	return ok1 && ok2 && wv.less(hv)
}

// runNoReport runs a fixture that must give no report and returns the
// error's message.
func runNoReport(t *testing.T, dir string, local LocalRegistry) (string, []Event) {
	t.Helper()
	crate := packDir(t, dir)
	rec, rb := release(t, crate)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	var events []Event
	body, err := testPipeline(t).Run(ctx, Job{Release: rec, Body: rb, Crate: crate, Local: local}, func(e Event) { events = append(events, e) })
	if registry.KindOf(err) != registry.EUNAVAILABLE || body != nil {
		t.Fatalf("Run = %+v, %v; want no report and an unavailable error", body, err)
	}
	return registry.MessageOf(err), events
}

func scorePart(b *registry.ReportBody, name string) registry.ScorePart {
	for _, p := range b.Breakdown {
		if p.Name == name {
			return p
		}
	}
	return registry.ScorePart{Name: name + " (missing)"}
}

// A build script that prints every phrase a text-matching classifier took
// for the node's fault ("requires rustc 1.99", "Permission denied", "out of
// memory", "failed to select a version", "failed to run custom build
// command for `libc`") and then fails only for wasm targets is classed by
// facts: build-fail for both wasm targets, so the crate is incompatible,
// and the failing package is the crate itself, not the libc it named.
func TestVerdictSpoofingBuildScriptWasmOnly(t *testing.T) {
	t.Parallel()
	b := runFixture(t, vFixture("v-spoof-wasm")).body
	if b.Wasm != registry.WasmIncompatible || b.Outcome != registry.OutcomeBuildFail || b.Gate != registry.GateRejected {
		t.Fatalf("outcome %s wasm %s gate %s (%s); want build-fail, incompatible, rejected", b.Outcome, b.Wasm, b.Gate, b.Message)
	}
	for _, name := range []string{TargetWasmUnknown, TargetWasip1} {
		tr := targetOf(t, b, name)
		if tr.Build != buildFailed || tr.Outcome != registry.OutcomeBuildFail {
			t.Errorf("%s: build %s outcome %s (%s); want failed, build-fail", name, tr.Build, tr.Outcome, tr.Message)
		}
	}
	if tr := targetOf(t, b, testPipeline(t).host); tr.Build != buildOK || tr.Outcome != registry.OutcomeTestPass {
		t.Errorf("native: build %s outcome %s (%s); the script does not fail for the host", tr.Build, tr.Outcome, tr.Message)
	}
	if b.BrokenBy != "wcr-fx-v-spoof-wasm@0.1.0" {
		t.Errorf("broken_by %q; want the crate itself, whose build script failed", b.BrokenBy)
	}
	if !strings.Contains(logsText(b), "requires rustc 1.99") {
		t.Errorf("the build log lost what the script printed:\n%s", logsText(b))
	}
}

// The same script failing for every target fails the native build too,
// and the wasm builds are still the crate's build-fail.
func TestVerdictSpoofingBuildScriptEverywhere(t *testing.T) {
	t.Parallel()
	b := runFixture(t, vFixture("v-spoof-all")).body
	if b.Wasm != registry.WasmIncompatible {
		t.Fatalf("wasm %s (%s %s); want incompatible", b.Wasm, b.Outcome, b.Message)
	}
	for _, tr := range b.Targets {
		if tr.Outcome == registry.OutcomeToolchainMissing && tr.Toolchain == "" {
			continue // a target this machine has no toolchain for
		}
		if tr.Build != buildFailed || tr.Outcome != registry.OutcomeBuildFail {
			t.Errorf("%s: build %s outcome %s (%s); want failed, build-fail", tr.Target, tr.Build, tr.Outcome, tr.Message)
		}
	}
}

// A library using an API stabilised after the wasm toolchain's release
// fails for the wasm targets and, by the control build, for the host with
// the same toolchain, while the newest toolchain builds it natively: the
// toolchain's age, not wasm. No wasm target could be tried, so no report.
func TestVerdictToolchainAgeLibrary(t *testing.T) {
	t.Parallel()
	if !wasmToolchainOlder(t) {
		t.Skip("the wasm toolchain is the host's: no older toolchain to tell apart")
	}
	msg, events := runNoReport(t, vFixture("v-newapi-lib"), nil)
	for _, name := range []string{TargetWasmUnknown, TargetWasip1} {
		if !strings.Contains(msg, name+": "+registry.OutcomeToolchainAge+":") {
			t.Errorf("message does not class %s toolchain-age: %s", name, msg)
		}
	}
	if strings.Contains(msg, registry.OutcomeBuildFail) {
		t.Errorf("message blames the crate: %s", msg)
	}
	// The compared host target is built by the wasm toolchain itself, so
	// its own failed build is the control: no separate control build runs.
	controls, hostFailed := 0, false
	for _, e := range events {
		if e.Stage == "control-build" {
			controls++
		}
		if e.Stage == "build" && e.Target == testPipeline(t).host && e.State == StateFailed {
			hostFailed = true
		}
	}
	if controls != 0 || !hostFailed {
		t.Errorf("%d host control builds, compared host build failed %v; want none, and the host target's own failed build", controls, hostFailed)
	}
}

// Tests that need an API newer than the wasm toolchain, while the library
// builds for wasm: the verdict is builds, with the toolchain's age as the
// reason, and the untested part costs no points.
func TestVerdictToolchainAgeTests(t *testing.T) {
	t.Parallel()
	if !wasmToolchainOlder(t) {
		t.Skip("the wasm toolchain is the host's: no older toolchain to tell apart")
	}
	b := runFixture(t, vFixture("v-newapi-tests")).body
	if b.Wasm != registry.WasmBuilds {
		t.Fatalf("wasm %s (%s: %s); want builds", b.Wasm, b.Outcome, b.Message)
	}
	w := targetOf(t, b, TargetWasip1)
	if w.Build != buildOK || w.Outcome != registry.OutcomeToolchainAge {
		t.Errorf("wasip1: build %s outcome %s (%s); want ok, toolchain-age", w.Build, w.Outcome, w.Message)
	}
	if !strings.Contains(b.Reason, "rustc") || !strings.Contains(b.Reason, "newer toolchain") {
		t.Errorf("reason %q does not say the tests need a newer toolchain", b.Reason)
	}
	if p := scorePart(b, "wasm-tests"); p.Max != 0 {
		t.Errorf("wasm-tests scored %d/%d; tests not run for the node's reasons must not count", p.Points, p.Max)
	}
	// Like with like: natively with the wasm toolchain the tests do not
	// compile either; the newest toolchain's extra run passes them.
	if n := targetOf(t, b, testPipeline(t).host); n.Outcome != registry.OutcomeBuildFail || n.Build != buildOK {
		t.Errorf("native with the wasm toolchain: %s/%s (%s)", n.Build, n.Outcome, n.Message)
	}
	extra := false
	for _, x := range b.Targets {
		if x.Extra && x.Target == testPipeline(t).host {
			extra = x.Outcome == registry.OutcomeTestPass
		}
	}
	if !extra {
		t.Errorf("the newest toolchain's extra native run does not pass the tests: %+v", b.Targets)
	}
	if b.Gate == registry.GateCurated {
		t.Error("a crate whose tests were not run here was curated")
	}
}

// A dev-dependency no source of the node has: the crate builds for wasm,
// its tests could not be built here; verdict builds, naming the package.
func TestVerdictMissingDevDependency(t *testing.T) {
	t.Parallel()
	b := runFixture(t, vFixture("v-devdep-missing")).body
	if b.Wasm != registry.WasmBuilds {
		t.Fatalf("wasm %s (%s: %s); want builds", b.Wasm, b.Outcome, b.Message)
	}
	if !slices.ContainsFunc(b.MissingDeps, func(s string) bool { return strings.HasPrefix(s, "wcr-fx-v-absent-helper") }) {
		t.Errorf("missing_deps %q does not name wcr-fx-v-absent-helper", b.MissingDeps)
	}
	if !strings.Contains(b.Reason, "wcr-fx-v-absent-helper") {
		t.Errorf("reason %q does not name the missing dev-dependency", b.Reason)
	}
	for _, name := range []string{TargetWasmUnknown, TargetWasip1} {
		if tr := targetOf(t, b, name); tr.Build != buildOK {
			t.Errorf("%s: build %s (%s)", name, tr.Build, tr.Message)
		}
	}
	if p := scorePart(b, "wasm-tests"); p.Max != 0 {
		t.Errorf("wasm-tests scored %d/%d", p.Points, p.Max)
	}
	rec, err := registry.Sign(key(t), registry.KindReport, "wcr-fx-v-devdep-missing@0.1.0", b, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rec.DecodeBody(); err != nil {
		t.Errorf("the builds report does not validate: %v", err)
	}
}

// A dev-dependency that only the registry's own (authorized) releases
// hold is taken from them: the tests run and pass under wazero.
func TestVerdictDevDependencyFromStore(t *testing.T) {
	t.Parallel()
	reg := newMemRegistry()
	reg.add(t, packDir(t, vFixture("v-store-helper")), "")
	dir := vFixture("v-devdep-store")
	crate := packDir(t, dir)
	rec, rb := release(t, crate)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	b, err := testPipeline(t).Run(ctx, Job{Release: rec, Body: rb, Crate: crate, Local: reg}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b.Wasm != registry.WasmCompatible || len(b.MissingDeps) != 0 {
		t.Fatalf("wasm %s missing %q (%s: %s); want compatible", b.Wasm, b.MissingDeps, b.Outcome, b.Message)
	}
	wantCounts(t, targetOf(t, b, TargetWasip1), 1, 0, 0, 0, 0)
}

// A test of the crate's own that fails only in wasm: partial.
func TestVerdictWasmOnlyTestFailure(t *testing.T) {
	t.Parallel()
	b := runFixture(t, vFixture("v-wasm-testfail")).body
	if b.Wasm != registry.WasmPartial || b.Reason != "" {
		t.Fatalf("wasm %s reason %q (%s: %s); want partial", b.Wasm, b.Reason, b.Outcome, b.Message)
	}
	wantCounts(t, targetOf(t, b, TargetWasip1), 1, 1, 0, 0, 0)
	wantCounts(t, targetOf(t, b, testPipeline(t).host), 2, 0, 0, 0, 0)
}

// A rust-version above the wasm toolchain is its own outcome, never the
// crate's failure; with no wasm target left to try there is no report.
func TestVerdictRustVersion(t *testing.T) {
	t.Parallel()
	if !wasmToolchainOlder(t) {
		t.Skip("the wasm toolchain is the host's")
	}
	msg, _ := runNoReport(t, vFixture("v-rust-version"), nil)
	for _, name := range []string{TargetWasmUnknown, TargetWasip1} {
		if !strings.Contains(msg, name+": "+registry.OutcomeRustVersion+":") {
			t.Errorf("message does not class %s rust-version: %s", name, msg)
		}
	}
}

// The verdict rules, target by target.
func TestVerdictRules(t *testing.T) {
	ts := func(build, outcome string, c *registry.TestCounts) *targetState {
		return &targetState{rep: &registry.TargetReport{Build: build, Outcome: outcome, Tests: c}}
	}
	hostFails := func(s *targetState) *targetState { s.hostFails = true; return s }
	ok := &registry.TestCounts{Passed: 2}
	stripped := &resolution{ok: true, devStripped: true, outcome: registry.OutcomeBrokenDeps, why: "the tests' dev-dependencies (x) cannot all be resolved"}
	skipped := func() *targetState { return ts(buildOK, registry.OutcomeTestSkipped, nil) }
	cases := []struct {
		name     string
		uu, wasi *targetState
		res      *resolution
		want     string
	}{
		{"tests pass", skipped(), ts(buildOK, registry.OutcomeTestPass, ok), nil, registry.WasmCompatible},
		{"a test fails", skipped(), ts(buildOK, registry.OutcomeTestFail, ok), nil, registry.WasmPartial},
		{"a test times out", skipped(), ts(buildOK, registry.OutcomeTimeout, ok), nil, registry.WasmPartial},
		{"unknown-unknown fails", ts(buildFailed, registry.OutcomeBuildFail, nil), ts(buildOK, registry.OutcomeTestPass, ok), nil, registry.WasmPartial},
		{"dev-dependencies missing", skipped(), ts(buildOK, registry.OutcomeBrokenDeps, nil), stripped, registry.WasmBuilds},
		{"no wasm target builds", ts(buildFailed, registry.OutcomeBuildFail, nil), ts(buildFailed, registry.OutcomeBuildFail, nil), nil, registry.WasmIncompatible},
		{"no unknown-unknown toolchain", ts(registry.OutcomeToolchainMissing, registry.OutcomeToolchainMissing, nil), ts(buildOK, registry.OutcomeTestPass, ok), nil, registry.WasmCompatible},
		{"caps", skipped(), ts(buildOK, registry.OutcomeTestPass, &registry.TestCounts{Passed: 1, NotRun: 1}), nil, registry.WasmBuilds},
		{"tests need a newer toolchain", skipped(), ts(buildOK, registry.OutcomeToolchainAge, nil), nil, registry.WasmBuilds},
		{"tests' rust-version", skipped(), ts(buildOK, registry.OutcomeRustVersion, nil), nil, registry.WasmBuilds},
		{"broken WASI toolchain", skipped(), ts(buildOK, registry.OutcomeToolchainMissing, nil), nil, registry.WasmBuilds},
		{"tests do not compile for wasm only", skipped(), ts(buildOK, registry.OutcomeBuildFail, nil), nil, registry.WasmPartial},
		{"tests do not compile for the host either", skipped(), hostFails(ts(buildOK, registry.OutcomeBuildFail, nil)), nil, registry.WasmBuilds},
		{"no WASI toolchain", skipped(), ts(registry.OutcomeToolchainMissing, registry.OutcomeToolchainMissing, nil), nil, registry.WasmBuilds},
		{"WASI too old, unknown-unknown builds", skipped(), ts(buildFailed, registry.OutcomeToolchainAge, nil), nil, registry.WasmBuilds},
		{"WASI fails for the crate, unknown-unknown builds", skipped(), ts(buildFailed, registry.OutcomeBuildFail, nil), nil, registry.WasmPartial},
		{"WASI sandbox violation", skipped(), ts(buildOK, registry.OutcomeSandboxViolation, nil), nil, registry.WasmPartial},
	}
	for _, c := range cases {
		if c.wasi.tc.Version == "" {
			c.wasi.tc.Version = "1.63.0"
		}
		v := wasmVerdict(c.uu, c.wasi, c.res)
		if v.wasm != c.want {
			t.Errorf("%s: %s, want %s", c.name, v.wasm, c.want)
		}
		if (v.wasm == registry.WasmBuilds) != (v.reason != "") {
			t.Errorf("%s: verdict %s with reason %q: builds needs a reason, nothing else has one", c.name, v.wasm, v.reason)
		}
	}
}

// The class of a failed step comes from how it ended and from the
// sandbox's accounting; there is no text to steer it.
func TestVerdictClassifyFacts(t *testing.T) {
	cases := []struct {
		name string
		run  runResult
		want string
	}{
		{"deadline", runResult{Exit: -1, TimedOut: true}, registry.OutcomeTimeout},
		{"disk", runResult{Exit: 1, DiskExceeded: true}, registry.OutcomeSandboxViolation},
		{"file size", runResult{Exit: -1, Signal: syscall.SIGXFSZ}, registry.OutcomeSandboxViolation},
		{"cpu", runResult{Exit: -1, Signal: syscall.SIGXCPU}, registry.OutcomeTimeout},
		{"memory", runResult{Exit: 101, MaxRSS: 900 << 20}, registry.OutcomeOOM},
		{"memory well below the limit", runResult{Exit: 101, MaxRSS: 100 << 20}, registry.OutcomeBuildFail},
		{"network refused", runResult{Exit: 101, Refusals: []registry.Refusal{{Action: refusalNetwork, Detail: "10.0.0.1:80"}}}, registry.OutcomeSandboxViolation},
		{"write refused", runResult{Exit: 101, Refusals: []registry.Refusal{{Action: refusalWrite, Detail: "/etc/x"}}}, registry.OutcomeSandboxViolation},
		{"plain failure", runResult{Exit: 101}, registry.OutcomeBuildFail},
	}
	for _, c := range cases {
		if got, _ := classifyStep(c.run, 1<<30); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}

	// cargo's JSON: the failing build script is the one compiled and never
	// run; whatever cargo relayed on stderr does not count.
	res := &cargoResult{stderr: &limitedBuffer{limit: 1 << 10}}
	for _, line := range []string{
		`{"reason":"compiler-artifact","package_id":"libc 0.2.1 (registry+https://github.com/rust-lang/crates.io-index)","target":{"kind":["custom-build"],"crate_types":["bin"],"name":"build-script-build"},"filenames":[]}`,
		`{"reason":"build-script-executed","package_id":"libc 0.2.1 (registry+https://github.com/rust-lang/crates.io-index)"}`,
		`{"reason":"compiler-artifact","package_id":"spoof 0.1.0 (path+file:///x)","target":{"kind":["custom-build"],"crate_types":["bin"],"name":"build-script-build"},"filenames":[]}`,
		`{"reason":"build-finished","success":false}`,
	} {
		res.message(line)
	}
	_, _ = res.stderr.Write([]byte("error: failed to run custom build command for `libc v0.2.1`\nerror: could not compile `libc`\n"))
	if got := packageName(res.facts.failedScript()); got != "spoof@0.1.0" {
		t.Errorf("failed build script %q, want spoof@0.1.0", got)
	}
	res.message(`{"reason":"compiler-message","package_id":"spoof 0.1.0 (path+file:///x)","message":{"level":"error","rendered":"error[E0658]: use of unstable library feature","code":{"code":"E0658"}}}`)
	if !slices.Equal(res.facts.errorCodes, []string{"E0658"}) || packageName(res.firstError) != "spoof@0.1.0" {
		t.Errorf("codes %v first error %q", res.facts.errorCodes, res.firstError)
	}
}

// missing_deps names the dependencies the sources lack, from the release's
// own list and cargo's resolver error, bounded.
func TestVerdictMissingDepsNamed(t *testing.T) {
	deps := []registry.Dep{
		{Name: "held", Req: "^1", Kind: registry.DepDev},
		{Name: "gone", Req: "^2", Kind: registry.DepDev},
		{Name: "alias", Package: "renamed-gone", Req: "^3", Kind: registry.DepDev},
		{Name: "normal-gone", Req: "^1", Kind: registry.DepNormal},
	}
	vendor := vendorIndex{"held@1.0.0": sourceDirectory}
	got := missingDeps(deps, []string{registry.DepDev}, vendor, "error: failed to select a version for the requirement `held = \"^9\"`\n")
	want := []string{"gone ^2", "held ^9", "renamed-gone ^3"}
	if !slices.Equal(got, want) {
		t.Errorf("missing %q, want %q", got, want)
	}
	var many []registry.Dep
	for i := range 200 {
		many = append(many, registry.Dep{Name: "d" + strings.Repeat("x", i%300), Req: "^1", Kind: registry.DepDev})
	}
	if got := missingDeps(many, []string{registry.DepDev}, nil, ""); len(got) > registry.MaxMissingDeps {
		t.Errorf("%d names, above the bound %d", len(got), registry.MaxMissingDeps)
	}
}

// Reports from peers are hostile: the verdict's new fields are bounded and
// builds needs its reason.
func TestVerdictReportFieldsValidated(t *testing.T) {
	base := func() *registry.ReportBody {
		return &registry.ReportBody{Release: registry.Sum([]byte("release")).Bytes(), Outcome: registry.OutcomeBrokenDeps,
			Wasm: registry.WasmBuilds, Reason: "Its tests were not run here.", Score: 50, Gate: registry.GateNeedsReview, Started: 1, Finished: 2}
	}
	check := func(name string, b *registry.ReportBody, valid bool) {
		t.Helper()
		rec, err := registry.Sign(key(t), registry.KindReport, "x@1.0.0", b, time.Now())
		if err == nil {
			_, err = rec.DecodeBody()
		}
		if (err == nil) != valid {
			t.Errorf("%s: err %v, want valid=%v", name, err, valid)
		}
	}
	check("builds with a reason", base(), true)
	b := base()
	b.Reason = ""
	check("builds without a reason", b, false)
	b = base()
	b.Reason = strings.Repeat("r", registry.MaxReasonLen+1)
	check("reason too long", b, false)
	b = base()
	b.MissingDeps = make([]string, registry.MaxMissingDeps+1)
	for i := range b.MissingDeps {
		b.MissingDeps[i] = "d"
	}
	check("too many missing deps", b, false)
	b = base()
	b.MissingDeps = []string{strings.Repeat("n", registry.MaxMissingDepLen+1)}
	check("missing dep too long", b, false)
	b = base()
	b.MissingDeps = []string{""}
	check("empty missing dep", b, false)
	b = base()
	b.Wasm = "builds-ish"
	check("unknown verdict", b, false)
}

// The control crate says something about a toolchain, never about a
// crate: it is built once per toolchain and target per process, and a
// later run whose wasm build fails reuses the answer.
func TestVerdictControlCrateOncePerProcess(t *testing.T) {
	t.Parallel()
	p := testPipeline(t)
	b := runFixture(t, vFixture("v-spoof-wasm")).body
	for _, name := range []string{TargetWasmUnknown, TargetWasip1} {
		tr := targetOf(t, b, name)
		var tc Toolchain
		var triple string
		for _, st := range p.plan {
			if st.Target == name {
				triple = st.Triple
				for _, x := range p.toolchains {
					if x.ID == st.Toolchain {
						tc = x
					}
				}
			}
		}
		e := p.controls.entry(tc.ID + "|" + triple)
		e.mu.Lock()
		done, ok := e.done, e.ok
		e.mu.Unlock()
		if !done || !ok {
			t.Errorf("%s (%s): control crate done=%v ok=%v after a failed wasm build", name, tr.Toolchain, done, ok)
		}
	}
	crate := packDir(t, vFixture("v-spoof-all"))
	rec, rb := release(t, crate)
	var mu sync.Mutex
	var stages []string
	again, err := p.Run(context.Background(), Job{Release: rec, Body: rb, Crate: crate}, func(e Event) {
		mu.Lock()
		defer mu.Unlock()
		if e.State == StateStart {
			stages = append(stages, e.Stage+" "+e.Target)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if again.Wasm != registry.WasmIncompatible {
		t.Errorf("wasm %s", again.Wasm)
	}
	if slices.ContainsFunc(stages, func(s string) bool { return strings.HasPrefix(s, "control-toolchain") }) {
		t.Errorf("the control crate was built again: %q", stages)
	}
}

// A toolchain that cannot build even the node's own control crate for a
// target is broken for it: the failure is toolchain-missing, the node's,
// whatever the crate is. Here the real wasm toolchain is asked for a
// target whose standard library it does not ship (wasm64), the one way to
// have a broken toolchain on a machine whose toolchains work.
func TestVerdictBrokenToolchainIsTheNodes(t *testing.T) {
	t.Parallel()
	p := testPipeline(t)
	var tc Toolchain
	for _, st := range p.plan {
		if st.Target == TargetWasip1 {
			for _, x := range p.toolchains {
				if x.ID == st.Toolchain {
					tc = x
				}
			}
		}
	}
	const target = "wasm64-unknown-unknown"
	if slices.Contains(tc.Targets, target) {
		t.Skipf("%s has the standard library for %s", tc.ID, target)
	}
	dir, err := os.MkdirTemp(p.cfg.WorkDir, "job-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ts := &targetState{status: TargetStatus{Target: target, Triple: target, Toolchain: tc.ID}, tc: tc,
		rep: &registry.TargetReport{Target: target, Build: buildFailed, Outcome: registry.OutcomeBuildFail}}
	var events []Event
	r := &jobRun{p: p, sb: p.sb, dir: dir, log: p.log, targets: []*targetState{ts}, progress: func(e Event) { events = append(events, e) }}
	if err := r.settleWasmFailure(context.Background(), ts, false); err != nil {
		t.Fatal(err)
	}
	if ts.rep.Outcome != registry.OutcomeToolchainMissing || !strings.Contains(ts.rep.Message, "cannot build even a crate with no dependencies") || ts.rep.Install == "" {
		t.Errorf("outcome %s (%s), install %q; want toolchain-missing", ts.rep.Outcome, ts.rep.Message, ts.rep.Install)
	}
	if !slices.ContainsFunc(events, func(e Event) bool { return e.Stage == "control-toolchain" && e.State == StateFailed }) {
		t.Errorf("no failed control-toolchain stage in %+v", events)
	}
}
