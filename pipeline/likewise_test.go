package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
)

func lfixture(name string) string { return filepath.Join("testdata", name) }

// extraOf returns the report's extra target for name, or nil.
func extraOf(b *registry.ReportBody, name string) *registry.TargetReport {
	for i := range b.Targets {
		if b.Targets[i].Target == name && b.Targets[i].Extra {
			return &b.Targets[i]
		}
	}
	return nil
}

// signs checks that a report body passes the record's validation.
func signs(t *testing.T, b *registry.ReportBody, crate string) {
	t.Helper()
	if _, err := registry.Sign(key(t), registry.KindReport, registry.ReleaseSubject(crate, "0.1.0"), b, time.Now()); err != nil {
		t.Fatalf("the report does not validate: %v", err)
	}
}

// The host target that is compared with wasm is planned with the wasm
// toolchain; the best native toolchain, when another, is an extra entry
// after the others.
func TestLikeWithLikePlan(t *testing.T) {
	const host = "x86_64-unknown-linux-gnu"
	debian := Toolchain{ID: "1.63.0@/usr/bin", Version: "1.63.0", Channel: "stable", Host: host, Usable: true,
		Targets: []string{"wasm32-unknown-unknown", "wasm32-wasi", host}}
	rustup := Toolchain{ID: "1.95.0@/r/bin", Version: "1.95.0", Channel: "stable", Host: host, Usable: true, Targets: []string{host}}
	wasmOnly := Toolchain{ID: "1.90.0@/w/bin", Version: "1.90.0", Channel: "stable", Host: host, Usable: true,
		Targets: []string{"wasm32-unknown-unknown", "wasm32-wasip1"}}
	byTarget := func(plan []TargetStatus) map[string][]TargetStatus {
		m := map[string][]TargetStatus{}
		for _, st := range plan {
			m[st.Target] = append(m[st.Target], st)
		}
		return m
	}

	tcs := []Toolchain{rustup, debian} // best first, as DetectToolchains sorts them
	plan := planTargets(tcs, host, nil)
	m := byTarget(plan)
	if len(m[host]) != 2 {
		t.Fatalf("host planned %d times, want 2 (compared and extra): %+v", len(m[host]), plan)
	}
	main, extra := m[host][0], m[host][1]
	if main.Toolchain != debian.ID || main.Extra || main.Triple != host || !main.Tested {
		t.Errorf("compared host target %+v; want the wasm toolchain %s, tested", main, debian.ID)
	}
	if extra.Toolchain != rustup.ID || !extra.Extra || !extra.Tested {
		t.Errorf("extra host target %+v; want %s, tested, extra", extra, rustup.ID)
	}
	if i := slices.Index(plan, main); i < 0 || i+1 >= len(plan) || plan[i+1] != extra {
		t.Errorf("the extra entry does not follow the compared host target (the wasm targets' control builds read it): %+v", plan)
	}
	if w := m[TargetWasip1]; len(w) != 1 || w[0].Toolchain != debian.ID || w[0].Extra {
		t.Errorf("wasip1 %+v", w)
	}

	// Only one toolchain: nothing extra.
	plan = planTargets([]Toolchain{debian}, host, nil)
	if m := byTarget(plan); len(m[host]) != 1 || m[host][0].Toolchain != debian.ID {
		t.Errorf("one toolchain: %+v", plan)
	}
	// No wasm toolchain: the native plan is unchanged.
	plan = planTargets([]Toolchain{rustup}, host, nil)
	if m := byTarget(plan); len(m[host]) != 1 || m[host][0].Toolchain != rustup.ID || m[TargetWasip1][0].Toolchain != "" {
		t.Errorf("no wasm toolchain: %+v", plan)
	}
	// The wasm toolchain has no host std: the host keeps the best native
	// toolchain and nothing is extra.
	plan = planTargets([]Toolchain{wasmOnly, rustup}, host, nil)
	if m := byTarget(plan); len(m[host]) != 1 || m[host][0].Toolchain != rustup.ID {
		t.Errorf("wasm toolchain without host std: %+v", plan)
	}
	// A wasip1 toolchain decides over a wasm32-unknown-unknown-only one.
	uuOnly := Toolchain{ID: "1.96.0@/u/bin", Version: "1.96.0", Channel: "stable", Host: host, Usable: true,
		Targets: []string{"wasm32-unknown-unknown", host}}
	plan = planTargets([]Toolchain{uuOnly, debian}, host, nil)
	if m := byTarget(plan); m[host][0].Toolchain != debian.ID || len(m[host]) != 2 || m[host][1].Toolchain != uuOnly.ID {
		t.Errorf("wasip1's toolchain must decide: %+v", plan)
	}
	// The best toolchain is the wasm one: nothing extra.
	both := Toolchain{ID: "1.95.0@/b/bin", Version: "1.95.0", Channel: "stable", Host: host, Usable: true,
		Targets: []string{"wasm32-unknown-unknown", "wasm32-wasip1", host}}
	plan = planTargets([]Toolchain{both, debian}, host, nil)
	if m := byTarget(plan); len(m[host]) != 1 || m[host][0].Toolchain != both.ID {
		t.Errorf("newest toolchain has wasm: %+v", plan)
	}
}

