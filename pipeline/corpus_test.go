package pipeline

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// corpusEnv enables TestDebianCorpus. The corpus runs the whole pipeline on
// two dozen real crates, several minutes of builds and tests, so it is not
// part of the package's default tests: `make corpus` runs it.
const corpusEnv = "WCR_DEBIAN_CORPUS"

// corpusCase is one of Debian's packaged crates with the outcome found by
// hand first (docs/PIPELINE.md, "Verified by hand"): Debian's cargo 1.65
// with rustc 1.63 and the directory source, the libtest binaries run
// natively and, for wasm32-wasi, with the wazero CLI.
type corpusCase struct {
	crate   string // name-version under /usr/share/cargo/registry
	outcome string // the report's outcome
	wasm    string // the report's wasm verdict
	// missing are dependencies the report's missing_deps must name (by
	// name; each may carry a version requirement in the report).
	missing []string
	// native and wasip1 are the passed and failed test counts of the
	// compared host target and of wasm32-wasip1, when the tests ran.
	native, wasip1 *[2]uint64
	// slow is set for a crate with native stress tests that take seconds
	// (once_cell's get_or_init_stress: about 8 s alone on this machine):
	// under the test pipeline's per-test deadline they may time out, so
	// such a test counts as passed natively when it timed out.
	slow bool
	// wasmFails is set for a crate whose library builds for no wasm
	// target; every other crate builds for every target.
	wasmFails bool
}

func counts(passed, failed uint64) *[2]uint64 { return &[2]uint64{passed, failed} }

