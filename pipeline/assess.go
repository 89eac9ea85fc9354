package pipeline

import (
	registry "github.com/wasmrust/wasm-crates-registry"
)

// assessFacts is everything the report's judgement depends on, as plain
// data: what each planned target gave, the dependency tree collected for
// the wasm target and the node's quality gates. It is built from a run's
// targetStates by jobRun.facts, and read from testdata/assemble/*.json by
// the golden tests; its JSON field names are that format.
type assessFacts struct {
	Native      *targetFacts `json:"native,omitempty"`       // the host target, nil when not planned
	WasmUnknown *targetFacts `json:"wasm_unknown,omitempty"` // wasm32-unknown-unknown, nil when not planned
	Wasip1      *targetFacts `json:"wasip1,omitempty"`       // wasm32-wasip1, nil when not planned
	// Wasip1Resolution is how wasm32-wasip1's toolchain resolved the
	// crate's dependencies, nil when it did not take part.
	Wasip1Resolution *resolutionFacts `json:"wasip1_resolution,omitempty"`
	// Deps is the dependency tree for the wasm target (depTree's order);
	// assess marks the package that breaks a wasm build in it, in place.
	Deps       []registry.DepReport `json:"deps,omitempty"`
	DepsBroken bool                 `json:"deps_broken,omitempty"` // the dependencies did not resolve for the wasm target
	Gates      registry.Gates       `json:"gates"`
}

// targetFacts is what one target's run gave.
type targetFacts struct {
	Report  *registry.TargetReport `json:"report"`
	Bins    []*binaryRun           `json:"bins,omitempty"`
	Modules []*wasmStat            `json:"modules,omitempty"`
	// FirstError is the package ID of the first package that failed the
	// target's build ("" when none or when nothing was built).
	FirstError string `json:"first_error,omitempty"`
	// HostFails: a control build showed the toolchain fails the crate's
	// tests for the host too.
	HostFails bool `json:"host_fails,omitempty"`
	// Rustc is the version of the target's rustc.
	Rustc string `json:"rustc,omitempty"`
}

// resolutionFacts is the part of a resolution the verdict reads.
type resolutionFacts struct {
	DevStripped bool   `json:"dev_stripped,omitempty"`
	Why         string `json:"why,omitempty"`
}

// assessment is the report's judgement: the fields of the report body
// that assess decides.
type assessment struct {
	BrokenBy  string                    `json:"broken_by,omitempty"`
	Deps      []registry.DepReport      `json:"deps,omitempty"`
	Tests     []registry.TestComparison `json:"tests,omitempty"`
	Timing    *registry.TimingSummary   `json:"timing,omitempty"`
	GCChecks  []registry.GCCheck        `json:"gc_checks,omitempty"`
	GCReady   bool                      `json:"gc_ready"`
	Wasm      string                    `json:"wasm"`
	Reason    string                    `json:"reason,omitempty"`
	Outcome   string                    `json:"outcome"`
	Message   string                    `json:"message"`
	Dual      bool                      `json:"dual"`
	Score     uint64                    `json:"score"`
	Breakdown []registry.ScorePart      `json:"breakdown,omitempty"`
	Gate      string                    `json:"gate"`
}

// apply writes a into the report body.
func (a *assessment) apply(b *registry.ReportBody) {
	b.BrokenBy = a.BrokenBy
	b.Tests, b.Timing = a.Tests, a.Timing
	b.GCChecks, b.GCReady = a.GCChecks, a.GCReady
	b.Wasm, b.Reason = a.Wasm, a.Reason
	b.Outcome, b.Message = a.Outcome, a.Message
	b.Dual = a.Dual
	b.Score, b.Breakdown = a.Score, a.Breakdown
	b.Gate = a.Gate
	b.Deps = a.Deps
}

// state is the targetState the verdict and scoring rules read, holding
// only t's facts; nil for nil.
func (t *targetFacts) state() *targetState {
	if t == nil {
		return nil
	}
	ts := &targetState{rep: t.Report, bins: t.Bins, modules: t.Modules, hostFails: t.HostFails}
	if ts.rep == nil {
		ts.rep = &registry.TargetReport{}
	}
	ts.tc.Version = t.Rustc
	ts.build = &cargoResult{firstError: t.FirstError}
	return ts
}

// assess decides the verdict, the outcome, the per-test and timing
// comparison, the GC-readiness checks, the score and the gate from f. It
// does no I/O: the same facts always give the same assessment.
func assess(f assessFacts) assessment {
	native, uu, wasi := f.Native.state(), f.WasmUnknown.state(), f.Wasip1.state()
	var a assessment

	// The first package that breaks a wasm build.
	for _, ts := range []*targetState{wasi, uu} {
		if ts == nil || ts.build == nil || ts.rep.Build != buildFailed || a.BrokenBy != "" {
			continue
		}
		if fe := packageName(ts.build.firstError); fe != "" {
			a.BrokenBy = fe
		}
	}
	deps := f.Deps
	if a.BrokenBy != "" {
		for i := range deps {
			if deps[i].Name+"@"+deps[i].Version == a.BrokenBy {
				deps[i].Breaks = true
			}
		}
	}
	a.Deps = deps

	// Per-test comparison.
	a.Tests, a.Timing = compareTests(native, wasi)

	// GC readiness.
	in := gcInput{}
	for _, ts := range []*targetState{uu, wasi} {
		if ts == nil {
			continue
		}
		in.modules = append(in.modules, ts.modules...)
	}
	in.hasModule = len(in.modules) > 0
	if wasi != nil && wasi.rep.Tests != nil {
		c := wasi.rep.Tests
		in.testsRan = int(c.Passed + c.Failed + c.OOM)
		in.oom = int(c.OOM)
		in.peak = wasi.rep.PeakMemory
	}
	a.GCChecks = gcChecks(in)
	a.GCReady = in.hasModule
	for _, c := range a.GCChecks {
		a.GCReady = a.GCReady && c.Pass
	}

	// Verdict and outcome.
	var wasiRes *resolution
	if f.Wasip1Resolution != nil {
		wasiRes = &resolution{devStripped: f.Wasip1Resolution.DevStripped, why: f.Wasip1Resolution.Why}
	}
	v := wasmVerdict(uu, wasi, wasiRes)
	a.Wasm, a.Reason = v.wasm, v.reason
	a.Outcome, a.Message = overallOutcome(uu, wasi)
	a.Dual = a.Wasm == registry.WasmCompatible && native != nil && native.rep.Outcome == registry.OutcomeTestPass

	si := scoreInput{native: nilIfMissing(native), gc: a.GCChecks, deps: deps, depsBroken: f.DepsBroken, timing: a.Timing}
	for _, ts := range []*targetState{uu, wasi} {
		if ts != nil {
			si.wasmTargets = append(si.wasmTargets, ts.rep)
		}
	}
	if wasi != nil {
		si.wasip1 = wasi.rep
	}
	if v.wasm == registry.WasmBuilds {
		si.testsBlocked = v.reason
	}
	a.Score, a.Breakdown = computeScore(si)
	a.Gate = f.Gates.Verdict(a.Score, a.Wasm)
	return a
}