// A crate with #![deny(warnings)] and code that only a newer rustc warns
// about: the compared host target and the wasm targets use the same
// toolchain, the newest native toolchain builds and tests it as well
// (its lints capped at warnings) and is shown as extra, named in the
// report, outside every comparison.
func TestLikeWithLikeLints(t *testing.T) {
	t.Parallel()
	p := testPipeline(t)
	b := runFixture(t, lfixture("l-lints")).body
	if b.Wasm != registry.WasmCompatible || b.Outcome != registry.OutcomeTestPass || !b.Dual {
		t.Fatalf("wasm %s outcome %s dual %v: %s", b.Wasm, b.Outcome, b.Dual, b.Message)
	}
	native := targetOf(t, b, p.host)
	wasi := targetOf(t, b, TargetWasip1)
	if native.Extra || native.Toolchain == "" || native.Toolchain != wasi.Toolchain {
		t.Errorf("compared native target built by %q (extra %v), wasip1 by %q: not like with like", native.Toolchain, native.Extra, wasi.Toolchain)
	}
	if native.Outcome != registry.OutcomeTestPass || native.Tests == nil || native.Tests.Passed != 1 {
		t.Errorf("native %s: %s", native.Outcome, native.Message)
	}
	extra := extraOf(b, p.host)
	if extra == nil {
		t.Fatalf("no extra native target; this machine has a newer native toolchain than the wasm one (%+v)", p.Toolchains())
	}
	if extra.Toolchain == native.Toolchain || extra.Toolchain == "" {
		t.Errorf("extra target built by %q, compared one by %q", extra.Toolchain, native.Toolchain)
	}
	// Without --cap-lints the newer rustc fails the build on the
	// crate's own #![deny(warnings)].
	if extra.Build != buildOK || extra.Outcome != registry.OutcomeTestPass || extra.Tests == nil || extra.Tests.Passed != 1 {
		t.Errorf("extra target: build %s, outcome %s: %s\n%s", extra.Build, extra.Outcome, extra.Message, logsText(b))
	}
	ids := map[string][]string{}
	for _, tc := range b.Toolchains {
		ids[tc.ID] = tc.Targets
	}
	if !slices.Contains(ids[native.Toolchain], p.host) || !slices.Contains(ids[native.Toolchain], TargetWasip1) || !slices.Contains(ids[extra.Toolchain], p.host) {
		t.Errorf("toolchains named %+v; want %s with %s and wasip1, %s with %s", b.Toolchains, native.Toolchain, p.host, extra.Toolchain, p.host)
	}
	// The comparison holds one entry per test, from the compared target.
	if c := testOf(t, b, "lib::tests::triples"); c.Native != registry.TestPassed || c.Wasm != registry.TestPassed {
		t.Errorf("comparison %+v", c)
	}
	if len(b.Tests) != 1 || b.Timing == nil || b.Timing.Compared != 1 {
		t.Errorf("comparisons %+v timing %+v", b.Tests, b.Timing)
	}
	signs(t, b, "wcr-fx-lints")
}

