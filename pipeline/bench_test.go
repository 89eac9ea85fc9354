package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	registry "github.com/wasmrust/wasm-crates-registry"
)

// BenchmarkPipeline runs the pipeline on each fixture and real crate
// several times (WCR_BENCH_REPS, default 3), interleaved with the same cargo
// commands run by hand without the sandbox, and reports medians:
//
//	stage-ms/<stage>    wall time per stage (median over the runs)
//	overhead-%          the pipeline's cargo stages (resolve, build, analyse, test-build) over the same commands by hand
//	wasm-test-speedup   the first run's wasm test stage (cold compilation cache) over the later runs' median
//	wasm-tests/s, native-tests/s   tests run per second, each test in its own instance or process
//
// The first run of each crate uses a fresh cache directory. Run with:
//
//	go test -run '^$' -bench Pipeline -benchtime 1x ./pipeline/
func BenchmarkPipeline(b *testing.B) {
	crates := []string{
		fixtureDir("pure"), fixtureDir("fsthreads"), fixtureDir("onefail"), fixtureDir("macro"), fixtureDir("cdep"),
		filepath.Join(DebianRegistry, "itoa-1.0.1"), filepath.Join(DebianRegistry, "semver-1.0.14"),
		filepath.Join(DebianRegistry, "memchr-2.5.0"),
	}
	reps := 3
	if n, err := strconv.Atoi(os.Getenv("WCR_BENCH_REPS")); err == nil && n > 1 {
		reps = n
	}
	var table strings.Builder
	table.WriteString("| crate | outcome | resolve | build | analyse | test-build | cargo stages | by hand | overhead | native tests | wasm tests cold | wasm tests warm | native tests/s | wasm tests/s |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, dir := range crates {
		b.Run(filepath.Base(dir), func(b *testing.B) {
			for range b.N {
				table.WriteString(benchCrate(b, dir, reps))
			}
		})
	}
	fmt.Printf("\nmilliseconds, medians of %d runs\n%s\n", reps, table.String())
}

