package registry

import (
	"slices"
	"strings"
)

// Wasm compatibility verdicts, as the list filter "wasm=" names them.
const (
	WasmCompatible   = "compatible"   // builds for wasm and its tests pass under wazero
	WasmPartial      = "partial"      // builds for wasm, but some of the crate's own tests fail or do not compile for wasm
	WasmIncompatible = "incompatible" // does not build for any wasm target, for the crate's own reasons
	// WasmBuilds: builds for a wasm target; its tests were not run here
	// because of the node (ReportBody.Reason says why), so nothing is known
	// against it.
	WasmBuilds = "builds"

	WasmUntested = "untested" // no trusted report yet (never stored in a report)
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
	Wasm     string `cbor:"3,keyasint" json:"wasm"`    // compatible | builds | partial | incompatible
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
	// Reason says, for verdict builds, in one sentence why the wasm tests
	// were not run on this node.
	Reason string `cbor:"31,keyasint,omitempty" json:"wasm_reason,omitempty"`
	// MissingDeps are the packages (names, or name@requirement) this node's
	// sources and its peers' authorized releases could not supply.
	MissingDeps []string `cbor:"32,keyasint,omitempty" json:"missing_deps,omitempty"`
	// Configs are the feature configurations tested: the default one and,
	// when the crate declares a different one for wasm, that one. The
	// summary (fields 2–5) and Targets are those of the configuration
	// named by Config.
	Configs []ConfigReport    `cbor:"33,keyasint,omitempty" json:"configs,omitempty"`
	Benches []BenchComparison `cbor:"34,keyasint,omitempty" json:"benches,omitempty"`
	Config  string            `cbor:"35,keyasint,omitempty" json:"config,omitempty"` // the configuration the verdict is for: "default" or, e.g., "no-default-features features=js"
}

// Bounds of the verdict's explanation fields.
const (
	MaxReasonLen     = 1024
	MaxMissingDeps   = 64
	MaxMissingDepLen = 128
)

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
	OutcomeToolchainAge     = "toolchain-age"     // the same toolchain cannot build the crate natively either: the toolchain's age, not wasm
	OutcomeRustVersion      = "rust-version"      // the crate's declared rust-version is above the toolchain
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
	Retimed  uint64 `cbor:"6,keyasint,omitempty" json:"retimed,omitempty"`     // timed tests whose wasm time comes from a run without interruption checks
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
	Wasm    string `cbor:"7,keyasint,omitempty" json:"wasm,omitempty"`   // what the registry's trusted reports say: compatible | builds | partial | incompatible | untested
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

// Sources of a ConfigReport.
const (
	ConfigDefault      = "default"              // cargo's default features
	ConfigFromRegistry = "wasm-crates-registry" // [package.metadata.wasm-crates-registry]
	ConfigFromDocsRS   = "docs.rs"              // [package.metadata.docs.rs], when its targets name a wasm target
)

// OutcomeInvalidConfig is a ConfigReport's outcome when the declared
// configuration names features cargo cannot select (the crate has no such
// feature or dependency): nothing was built with it, and the verdict is the
// default configuration's.
const OutcomeInvalidConfig = "invalid-config"

// ConfigReport is one feature configuration the crate was tested with.
type ConfigReport struct {
	Name     string         `cbor:"1,keyasint" json:"name"`   // as in ReportBody.Config
	Source   string         `cbor:"2,keyasint" json:"source"` // ConfigDefault | ConfigFromRegistry | ConfigFromDocsRS
	Features []string       `cbor:"3,keyasint,omitempty" json:"features,omitempty"`
	Flags    []string       `cbor:"4,keyasint,omitempty" json:"flags,omitempty"` // no-default-features | all-features
	Wasm     string         `cbor:"5,keyasint,omitempty" json:"wasm,omitempty"`  // this configuration's verdict; empty when it is invalid
	Outcome  string         `cbor:"6,keyasint" json:"outcome"`
	Message  string         `cbor:"7,keyasint,omitempty" json:"message,omitempty"`
	Targets  []ConfigTarget `cbor:"8,keyasint,omitempty" json:"targets,omitempty"`
}

// ConfigTarget is one target's result in a ConfigReport.
type ConfigTarget struct {
	Target  string      `cbor:"1,keyasint" json:"target"`
	Outcome string      `cbor:"2,keyasint" json:"outcome"`
	Build   string      `cbor:"3,keyasint,omitempty" json:"build,omitempty"`
	Tests   *TestCounts `cbor:"4,keyasint,omitempty" json:"tests,omitempty"`
}

