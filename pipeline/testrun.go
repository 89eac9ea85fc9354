package pipeline

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// testBinary is one libtest binary a test build produced.
type testBinary struct {
	Label string // "lib", "test:<name>", "bin:<name>"
	Path  string
}

// testRun is one test's result on one side.
type testRun struct {
	Name        string `json:"name"`                   // "<label>::<test>"
	State       string `json:"state"`                  // registry.Test*
	US          uint64 `json:"us,omitempty"`           // time attributable to the test: the run's wall time less the binary's baseline
	Peak        uint64 `json:"peak,omitempty"`         // wasm: peak linear memory of the run; native: peak RSS
	ShouldPanic bool   `json:"should_panic,omitempty"` // wasm reported it ignored because it is #[should_panic]
	Retimed     bool   `json:"-"`                      // wasm: US is from a run without interruption checks (wasmtime.go)
	Output      string `json:"output,omitempty"`       // the run's output, kept for failing tests
}

// binaryRun is what running one test binary gave.
type binaryRun struct {
	Label      string    `json:"label"`
	Tests      []testRun `json:"tests,omitempty"`
	BaselineUS uint64    `json:"baseline_us,omitempty"`
	CompileUS  uint64    `json:"compile_us,omitempty"` // wasm: wazero compilation (from the cache when warm)
	ListError  string    `json:"list_error,omitempty"` // the binary could not list its tests
}

// labelFor names a test binary from cargo's artifact message.
func labelFor(m cargoMessage) string {
	kind := "lib"
	if len(m.Target.Kind) > 0 {
		kind = m.Target.Kind[0]
	}
	switch kind {
	case "lib", "rlib", "dylib", "cdylib", "staticlib", "proc-macro":
		return "lib"
	}
	return kind + ":" + m.Target.Name
}

// testBinaries picks the test executables out of a test build's artifacts.
func testBinaries(arts []cargoMessage) []testBinary {
	var out []testBinary
	seen := map[string]bool{}
	for _, a := range arts {
		if !a.Profile.Test || a.Executable == nil || *a.Executable == "" {
			continue
		}
		l := labelFor(a)
		if seen[l] {
			continue
		}
		seen[l] = true
		out = append(out, testBinary{Label: l, Path: *a.Executable})
	}
	return out
}

const noSuchTest = "wcr_pipeline_baseline_no_such_test"

// testBudget tracks a target's test stage: a deadline and a cap on how many
// tests run individually.
type testBudget struct {
	deadline time.Time
	left     int
}

func (b *testBudget) take() (bool, string) {
	if time.Now().After(b.deadline) {
		return false, "the test stage's deadline passed before this test ran"
	}
	if b.left <= 0 {
		return false, "more tests than the per-target cap; not run"
	}
	b.left--
	return true, ""
}

// nativeTests runs every test of a native test binary, each in its own
// sandboxed process with the test limits.
func (p *Pipeline) nativeTests(ctx context.Context, bin testBinary, ce *cargoEnv, budget *testBudget) (*binaryRun, error) {
	br := &binaryRun{Label: bin.Label}
	lim := p.cfg.Limits
	// As cargo does, let test binaries find the toolchain's shared
	// libraries (proc-macro crates' tests link std dynamically) and the
	// build's own.
	host := ce.tc.Host
	libPath := strings.Join([]string{
		filepath.Dir(bin.Path),
		filepath.Join(ce.tc.Sysroot, "lib", "rustlib", host, "lib"),
		filepath.Join(ce.tc.Sysroot, "lib"),
	}, ":")
	env := []string{
		"PATH=/usr/bin:/bin", "HOME=/tmp", "TMPDIR=/tmp", "RUST_BACKTRACE=0", "LANG=C.UTF-8",
		"CARGO_MANIFEST_DIR=" + ce.pkg, "CARGO=" + ce.tc.Cargo, "LD_LIBRARY_PATH=" + libPath,
	}
	runOne := func(timeout time.Duration, args ...string) (oneRun, error) {
		var r oneRun
		out := &limitedBuffer{limit: 16 << 10}
		run, err := ce.sandbox(p).run(ctx, runSpec{
			Args: append([]string{bin.Path}, args...), Env: env, Dir: ce.pkg,
			RO: append([]string{ce.pkg, ce.target}, ce.extraRO...), Timeout: timeout,
			Mem: lim.TestMemory, CPU: lim.TestTime, Procs: lim.Processes, FileSize: lim.Disk,
			Stdout: out, Stderr: out,
		})
		if err != nil {
			return r, err
		}
		r.out, r.ok, r.timed, r.wall, r.peak = out.String(), run.ok(), run.TimedOut, run.Wall, run.MaxRSS
		return r, nil
	}
	return br, runEach(br, "", lim.TestTime, p.log, runOne, budget, func(r oneRun) (string, bool) {
		state, _ := singleTestState(r.out, r.ok)
		return state, false
	})
}

// oneRun is how one invocation of a test binary ended, natively or under
// wazero.
type oneRun struct {
	out   string
	ok    bool
	timed bool
	wall  time.Duration
	peak  uint64 // wasm: peak linear memory; native: peak RSS
}

// runEach lists a test binary's tests with run, measures the binary's
// baseline (a run whose filter matches no test, best of two), then runs
// every test that is not #[ignore]d alone, each with timeout, and
// classifies it. where names the runner in a listing failure (" under
// wazero").
func runEach(br *binaryRun, where string, timeout time.Duration, log *slog.Logger, run func(time.Duration, ...string) (oneRun, error),
	budget *testBudget, classify func(oneRun) (state string, shouldPanic bool)) error {
	all, err := run(timeout, "--list")
	if err != nil {
		return err
	}
	if !all.ok {
		br.ListError = "the test binary cannot list its tests" + where + ": " + tail(all.out, 600)
		return nil
	}
	ign, err := run(timeout, "--list", "--ignored")
	if err != nil {
		return err
	}
	tests := mergeLists(parseTestList(all.out), parseTestList(ign.out))
	if len(tests) == 0 {
		return nil
	}
	base := time.Duration(1<<63 - 1)
	for range 2 {
		r, err := run(timeout, "--exact", noSuchTest)
		if err != nil {
			return err
		}
		base = min(base, r.wall)
	}
	br.BaselineUS = uint64(base.Microseconds())
	log.Debug("test binary", "binary", br.Label, "runner", strings.TrimSpace(where), "compile", time.Duration(br.CompileUS)*time.Microsecond, "baseline", base, "tests", len(tests))
	for _, t := range tests {
		tr := testRun{Name: br.Label + "::" + t.Name}
		if t.Ignored {
			tr.State = registry.TestIgnored
			br.Tests = append(br.Tests, tr)
			continue
		}
		if ok, why := budget.take(); !ok {
			tr.State, tr.Output = registry.TestNotRun, why
			br.Tests = append(br.Tests, tr)
			continue
		}
		r, err := run(timeout, "--exact", t.Name, "--nocapture", "--test-threads=1")
		if err != nil {
			return err
		}
		tr.US = netMicros(r.wall, base)
		tr.Peak = r.peak
		if r.timed {
			tr.State = registry.TestTimeout
		} else {
			tr.State, tr.ShouldPanic = classify(r)
		}
		if tr.State != registry.TestPassed && tr.State != registry.TestIgnored {
			tr.Output = r.out
		}
		br.Tests = append(br.Tests, tr)
	}
	return nil
}

func netMicros(wall, base time.Duration) uint64 {
	if wall <= base {
		return 0
	}
	return uint64((wall - base).Microseconds())
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