// The same crate built by each toolchain directly: the newer rustc
// rejects it without the cap and accepts it with it; the older one has no
// such lint.
func TestLikeWithLikeLintNeedsCap(t *testing.T) {
	t.Parallel()
	p := testPipeline(t)
	var older, newer *Toolchain
	for _, st := range p.Targets() {
		for i, tc := range p.toolchains {
			if tc.ID != st.Toolchain || st.Target != p.host {
				continue
			}
			if st.Extra {
				newer = &p.toolchains[i]
			} else {
				older = &p.toolchains[i]
			}
		}
	}
	if older == nil || newer == nil {
		t.Fatalf("want two native toolchains planned: %+v", p.Targets())
	}
	dir := t.TempDir()
	for _, tc := range []*Toolchain{older, newer} {
		ce := &cargoEnv{tc: *tc, pkg: filepath.Join(dir, tc.Version, "pkg"), target: filepath.Join(dir, tc.Version, "target"), home: filepath.Join(dir, tc.Version, "home")}
		if err := copyTree(lfixture("l-lints"), ce.pkg); err != nil {
			t.Fatal(err)
		}
		for _, d := range []string{ce.target, ce.home} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.sb.prepareWritable(dir); err != nil {
			t.Fatal(err)
		}
		for _, capped := range []bool{false, true} {
			env := ce.env()
			if !capped {
				env = slices.DeleteFunc(env, func(s string) bool { return strings.HasPrefix(s, "RUSTFLAGS=") })
			}
			out := &limitedBuffer{limit: 16 << 10}
			res, err := p.sb.run(context.Background(), runSpec{
				Args: []string{tc.Cargo, "build", "--offline", "--manifest-path", ce.manifest(), "--target", p.host},
				Env:  env, Dir: dir, RW: []string{dir}, Timeout: 5 * time.Minute, Stdout: out, Stderr: out,
			})
			if err != nil {
				t.Fatal(err)
			}
			want := capped || tc == older
			if res.ok() != want {
				t.Errorf("rustc %s, capped %v: built %v, want %v\n%s", tc.Version, capped, res.ok(), want, out.String())
			}
		}
	}
}

// Doc-tests run natively and are counted apart from the tests, each
// judged by its run's exit status whatever it prints.
func TestDocTests(t *testing.T) {
	t.Parallel()
	p := testPipeline(t)
	b := runFixture(t, lfixture("l-doctest")).body
	native := targetOf(t, b, p.host)
	d := native.DocTests
	if d == nil {
		t.Fatalf("no doc-test counts: %s\n%s", b.Notes, logsText(b))
	}
	// README, crate, add (4 run: 2 pass, 2 fail), no_run, compile_fail,
	// mul; one ignored.
	if d.Passed != 7 || d.Failed != 2 || d.Ignored != 1 || d.Timeout != 0 || d.NotRun != 0 {
		t.Errorf("doc-tests %+v; want 7 passed, 2 failed, 1 ignored\n%s", *d, logsText(b))
	}
	if native.Tests == nil || native.Tests.Passed != 1 || native.Tests.Failed != 0 {
		t.Errorf("tests %+v: the doc-tests must not count among them", native.Tests)
	}
	for _, tr := range b.Targets {
		if tr.DocTests != nil && (tr.Target != p.host || tr.Extra) {
			t.Errorf("%s (extra %v) has doc-test counts", tr.Target, tr.Extra)
		}
	}
	logs := logsText(b)
	for _, n := range []string{"src/lib.rs - add (line 17)", "src/lib.rs - add (line 30)"} {
		if !strings.Contains(logs, n) {
			t.Errorf("no log of the failing doc-test %q", n)
		}
	}
	if b.Wasm != registry.WasmCompatible {
		t.Errorf("wasm %s: failing doc-tests must not change the verdict", b.Wasm)
	}
	signs(t, b, "wcr-fx-doctest")
}