// debianCorpus are widely used crates the pipeline was not written
// against, each checked by hand before it was run through the pipeline.
var debianCorpus = []corpusCase{
	// Every dependency resolves; the tests pass natively and under wazero
	// (num-traits' five #[should_panic] tests are ignored in wasm).
	{crate: "adler-1.0.2", outcome: registry.OutcomeTestPass, wasm: registry.WasmCompatible, native: counts(6, 0), wasip1: counts(6, 0)},
	{crate: "fnv-1.0.7", outcome: registry.OutcomeTestPass, wasm: registry.WasmCompatible, native: counts(1, 0), wasip1: counts(1, 0)},
	{crate: "heck-0.4.0", outcome: registry.OutcomeTestPass, wasm: registry.WasmCompatible, native: counts(78, 0), wasip1: counts(78, 0)},
	{crate: "num-traits-0.2.15", outcome: registry.OutcomeTestPass, wasm: registry.WasmCompatible, native: counts(60, 0), wasip1: counts(55, 0)},
	{crate: "static_assertions-1.1.0", outcome: registry.OutcomeTestPass, wasm: registry.WasmCompatible, native: counts(0, 0), wasip1: counts(0, 0)},
	{crate: "strsim-0.10.0", outcome: registry.OutcomeTestPass, wasm: registry.WasmCompatible, native: counts(96, 0), wasip1: counts(96, 0)},
	{crate: "miniz_oxide-0.6.2", outcome: registry.OutcomeTestPass, wasm: registry.WasmCompatible, native: counts(22, 0), wasip1: counts(22, 0)},
	{crate: "unicode-width-0.1.10", outcome: registry.OutcomeTestPass, wasm: registry.WasmCompatible, native: counts(5, 0), wasip1: counts(5, 0)},
	// Every dependency resolves (with librust-crossbeam-utils-dev and
	// librust-regex-dev); the tests pass natively, but under wazero those
	// that spawn threads or catch a panic fail: wasm32-wasi has no threads
	// and aborts on panic.
	{crate: "once_cell-1.17.0", outcome: registry.OutcomeTestFail, wasm: registry.WasmPartial, native: counts(61, 0), wasip1: counts(40, 19), slow: true},
	// Debian's getrandom drops the js feature and the wasi dependency
	// (debian/patches/drop-js-wasm.patch, drop-wasi.patch): as packaged it
	// builds for neither wasm target (a compile_error! asking for the js
	// feature; E0433 for the missing wasi crate), though upstream's does
	// for wasm32-wasi. Natively its 1 + 4 tests pass.
	{crate: "getrandom-0.2.8", outcome: registry.OutcomeBuildFail, wasm: registry.WasmIncompatible, native: counts(5, 0), wasmFails: true},
	// The library builds for both wasm targets; dev-dependencies Debian
	// does not package keep the tests from resolving.
	{crate: "arrayvec-0.7.2", outcome: registry.OutcomeBrokenDeps, wasm: registry.WasmBuilds, missing: []string{"bencher", "matches", "serde_test"}},
	{crate: "base64-0.13.0", outcome: registry.OutcomeBrokenDeps, wasm: registry.WasmBuilds, missing: []string{"criterion", "rand", "structopt"}},
	{crate: "bitflags-1.3.2", outcome: registry.OutcomeBrokenDeps, wasm: registry.WasmBuilds, missing: []string{"rustversion", "serde_json", "trybuild", "walkdir"}},
	{crate: "bytes-1.2.1", outcome: registry.OutcomeBrokenDeps, wasm: registry.WasmBuilds, missing: []string{"loom", "serde_test"}},
	{crate: "byteorder-1.4.3", outcome: registry.OutcomeBrokenDeps, wasm: registry.WasmBuilds, missing: []string{"quickcheck", "rand"}},
	{crate: "crc32fast-1.3.2", outcome: registry.OutcomeBrokenDeps, wasm: registry.WasmBuilds, missing: []string{"bencher", "quickcheck", "rand"}},
	{crate: "either-1.6.1", outcome: registry.OutcomeBrokenDeps, wasm: registry.WasmBuilds, missing: []string{"serde_json"}},
	{crate: "half-1.6.0", outcome: registry.OutcomeBrokenDeps, wasm: registry.WasmBuilds, missing: []string{"criterion", "quickcheck", "quickcheck_macros", "rand", "version-sync"}},
	{crate: "hex-0.4.3", outcome: registry.OutcomeBrokenDeps, wasm: registry.WasmBuilds, missing: []string{"criterion", "faster-hex", "pretty_assertions", "rustc-hex", "serde_json", "version-sync"}},
	{crate: "itertools-0.10.3", outcome: registry.OutcomeBrokenDeps, wasm: registry.WasmBuilds, missing: []string{"criterion", "paste", "permutohedron", "quickcheck", "rand"}},
	{crate: "lazy_static-1.4.0", outcome: registry.OutcomeBrokenDeps, wasm: registry.WasmBuilds, missing: []string{"doc-comment"}},
	{crate: "smallvec-1.9.0", outcome: registry.OutcomeBrokenDeps, wasm: registry.WasmBuilds, missing: []string{"bincode"}},
	{crate: "unicode-segmentation-1.9.0", outcome: registry.OutcomeBrokenDeps, wasm: registry.WasmBuilds, missing: []string{"criterion", "quickcheck"}},
}

