package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// Benchmarks compare native and wasm speed on work the crate's authors
// chose to measure. Each bench target is one benchmark: it is built for
// the host and for wasm32-wasip1 by the same toolchain (the one that
// builds the wasm target, so both sides come from the same compiler and
// the bench profile), then run benchIterations times on each side, after
// one warm-up run, in the sandbox with the tests' limits. The node fixes
// the iteration count and measures the time itself: natively the wall
// time of the sandboxed process that runs the benchmark benchIterations
// times, less that of the same sandbox running a no-op as often; under
// wazero the wall time of each fresh instance (instantiation and _start;
// compilation is excluded). What a benchmark prints is never read.
//
// harness = false benches (criterion style) are plain programs run with
// no arguments: criterion then runs every benchmark routine once (its test
// mode) instead of sampling for a time it chooses, so each run does a
// fixed amount of work. libtest #[bench] targets (harness = true) need an
// unstable feature: they are built only with a nightly toolchain, and run
// the same way (libtest runs each #[bench] once without --bench);
// elsewhere they are reported "needs a nightly toolchain" and the per-test
// timing comparison remains the speed figure.

// benchIterations is the number of timed runs of each benchmark on each
// side.
const benchIterations = 5

// maxBenches bounds the bench targets the pipeline looks at.
const maxBenches = 32

func init() { registerHelper("wasm-bench", wasmBenchHelper) }

// benchTarget is one bench target of the crate's manifest.
type benchTarget struct {
	Name    string
	Harness bool
}

