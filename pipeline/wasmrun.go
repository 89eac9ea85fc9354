package pipeline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
	registry "github.com/wasmrust/wasm-crates-registry"
)

// Wasm tests never run in the node's process. Two helpers (reexec.go) run
// inside the same sandbox as the builds, as the sandbox user:
//
//   - wasm-compile compiles one test binary with the compilation cache
//     writable (a per-compile staging directory; no guest code runs), so that
//     the host can adopt the new cache entries after hashing them;
//   - wasm-run compiles the binary again from the cache (read-only now), lists
//     its tests, measures its baseline and runs every test in a fresh
//     instance whose filesystem is a fresh directory of its own, and prints
//     the results as one JSON object on standard output.
//
// Both take one argument: their request as JSON.

func init() {
	registerHelper("wasm-compile", wasmCompileHelper)
	registerHelper("wasm-run", wasmRunHelper)
}

// wasmCompileRequest is the wasm-compile helper's argument.
type wasmCompileRequest struct {
	Module string `json:"module"` // the test binary
	Cache  string `json:"cache"`  // the writable compilation-cache directory
}

// wasmCompileResult is what wasm-compile prints.
type wasmCompileResult struct {
	CompileUS uint64 `json:"compile_us"`
	Error     string `json:"error,omitempty"` // wazero cannot compile the binary
}

// wasmRunRequest is the wasm-run helper's argument.
type wasmRunRequest struct {
	Label    string        `json:"label"`
	Module   string        `json:"module"`  // the test binary
	Cache    string        `json:"cache"`   // the read-only compilation cache ("" for none)
	Scratch  string        `json:"scratch"` // writable; every instance gets a fresh directory below it
	Pages    uint32        `json:"pages"`   // linear-memory limit, 64 KiB pages
	TestTime time.Duration `json:"test_time"`
	Budget   time.Duration `json:"budget"`    // no test starts after this much time
	MaxTests int           `json:"max_tests"` // at most this many tests run
}

// wasmRunResult is what wasm-run prints.
type wasmRunResult struct {
	Run   binaryRun `json:"run"`
	Taken int       `json:"taken"` // tests run, against the request's MaxTests
	// Uncached says the read-only cache did not hold the binary, so it was
	// compiled again in memory.
	Uncached bool `json:"uncached,omitempty"`
}

// maxRunnerOutput bounds what a runner's instance output keeps per test.
const maxRunnerOutput = 4 << 10

func helperRequest(args []string, v any) bool {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "expected one argument: the request as JSON")
		return false
	}
	if err := json.Unmarshal([]byte(args[0]), v); err != nil {
		fmt.Fprintln(os.Stderr, "bad request:", err)
		return false
	}
	return true
}

func helperReply(v any) int {
	if err := json.NewEncoder(os.Stdout).Encode(v); err != nil {
		fmt.Fprintln(os.Stderr, "cannot write the result:", err)
		return 1
	}
	return 0
}

func wasmCompileHelper(args []string) int {
	var req wasmCompileRequest
	if !helperRequest(args, &req) {
		return 2
	}
	ctx := context.Background()
	code, err := os.ReadFile(req.Module)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cache, err := wazero.NewCompilationCacheWithDir(req.Cache)
	if err != nil {
		fmt.Fprintln(os.Stderr, "compilation cache:", err)
		return 1
	}
	defer cache.Close(ctx)
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCompilationCache(cache).WithCloseOnContextDone(true))
	defer rt.Close(ctx)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		fmt.Fprintln(os.Stderr, "WASI:", err)
		return 1
	}
	var res wasmCompileResult
	t0 := time.Now()
	_, err = rt.CompileModule(ctx, code)
	res.CompileUS = uint64(time.Since(t0).Microseconds())
	if err != nil {
		res.Error = err.Error()
	}
	return helperReply(res)
}

func wasmRunHelper(args []string) int {
	var req wasmRunRequest
	if !helperRequest(args, &req) {
		return 2
	}
	res, err := runWasmBinary(context.Background(), req, slog.New(slog.DiscardHandler))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return helperReply(res)
}