// TestDebianCorpus runs the pipeline on debianCorpus and compares each
// report with the outcome established by hand. Run it with
// WCR_DEBIAN_CORPUS=1; WCR_DEBIAN_CORPUS=name,… runs only the crates whose
// name-version starts with one of the names.
func TestDebianCorpus(t *testing.T) {
	only := os.Getenv(corpusEnv)
	if only == "" {
		t.Skip("set " + corpusEnv + "=1 to run the pipeline on Debian's crate corpus (several minutes; make corpus)")
	}
	for _, c := range debianCorpus {
		if only != "1" && !slices.ContainsFunc(strings.Split(only, ","), func(s string) bool {
			return s != "" && strings.HasPrefix(c.crate, s)
		}) {
			continue
		}
		t.Run(c.crate, func(t *testing.T) {
			t.Parallel()
			b := runFixture(t, debianDir(t, c.crate)).body
			t.Log(c.crate + ": " + corpusSummary(b))
			if b.Outcome != c.outcome || b.Wasm != c.wasm {
				t.Errorf("outcome %s wasm %s, want %s %s (%s; %s)", b.Outcome, b.Wasm, c.outcome, c.wasm, b.Message, b.Reason)
			}
			// Every crate of the corpus but those marked wasmFails builds
			// for every target this machine has a standard library for,
			// checked by hand for the host and both wasm targets.
			for _, tr := range b.Targets {
				if c.wasmFails && isWasm(tr.Target) {
					if tr.Build != buildFailed || tr.Outcome != registry.OutcomeBuildFail {
						t.Errorf("%s: build %s outcome %s, want a build failure (%s)", tr.Target, tr.Build, tr.Outcome, tr.Message)
					}
					continue
				}
				if tr.Outcome != registry.OutcomeToolchainMissing && tr.Build != buildOK {
					t.Errorf("%s: build %s (%s)", tr.Target, tr.Build, tr.Message)
				}
			}
			if i := strings.LastIndex(c.crate, "-"); c.wasmFails && b.BrokenBy != c.crate[:i]+"@"+c.crate[i+1:] {
				t.Errorf("broken_by %q, want the crate itself", b.BrokenBy)
			}
			for _, m := range c.missing {
				if !slices.ContainsFunc(b.MissingDeps, func(s string) bool { return s == m || strings.HasPrefix(s, m+" ") || strings.HasPrefix(s, m+"@") }) {
					t.Errorf("missing_deps %q does not name %s", b.MissingDeps, m)
				}
			}
			for _, w := range []struct {
				target string
				want   *[2]uint64
			}{{testPipeline(t).host, c.native}, {TargetWasip1, c.wasip1}} {
				tr := targetOf(t, b, w.target)
				switch {
				case w.want == nil && tr.Tests != nil && tr.Tests.Passed+tr.Tests.Failed > 0:
					t.Errorf("%s: tests ran (%+v), expected none", w.target, *tr.Tests)
				case w.want == nil:
				case tr.Tests == nil:
					t.Errorf("%s: no tests ran (%s: %s), want %d passed %d failed", w.target, tr.Outcome, tr.Message, w.want[0], w.want[1])
				case tr.Tests.Passed != w.want[0] || tr.Tests.Failed != w.want[1]:
					if c.slow && w.target != TargetWasip1 && tr.Tests.Passed+tr.Tests.Timeout == w.want[0] && tr.Tests.Failed == w.want[1] {
						t.Logf("%s: %d of the tests that pass by hand passed the test deadline", w.target, tr.Tests.Timeout)
						break
					}
					t.Errorf("%s: %d passed %d failed %d timed out, want %d %d", w.target, tr.Tests.Passed, tr.Tests.Failed, tr.Tests.Timeout, w.want[0], w.want[1])
				}
			}
			if t.Failed() {
				// A disagreement is investigated from the report's own
				// evidence: the failing steps' log excerpts.
				t.Log("logs:\n" + logsText(b))
			}
		})
	}
}

// corpusSummary is one line per target of a report, for the test log.
func corpusSummary(b *registry.ReportBody) string {
	var s strings.Builder
	fmt.Fprintf(&s, "outcome %s wasm %s missing %q\n  message: %s\n  reason: %s\n", b.Outcome, b.Wasm, b.MissingDeps, b.Message, b.Reason)
	for _, tr := range b.Targets {
		fmt.Fprintf(&s, "  %s extra=%v build=%s outcome=%s", tr.Target, tr.Extra, tr.Build, tr.Outcome)
		if tr.Tests != nil {
			fmt.Fprintf(&s, " tests=%+v", *tr.Tests)
		}
		fmt.Fprintf(&s, " msg=%q\n", tr.Message)
	}
	for _, n := range b.Notes {
		fmt.Fprintf(&s, "  note: %s\n", n)
	}
	return s.String()
}