// listText reads a listing as the pipeline does, through a lineScanner.
func listText(text string) ([]string, bool) {
	l := &docListing{}
	sc := &lineScanner{max: maxDocListLine, maxTotal: maxDocListBytes, fn: l.line}
	_, _ = sc.Write([]byte(text))
	sc.flush()
	return l.names, l.overflow || sc.dropped > 0 || sc.overflow > 0
}

func listed(t *testing.T, text string, overflow bool) []string {
	t.Helper()
	names, over := listText(text)
	if over != overflow {
		t.Errorf("overflow %v, want %v", over, overflow)
	}
	return names
}

// A listing too long to keep whole is marked, so that no selection is
// made from part of it.
func TestDocTestListOverflow(t *testing.T) {
	listed(t, "a - b (line 1): test\r\n"+strings.Repeat("x", maxDocListLine+1)+": test\n", true)
	listed(t, strings.Repeat("a - b (line 1): test\n", maxDocListed+1), true)
	if n := listed(t, strings.Repeat("a - b (line 1): test\r\n", maxDocListed), false); len(n) != maxDocListed || n[0] != "a - b (line 1)" {
		t.Errorf("%d names, first %q", len(n), n[0])
	}
}

// Selecting one doc-test by words of its name.
func TestDocTestIsolate(t *testing.T) {
	all := []string{
		"src/lib.rs - (line 5)",
		"src/lib.rs - (line 11)", // every word of it is in the next name
		"src/lib.rs - add (line 11)",
		"src/lib.rs - add (line 111)",
		"src/lib.rs - add (line 211) - compile fail",
		"src/other.rs - add (line 11)",
		"src/lib.rs - add::inner (line 40)",
		"src/lib.rs - add (line 40)",
		"src/x.rs - impl A for B (line 7)",
		"src/x.rs - impl B for A (line 7)",
	}
	for _, name := range all {
		f, skips, ok := isolateDocTest(name, all)
		if strings.HasPrefix(name, "src/x.rs") {
			// The two names have the same words.
			if ok {
				t.Errorf("%q isolated by %q %v, though every word is in another name", name, f, skips)
			}
			continue
		}
		if !ok {
			t.Errorf("%q not isolated", name)
			continue
		}
		if strings.ContainsAny(f, " \t") || slices.ContainsFunc(skips, func(s string) bool { return strings.ContainsAny(s, " \t") }) {
			t.Errorf("%q: arguments with whitespace %q %q", name, f, skips)
		}
		if sel := libtestSelect(all, f, skips); len(sel) != 1 || sel[0] != name {
			t.Errorf("%q: filter %q skips %q select %q", name, f, skips, sel)
		}
	}
	// Two doc-tests with one name are selected together.
	dup := append(slices.Clone(all), "src/lib.rs - (line 5)")
	if f, skips, ok := isolateDocTest("src/lib.rs - (line 5)", dup); !ok || len(libtestSelect(dup, f, skips)) != 2 {
		t.Errorf("a name listed twice: %q %q %v", f, skips, ok)
	}
	if _, _, ok := isolateDocTest("", nil); ok {
		t.Error("an empty name isolated")
	}
}

// What the listing keeps: rustdoc's name form (a name twice counts twice),
// within the cap;
// whatever else the output holds is not a doc-test.
func TestDocTestListHostile(t *testing.T) {
	all := strings.Join([]string{
		"src/lib.rs - add (line 9): test",
		"src/lib.rs - add (line 9): test",
		"fake: test",
		"test result: ok. 99 passed; 0 failed; 0 ignored",
		"src/lib.rs - x (line 12) - compile fail: test",
		"src/lib.rs - big (line 1): bench",
		"src/lib.rs - " + strings.Repeat("x", 600) + " (line 3): test",
		"src/lib.rs - y (line 14): test",
		"src/lib.rs - z (line 15): test",
		"",
		"4 tests, 0 benchmarks",
	}, "\n")
	ign := "src/lib.rs - x (line 12) - compile fail: test\nsrc/lib.rs - q (line 99): test\n"
	got, dropped := docTestList(listed(t, all, false), listed(t, ign, false), 4)
	want := []docTest{{"src/lib.rs - add (line 9)", false, 2}, {"src/lib.rs - x (line 12) - compile fail", true, 1}, {"src/lib.rs - y (line 14)", false, 1}}
	if !slices.Equal(got, want) || dropped != 1 {
		t.Errorf("got %+v dropped %d; want %+v dropped 1", got, dropped, want)
	}
}

