package pipeline

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
	registry "github.com/wasmrust/wasm-crates-registry"
)

// wasmModule assembles a module from sections (id, payload).
func wasmModule(sections ...[]byte) []byte {
	b := []byte("\x00asm\x01\x00\x00\x00")
	for _, s := range sections {
		b = append(b, s...)
	}
	return b
}

func section(id byte, payload ...byte) []byte {
	return append([]byte{id, byte(len(payload))}, payload...)
}

func wname(s string) []byte { return append([]byte{byte(len(s))}, s...) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestAnalyzeWasm(t *testing.T) {
	types := section(1, cat(
		[]byte{2},
		[]byte{0x60, 1, 0x6f, 0},             // (externref) -> ()
		[]byte{0x60, 2, 0x7f, 0x7f, 1, 0x7f}, // (i32 i32) -> i32
	)...)
	imports := section(2, cat(
		[]byte{3},
		wname("env"), wname("host_ref"), []byte{0, 0},
		wname("wasi_snapshot_preview1"), wname("fd_write"), []byte{0, 1},
		wname("env"), wname("memory"), []byte{2, 3, 1, 4}, // shared, min 1 max 4
	)...)
	funcs := section(3, 1, 1)
	exports := section(7, cat([]byte{2}, wname("add"), []byte{0, 2}, wname("mem"), []byte{2, 0})...)
	features := section(0, cat(wname("target_features"), []byte{2, '+'}, wname("atomics"), []byte{'+'}, wname("mutable-globals"))...)
	st, err := analyzeWasm(wasmModule(types, imports, funcs, exports, features))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(st.Imports["env"], []string{"host_ref", "memory"}) || !slices.Equal(st.Imports["wasi_snapshot_preview1"], []string{"fd_write"}) {
		t.Errorf("imports %v", st.Imports)
	}
	if !slices.Equal(st.Exports, []string{"func add", "memory mem"}) {
		t.Errorf("exports %v", st.Exports)
	}
	if len(st.Memories) != 1 || !st.Memories[0].Shared || !st.Memories[0].Imported || st.Memories[0].Min != 1 || st.Memories[0].Max != 4 {
		t.Errorf("memories %+v", st.Memories)
	}
	if !st.RefTypes {
		t.Error("an imported function takes an externref; RefTypes should be set")
	}
	if !st.Atomics || !slices.Equal(st.Features, []string{"+atomics", "+mutable-globals"}) {
		t.Errorf("atomics %v features %v", st.Atomics, st.Features)
	}
	m := st.moduleReport("x", wasmModule(), true)
	if !m.MemShared || !m.MemImported || m.MemMax != 4 || len(m.Imports) != 2 || m.Imports[0].Module != "env" {
		t.Errorf("module report %+v", m)
	}
	checks := gcChecks(gcInput{modules: []*wasmStat{st}, hasModule: true, testsRan: 1, peak: 1 << 20})
	for _, c := range checks {
		want := c.Name == gcNoBindgenGlue || c.Name == gcBoundedMemory
		if c.Pass != want {
			t.Errorf("GC check %s pass=%v, want %v (%s)", c.Name, c.Pass, want, c.Reason)
		}
	}

	// A module with only numeric types, defined memory and no imports.
	clean := wasmModule(section(1, 1, 0x60, 1, 0x7f, 1, 0x7f), section(3, 1, 0), section(5, 1, 0, 17), section(7, cat([]byte{1}, wname("f"), []byte{0, 0})...))
	st, err = analyzeWasm(clean)
	if err != nil {
		t.Fatal(err)
	}
	if st.RefTypes || st.Atomics || len(st.Imports) != 0 || st.Memories[0].Min != 17 || st.Memories[0].HasMax {
		t.Errorf("clean module: %+v", st)
	}
	for _, c := range gcChecks(gcInput{modules: []*wasmStat{st}, hasModule: true, testsRan: 3, peak: 17 * 65536}) {
		if !c.Pass {
			t.Errorf("clean module fails %s: %s", c.Name, c.Reason)
		}
	}

	for _, bad := range [][]byte{nil, []byte("\x00asm"), []byte("\x7fELF\x02\x01\x01\x00"), wasmModule(section(2, 5, 1)), wasmModule([]byte{1, 0x80})} {
		if _, err := analyzeWasm(bad); err == nil {
			t.Errorf("analyzeWasm(%x) succeeded", bad)
		}
	}
}

func FuzzAnalyzeWasm(f *testing.F) {
	f.Add(wasmModule(section(1, 1, 0x60, 1, 0x7f, 1, 0x7f), section(3, 1, 0)))
	f.Add([]byte("\x00asm\x01\x00\x00\x00\x00\x03\x02ab"))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := analyzeWasm(b)
		if err == nil {
			_ = st.moduleReport("f", b, true)
		}
	})
}

