package registry

// Wasm compatibility verdicts, as the list filter "wasm=" names them.
const (
	WasmCompatible   = "compatible"   // builds for wasm and its tests pass under wazero
	WasmPartial      = "partial"      // builds for wasm, but some tests fail or cannot run
	WasmIncompatible = "incompatible" // does not build for any wasm target
	WasmUntested     = "untested"     // no trusted report yet (never stored in a report)
)

// Quality-gate verdicts.
const (
	GateCurated     = "curated"
	GateNeedsReview = "needs-review"
	GateRejected    = "rejected"
)

// ReportBody is the body of a report record (subject "name@version"): the
// signed result of one pipeline run. Fields 1–15 are the summary every node
// indexes; the pipeline's detail lives in fields 16 and up (never renumber
// or reuse one; add new ones at the end).
type ReportBody struct {
	Release  []byte `cbor:"1,keyasint" json:"release"` // ID of the release record that was tested
	Outcome  string `cbor:"2,keyasint" json:"outcome"` // crater-style overall outcome
	Wasm     string `cbor:"3,keyasint" json:"wasm"`    // compatible | partial | incompatible
	GCReady  bool   `cbor:"4,keyasint,omitempty" json:"gc_ready"`
	Dual     bool   `cbor:"5,keyasint,omitempty" json:"dual"` // works natively and in wasm
	Score    uint64 `cbor:"6,keyasint" json:"score"`          // 0–100
	Gate     string `cbor:"7,keyasint" json:"gate"`           // curated | needs-review | rejected
	Started  int64  `cbor:"8,keyasint" json:"started"`        // Unix ms
	Finished int64  `cbor:"9,keyasint" json:"finished"`       // Unix ms

	// Detail (fields 16 and up). All optional; a report without them is a
	// summary-only report. Times are microseconds, sizes bytes, ratios ×1000.
	Pipeline   string            `cbor:"16,keyasint,omitempty" json:"pipeline,omitempty"` // pipeline scheme, e.g. "wcr-pipeline/1"
	Message    string            `cbor:"17,keyasint,omitempty" json:"message,omitempty"`  // one sentence: why this outcome
	Targets    []TargetReport    `cbor:"18,keyasint,omitempty" json:"targets,omitempty"`
	Tests      []TestComparison  `cbor:"19,keyasint,omitempty" json:"tests,omitempty"`
	Timing     *TimingSummary    `cbor:"20,keyasint,omitempty" json:"timing,omitempty"`
	GCChecks   []GCCheck         `cbor:"21,keyasint,omitempty" json:"gc_checks,omitempty"`
	Deps       []DepReport       `cbor:"22,keyasint,omitempty" json:"deps,omitempty"`
	BrokenBy   string            `cbor:"23,keyasint,omitempty" json:"broken_by,omitempty"` // name@version of the first package that breaks the wasm build
	Breakdown  []ScorePart       `cbor:"24,keyasint,omitempty" json:"score_breakdown,omitempty"`
	Toolchains []ToolchainReport `cbor:"25,keyasint,omitempty" json:"toolchains,omitempty"`
	Wazero     string            `cbor:"26,keyasint,omitempty" json:"wazero,omitempty"` // wazero version that ran the wasm tests
	Logs       []LogExcerpt      `cbor:"27,keyasint,omitempty" json:"logs,omitempty"`
	Stages     []StageTime       `cbor:"28,keyasint,omitempty" json:"stages,omitempty"`
	Omitted    *Omitted          `cbor:"29,keyasint,omitempty" json:"omitted,omitempty"`
	Notes      []string          `cbor:"30,keyasint,omitempty" json:"notes,omitempty"`
}

// Crater-style outcomes, for a whole report (field 2) and for each target.
// The string is signed: never rename one.
const (
	OutcomeTestPass         = "test-pass"         // built, and every test that ran passed
	OutcomeTestFail         = "test-fail"         // built, and at least one test failed
	OutcomeTestSkipped      = "test-skipped"      // built; tests were not run for this target
	OutcomeBuildFail        = "build-fail"        // the crate or a dependency does not compile
	OutcomeTimeout          = "timeout"           // a build step or a test passed its deadline
	OutcomeOOM              = "oom"               // a build step or a test ran out of its memory limit
	OutcomeSandboxViolation = "sandbox-violation" // failed doing what the sandbox forbids (network, writes outside the work dir, limits)
	OutcomeToolchainMissing = "toolchain-missing" // this node has no toolchain able to build the target for this crate
	OutcomeBrokenDeps       = "broken-deps"       // dependencies could not be resolved from the configured sources
	OutcomeError            = "error"             // the pipeline itself failed; never the crate's fault
)

