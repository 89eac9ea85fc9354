package pipeline

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
	registry "github.com/wasmrust/wasm-crates-registry"
)

// testBinary is one libtest binary a test build produced.
type testBinary struct {
	Label string // "lib", "test:<name>", "bin:<name>"
	Path  string
}

// testRun is one test's result on one side.
type testRun struct {
	Name        string // "<label>::<test>"
	State       string // registry.Test*
	US          uint64 // time attributable to the test: the run's wall time less the binary's baseline
	Peak        uint64 // wasm: linear memory at the end of the run; native: peak RSS
	ShouldPanic bool   // wasm reported it ignored because it is #[should_panic]
	Output      string // the run's output, kept for failing tests
}

// binaryRun is what running one test binary gave.
type binaryRun struct {
	Label      string
	Tests      []testRun
	BaselineUS uint64
	CompileUS  uint64 // wasm: wazero compilation (from the cache when warm)
	ListError  string // the binary could not list its tests
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

// wasmTests runs every test of a wasm32-wasip1 test binary in wazero: the
// module is compiled once (through the on-disk compilation cache) and each
// test runs in a fresh instance with a page limit, a deadline and only a
// fresh empty directory mounted, so that a trap or abort cannot hide the
// other tests.
func (p *Pipeline) wasmTests(ctx context.Context, bin testBinary, scratch string, budget *testBudget) (*binaryRun, error) {
	const op = "pipeline.wasmTests"
	br := &binaryRun{Label: bin.Label}
	code, err := os.ReadFile(bin.Path)
	if err != nil {
		return nil, registry.E(op, registry.EINTERNAL, "cannot read the wasm test binary", err)
	}
	pages := uint32(min(p.cfg.Limits.TestMemory/65536, 65536))
	rcfg := wazero.NewRuntimeConfig().
		WithCompilationCache(p.wasmCache).
		WithMemoryLimitPages(pages).
		WithCloseOnContextDone(true).
		WithDebugInfoEnabled(false)
	rt := wazero.NewRuntimeWithConfig(ctx, rcfg)
	defer rt.Close(context.WithoutCancel(ctx))
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		return nil, registry.E(op, registry.EINTERNAL, "cannot set up WASI", err)
	}
	t0 := time.Now()
	mod, err := rt.CompileModule(ctx, code)
	br.CompileUS = uint64(time.Since(t0).Microseconds())
	if err != nil {
		if ctx.Err() != nil {
			return nil, registry.E(op, registry.ECANCELED, "", ctx.Err())
		}
		br.ListError = "wazero cannot compile the test binary: " + err.Error()
		return br, nil
	}
	defer mod.Close(context.WithoutCancel(ctx))

	seq := 0
	runOne := func(timeout time.Duration, args ...string) (oneRun, error) {
		var r oneRun
		seq++
		dir := filepath.Join(scratch, "wasi", strings.NewReplacer("/", "_", ":", "_").Replace(bin.Label)+"-"+strconv.Itoa(seq))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return r, registry.E(op, registry.EINTERNAL, "", err)
		}
		defer os.RemoveAll(dir)
		out := &limitedBuffer{limit: 16 << 10}
		cfg := wazero.NewModuleConfig().
			WithName("").
			WithArgs(append([]string{filepath.Base(bin.Path)}, args...)...).
			WithEnv("RUST_BACKTRACE", "0").
			WithStdout(out).WithStderr(out).
			WithFSConfig(wazero.NewFSConfig().WithDirMount(dir, "/")).
			WithSysWalltime().WithSysNanotime().WithSysNanosleep().
			WithStartFunctions()
		mem := &instanceMemory{}
		defer mem.release()
		tctx, cancel := context.WithTimeout(experimental.WithMemoryAllocator(ctx, mem), timeout)
		defer cancel()
		start := time.Now()
		inst, err := rt.InstantiateModule(tctx, mod, cfg)
		if err != nil {
			r.out = out.String() + "\n" + err.Error()
			r.wall = time.Since(start)
			return r, nil
		}
		_, err = inst.ExportedFunction("_start").Call(tctx)
		r.wall = time.Since(start)
		_ = inst.Close(context.WithoutCancel(ctx))
		r.peak = mem.Peak()
		r.out = out.String()
		var exit *sys.ExitError
		switch {
		case err == nil:
			r.ok = true
		case errors.As(err, &exit) && exit.ExitCode() == 0:
			r.ok = true
		case errors.As(err, &exit) && exit.ExitCode() == sys.ExitCodeDeadlineExceeded:
			r.timed = true
		case tctx.Err() != nil && ctx.Err() == nil:
			r.timed = true
		default:
			r.out += "\n" + firstLine(err.Error())
		}
		if ctx.Err() != nil {
			return r, registry.E(op, registry.ECANCELED, "", ctx.Err())
		}
		return r, nil
	}

	return br, p.runEach(br, " under wazero", runOne, budget, func(r oneRun) (string, bool) {
		state, shouldPanic := singleTestState(r.out, r.ok)
		if state == registry.TestFailed && r.peak >= uint64(pages)*65536 {
			state = registry.TestOOM
		}
		return state, shouldPanic
	})
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
		run, err := p.sb.run(ctx, runSpec{
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
	return br, p.runEach(br, "", runOne, budget, func(r oneRun) (string, bool) {
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
// every test that is not #[ignore]d alone and classifies it. where names
// the runner in a listing failure (" under wazero").
func (p *Pipeline) runEach(br *binaryRun, where string, run func(time.Duration, ...string) (oneRun, error),
	budget *testBudget, classify func(oneRun) (state string, shouldPanic bool)) error {
	timeout := p.cfg.Limits.TestTime
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
	p.log.Debug("test binary", "binary", br.Label, "runner", strings.TrimSpace(where), "compile", time.Duration(br.CompileUS)*time.Microsecond, "baseline", base, "tests", len(tests))
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
