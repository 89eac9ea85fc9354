package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// findChromium returns the browser the dashboard tests drive: WCR_CHROMIUM,
// or Debian's chromium, or a Chrome on PATH.
func findChromium() string {
	if p := os.Getenv("WCR_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// artifactDir is where the dashboard tests leave their screenshots:
// WCR_ARTIFACTS, or bin/test-artifacts/dashboard under the repository.
func artifactDir(t *testing.T) string {
	dir := os.Getenv("WCR_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(repoRoot(t), "bin", "test-artifacts")
	}
	dir = filepath.Join(dir, "dashboard")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser is a headless Chromium whose console errors, uncaught exceptions
// and logged failures (a resource that did not load, a blocked inline
// script) are collected.
type browser struct {
	ctx    context.Context
	errors chan string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	path := findChromium()
	if path == "" {
		t.Skip("capability browser: no Chromium to drive the dashboard tests (install Debian's chromium, or set WCR_CHROMIUM)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // Chromium refuses its own sandbox as root
		chromedp.WindowSize(1280, 1000),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelB(); cancelA() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("starting %s: %v", path, err)
	}
	b := &browser{ctx: ctx, errors: make(chan string, 256)}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException {
				select {
				case b.errors <- fmt.Sprintf("%s %s", m, m.URL):
				default:
				}
			}
		}
	}()
	return b
}

// visit loads url, runs the steps, saves a full-page screenshot as
// name.png and fails the test on any error the page logged.
func (b *browser) visit(t *testing.T, url, name string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	all := append([]chromedp.Action[chromedp.Void]{chromedp.Navigate(url), chromedp.WaitReady(chromedp.CSS(":root"))}, steps...)
	if err := chromedp.Do(ctx, all...); err != nil {
		t.Fatalf("%s (%s): %v", name, url, err)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot of %s: %v", url, err)
	}
	p := filepath.Join(artifactDir(t), name+".png")
	if err := os.WriteFile(p, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of %s: %s", url, p)
	// Console messages arrive asynchronously: give them a moment.
	time.Sleep(200 * time.Millisecond)
	for {
		select {
		case e := <-b.errors:
			t.Errorf("%s (%s) logged an error: %s", name, url, e)
		default:
			return
		}
	}
}

// eval evaluates a JavaScript expression in the current page.
func eval[T any](t *testing.T, b *browser, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// count is the number of elements a CSS selector matches in the current page.
func count(t *testing.T, b *browser, sel string) int {
	t.Helper()
	return eval[int](t, b, fmt.Sprintf("document.querySelectorAll(%q).length", sel))
}

// TestDashboardInChromium drives the real daemon's dashboard in headless
// Chromium: every page renders without an error in the console, the charts
// carry one mark per measured value, the filters work, and the README badge
// renders at the size its SVG declares.
func TestDashboardInChromium(t *testing.T) {
	br := newBrowser(t)
	d := startDaemon(t, t.TempDir())
	tester, _ := registry.GenerateKey(nil)
	d.mustCLI(t, "config", "set", "trust.keys", tester.Public().PeerID())

	// Three versions: 1.0.0 tested (score 40), 1.1.0 untested, 1.2.0
	// tested (score 90) with five timed tests, two benchmarks, two wasm
	// modules and two targets with a peak memory.
	scores := map[string]uint64{"1.0.0": 40, "1.2.0": 90}
	for _, v := range []string{"1.0.0", "1.1.0", "1.2.0"} {
		f := filepath.Join(t.TempDir(), "c.crate")
		if err := os.WriteFile(f, makeCrate(t, "dashcrate", v, "pub fn f() {}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		var sub struct {
			Release struct {
				ID string `json:"id"`
			} `json:"release"`
		}
		d.cliJSON(t, &sub, "submit", "--crate", f)
		score, tested := scores[v]
		if !tested {
			continue
		}
		body := &registry.ReportBody{
			Release: mustID(t, sub.Release.ID).Bytes(), Outcome: registry.OutcomeTestPass, Wasm: registry.WasmCompatible,
			Score: score, Gate: registry.GateCurated, Started: 1, Finished: 2,
			Targets: []registry.TargetReport{
				{Target: "x86_64-unknown-linux-gnu", Outcome: registry.OutcomeTestPass, Build: "ok", PeakMemory: 3 << 20, Tests: &registry.TestCounts{Passed: 5}},
				{Target: "wasm32-wasip1", Outcome: registry.OutcomeTestPass, Build: "ok", Runner: "wazero", PeakMemory: 17 << 16, Tests: &registry.TestCounts{Passed: 5},
					Modules: []registry.WasmModule{{Name: "dashcrate.wasm", Size: 180 << 10, Gzip: 60 << 10}, {Name: "tests.wasm", Size: 900 << 10, Gzip: 300 << 10}}},
				{Target: "wasm32-unknown-unknown", Outcome: registry.OutcomeBuildFail, Build: "failed"},
			},
		}
		for i := range 5 {
			body.Tests = append(body.Tests, registry.TestComparison{Name: fmt.Sprintf("tests::case_%d", i), Native: registry.TestPassed, Wasm: registry.TestPassed,
				NativeUS: uint64(1000 * (i + 1)), WasmUS: uint64(2500 * (i + 1)), Ratio: 2500})
		}
		body.Benches = []registry.BenchComparison{{Name: "parse", Iterations: 5, NativeUS: 800, WasmUS: 2000, Ratio: 2500}, {Name: "format", Iterations: 5, NativeUS: 300, WasmUS: 600, Ratio: 2000}}
		rec, err := registry.Sign(tester, registry.KindReport, "dashcrate@"+v, body, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		postRecord(t, d, rec)
	}

	br.visit(t, d.url+"/ui/crates/dashcrate@1.2.0", "crate")
	got := [6]int{count(t, br, "#chart-tests svg .mark"), count(t, br, "#chart-benches svg .mark"), count(t, br, "#chart-sizes svg .mark"),
		count(t, br, "#chart-memory svg .mark"), count(t, br, "#chart-score svg .mark"), count(t, br, "#matrix tr")}
	// 5 tests × 2 sides, 2 benchmarks × 2, 2 modules × (raw, gzip), 2 targets'
	// peak memory, 2 scored versions of 3, a header and 3 versions.
	if want := [6]int{10, 4, 4, 2, 2, 4}; got != want {
		t.Errorf("crate page marks (tests, benches, sizes, memory, score, matrix rows) = %v, want %v", got, want)
	}
	if !eval[bool](t, br, `(() => { const i = document.querySelector("details.badge-embed img"); return !!i && i.complete && i.naturalWidth > 0 })()`) {
		t.Error("the crate page's badge image did not load")
	}
	if n := eval[int](t, br, `document.querySelector("#chart-tests svg").dataset.points | 0`); n != 10 {
		t.Errorf("the test chart declares %d points, want 10", n)
	}

	br.visit(t, d.url+"/ui/crates/dashcrate@1.1.0", "crate-untested")
	if n := count(t, br, "#chart-tests"); n != 0 {
		t.Errorf("an untested version shows %d test charts", n)
	}
	if n := count(t, br, "#chart-score svg .mark"); n != 2 {
		t.Errorf("the score chart on an untested version has %d points, want 2", n)
	}

	// Filters: the form narrows the list as GET /crates does.
	br.visit(t, d.url+"/ui/", "index")
	all := count(t, br, `a[href^="/ui/crates/dashcrate"]`)
	br.visit(t, d.url+"/ui/", "index-filtered",
		chromedp.SetValue(chromedp.CSS(`select[name="wasm"]`), "incompatible"),
		chromedp.Click(chromedp.CSS(`form.filters button`)),
		chromedp.Sleep(300*time.Millisecond),
		chromedp.WaitVisible(chromedp.CSS(`form.filters`)))
	location := eval[string](t, br, "location.href")
	filtered := count(t, br, `a[href^="/ui/crates/dashcrate"]`)
	if all != 3 || filtered != 0 || !strings.Contains(location, "wasm=incompatible") {
		t.Errorf("filter: %d releases before, %d after at %s; want 3, then 0 at ?wasm=incompatible", all, filtered, location)
	}
	br.visit(t, d.url+"/ui/?name=dashcrate&wasm=compatible", "index-by-name")
	if n := count(t, br, `a[href^="/ui/crates/dashcrate"]`); n != 2 {
		t.Errorf("?name=dashcrate&wasm=compatible lists %d releases, want 2 (1.0.0 and 1.2.0)", n)
	}

	br.visit(t, d.url+"/ui/peers", "federation-alone")
	if n := count(t, br, "#peers tr"); n != 2 { // the header and "no peers"
		t.Errorf("federation page of a lone node: %d rows", n)
	}
	// With a peer: its row, and one point in the scores chart.
	var oh struct {
		Addrs []string `json:"addrs"`
	}
	other := startDaemon(t, t.TempDir())
	other.cliJSON(t, &oh, "health")
	d.mustCLI(t, "peers", "add", oh.Addrs[0])
	br.visit(t, d.url+"/ui/peers", "federation")
	if n, marks := count(t, br, "#peers tr"), count(t, br, "#chart-peer-scores svg .mark"); n != 2 || marks != 1 {
		t.Errorf("federation page with one peer: %d rows (want header + 1), %d score marks (want 1)", n, marks)
	}

	br.visit(t, d.url+"/ui/corpus", "corpus")
	if n := count(t, br, "h1"); n == 0 {
		t.Error("the corpus page has no heading")
	}

	// The badge alone: Chromium lays it out at the size its SVG declares.
	br.visit(t, d.url+"/badges/dashcrate.svg", "badge")
	w := eval[float64](t, br, `document.documentElement.getBoundingClientRect().width`)
	h := eval[float64](t, br, `document.documentElement.getBoundingClientRect().height`)
	declared := eval[string](t, br, `document.documentElement.getAttribute("width")`)
	if fmt.Sprint(w) != declared || h != 20 || w < 100 {
		t.Errorf("badge rendered %v×%v, its SVG declares width %s and height 20", w, h, declared)
	}
}