// benchTargets lists the crate's bench targets from its manifest and its
// benches/ directory (cargo's auto-discovery: benches/*.rs and
// benches/*/main.rs, unless autobenches = false), at most maxBenches,
// sorted by name. [[bench]] entries give harness; the rest use libtest's.
func benchTargets(manifest []byte, pkgDir string) ([]benchTarget, []string) {
	if len(manifest) > maxManifestBytes {
		return nil, nil
	}
	var m struct {
		Package struct {
			AutoBenches *bool `toml:"autobenches"`
		} `toml:"package"`
		Bench []map[string]any `toml:"bench"`
	}
	if err := toml.Unmarshal(manifest, &m); err != nil {
		return nil, []string{"the manifest's bench targets could not be read: " + truncateText(firstLine(err.Error()), 200)}
	}
	byName := map[string]*benchTarget{}
	add := func(name string) *benchTarget {
		if b := byName[name]; b != nil {
			return b
		}
		b := &benchTarget{Name: name, Harness: true}
		byName[name] = b
		return b
	}
	for _, e := range m.Bench {
		name, _ := e["name"].(string)
		if !validName(name, false) {
			continue // cargo itself refuses such a target
		}
		b := add(name)
		if h, ok := e["harness"].(bool); ok {
			b.Harness = h
		}
	}
	if m.Package.AutoBenches == nil || *m.Package.AutoBenches {
		ents, _ := os.ReadDir(filepath.Join(pkgDir, "benches"))
		for _, e := range ents {
			name, isRS := strings.CutSuffix(e.Name(), ".rs")
			switch {
			case e.Type().IsRegular() && isRS:
			case e.IsDir() && fileExists(filepath.Join(pkgDir, "benches", e.Name(), "main.rs")):
				name = e.Name()
			default:
				continue
			}
			if validName(name, false) {
				add(name)
			}
		}
	}
	var out []benchTarget
	for _, b := range byName {
		out = append(out, *b)
	}
	slices.SortFunc(out, func(a, b benchTarget) int { return strings.Compare(a.Name, b.Name) })
	var notes []string
	if len(out) > maxBenches {
		notes = append(notes, fmt.Sprintf("the crate has %d bench targets; only the first %d by name were run", len(out), maxBenches))
		out = out[:maxBenches]
	}
	return out, notes
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// allowsLibtestBench reports whether tc can build libtest #[bench]
// targets, which need #![feature(test)].
func allowsLibtestBench(tc Toolchain) bool {
	return strings.Contains(tc.Version, "nightly") || strings.Contains(tc.Version, "-dev")
}

// runBenches runs the crate's benchmarks, when it has any and the tested
// configuration builds for wasm32-wasip1, and keeps the comparisons in
// r.benches.
func (r *jobRun) runBenches(ctx context.Context) error {
	wasi := r.target(TargetWasip1)
	if wasi == nil || wasi.ce == nil || wasi.rep.Build != buildOK {
		return nil
	}
	// The crate as published: resolution may have rewritten the copy
	// cargo builds (without dev-dependencies, and then without benches).
	src := filepath.Join(r.dir, "src")
	manifest, err := os.ReadFile(filepath.Join(src, "Cargo.toml"))
	if err != nil {
		return nil
	}
	benches, notes := benchTargets(manifest, src)
	r.notes = append(r.notes, notes...)
	if len(benches) == 0 {
		return nil
	}
	if res := r.resolved[wasi.status.Toolchain]; res != nil && res.devStripped {
		var names []string
		for _, b := range benches {
			names = append(names, b.Name)
		}
		r.benchNote(names, "not built: "+res.why)
		return nil
	}
	return r.stage("bench", "", func() (string, error) {
		return r.benchAll(ctx, wasi, benches)
	})
}

func (r *jobRun) benchAll(ctx context.Context, wasi *targetState, benches []benchTarget) (string, error) {
	tc, ce := wasi.tc, wasi.ce
	hostTriple := tc.tripleFor(r.p.host)
	var run []string
	for _, b := range benches {
		switch {
		case hostTriple == "":
			r.benches = append(r.benches, registry.BenchComparison{Name: b.Name,
				Note: "rustc " + tc.Version + ", which builds for wasm32-wasip1, has no standard library for the host, so the sides could not be compared with one compiler"})
		case b.Harness && !allowsLibtestBench(tc):
			r.benches = append(r.benches, registry.BenchComparison{Name: b.Name,
				Note: "a libtest #[bench] target needs a nightly toolchain; rustc " + tc.Version + " is stable, so the per-test timing stands in"})
		default:
			run = append(run, b.Name)
		}
	}
	if len(run) == 0 {
		return "-no benchmark this node can run", nil
	}
	native, why := r.buildBenches(ctx, ce, hostTriple, run, false)
	if why != "" {
		r.benchNote(run, "the benchmarks do not build natively with rustc "+tc.Version+": "+why)
		return "!" + why, nil
	}
	wasm, why := r.buildBenches(ctx, ce, wasi.status.Triple, run, true)
	if why != "" {
		r.benchNote(run, "the benchmarks do not build for wasm32-wasip1: "+why)
		return "!" + why, nil
	}
	lim := r.p.cfg.Limits
	deadline := time.Now().Add(lim.TestsTime)
	// The native baseline: the same sandbox looping over a no-op, best of
	// two.
	var base benchLoop
	for i := range 2 {
		b, err := r.nativeBenchLoop(ctx, ce, "/bin/true", benchIterations, deadline)
		if err != nil {
			return "", err
		}
		if !b.ok {
			r.benchNote(run, "the sandbox could not run the native baseline: "+b.why)
			return "!native baseline failed", nil
		}
		if i == 0 || b.wall < base.wall {
			base = b
		}
	}
	compared := 0
	for _, name := range run {
		bc := registry.BenchComparison{Name: name, Iterations: benchIterations}
		nb, wb := native[name], wasm[name]
		switch {
		case nb == "" || wb == "":
			bc.Iterations, bc.Note = 0, "cargo built no executable for it on both sides"
		case time.Now().After(deadline):
			bc.Iterations, bc.Note = 0, "not run: the benchmarks' time budget was spent"
		default:
			if err := r.benchOne(ctx, ce, &bc, nb, wb, base.wall, deadline); err != nil {
				return "", err
			}
		}
		if bc.Ratio > 0 {
			compared++
		}
		r.benches = append(r.benches, bc)
	}
	slices.SortStableFunc(r.benches, func(a, b registry.BenchComparison) int { return strings.Compare(a.Name, b.Name) })
	return fmt.Sprintf("%d of %d benchmarks compared", compared, len(run)), nil
}

// benchNote records the same note for every benchmark in names.
func (r *jobRun) benchNote(names []string, note string) {
	for _, n := range names {
		r.benches = append(r.benches, registry.BenchComparison{Name: n, Note: truncateText(note, 400)})
	}
}

// buildBenches builds the named bench targets for triple with the bench
// profile and returns each one's executable, or why the build failed.
func (r *jobRun) buildBenches(ctx context.Context, ce *cargoEnv, triple string, names []string, wasm bool) (map[string]string, string) {
	args := []string{"bench", "--no-run", "--offline", "--manifest-path", ce.manifest(), "--target", triple, "--message-format", "json"}
	for _, n := range names {
		args = append(args, "--bench", n)
	}
	cr, err := r.cargo(ctx, ce, r.p.cfg.Limits.BuildTime, false, args...)
	if err != nil {
		return nil, registry.MessageOf(err)
	}
	if !cr.ok() {
		text, trunc := cr.log()
		r.addLog("bench-build", canonicalTarget(triple), text, trunc)
		return nil, firstLineWith(text, "error")
	}
	out := map[string]string{}
	for _, a := range cr.artifacts {
		if !r.isRootArtifact(ce, a) || !slices.Contains(a.Target.Kind, "bench") || a.Executable == nil || *a.Executable == "" {
			continue
		}
		if wasm != isWasmFile(*a.Executable) {
			continue
		}
		out[a.Target.Name] = *a.Executable
	}
	return out, ""
}

// benchLoop is how one sandboxed native loop ended.
type benchLoop struct {
	ok   bool
	wall time.Duration
	why  string
}

// nativeBenchLoop runs bin n times in one sandboxed process tree (a shell
// loop that stops at the first failure) with the tests' limits and returns
// its wall time as the node measured it.
func (r *jobRun) nativeBenchLoop(ctx context.Context, ce *cargoEnv, bin string, n int, deadline time.Time) (benchLoop, error) {
	lim := r.p.cfg.Limits
	timeout := min(time.Duration(n)*lim.TestTime, time.Until(deadline))
	if timeout <= 0 {
		return benchLoop{why: "the benchmarks' time budget was spent"}, nil
	}
	libPath := strings.Join([]string{filepath.Dir(bin), filepath.Join(ce.tc.Sysroot, "lib", "rustlib", ce.tc.Host, "lib"), filepath.Join(ce.tc.Sysroot, "lib")}, ":")
	script := `i=0; while [ "$i" -lt ` + strconv.Itoa(n) + ` ]; do "$0" >/dev/null 2>&1 || exit $?; i=$((i+1)); done`
	out := &limitedBuffer{limit: 2 << 10}
	run, err := r.sb.run(ctx, runSpec{
		Args: []string{"/bin/sh", "-c", script, bin},
		Env: []string{"PATH=/usr/bin:/bin", "HOME=/tmp", "TMPDIR=/tmp", "RUST_BACKTRACE=0", "LANG=C.UTF-8",
			"CARGO_MANIFEST_DIR=" + ce.pkg, "LD_LIBRARY_PATH=" + libPath},
		Dir: ce.pkg, RO: append([]string{ce.pkg, ce.target}, ce.extraRO...), Timeout: timeout,
		Mem: lim.TestMemory, CPU: lim.TestTime, Procs: lim.Processes, FileSize: lim.Disk,
		Stdout: out, Stderr: out,
	})
	if err != nil {
		return benchLoop{}, err
	}
	switch {
	case run.TimedOut:
		return benchLoop{why: fmt.Sprintf("%d runs did not end within %s", n, timeout.Round(time.Millisecond))}, nil
	case !run.ok():
		why := "it failed (exit " + strconv.Itoa(run.Exit) + ")"
		if run.Signal != 0 {
			why = "it was killed by " + run.Signal.String()
		}
		return benchLoop{why: why}, nil
	}
	return benchLoop{ok: true, wall: run.Wall}, nil
}

// benchOne runs one benchmark on both sides and fills bc.
func (r *jobRun) benchOne(ctx context.Context, ce *cargoEnv, bc *registry.BenchComparison, native, wasm string, base time.Duration, deadline time.Time) error {
	// Warm-up, then the timed runs.
	if w, err := r.nativeBenchLoop(ctx, ce, native, 1, deadline); err != nil || !w.ok {
		if err == nil {
			bc.Iterations, bc.Note = 0, "natively, "+w.why
		}
		return err
	}
	nl, err := r.nativeBenchLoop(ctx, ce, native, benchIterations, deadline)
	if err != nil || !nl.ok {
		if err == nil {
			bc.Iterations, bc.Note = 0, "natively, "+nl.why
		}
		return err
	}
	wr, why, err := r.wasmBench(ctx, wasm, deadline)
	if err != nil {
		return err
	}
	if why != "" {
		bc.Iterations, bc.Note = 0, "under wazero, "+truncateText(why, 300)
		return nil
	}
	bc.NativeUS = netMicros(nl.wall, base) / benchIterations
	var sum uint64
	for _, us := range wr.RunsUS {
		sum += us
	}
	bc.WasmUS = sum / benchIterations
	if bc.NativeUS == 0 || bc.WasmUS == 0 {
		bc.Note = "too short to time: below the start-up noise of a run"
		return nil
	}
	bc.Ratio = bc.WasmUS * 1000 / bc.NativeUS
	return nil
}

// wasmBenchRequest is the wasm-bench helper's argument.
type wasmBenchRequest struct {
	Module     string `json:"module"`
	Scratch    string `json:"scratch"` // writable; every instance gets a fresh directory below it
	Pages      uint32 `json:"pages"`
	Iterations int    `json:"iterations"` // timed runs, after one warm-up run
	// Runs, when set, replaces Iterations: one timed run per argument
	// list, no warm-up (the test re-timing of wasmtime.go).
	Runs [][]string `json:"runs,omitempty"`
}

// wasmBenchResult is what wasm-bench prints.
type wasmBenchResult struct {
	CompileUS uint64   `json:"compile_us"`
	RunsUS    []uint64 `json:"runs_us,omitempty"` // each timed run: instantiation and _start
	Error     string   `json:"error,omitempty"`   // why the runs stopped
}

// wasmBench runs a wasm benchmark in the wasm-bench helper and returns its
// timings, or why they are missing.
func (r *jobRun) wasmBench(ctx context.Context, module string, deadline time.Time) (*wasmBenchResult, string, error) {
	lim := r.p.cfg.Limits
	left := time.Until(deadline)
	if left <= 0 {
		return nil, "the benchmarks' time budget was spent", nil
	}
	scratch, err := os.MkdirTemp(r.dir, "wbench-")
	if err != nil {
		return nil, "", registry.E("pipeline.bench", registry.EINTERNAL, "", err)
	}
	defer os.RemoveAll(scratch)
	if err := r.sb.prepareWritable(scratch); err != nil {
		return nil, "", err
	}
	req := wasmBenchRequest{Module: module, Scratch: scratch, Pages: uint32(min(lim.TestMemory/65536, 65536)),
		Iterations: benchIterations}
	var out wasmBenchResult
	// Runs cannot be interrupted inside the helper (see runWasmBench): the
	// helper's own deadline, enforced by the sandbox, bounds them.
	timeout := min(time.Duration(benchIterations+1)*lim.TestTime, left) + 10*time.Second
	run, stderr, err := r.p.helper(ctx, r.sb, "wasm-bench", req, []string{module}, []string{scratch}, timeout, scratch, &out)
	if err != nil {
		return nil, "", err
	}
	if run.TimedOut {
		return nil, fmt.Sprintf("%d runs did not end within %s", benchIterations+1, timeout.Round(time.Second)), nil
	}
	if !run.ok() {
		return nil, "the runner " + runnerEnd(run, stderr), nil
	}
	if out.Error != "" {
		return nil, out.Error, nil
	}
	if len(out.RunsUS) != benchIterations {
		return nil, fmt.Sprintf("the runner reported %d runs, not %d", len(out.RunsUS), benchIterations), nil
	}
	return &out, "", nil
}

func wasmBenchHelper(args []string) int {
	var req wasmBenchRequest
	if !helperRequest(args, &req) {
		return 2
	}
	res, err := runWasmBench(context.Background(), req, slog.New(slog.DiscardHandler))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return helperReply(res)
}

// runWasmBench compiles a wasm32-wasip1 program once and runs it
// 1+req.Iterations times, each in a fresh instance with a page limit and a
// fresh empty directory as its filesystem, timing every run but the first.
// It runs inside the wasm-bench helper; the first run that fails stops it.
// Unlike the test runner's, its runtime does not close instances when a
// context ends: that check at every loop head and call costs several
// times the speed of a tight loop, which is what a benchmark measures. A
// run that does not end is stopped with the whole helper, by the
// sandbox's deadline.
func runWasmBench(ctx context.Context, req wasmBenchRequest, log *slog.Logger) (*wasmBenchResult, error) {
	const op = "pipeline.wasm-bench"
	res := &wasmBenchResult{}
	code, err := os.ReadFile(req.Module)
	if err != nil {
		return nil, registry.E(op, registry.EINTERNAL, "cannot read the wasm benchmark", err)
	}
	pages := req.Pages
	if pages == 0 || pages > 65536 {
		pages = 65536
	}
	n := min(max(req.Iterations, 1), 100)
	first := 1 // the warm-up run is not timed
	if len(req.Runs) > 0 {
		n, first = min(len(req.Runs), maxRetimed)-1, 0
	}
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().
		WithMemoryLimitPages(pages).WithDebugInfoEnabled(false))
	defer rt.Close(ctx)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		return nil, registry.E(op, registry.EINTERNAL, "cannot set up WASI", err)
	}
	t0 := time.Now()
	mod, err := rt.CompileModule(ctx, code)
	res.CompileUS = uint64(time.Since(t0).Microseconds())
	if err != nil {
		res.Error = "wazero cannot compile the benchmark: " + truncateText(err.Error(), 300)
		return res, nil
	}
	defer mod.Close(ctx)
	for i := 0; i <= n; i++ {
		dir := filepath.Join(req.Scratch, "r"+strconv.Itoa(i))
		if err := os.Mkdir(dir, 0o700); err != nil {
			return nil, registry.E(op, registry.EINTERNAL, "cannot create the instance's directory", err)
		}
		out := &limitedBuffer{limit: 2 << 10}
		fsc := wazero.NewFSConfig().(sysfs.FSConfig).WithSysFSMount(newConfinedFS(dir), "/")
		args := []string{filepath.Base(req.Module)}
		if len(req.Runs) > 0 {
			args = append(args, req.Runs[i]...)
		}
		cfg := wazero.NewModuleConfig().WithName("").WithArgs(args...).
			WithStdout(out).WithStderr(out).WithFSConfig(fsc).
			WithSysWalltime().WithSysNanotime().WithSysNanosleep().WithStartFunctions()
		mem := &instanceMemory{}
		tctx := experimental.WithMemoryAllocator(ctx, mem)
		start := time.Now()
		inst, err := rt.InstantiateModule(tctx, mod, cfg)
		if err == nil {
			_, err = inst.ExportedFunction("_start").Call(tctx)
		}
		el := time.Since(start)
		if inst != nil {
			_ = inst.Close(ctx)
		}
		mem.release()
		_ = os.RemoveAll(dir)
		var exit *sys.ExitError
		switch {
		case err == nil, errors.As(err, &exit) && exit.ExitCode() == 0:
		default:
			res.Error = "a run failed: " + truncateText(firstLine(err.Error()), 200) + ": " + tail(out.String(), 200)
			return res, nil
		}
		if i >= first {
			res.RunsUS = append(res.RunsUS, uint64(el.Microseconds()))
		}
	}
	log.Debug("wasm bench", "module", filepath.Base(req.Module), "runs", res.RunsUS)
	return res, nil
}