func TestLibtestParsing(t *testing.T) {
	list := "tests::a: test\ntests::b: test\nbench_x: benchmark\n\n2 tests, 1 benchmarks\n"
	if got := parseTestList(list); !slices.Equal(got, []string{"tests::a", "tests::b"}) {
		t.Errorf("parseTestList = %v", got)
	}
	m := mergeLists([]string{"a", "b"}, []string{"b"})
	if m[0].Ignored || !m[1].Ignored {
		t.Errorf("mergeLists = %+v", m)
	}
	cases := []struct {
		out   string
		ok    bool
		state string
		sp    bool
	}{
		{"running 1 test\ntest a ... ok\n\ntest result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 3 filtered out\n", true, registry.TestPassed, false},
		{"running 1 test\ntest a ... FAILED\n\ntest result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured\n", false, registry.TestFailed, false},
		{"running 1 test\ntest a - should panic ... ignored\n\ntest result: ok. 0 passed; 0 failed; 1 ignored; 0 measured\n", true, registry.TestIgnored, true},
		{"running 1 test\ntest a ... thread 'main' panicked at 'boom'\n", false, registry.TestFailed, false},
		{"running 1 test\nmemory allocation of 1048576 bytes failed\n", false, registry.TestOOM, false},
		{"running 0 tests\n\ntest result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 4 filtered out\n", true, registry.TestNotRun, false},
		{"test result: ok. 1 passed; 0 failed; 0 ignored\n", false, registry.TestFailed, false}, // killed after the summary
	}
	for i, c := range cases {
		st, sp := singleTestState(c.out, c.ok)
		if st != c.state || sp != c.sp {
			t.Errorf("case %d: state %s sp %v, want %s %v", i, st, sp, c.state, c.sp)
		}
	}
}