// runWasmBinary runs every test of one wasm32-wasip1 test binary: compiled
// once, each test in a fresh instance with a page limit, a deadline and only
// a fresh empty directory as its filesystem. It runs inside the wasm-run
// helper.
func runWasmBinary(ctx context.Context, req wasmRunRequest, log *slog.Logger) (*wasmRunResult, error) {
	const op = "pipeline.wasm-run"
	res := &wasmRunResult{Run: binaryRun{Label: req.Label}}
	br := &res.Run
	code, err := os.ReadFile(req.Module)
	if err != nil {
		return nil, registry.E(op, registry.EINTERNAL, "cannot read the wasm test binary", err)
	}
	pages := req.Pages
	if pages == 0 || pages > 65536 {
		pages = 65536
	}
	rcfg := wazero.NewRuntimeConfig().
		WithMemoryLimitPages(pages).
		WithCloseOnContextDone(true).
		WithDebugInfoEnabled(false)
	newRuntime := func(cache wazero.CompilationCache) (wazero.Runtime, error) {
		c := rcfg
		if cache != nil {
			c = c.WithCompilationCache(cache)
		}
		rt := wazero.NewRuntimeWithConfig(ctx, c)
		if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
			_ = rt.Close(ctx)
			return nil, registry.E(op, registry.EINTERNAL, "cannot set up WASI", err)
		}
		return rt, nil
	}
	var rt wazero.Runtime
	var mod wazero.CompiledModule
	t0 := time.Now()
	if req.Cache != "" {
		// The cache is read-only here: a binary it does not hold fails to
		// be added, and is compiled again without it.
		if cache, err := wazero.NewCompilationCacheWithDir(req.Cache); err == nil {
			defer cache.Close(ctx)
			if rt, err = newRuntime(cache); err != nil {
				return nil, err
			}
			if mod, err = rt.CompileModule(ctx, code); err != nil {
				_ = rt.Close(ctx)
				rt, mod = nil, nil
			}
		}
	}
	if mod == nil {
		res.Uncached = req.Cache != ""
		if rt, err = newRuntime(nil); err != nil {
			return nil, err
		}
		if mod, err = rt.CompileModule(ctx, code); err != nil {
			_ = rt.Close(ctx)
			br.ListError = "wazero cannot compile the test binary: " + err.Error()
			return res, nil
		}
	}
	br.CompileUS = uint64(time.Since(t0).Microseconds())
	defer rt.Close(ctx)
	defer mod.Close(ctx)

	seq := 0
	runOne := func(timeout time.Duration, args ...string) (oneRun, error) {
		var r oneRun
		seq++
		dir := filepath.Join(req.Scratch, "t"+strconv.Itoa(seq))
		if err := os.Mkdir(dir, 0o700); err != nil {
			return r, registry.E(op, registry.EINTERNAL, "cannot create the instance's directory", err)
		}
		defer os.RemoveAll(dir)
		out := &limitedBuffer{limit: 16 << 10}
		fsc := wazero.NewFSConfig().(sysfs.FSConfig).WithSysFSMount(newConfinedFS(dir), "/")
		cfg := wazero.NewModuleConfig().
			WithName("").
			WithArgs(append([]string{filepath.Base(req.Module)}, args...)...).
			WithEnv("RUST_BACKTRACE", "0").
			WithStdout(out).WithStderr(out).
			WithFSConfig(fsc).
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
		_ = inst.Close(ctx)
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
		case tctx.Err() != nil:
			r.timed = true
		default:
			r.out += "\n" + firstLine(err.Error())
		}
		return r, nil
	}
	budget := &testBudget{deadline: time.Now().Add(req.Budget), left: req.MaxTests}
	err = runEach(br, " under wazero", req.TestTime, log, runOne, budget, func(r oneRun) (string, bool) {
		state, shouldPanic := singleTestState(r.out, r.ok)
		if state == registry.TestFailed && r.peak >= uint64(pages)*65536 {
			state = registry.TestOOM
		}
		return state, shouldPanic
	})
	if err != nil {
		return nil, err
	}
	for i := range br.Tests {
		br.Tests[i].Output = tail(br.Tests[i].Output, maxRunnerOutput)
	}
	res.Taken = req.MaxTests - budget.left
	return res, nil
}