// Per-test states in a TestComparison.
const (
	TestPassed  = "passed"
	TestFailed  = "failed"
	TestIgnored = "ignored"
	TestTimeout = "timeout"
	TestOOM     = "oom"
	TestNotRun  = "not-run" // listed but not run (the target's tests did not build, or a cap was reached)
)

// TargetReport is what one compilation target did.
type TargetReport struct {
	Target      string       `cbor:"1,keyasint" json:"target"`                        // canonical name: x86_64-unknown-linux-gnu, wasm32-unknown-unknown, wasm32-wasip1, …
	Triple      string       `cbor:"2,keyasint,omitempty" json:"triple,omitempty"`    // the name the toolchain used, when different (wasm32-wasi)
	Toolchain   string       `cbor:"3,keyasint,omitempty" json:"toolchain,omitempty"` // ToolchainReport.ID that built it
	Outcome     string       `cbor:"4,keyasint" json:"outcome"`
	Message     string       `cbor:"5,keyasint,omitempty" json:"message,omitempty"`
	Build       string       `cbor:"6,keyasint,omitempty" json:"build,omitempty"` // ok | failed | timeout | oom | sandbox-violation | broken-deps | toolchain-missing | skipped
	BuildUS     uint64       `cbor:"7,keyasint,omitempty" json:"build_us,omitempty"`
	TestBuildUS uint64       `cbor:"8,keyasint,omitempty" json:"test_build_us,omitempty"`
	Tests       *TestCounts  `cbor:"9,keyasint,omitempty" json:"tests,omitempty"`
	TestUS      uint64       `cbor:"10,keyasint,omitempty" json:"test_us,omitempty"`     // sum of per-test times
	PeakMemory  uint64       `cbor:"11,keyasint,omitempty" json:"peak_memory,omitempty"` // wasm: peak linear memory; native: peak RSS (bytes)
	Artifacts   []Artifact   `cbor:"12,keyasint,omitempty" json:"artifacts,omitempty"`
	Modules     []WasmModule `cbor:"13,keyasint,omitempty" json:"modules,omitempty"`
	Install     string       `cbor:"14,keyasint,omitempty" json:"install,omitempty"`  // for toolchain-missing: how to install what is missing
	Runner      string       `cbor:"15,keyasint,omitempty" json:"runner,omitempty"`   // native | wazero
	Refusals    []Refusal    `cbor:"16,keyasint,omitempty" json:"refusals,omitempty"` // what the sandbox refused or saw attempted while building and testing this target

	// DocTests counts the library's documentation tests, run natively
	// only, apart from Tests.
	DocTests *TestCounts `cbor:"17,keyasint,omitempty" json:"doc_tests,omitempty"`
	// Extra marks a result shown as information only (the newest native
	// toolchain's run, when it is not the toolchain the wasm targets use):
	// it never enters a verdict, an outcome, a comparison or the score.
	Extra bool `cbor:"18,keyasint,omitempty" json:"extra,omitempty"`
}

// Refusal is one kind of action the sandbox refused (or saw attempted and
// let the kernel refuse) while a target was built and tested: Action is
// "syscall" (Detail: the system call), "network-attempt" (Detail: the
// address and port), "write-outside" (Detail: the path), "supervisor-lost"
// (a command killed the sandbox's supervisor, so its actions are unknown)
// or "more" (Count further refusals were not kept). Lists are bounded.
type Refusal struct {
	Action string `cbor:"1,keyasint" json:"action"`
	Detail string `cbor:"2,keyasint,omitempty" json:"detail,omitempty"`
	Count  uint64 `cbor:"3,keyasint,omitempty" json:"count,omitempty"`
}

// TestCounts counts one target's tests. Failed excludes timeouts and OOMs.
type TestCounts struct {
	Passed   uint64 `cbor:"1,keyasint" json:"passed"`
	Failed   uint64 `cbor:"2,keyasint" json:"failed"`
	Ignored  uint64 `cbor:"3,keyasint" json:"ignored"`
	Timeout  uint64 `cbor:"4,keyasint,omitempty" json:"timeout,omitempty"`
	OOM      uint64 `cbor:"5,keyasint,omitempty" json:"oom,omitempty"`
	NotRun   uint64 `cbor:"6,keyasint,omitempty" json:"not_run,omitempty"`
	Binaries uint64 `cbor:"7,keyasint,omitempty" json:"binaries,omitempty"` // test binaries found
}