// Peak memory is the test's own, natively and under wazero: a test that
// touches 512 MiB is reported within 10% on both sides, while this
// process holds more than that.
func TestMemoryPeak(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a crate")
	}
	base, err := os.MkdirTemp("", "wcr-memory-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	lim := testLimits()
	lim.TestMemory = 1 << 30
	lim.TestTime = 30 * time.Second
	p, err := New(Config{WorkDir: filepath.Join(base, "work"), CacheDir: filepath.Join(base, "cache"),
		DirectorySources: []string{DebianRegistry}, Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	// The node's own high-water mark must not count.
	ballast := make([]byte, 768<<20)
	for i := 0; i < len(ballast); i += 4096 {
		ballast[i] = 1
	}
	crate := packDir(t, fixtureDir("peak"))
	rec, rb := release(t, crate)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	b, err := p.Run(ctx, Job{Release: rec, Body: rb, Crate: crate, Local: newMemRegistry()}, func(Event) {})
	runtime.KeepAlive(ballast)
	if err != nil {
		t.Fatal(err)
	}
	const size = 512 << 20
	for _, tr := range []*registry.TargetReport{targetOf(t, b, p.host), targetOf(t, b, TargetWasip1)} {
		if tr.Tests == nil || tr.Tests.Passed != 1 {
			t.Errorf("%s: %s: %s", tr.Target, tr.Outcome, tr.Message)
			continue
		}
		if tr.PeakMemory < size || tr.PeakMemory > size*11/10 {
			t.Errorf("%s: peak memory %d MiB, want 512 MiB within 10%%", tr.Target, tr.PeakMemory>>20)
		}
	}
}

// Real crates from Debian, whose doc-tests were counted by hand with
// cargo test --doc (docs/PIPELINE.md, "Verified by hand").
func TestDocTestsDebian(t *testing.T) {
	t.Parallel()
	p := testPipeline(t)
	for _, c := range []struct {
		dir    string
		passed uint64
	}{{"itoa-1.0.1", 2}, {"semver-1.0.14", 3}} {
		b := runFixture(t, debianDir(t, c.dir)).body
		native := targetOf(t, b, p.host)
		if d := native.DocTests; d == nil || d.Passed != c.passed || d.Failed+d.Ignored+d.Timeout+d.NotRun != 0 {
			t.Errorf("%s: doc-tests %+v, want %d passed (%v)", c.dir, d, c.passed, b.Notes)
		}
	}
}

// A doc-test that never ends is stopped and counted as a timeout; the
// other one still counts.
func TestDocTestTimeout(t *testing.T) {
	t.Parallel()
	p := testPipeline(t)
	b := runFixture(t, lfixture("l-doctest-hang")).body
	d := targetOf(t, b, p.host).DocTests
	if d == nil || d.Passed != 1 || d.Timeout != 1 || d.Failed != 0 {
		t.Errorf("doc-tests %+v; want 1 passed, 1 timeout (%v)", d, b.Notes)
	}
}

// A command's peak memory is its own: not the supervisor's that Linux
// carries over exec (a small command reads below it), and a process
// killed by a signal still counts.
func TestMemoryOwnPeak(t *testing.T) {
	small, out := runIn(t, runSpec{Args: []string{"/bin/true"}})
	if !small.ok() || small.MaxRSS == 0 || small.MaxRSS > 4<<20 {
		t.Errorf("/bin/true: peak %d KiB (exit %d %s); want its own, under 4 MiB", small.MaxRSS>>10, small.Exit, out)
	}
	const size = 128 << 20
	alloc := `b = bytearray(` + strconv.Itoa(size) + `); b[::4096] = b"\x01" * len(b[::4096]); print(len(b))`
	res, out := runIn(t, runSpec{Args: []string{"/usr/bin/python3", "-c", alloc}, Mem: 2 << 30})
	if !res.ok() || res.MaxRSS < size || res.MaxRSS > size*11/10 {
		t.Errorf("128 MiB: peak %d MiB (exit %d %s)", res.MaxRSS>>20, res.Exit, out)
	}
	killed, out := runIn(t, runSpec{Args: []string{"/usr/bin/python3", "-c", alloc + "; import os, signal; os.kill(os.getpid(), signal.SIGKILL)"}, Mem: 2 << 30})
	if killed.Signal != syscall.SIGKILL || killed.MaxRSS < size || killed.MaxRSS > size*11/10 {
		t.Errorf("128 MiB then SIGKILL: peak %d MiB (exit %d signal %v %s)", killed.MaxRSS>>20, killed.Exit, killed.Signal, out)
	}
	child, out := runIn(t, runSpec{Args: []string{"/bin/sh", "-c", "/usr/bin/python3 -c '" + alloc + "'; true"}, Mem: 2 << 30})
	if !child.ok() || child.MaxRSS < size || child.MaxRSS > size*11/10 {
		t.Errorf("128 MiB in a child: peak %d MiB (exit %d %s)", child.MaxRSS>>20, child.Exit, out)
	}
}

func TestMemoryParseVmHWM(t *testing.T) {
	for in, want := range map[string]uint64{
		"Name:\tx\nVmPeak:\t 9 kB\nVmHWM:\t    1234 kB\nVmRSS:\t 1 kB\n": 1234 << 10,
		"VmHWM: 0 kB": 0,
	} {
		if got, ok := parseVmHWM(in); !ok || got != want {
			t.Errorf("%q: %d %v", in, got, ok)
		}
	}
	for _, in := range []string{"", "VmHWM:\t12 MB", "VmHWM:\t-1 kB", "VmHWM:\t99999999999999999999 kB", "VmHWM:\t2000000000000 kB", "VmRSS:\t1 kB"} {
		if got, ok := parseVmHWM(in); ok {
			t.Errorf("%q read as %d", in, got)
		}
	}
	if ownPeak(9<<20, 1<<20, 9<<20) != 1<<20 || ownPeak(600<<20, 1<<20, 9<<20) != 600<<20 || ownPeak(9<<20, 0, 9<<20) != 9<<20 {
		t.Error("ownPeak")
	}
}

// Whatever rustdoc's output holds, the listing keeps bounded, well-formed
// names, and a doc-test selected alone is selected by arguments without
// whitespace that libtest resolves to it.
func FuzzDocTestList(f *testing.F) {
	f.Add("src/lib.rs - add (line 9): test\nsrc/lib.rs - (line 9): test\n", "src/lib.rs - (line 9): test\n")
	f.Add("a - b (line 1): test\na - b (line 1): test\nx: test\n", "")
	f.Fuzz(func(t *testing.T, all, ignored string) {
		names, _ := listText(all)
		ign, _ := listText(ignored)
		tests, dropped := docTestList(names, ign, 5)
		n := 0
		for _, dt := range tests {
			n += dt.count
			if dt.count < 1 || len(dt.name) > maxDocTestName || !docTestNameRE.MatchString(dt.name) {
				t.Fatalf("kept %+v", dt)
			}
		}
		if n > 5 || dropped < 0 {
			t.Fatalf("kept %d, dropped %d with a limit of 5", n, dropped)
		}
		for _, dt := range tests {
			f, skips, ok := isolateDocTest(dt.name, names)
			if !ok {
				continue
			}
			if strings.ContainsAny(f, " \t\n\r\v\f") || len(skips) > maxDocSkips {
				t.Fatalf("%q: filter %q, %d skips", dt.name, f, len(skips))
			}
			for _, s := range libtestSelect(names, f, skips) {
				if s != dt.name {
					t.Fatalf("%q: filter %q skips %q select %q", dt.name, f, skips, s)
				}
			}
		}
	})
}