// wasmTests runs a wasm32-wasip1 test binary's tests in the sandbox: the
// wasm-compile helper fills the compilation cache, the host verifies and
// adopts what it wrote, and the wasm-run helper runs the tests against the
// read-only cache. Only the helpers' JSON comes back. A binary this
// process has already compiled into the cache (by its sha256) skips the
// compile step; if the cache lost it since, the runner compiles it in
// memory and the next run compiles it again.
func (p *Pipeline) wasmTests(ctx context.Context, sb *sandbox, bin testBinary, jobDir string, budget *testBudget) (*binaryRun, error) {
	const op = "pipeline.wasmTests"
	lim := p.cfg.Limits
	br := &binaryRun{Label: bin.Label}
	seq := strconv.FormatInt(p.seq.Add(1), 10)

	sum, err := fileSHA256(bin.Path)
	if err != nil {
		return nil, registry.E(op, registry.EINTERNAL, "cannot read the wasm test binary", err)
	}
	var comp wasmCompileResult
	if _, done := p.compiled.Load(sum); !done {
		// Compile, with a staging copy of the cache as the only writable
		// place.
		stage := filepath.Join(jobDir, "wcache-"+seq)
		if err := p.wcache.stage(stage); err != nil {
			return nil, err
		}
		defer os.RemoveAll(stage)
		if err := sb.prepareWritable(stage); err != nil {
			return nil, err
		}
		run, stderr, err := p.helper(ctx, sb, "wasm-compile", wasmCompileRequest{Module: bin.Path, Cache: stage},
			[]string{bin.Path}, []string{stage}, lim.BuildTime, stage, &comp)
		if err != nil {
			return nil, err
		}
		if !run.ok() {
			br.ListError = "the wasm compiler " + runnerEnd(run, stderr)
			return br, nil
		}
		if comp.Error != "" {
			br.ListError = "wazero cannot compile the test binary: " + truncateText(comp.Error, maxRunnerOutput)
			return br, nil
		}
		if err := p.wcache.adopt(stage); err != nil {
			return nil, err
		}
		p.compiled.Store(sum, true)
	}

	// Run, with the verified cache read-only and a fresh scratch directory.
	if err := p.wcache.verify(); err != nil {
		return nil, err
	}
	scratch := filepath.Join(jobDir, "wasi-"+seq)
	if err := os.Mkdir(scratch, 0o700); err != nil {
		return nil, registry.E(op, registry.EINTERNAL, "", err)
	}
	defer os.RemoveAll(scratch)
	if err := sb.prepareWritable(scratch); err != nil {
		return nil, err
	}
	// With the budget spent, the runner still lists the tests and reports
	// them not-run.
	left := max(time.Until(budget.deadline), 0)
	req := wasmRunRequest{Label: bin.Label, Module: bin.Path, Cache: p.wcache.dir, Scratch: scratch,
		Pages: uint32(min(lim.TestMemory/65536, 65536)), TestTime: lim.TestTime, Budget: left, MaxTests: max(budget.left, 0)}
	// The runner stops starting tests at the budget; listing, baselines and
	// the last test may take a few more test deadlines.
	var out wasmRunResult
	run, stderr, err := p.helper(ctx, sb, "wasm-run", req, []string{bin.Path}, []string{scratch}, left+4*lim.TestTime+30*time.Second, scratch, &out)
	if err != nil {
		return nil, err
	}
	if !run.ok() {
		br.ListError = "the wasm test runner " + runnerEnd(run, stderr)
		return br, nil
	}
	*br = sanitizeRun(out.Run, bin.Label, req.MaxTests)
	if comp.CompileUS > 0 {
		br.CompileUS = comp.CompileUS
	}
	budget.left -= min(max(out.Taken, 0), req.MaxTests)
	if out.Uncached {
		p.compiled.Delete(sum)
		p.log.Warn("the wasm runner did not find the binary in the verified compilation cache", "binary", bin.Label)
	}
	return br, nil
}

// maxRunnerTests bounds the tests one runner reply may list, ignored and
// not-run ones included.
const maxRunnerTests = 20000