// TestComparison is one test natively and under wazero. Name is
// "<test binary>::<libtest name>".
type TestComparison struct {
	Name     string `cbor:"1,keyasint" json:"name"`
	Native   string `cbor:"2,keyasint,omitempty" json:"native,omitempty"`
	Wasm     string `cbor:"3,keyasint,omitempty" json:"wasm,omitempty"`
	NativeUS uint64 `cbor:"4,keyasint,omitempty" json:"native_us,omitempty"`
	WasmUS   uint64 `cbor:"5,keyasint,omitempty" json:"wasm_us,omitempty"`
	Ratio    uint64 `cbor:"6,keyasint,omitempty" json:"ratio_milli,omitempty"` // WasmUS×1000/NativeUS, when both passed
	Note     string `cbor:"7,keyasint,omitempty" json:"note,omitempty"`
}

// TimingSummary compares the tests that passed on both sides. Times and
// the ratio cover only the timed tests: those whose net time on both sides
// reached MinTimedUS, since shorter ones are below the noise of starting a
// test process or instance.
type TimingSummary struct {
	Compared uint64 `cbor:"1,keyasint" json:"compared"` // tests that passed natively and under wazero
	NativeUS uint64 `cbor:"2,keyasint" json:"native_us"`
	WasmUS   uint64 `cbor:"3,keyasint" json:"wasm_us"`
	Ratio    uint64 `cbor:"4,keyasint,omitempty" json:"ratio_milli,omitempty"` // WasmUS×1000/NativeUS
	Timed    uint64 `cbor:"5,keyasint,omitempty" json:"timed,omitempty"`       // compared tests long enough to time
}

// MinTimedUS is the shortest net test time, on both sides, that enters the
// native/wasm speed comparison.
const MinTimedUS = 2000

// Artifact is one file a build produced.
type Artifact struct {
	Name string `cbor:"1,keyasint" json:"name"`
	Kind string `cbor:"2,keyasint,omitempty" json:"kind,omitempty"` // rlib, bin, cdylib, test, …
	Size uint64 `cbor:"3,keyasint" json:"size"`
	Gzip uint64 `cbor:"4,keyasint,omitempty" json:"gzip,omitempty"`
}

// WasmModule is the static analysis of one wasm module.
type WasmModule struct {
	Name           string         `cbor:"1,keyasint" json:"name"`
	Size           uint64         `cbor:"2,keyasint" json:"size"`
	Gzip           uint64         `cbor:"3,keyasint,omitempty" json:"gzip,omitempty"`
	Imports        []ImportModule `cbor:"4,keyasint,omitempty" json:"imports,omitempty"`
	Exports        []string       `cbor:"5,keyasint,omitempty" json:"exports,omitempty"` // "kind name", e.g. "func add"
	MemMin         uint64         `cbor:"6,keyasint,omitempty" json:"mem_min_pages,omitempty"`
	MemMax         uint64         `cbor:"7,keyasint,omitempty" json:"mem_max_pages,omitempty"` // 0: no maximum
	MemShared      bool           `cbor:"8,keyasint,omitempty" json:"mem_shared,omitempty"`
	MemImported    bool           `cbor:"9,keyasint,omitempty" json:"mem_imported,omitempty"`
	Features       []string       `cbor:"10,keyasint,omitempty" json:"target_features,omitempty"` // the target_features section, e.g. "+mutable-globals"
	RefTypes       bool           `cbor:"11,keyasint,omitempty" json:"ref_types,omitempty"`       // externref/funcref in an import or export signature
	ExportsOmitted uint64         `cbor:"12,keyasint,omitempty" json:"exports_omitted,omitempty"`
}

// ImportModule lists what a module imports from one module name.
type ImportModule struct {
	Module  string   `cbor:"1,keyasint" json:"module"`
	Names   []string `cbor:"2,keyasint,omitempty" json:"names,omitempty"`
	Omitted uint64   `cbor:"3,keyasint,omitempty" json:"omitted,omitempty"`
}

// GCCheck is one Wasm-GC readiness check.
type GCCheck struct {
	Name   string `cbor:"1,keyasint" json:"name"`
	Pass   bool   `cbor:"2,keyasint,omitempty" json:"pass"`
	Reason string `cbor:"3,keyasint" json:"reason"`
}