func stageMS(body *registry.ReportBody, stage, target string) float64 {
	var us uint64
	for _, s := range body.Stages {
		if s.Stage == stage && (target == "" || s.Target == target) {
			us += s.US
		}
	}
	return float64(us) / 1000
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func benchCrate(b *testing.B, dir string, reps int) string {
	work, err := os.MkdirTemp("", "wcr-pipeline-bench-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(work)
	if err := os.Chmod(work, 0o755); err != nil {
		b.Fatal(err)
	}
	p, err := New(Config{WorkDir: filepath.Join(work, "w"), CacheDir: filepath.Join(work, "c"), DirectorySources: []string{DebianRegistry},
		Limits: testLimits(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	crate := packDir(b, dir)
	rec, rb := release(b, crate)
	reg := newMemRegistry()
	reg.add(b, packDir(b, fixtureDir("cdep-sys")), "")
	job := Job{Release: rec, Body: rb, Crate: crate, Local: reg}
	host := p.host
	stages := []string{"unpack", "resolve", "build", "analyse", "test-build", "test", "deps"}
	per := map[string][]float64{}
	var cargo, hand, native, wasmWarm []float64
	var wasmCold float64
	var last *registry.ReportBody
	b.ResetTimer()
	for i := range reps {
		body, err := p.Run(context.Background(), job, nil)
		if err != nil {
			b.Fatal(err)
		}
		last = body
		for _, s := range stages {
			per[s] = append(per[s], stageMS(body, s, ""))
		}
		cargo = append(cargo, stageMS(body, "resolve", "")+stageMS(body, "build", "")+stageMS(body, "analyse", "")+stageMS(body, "test-build", ""))
		native = append(native, stageMS(body, "test", host))
		if i == 0 {
			wasmCold = stageMS(body, "test", TargetWasip1)
		} else {
			wasmWarm = append(wasmWarm, stageMS(body, "test", TargetWasip1))
		}
		b.StopTimer()
		hand = append(hand, byHand(b, p, crate, filepath.Join(work, fmt.Sprintf("hand%d", i))))
		b.StartTimer()
	}
	b.StopTimer()
	count := func(t string) float64 {
		for _, tr := range last.Targets {
			if tr.Target == t && tr.Tests != nil {
				return float64(tr.Tests.Passed + tr.Tests.Failed + tr.Tests.Timeout + tr.Tests.OOM)
			}
		}
		return 0
	}
	rate := func(n, ms float64) string {
		if n == 0 || ms == 0 {
			return "–"
		}
		return fmt.Sprintf("%.1f", n/(ms/1000))
	}
	for _, s := range stages {
		b.ReportMetric(median(per[s]), "stage-ms/"+s)
	}
	mc, mh := median(cargo), median(hand)
	overhead := 100 * (mc - mh) / mh
	b.ReportMetric(overhead, "overhead-%")
	ww, mn := median(wasmWarm), median(native)
	if ww > 0 {
		b.ReportMetric(wasmCold/ww, "wasm-test-speedup")
		if n := count(TargetWasip1); n > 0 {
			b.ReportMetric(n/(ww/1000), "wasm-tests/s")
		}
	}
	if n := count(host); n > 0 && mn > 0 {
		b.ReportMetric(n/(mn/1000), "native-tests/s")
	}
	return fmt.Sprintf("| %s %s | %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %+.1f%% | %.0f | %.0f | %.0f | %s | %s |\n",
		rb.Name, rb.Version, last.Outcome, median(per["resolve"]), median(per["build"]), median(per["analyse"]), median(per["test-build"]),
		mc, mh, overhead, mn, wasmCold, ww, rate(count(host), mn), rate(count(TargetWasip1), ww))
}

// byHand runs, without sandbox or pipeline, the cargo commands the
// pipeline's resolve, build, analyse and test-build stages run, with the
// same toolchains, sources and flags, and returns their total wall time in
// milliseconds.
func byHand(b *testing.B, p *Pipeline, crate []byte, dir string) float64 {
	src := filepath.Join(dir, "src")
	if _, err := unpackCrate(crate, src, 0); err != nil {
		b.Fatal(err)
	}
	home := filepath.Join(dir, "home")
	job := &Job{Body: &registry.ReleaseBody{}}
	reg := newMemRegistry()
	reg.add(b, packDir(b, fixtureDir("cdep-sys")), "")
	job.Local = reg
	if _, _, err := p.materialise(context.Background(), job, filepath.Join(dir, "vendor"), home, false); err != nil {
		b.Fatal(err)
	}
	byID := map[string]Toolchain{}
	for _, tc := range p.toolchains {
		byID[tc.ID] = tc
	}
	var total time.Duration
	run := func(ce *cargoEnv, args ...string) bool {
		cmd := exec.Command(ce.tc.Cargo, args...)
		cmd.Dir, cmd.Env = ce.pkg, ce.env()
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		t0 := time.Now()
		err := cmd.Run()
		total += time.Since(t0)
		return err == nil
	}
	envs := map[string]*cargoEnv{}
	for _, st := range p.plan {
		if st.Toolchain == "" {
			continue
		}
		ce := envs[st.Toolchain]
		if ce == nil {
			base := filepath.Join(dir, "tc"+fmt.Sprint(len(envs)))
			ce = &cargoEnv{tc: byID[st.Toolchain], pkg: filepath.Join(base, "pkg"), target: filepath.Join(base, "target"), home: home}
			if err := copyTree(src, ce.pkg); err != nil {
				b.Fatal(err)
			}
			envs[st.Toolchain] = ce
			if !run(ce, "generate-lockfile", "--offline") {
				mf := filepath.Join(ce.pkg, "Cargo.toml")
				orig, _ := os.ReadFile(mf)
				for _, strip := range []func([]byte) []byte{
					func(m []byte) []byte { o, _, _ := stripOptional(m); return o },
					func(m []byte) []byte { o, _, _ := stripDevDeps(m); return o },
					func(m []byte) []byte { o, _, _ := stripOptional(m); o, _, _ = stripDevDeps(o); return o },
				} {
					_ = os.WriteFile(mf, strip(orig), 0o644)
					if run(ce, "generate-lockfile", "--offline") {
						break
					}
				}
			}
		}
		if !run(ce, "build", "--offline", "--target", st.Triple, "--message-format", "json") {
			continue
		}
		if st.Target == TargetWasmUnknown {
			run(ce, "rustc", "--offline", "--lib", "--release", "--target", st.Triple, "--crate-type", "cdylib", "--message-format", "json")
		}
		if st.Tested {
			run(ce, "test", "--offline", "--no-run", "--target", st.Triple, "--message-format", "json")
		}
	}
	return float64(total.Microseconds()) / 1000
}

// BenchmarkWazeroCompile measures what the compilation cache saves: the
// first compilation of a wasm test binary against a compilation from the
// on-disk cache in a new runtime.
func BenchmarkWazeroCompile(b *testing.B) {
	p := testPipeline(b)
	// Build the itoa test binary for wasip1 with the pipeline's own cargo.
	var wasi TargetStatus
	for _, st := range p.plan {
		if st.Target == TargetWasip1 {
			wasi = st
		}
	}
	if wasi.Toolchain == "" {
		b.Skip("no wasip1 toolchain")
	}
	var tc Toolchain
	for _, t := range p.toolchains {
		if t.ID == wasi.Toolchain {
			tc = t
		}
	}
	dir := b.TempDir()
	home := filepath.Join(dir, "home")
	if _, _, err := p.materialise(context.Background(), &Job{Body: &registry.ReleaseBody{}}, filepath.Join(dir, "vendor"), home, false); err != nil {
		b.Fatal(err)
	}
	ce := &cargoEnv{tc: tc, pkg: filepath.Join(dir, "pkg"), target: filepath.Join(dir, "target"), home: home}
	if err := copyTree(filepath.Join(DebianRegistry, "semver-1.0.14"), ce.pkg); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(tc.Cargo, "test", "--offline", "--no-run", "--target", wasi.Triple, "--test", "test_version_req")
	cmd.Dir, cmd.Env = ce.pkg, ce.env()
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%v\n%s", err, out)
	}
	matches, _ := filepath.Glob(filepath.Join(ce.target, wasi.Triple, "debug", "deps", "test_version_req-*.wasm"))
	if len(matches) == 0 {
		b.Fatal("no test binary")
	}
	code, err := os.ReadFile(matches[0])
	if err != nil {
		b.Fatal(err)
	}
	compile := func(cacheDir string) time.Duration {
		ctx := context.Background()
		cache, err := wazero.NewCompilationCacheWithDir(cacheDir)
		if err != nil {
			b.Fatal(err)
		}
		defer cache.Close(ctx)
		rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCompilationCache(cache))
		defer rt.Close(ctx)
		wasi_snapshot_preview1.MustInstantiate(ctx, rt)
		t0 := time.Now()
		if _, err := rt.CompileModule(ctx, code); err != nil {
			b.Fatal(err)
		}
		return time.Since(t0)
	}
	var cold, warm time.Duration
	for i := range b.N {
		cacheDir := filepath.Join(dir, fmt.Sprintf("cache%d", i))
		cold += compile(cacheDir)
		warm += compile(cacheDir)
	}
	b.ReportMetric(float64(cold.Milliseconds())/float64(b.N), "cold-ms")
	b.ReportMetric(float64(warm.Microseconds())/1000/float64(b.N), "warm-ms")
	b.ReportMetric(float64(cold)/float64(warm), "speedup")
	b.ReportMetric(float64(len(code))/(1<<20), "module-MiB")
}