// sanitizeRun bounds what a runner reported. The runner ran guest code, so
// its reply is the crate's word: it can only describe the crate's own
// tests, and within the report's limits. Unknown states count as failed;
// names and outputs are cut; the list is capped; the label is the host's.
func sanitizeRun(br binaryRun, label string, maxTests int) binaryRun {
	br.Label = label
	br.ListError = truncateText(br.ListError, maxRunnerOutput)
	if len(br.Tests) > maxRunnerTests {
		br.Tests = br.Tests[:maxRunnerTests]
	}
	ran := 0
	prefix := label + "::"
	for i := range br.Tests {
		t := &br.Tests[i]
		if !strings.HasPrefix(t.Name, prefix) {
			t.Name = prefix + t.Name
		}
		t.Name = truncateText(t.Name, 512)
		t.Output = tail(t.Output, maxRunnerOutput)
		switch t.State {
		case registry.TestPassed, registry.TestFailed, registry.TestTimeout, registry.TestOOM:
			ran++
			if ran > maxTests {
				t.State, t.Output, t.US, t.Peak = registry.TestNotRun, "more tests than the per-target cap; not run", 0, 0
			}
		case registry.TestIgnored, registry.TestNotRun:
		default:
			t.Output = "the runner reported an unknown state " + strconv.Quote(truncateText(t.State, 40))
			t.State = registry.TestFailed
		}
	}
	return br
}

func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// fileSHA256 is the hex sha256 of a file's contents.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// runnerEnd says how a helper that failed ended.
func runnerEnd(run runResult, stderr *limitedBuffer) string {
	switch {
	case run.TimedOut:
		return "passed its deadline"
	case run.DiskExceeded:
		return "wrote more than the disk limit"
	case run.Signal != 0:
		return "was killed by signal " + run.Signal.String() + ": " + tail(stderr.String(), 600)
	}
	return "failed (exit " + strconv.Itoa(run.Exit) + "): " + tail(stderr.String(), 600)
}

// maxHelperReply bounds a helper's JSON reply.
const maxHelperReply = 32 << 20

// helper runs a pipeline helper in the sandbox as the sandbox user with req
// as its argument and decodes its JSON reply into reply when it exits 0.
func (p *Pipeline) helper(ctx context.Context, sb *sandbox, name string, req any, ro, rw []string, timeout time.Duration, diskDir string, reply any) (runResult, *limitedBuffer, error) {
	const op = "pipeline.helper"
	lim := p.cfg.Limits
	arg, err := json.Marshal(req)
	if err != nil {
		return runResult{}, nil, registry.E(op, registry.EINTERNAL, "", err)
	}
	stdout := &cappedBuffer{limit: maxHelperReply}
	stderr := &limitedBuffer{limit: 8 << 10}
	run, err := sb.run(ctx, runSpec{
		Args: helperArgs(helperPath, name, string(arg)),
		Env:  []string{"HOME=/tmp", "TMPDIR=/tmp", "LANG=C.UTF-8", "GOMAXPROCS=2"},
		Dir:  "/", RO: ro, RW: rw, Timeout: timeout,
		// Linear memories are reserved at their limit; the address-space
		// limit leaves room for that, the compiled code and the runtime.
		// CPU time: GOMAXPROCS is 2, so at most twice the wall time.
		Mem: helperMemory(lim.TestMemory), CPU: 2 * timeout, Procs: lim.Processes, FileSize: lim.Disk,
		DiskDir: diskDir, DiskLimit: lim.Disk,
		Stdout: stdout, Stderr: stderr,
	})
	if err != nil {
		return run, stderr, err
	}
	if run.ok() {
		if stdout.over {
			run.Exit = -1
			_, _ = stderr.Write([]byte("\nthe helper's reply is larger than " + strconv.Itoa(maxHelperReply) + " bytes"))
		} else if err := json.Unmarshal(stdout.Bytes(), reply); err != nil {
			run.Exit = -1
			_, _ = stderr.Write([]byte("\nthe helper's reply is not valid: " + err.Error()))
		}
	}
	return run, stderr, nil
}

// helperMemory is the address-space limit of a wasm helper whose linear
// memories may reach testMemory bytes.
func helperMemory(testMemory uint64) uint64 {
	return 2*min(testMemory, 4<<30) + 8<<30
}

// cappedBuffer keeps at most limit bytes and says whether more came.
type cappedBuffer struct {
	bytes.Buffer
	limit int
	over  bool
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	if room := c.limit - c.Len(); room < len(p) {
		c.over = true
		if room > 0 {
			c.Buffer.Write(p[:room])
		}
		return len(p), nil
	}
	return c.Buffer.Write(p)
}

var _ io.Writer = (*cappedBuffer)(nil)
