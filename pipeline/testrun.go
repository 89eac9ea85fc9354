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

	type result struct {
		out    string
		ok     bool
		timed  bool
		wall   time.Duration
		memory uint64
	}
	seq := 0
	runOne := func(timeout time.Duration, args ...string) (result, error) {
		var r result
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
		r.memory = mem.Peak()
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

	listTimeout := p.cfg.Limits.TestTime
	all, err := runOne(listTimeout, "--list")
	if err != nil {
		return nil, err
	}
	if !all.ok {
		br.ListError = "the test binary cannot list its tests under wazero: " + tail(all.out, 600)
		return br, nil
	}
	ign, err := runOne(listTimeout, "--list", "--ignored")
	if err != nil {
		return nil, err
	}
	tests := mergeLists(parseTestList(all.out), parseTestList(ign.out))
	if len(tests) == 0 {
		return br, nil
	}
	base := time.Duration(1<<63 - 1)
	for range 2 {
		r, err := runOne(listTimeout, "--exact", noSuchTest)
		if err != nil {
			return nil, err
		}
		base = min(base, r.wall)
	}
	br.BaselineUS = uint64(base.Microseconds())
	p.log.Debug("wasm test binary", "binary", bin.Label, "compile", time.Duration(br.CompileUS)*time.Microsecond, "baseline", base, "tests", len(tests))
	for _, t := range tests {
		tr := testRun{Name: bin.Label + "::" + t.Name}
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
		r, err := runOne(p.cfg.Limits.TestTime, "--exact", t.Name, "--nocapture", "--test-threads", "1")
		if err != nil {
			return nil, err
		}
		tr.US = netMicros(r.wall, base)
		tr.Peak = r.memory
		switch {
		case r.timed:
			tr.State = registry.TestTimeout
		default:
			tr.State, tr.ShouldPanic = singleTestState(r.out, r.ok)
		}
		if tr.State == registry.TestFailed && r.memory >= uint64(pages)*65536 {
			tr.State = registry.TestOOM
		}
		if tr.State != registry.TestPassed && tr.State != registry.TestIgnored {
			tr.Output = r.out
		}
		br.Tests = append(br.Tests, tr)
	}
	return br, nil
}

// nativeTests runs every test of a native test binary, each in its own
// sandboxed process with the test limits.
func (p *Pipeline) nativeTests(ctx context.Context, bin testBinary, ce *cargoEnv, budget *testBudget) (*binaryRun, error) {
	br := &binaryRun{Label: bin.Label}
	type result struct {
		out  string
		ok   bool
		run  runResult
		wall time.Duration
	}
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
	runOne := func(timeout time.Duration, args ...string) (result, error) {
		var r result
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
		r.run, r.out, r.ok, r.wall = run, out.String(), run.ok(), run.Wall
		return r, nil
	}
	all, err := runOne(lim.TestTime, "--list")
	if err != nil {
		return nil, err
	}
	if !all.ok {
		br.ListError = "the test binary cannot list its tests: " + tail(all.out, 600)
		return br, nil
	}
	ign, err := runOne(lim.TestTime, "--list", "--ignored")
	if err != nil {
		return nil, err
	}
	tests := mergeLists(parseTestList(all.out), parseTestList(ign.out))
	if len(tests) == 0 {
		return br, nil
	}
	base := time.Duration(1<<63 - 1)
	for range 2 {
		r, err := runOne(lim.TestTime, "--exact", noSuchTest)
		if err != nil {
			return nil, err
		}
		base = min(base, r.wall)
	}
	br.BaselineUS = uint64(base.Microseconds())
	for _, t := range tests {
		tr := testRun{Name: bin.Label + "::" + t.Name}
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
		r, err := runOne(lim.TestTime, "--exact", t.Name, "--nocapture", "--test-threads=1")
		if err != nil {
			return nil, err
		}
		tr.US = netMicros(r.wall, base)
		tr.Peak = r.run.MaxRSS
		switch {
		case r.run.TimedOut:
			tr.State = registry.TestTimeout
		default:
			tr.State, _ = singleTestState(r.out, r.ok)
		}
		if tr.State != registry.TestPassed && tr.State != registry.TestIgnored {
			tr.Output = r.out
		}
		br.Tests = append(br.Tests, tr)
	}
	return br, nil
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