// DepReport is one package in the resolved dependency tree for the wasm
// target, in breadth-first order from the tested crate (depth 0 is the crate
// itself).
type DepReport struct {
	Name    string `cbor:"1,keyasint" json:"name"`
	Version string `cbor:"2,keyasint" json:"version"`
	Depth   uint64 `cbor:"3,keyasint,omitempty" json:"depth,omitempty"`
	Kind    string `cbor:"4,keyasint,omitempty" json:"kind,omitempty"`   // normal | build | dev, as first reached
	Source  string `cbor:"5,keyasint,omitempty" json:"source,omitempty"` // registry | directory | crates-io | the crate itself: ""
	Held    bool   `cbor:"6,keyasint,omitempty" json:"held,omitempty"`   // this registry holds the release
	Wasm    string `cbor:"7,keyasint,omitempty" json:"wasm,omitempty"`   // what the registry's trusted reports say: compatible | partial | incompatible | untested
	Breaks  bool   `cbor:"8,keyasint,omitempty" json:"breaks,omitempty"` // its compilation failed in the wasm build
	Parent  string `cbor:"9,keyasint,omitempty" json:"parent,omitempty"` // name@version that first pulled it in
}

// ScorePart is one line of the score's breakdown.
type ScorePart struct {
	Name   string `cbor:"1,keyasint" json:"name"`
	Points uint64 `cbor:"2,keyasint" json:"points"`
	Max    uint64 `cbor:"3,keyasint" json:"max"`
	Reason string `cbor:"4,keyasint,omitempty" json:"reason,omitempty"`
}

// ToolchainReport names a toolchain that took part in the run.
type ToolchainReport struct {
	ID      string   `cbor:"1,keyasint" json:"id"`
	Rustc   string   `cbor:"2,keyasint" json:"rustc"` // rustc -V
	Cargo   string   `cbor:"3,keyasint,omitempty" json:"cargo,omitempty"`
	Targets []string `cbor:"4,keyasint,omitempty" json:"targets,omitempty"` // the targets it built in this run
}

// LogExcerpt is part of a failing step's output.
type LogExcerpt struct {
	Step      string `cbor:"1,keyasint" json:"step"`
	Target    string `cbor:"2,keyasint,omitempty" json:"target,omitempty"`
	Text      string `cbor:"3,keyasint" json:"text"`
	Truncated bool   `cbor:"4,keyasint,omitempty" json:"truncated,omitempty"`
}

// StageTime is the wall time of one pipeline stage.
type StageTime struct {
	Stage  string `cbor:"1,keyasint" json:"stage"`
	Target string `cbor:"2,keyasint,omitempty" json:"target,omitempty"`
	US     uint64 `cbor:"3,keyasint" json:"us"`
}

// Omitted counts what was left out of the report to keep it within
// MaxRecordSize.
type Omitted struct {
	Tests uint64 `cbor:"1,keyasint,omitempty" json:"tests,omitempty"`
	Deps  uint64 `cbor:"2,keyasint,omitempty" json:"deps,omitempty"`
	Logs  uint64 `cbor:"3,keyasint,omitempty" json:"logs,omitempty"`
}

// ReleaseID returns the ID of the tested release record.
func (b *ReportBody) ReleaseID() ID {
	id, _ := IDFromBytes(b.Release)
	return id
}

func (b *ReportBody) validate(subject string) error {
	const op = "registry.ReportBody"
	if _, _, err := ParseReleaseSubject(subject); err != nil {
		return err
	}
	if _, err := IDFromBytes(b.Release); err != nil {
		return E(op, EINVALID, "release", err)
	}
	switch b.Wasm {
	case WasmCompatible, WasmPartial, WasmIncompatible:
	default:
		return Errorf(op, EINVALID, "wasm verdict %q is not compatible, partial or incompatible", b.Wasm)
	}
	switch b.Gate {
	case GateCurated, GateNeedsReview, GateRejected:
	default:
		return Errorf(op, EINVALID, "gate %q is not curated, needs-review or rejected", b.Gate)
	}
	if b.Score > 100 {
		return Errorf(op, EINVALID, "score %d is above 100", b.Score)
	}
	if b.Outcome == "" {
		return Errorf(op, EINVALID, "a report needs an outcome")
	}
	if err := validateDocTests(b.Targets); err != nil {
		return err
	}
	return nil
}

// MaxDocTests bounds a target's documentation-test counts in a report.
const MaxDocTests = 1 << 16

func validateDocTests(ts []TargetReport) error {
	for _, t := range ts {
		d := t.DocTests
		if d == nil {
			continue
		}
		var sum uint64
		for _, n := range []uint64{d.Passed, d.Failed, d.Ignored, d.Timeout, d.OOM, d.NotRun} {
			if n > MaxDocTests {
				return Errorf("registry.ReportBody", EINVALID, "target %.64q counts %d documentation tests; at most %d", t.Target, n, MaxDocTests)
			}
			sum += n
		}
		if sum > MaxDocTests {
			return Errorf("registry.ReportBody", EINVALID, "target %.64q counts %d documentation tests; at most %d", t.Target, sum, MaxDocTests)
		}
	}
	return nil
}