// BenchComparison is one of the crate's benchmarks run natively and under
// wazero, each side the same number of times, with the same toolchain.
// Times are per iteration, measured by the node (process or instance wall
// time), never taken from what the benchmark prints. Ratio is 0 and Note
// says why when the benchmark could not be compared.
type BenchComparison struct {
	Name       string `cbor:"1,keyasint" json:"name"`
	Iterations uint64 `cbor:"2,keyasint,omitempty" json:"iterations,omitempty"` // timed runs on each side
	NativeUS   uint64 `cbor:"3,keyasint,omitempty" json:"native_us,omitempty"`
	WasmUS     uint64 `cbor:"4,keyasint,omitempty" json:"wasm_us,omitempty"`
	Ratio      uint64 `cbor:"5,keyasint,omitempty" json:"ratio_milli,omitempty"` // WasmUS×1000/NativeUS
	Note       string `cbor:"6,keyasint,omitempty" json:"note,omitempty"`
}

// Bounds of the configuration and benchmark fields of a report.
const (
	MaxReportConfigs  = 4
	MaxConfigFeatures = 32
	MaxReportBenches  = 64
	maxReportName     = 256
	maxReportMessage  = 2048
)

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
	case WasmCompatible, WasmBuilds, WasmPartial, WasmIncompatible:
	default:
		return Errorf(op, EINVALID, "wasm verdict %q is not compatible, builds, partial or incompatible", b.Wasm)
	}
	if b.Wasm == WasmBuilds && b.Reason == "" {
		return Errorf(op, EINVALID, "verdict builds needs wasm_reason: why the tests were not run")
	}
	if len(b.Reason) > MaxReasonLen {
		return Errorf(op, EINVALID, "wasm_reason is %d bytes, above %d", len(b.Reason), MaxReasonLen)
	}
	if len(b.MissingDeps) > MaxMissingDeps {
		return Errorf(op, EINVALID, "missing_deps names %d packages, above %d", len(b.MissingDeps), MaxMissingDeps)
	}
	for _, d := range b.MissingDeps {
		if d == "" || len(d) > MaxMissingDepLen {
			return Errorf(op, EINVALID, "missing_deps entry of %d bytes: want 1 to %d", len(d), MaxMissingDepLen)
		}
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
	return b.validateConfigs()
}

// validateConfigs bounds fields 33–35.
func (b *ReportBody) validateConfigs() error {
	const op = "registry.ReportBody"
	if len(b.Config) > maxReportName {
		return Errorf(op, EINVALID, "config name is %d bytes, more than %d", len(b.Config), maxReportName)
	}
	if len(b.Configs) > MaxReportConfigs {
		return Errorf(op, EINVALID, "%d configurations, more than %d", len(b.Configs), MaxReportConfigs)
	}
	for i, c := range b.Configs {
		if c.Name == "" || len(c.Name) > maxReportName || len(c.Source) > maxReportName || len(c.Outcome) > maxReportName ||
			len(c.Wasm) > maxReportName || len(c.Message) > maxReportMessage {
			return Errorf(op, EINVALID, "configuration %d: a name, source, outcome or message is empty or too long", i)
		}
		if len(c.Features) > MaxConfigFeatures || len(c.Flags) > 4 {
			return Errorf(op, EINVALID, "configuration %q: more than %d features or 4 flags", c.Name, MaxConfigFeatures)
		}
		for _, f := range append(slices.Clone(c.Features), c.Flags...) {
			if f == "" || len(f) > maxReportName {
				return Errorf(op, EINVALID, "configuration %q: a feature or flag is empty or too long", c.Name)
			}
		}
		if len(c.Targets) > 16 {
			return Errorf(op, EINVALID, "configuration %q: more than 16 targets", c.Name)
		}
		for _, t := range c.Targets {
			if t.Target == "" || len(t.Target) > maxReportName || len(t.Outcome) > maxReportName || len(t.Build) > maxReportName {
				return Errorf(op, EINVALID, "configuration %q: a target's name or outcome is empty or too long", c.Name)
			}
		}
	}
	if len(b.Benches) > MaxReportBenches {
		return Errorf(op, EINVALID, "%d benchmarks, more than %d", len(b.Benches), MaxReportBenches)
	}
	for i, c := range b.Benches {
		if c.Name == "" || len(c.Name) > maxReportName || len(c.Note) > maxReportMessage {
			return Errorf(op, EINVALID, "benchmark %d: the name is empty or a text is too long", i)
		}
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

// Figures returns what the gates' performance thresholds read from a
// report (0 when not measured): the wasm/native time ratio ×1000 of the
// timed comparison, the size of the largest wasm module that is not a
// test binary, and the highest peak memory of a wasm target's tests.
func (b *ReportBody) Figures() (timeRatio, wasmSize, peakMemory uint64) {
	if b.Timing != nil {
		timeRatio = b.Timing.Ratio
	}
	for _, t := range b.Targets {
		if t.Extra || !strings.HasPrefix(t.Target, "wasm") {
			continue
		}
		for _, m := range t.Modules {
			if !strings.HasPrefix(m.Name, "test:") {
				wasmSize = max(wasmSize, m.Size)
			}
		}
		peakMemory = max(peakMemory, t.PeakMemory)
	}
	return timeRatio, wasmSize, peakMemory
}