func TestPackageName(t *testing.T) {
	for in, want := range map[string]string{
		"cc 1.0.73 (registry+https://github.com/rust-lang/crates.io-index)": "cc@1.0.73",
		"wcr-fx-cdep-sys v0.1.0": "wcr-fx-cdep-sys@0.1.0",
		"registry+https://github.com/rust-lang/crates.io-index#cc@1.0.73": "cc@1.0.73",
		"path+file:///tmp/x/pkg#wcr-fx-pure@0.1.0":                        "wcr-fx-pure@0.1.0",
		"path+file:///tmp/x/getrandom#0.2.8":                              "getrandom@0.2.8",
		"":                                                                "",
	} {
		if got := packageName(in); got != want {
			t.Errorf("packageName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestStripManifest(t *testing.T) {
	manifest := []byte(`[package]
name = "x"
version = "1.0.0"

[dependencies.serde]
version = "1"
optional = true

[dependencies.libc]
version = "0.2"
optional = true

[dependencies.log]
version = "0.4"

[dev-dependencies.quickcheck]
version = "1"

[target.'cfg(unix)'.dev-dependencies.tempfile]
version = "3"

[features]
default = ["std"]
std = ["libc/std"]
serde1 = ["serde"]
all = ["serde1", "std"]
`)
	noDev, names, err := stripDevDeps(manifest)
	if err != nil || !slices.Equal(names, []string{"quickcheck", "tempfile"}) {
		t.Fatalf("stripDevDeps: %v %v", names, err)
	}
	if bytes.Contains(noDev, []byte("quickcheck")) || bytes.Contains(noDev, []byte("tempfile")) || !bytes.Contains(noDev, []byte("log")) {
		t.Errorf("stripDevDeps left:\n%s", noDev)
	}
	noOpt, removed, err := stripOptional(manifest)
	if err != nil || !slices.Equal(removed, []string{"serde"}) {
		t.Fatalf("stripOptional: %v %v", removed, err)
	}
	var m map[string]any
	if err := toml.Unmarshal(noOpt, &m); err != nil {
		t.Fatal(err)
	}
	deps := m["dependencies"].(map[string]any)
	feats := m["features"].(map[string]any)
	if _, ok := deps["serde"]; ok {
		t.Error("serde kept")
	}
	if _, ok := deps["libc"]; !ok {
		t.Error("libc removed though the default feature std enables it")
	}
	for _, f := range []string{"serde1", "all"} {
		if _, ok := feats[f]; ok {
			t.Errorf("feature %s kept though it needs serde", f)
		}
	}
	if _, ok := feats["std"]; !ok {
		t.Error("feature std removed")
	}
	if _, removed, _ := stripOptional([]byte("[package]\nname = \"y\"\nversion = \"1.0.0\"\n")); removed != nil {
		t.Errorf("a manifest without optional dependencies lost %v", removed)
	}
}

func TestComputeScore(t *testing.T) {
	pass := &registry.TargetReport{Target: TargetWasip1, Build: buildOK, Outcome: registry.OutcomeTestPass, Tests: &registry.TestCounts{Passed: 10}}
	uu := &registry.TargetReport{Target: TargetWasmUnknown, Build: buildOK, Outcome: registry.OutcomeTestSkipped}
	native := &registry.TargetReport{Build: buildOK, Outcome: registry.OutcomeTestPass}
	allGC := gcChecks(gcInput{hasModule: true, modules: []*wasmStat{{Imports: map[string][]string{}}}, testsRan: 1, peak: 65536})
	score, parts := computeScore(scoreInput{wasmTargets: []*registry.TargetReport{uu, pass}, wasip1: pass, native: native, gc: allGC,
		timing: &registry.TimingSummary{Compared: 10, Timed: 10, Ratio: 1500}})
	if score != 100 || len(parts) != 6 {
		t.Errorf("score %d parts %+v, want 100", score, parts)
	}
	var sum uint64
	for _, p := range parts {
		sum += p.Max
		if p.Reason == "" {
			t.Errorf("part %s has no reason", p.Name)
		}
	}
	if sum != 100 {
		t.Errorf("weights add up to %d", sum)
	}
	// Tests that passed on both sides but are all too short to time leave
	// speed unassessed rather than scored on noise.
	_, parts = computeScore(scoreInput{wasmTargets: []*registry.TargetReport{uu, pass}, wasip1: pass, native: native, gc: allGC,
		timing: &registry.TimingSummary{Compared: 10}})
	for _, p := range parts {
		if p.Name == "wasm-speed" && (p.Max != 0 || !strings.Contains(p.Reason, "too short")) {
			t.Errorf("untimed speed part: %+v", p)
		}
	}
	// Half the wasm tests fail, no timing: 30 + 15 + 10 + 15 + 10 out of 95.
	half := &registry.TargetReport{Target: TargetWasip1, Build: buildOK, Outcome: registry.OutcomeTestFail, Tests: &registry.TestCounts{Passed: 5, Failed: 5}}
	score, _ = computeScore(scoreInput{wasmTargets: []*registry.TargetReport{uu, half}, wasip1: half, native: native, gc: allGC})
	if score != (80*100+47)/95 {
		t.Errorf("score %d, want %d", score, (80*100+47)/95)
	}
	// A missing toolchain is not the crate's fault: its parts do not count.
	missing := &registry.TargetReport{Target: TargetWasip1, Outcome: registry.OutcomeToolchainMissing}
	_, parts = computeScore(scoreInput{wasmTargets: []*registry.TargetReport{uu, missing}, wasip1: missing, native: native, gc: allGC})
	for _, p := range parts {
		if p.Name == "wasm-tests" && p.Max != 0 {
			t.Errorf("wasm-tests counted with no wasip1 toolchain: %+v", p)
		}
		if p.Name == "wasm-build" && (p.Points != wWasmBuild || p.Max != wWasmBuild) {
			t.Errorf("wasm-build %+v; the one available target built", p)
		}
	}
}

// A report with more detail than a record holds is cut down to fit,
// keeping the failing tests, and says what it left out; it then signs and
// decodes like any other.
func TestFitKeepsReportInRecord(t *testing.T) {
	b := &registry.ReportBody{
		Release: registry.Sum([]byte("release")).Bytes(), Outcome: registry.OutcomeTestFail, Wasm: registry.WasmPartial,
		Score: 40, Gate: registry.GateNeedsReview, Started: 1, Finished: 2, Pipeline: Scheme,
	}
	long := strings.Repeat("x", 120)
	for i := range 20000 {
		st := registry.TestPassed
		if i%1000 == 7 {
			st = registry.TestFailed
		}
		b.Tests = append(b.Tests, registry.TestComparison{Name: "lib::" + long + strings.Repeat("y", i%50) + string(rune('a'+i%26)), Native: registry.TestPassed, Wasm: st, NativeUS: 10, WasmUS: 20})
	}
	for range 3000 {
		b.Deps = append(b.Deps, registry.DepReport{Name: "dep-" + long, Version: "1.0.0", Depth: 1, Source: sourceDirectory, Wasm: registry.WasmUntested})
	}
	if err := fit(b); err != nil {
		t.Fatal(err)
	}
	enc, err := registry.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(enc) > reportBudget {
		t.Fatalf("%d bytes after fit, budget %d", len(enc), reportBudget)
	}
	if b.Omitted == nil || b.Omitted.Tests == 0 || b.Omitted.Tests+uint64(len(b.Tests)) != 20000 {
		t.Errorf("omitted %+v with %d tests kept", b.Omitted, len(b.Tests))
	}
	failed := 0
	for _, c := range b.Tests {
		if c.Wasm == registry.TestFailed {
			failed++
		}
	}
	if failed != 20 {
		t.Errorf("%d failing tests kept, want all 20", failed)
	}
	rec, err := registry.Sign(key(t), registry.KindReport, "big@1.0.0", b, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Bytes()) > registry.MaxRecordSize {
		t.Fatalf("record is %d bytes", len(rec.Bytes()))
	}
}

// A full report from a real run signs as a report record, and decodes to
// the same canonical bytes.
func TestReportSignsAndDecodes(t *testing.T) {
	fr := runFixture(t, fixtureDir("pure"))
	rec, err := registry.Sign(key(t), registry.KindReport, "wcr-fx-pure@0.1.0", fr.body, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	again, err := registry.DecodeRecord(rec.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	v, err := again.DecodeBody()
	if err != nil {
		t.Fatal(err)
	}
	got := v.(*registry.ReportBody)
	a, _ := registry.Marshal(fr.body)
	b, _ := registry.Marshal(got)
	if !bytes.Equal(a, b) {
		t.Error("the decoded report does not re-encode to the signed bytes")
	}
	if got.ReleaseID() != fr.rec.ID() {
		t.Errorf("report names release %s, want %s", got.ReleaseID(), fr.rec.ID())
	}
	if len(got.Targets) < 3 || len(got.Tests) == 0 || len(got.GCChecks) == 0 || len(got.Breakdown) == 0 || got.Timing == nil {
		t.Errorf("detail lost in the round trip: %+v", got)
	}
}

func TestProgressEvents(t *testing.T) {
	fr := runFixture(t, fixtureDir("pure"))
	open := map[string]int{}
	var order []string
	for _, e := range fr.events {
		k := e.Stage + "/" + e.Target
		switch e.State {
		case StateStart:
			open[k]++
			if !slices.Contains(order, e.Stage) {
				order = append(order, e.Stage)
			}
		case StateDone, StateFailed:
			open[k]--
			if e.Elapsed <= 0 {
				t.Errorf("%s ended without its elapsed time", k)
			}
		}
	}
	for k, n := range open {
		if n != 0 {
			t.Errorf("stage %s started %d more times than it ended", k, n)
		}
	}
	want := []string{"unpack", "resolve", "build", "test-build", "test", "analyse", "deps", "score"}
	for _, s := range want {
		if !slices.Contains(order, s) {
			t.Errorf("no %s stage in %v", s, order)
		}
	}
	if order[0] != "unpack" || order[1] != "resolve" || order[len(order)-1] != "score" {
		t.Errorf("stage order %v", order)
	}
	if len(fr.body.Stages) == 0 {
		t.Error("report has no stage times")
	}
}

func TestRunRejectsBadJobs(t *testing.T) {
	p := testPipeline(t)
	var jobsBefore []string
	if ents, err := os.ReadDir(p.cfg.WorkDir); err == nil {
		for _, e := range ents {
			jobsBefore = append(jobsBefore, e.Name())
		}
	}
	crate := packDir(t, fixtureDir("pure"))
	rec, rb := release(t, crate)
	bad := slices.Clone(crate)
	bad[len(bad)-1] ^= 1
	if _, err := p.Run(context.Background(), Job{Release: rec, Body: rb, Crate: bad}, nil); registry.KindOf(err) != registry.EINVALID {
		t.Errorf("tampered archive: %v, want invalid", err)
	}
	if _, err := p.Run(context.Background(), Job{Body: rb, Crate: crate}, nil); registry.KindOf(err) != registry.EINVALID {
		t.Errorf("no release record: %v, want invalid", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Run(ctx, Job{Release: rec, Body: rb, Crate: crate}, nil); registry.KindOf(err) != registry.ECANCELED {
		t.Errorf("cancelled run: %v, want canceled", err)
	}
	ents, _ := os.ReadDir(p.cfg.WorkDir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "job-") && os.Getenv("WCR_PIPELINE_KEEP") == "" && !slices.Contains(jobsBefore, e.Name()) {
			t.Errorf("work directory %s left behind", e.Name())
		}
	}
}

func TestToolchainDetection(t *testing.T) {
	p := testPipeline(t)
	var debian *Toolchain
	for _, tc := range p.Toolchains() {
		if tc.Rustc == "/usr/bin/rustc" {
			tc := tc
			debian = &tc
		}
		if tc.Usable && (tc.Version == "" || tc.Host == "" || len(tc.Targets) == 0) {
			t.Errorf("toolchain %+v lacks facts", tc)
		}
	}
	if debian == nil || !debian.Usable || debian.tripleFor(TargetWasip1) == "" || debian.tripleFor(TargetWasmUnknown) == "" {
		t.Fatalf("Debian's toolchain with wasm std not found: %+v", debian)
	}
	if debian.tripleFor(TargetWasip1) != targetWasiOld {
		t.Errorf("rustc %s names wasip1 %q, want the pre-1.78 name", debian.Version, debian.tripleFor(TargetWasip1))
	}
	plan := planTargets(p.Toolchains(), p.host, []string{"riscv32imc-unknown-none-elf"})
	var sawMissing bool
	for _, st := range plan {
		if st.Target == "riscv32imc-unknown-none-elf" {
			sawMissing = true
			if st.Toolchain != "" || st.Install == "" || st.Missing == "" {
				t.Errorf("missing target: %+v", st)
			}
		}
		if st.Target == TargetWasip1 && st.Toolchain != debian.ID {
			t.Errorf("wasip1 planned with %s, want %s (the only toolchain with its std)", st.Toolchain, debian.ID)
		}
	}
	if !sawMissing {
		t.Error("extra target not planned")
	}
	// Preference: usable, stable, newest.
	a := Toolchain{Usable: true, Channel: "stable", Version: "1.63.0"}
	b := Toolchain{Usable: true, Channel: "stable", Version: "1.95.0"}
	n := Toolchain{Usable: true, Channel: "nightly", Version: "1.97.0"}
	if compareToolchains(b, a) <= 0 || compareToolchains(a, n) <= 0 || compareToolchains(Toolchain{Version: "9.0.0"}, a) >= 0 {
		t.Error("toolchain preference order is wrong")
	}
}

func TestWazeroVersionMatchesGoMod(t *testing.T) {
	b, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`github.com/tetratelabs/wazero (v\S+)`).FindSubmatch(b)
	if m == nil || string(m[1]) != wazeroModuleVersion {
		t.Errorf("go.mod has wazero %s; wazeroModuleVersion is %s", m, wazeroModuleVersion)
	}
}

// The node's own releases are unpacked into the cache once and offered to
// Cargo through the job's directory source.
func TestStoreCratesMaterialisedOnce(t *testing.T) {
	p := testPipeline(t)
	reg := newMemRegistry()
	sys := reg.add(t, packDir(t, fixtureDir("cdep-sys")), "")
	crate := packDir(t, fixtureDir("cdep"))
	rec, rb := release(t, crate)
	job := &Job{Release: rec, Body: rb, Crate: crate, Local: reg}
	// Other tests may have cached the same release; start without it.
	if err := os.RemoveAll(filepath.Join(p.cfg.CacheDir, "crates", sys.Cksum)); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		dir := t.TempDir()
		idx, notes, err := p.materialise(context.Background(), job, filepath.Join(dir, "vendor"), filepath.Join(dir, "home"), false)
		if err != nil {
			t.Fatal(err)
		}
		if idx["wcr-fx-cdep-sys@0.1.0"] != sourceRegistry || idx["cc@1.0.73"] != sourceDirectory || len(notes) != 0 {
			t.Fatalf("run %d: index %v notes %v", i, idx, notes)
		}
		target, err := os.Readlink(filepath.Join(dir, "vendor", "wcr-fx-cdep-sys-0.1.0"))
		if err != nil || !strings.Contains(target, sys.Cksum) {
			t.Fatalf("vendor link %q %v", target, err)
		}
		if _, err := os.Stat(filepath.Join(target, "build.rs")); err != nil {
			t.Fatal(err)
		}
		cfg, _ := os.ReadFile(filepath.Join(dir, "home", "config.toml"))
		if !strings.Contains(string(cfg), `replace-with = "wcr-offline"`) {
			t.Errorf("config.toml:\n%s", cfg)
		}
	}
	if reg.blobHits != 1 {
		t.Errorf("blob fetched %d times, want once", reg.blobHits)
	}
}

// A crate whose dependencies this node's sources do not have gets no
// report: nothing shows whether it works in wasm, and the node's limits
// must not be blamed on the crate.
func TestUnresolvableDependenciesMakeNoReport(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "src"), 0o755); err != nil {
		t.Fatal(err)
	}
	manifest := "[package]\nname = \"wcr-fx-missing-dep\"\nversion = \"0.1.0\"\nedition = \"2018\"\n\n[dependencies.wcr-fx-no-such-crate]\nversion = \"1\"\n"
	if err := os.WriteFile(filepath.Join(dir, "Cargo.toml"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "src", "lib.rs"), []byte("pub fn f() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	crate := packDir(t, dir)
	rec, rb := release(t, crate)
	body, err := testPipeline(t).Run(context.Background(), Job{Release: rec, Body: rb, Crate: crate}, nil)
	if registry.KindOf(err) != registry.EUNAVAILABLE || body != nil {
		t.Fatalf("Run = %v, %v; want no report and an unavailable error", body, err)
	}
	if msg := registry.MessageOf(err); !strings.Contains(msg, "wcr-fx-no-such-crate") || !strings.Contains(msg, registry.OutcomeBrokenDeps) {
		t.Errorf("message does not say what is missing: %s", msg)
	}
}
