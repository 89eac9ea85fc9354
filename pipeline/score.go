package pipeline

import (
	"fmt"
	"strings"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// boundedMemory is the peak linear memory (bytes) below which a crate's
// wasm tests count as having bounded memory growth.
const boundedMemory = 64 << 20

// gcInput is what the GC-readiness checks look at.
type gcInput struct {
	modules   []*wasmStat // every wasm module built (library cdylib, test binaries)
	testsRan  int         // wasm tests that ran to an end
	peak      uint64      // largest linear memory at the end of a wasm test
	oom       int         // wasm tests that ran out of memory
	hasModule bool
}

// GC-readiness check names, in report order. Rust cannot emit Wasm GC code
// today; these are proxies for how easily a crate's wasm could move to a
// GC-managed host (docs/PIPELINE.md).
const (
	gcNoSharedMemory  = "no-shared-memory"
	gcNoAtomics       = "no-atomics"
	gcNoEnvImports    = "no-env-imports"
	gcRefTypesClean   = "reference-types-clean-boundary"
	gcNoBindgenGlue   = "no-bindgen-glue"
	gcBoundedMemory   = "bounded-memory-growth"
	gcChecksPerReport = 6
)

// gcChecks runs the checks. Each has a reason, pass or fail.
func gcChecks(in gcInput) []registry.GCCheck {
	if !in.hasModule {
		var out []registry.GCCheck
		for _, n := range []string{gcNoSharedMemory, gcNoAtomics, gcNoEnvImports, gcRefTypesClean, gcNoBindgenGlue, gcBoundedMemory} {
			out = append(out, registry.GCCheck{Name: n, Reason: "no wasm module was built, so nothing could be checked"})
		}
		return out
	}
	var shared, atomics, env, refs, bindgen bool
	var envNames []string
	for _, m := range in.modules {
		for _, mem := range m.Memories {
			shared = shared || mem.Shared
		}
		atomics = atomics || m.Atomics
		if names, ok := m.Imports["env"]; ok {
			env = true
			if len(envNames) < 5 {
				envNames = append(envNames, names[:min(len(names), 5-len(envNames))]...)
			}
		}
		refs = refs || m.RefTypes
		bindgen = bindgen || m.importsFrom("__wbindgen") || m.importsFrom("wbg")
	}
	check := func(name string, pass bool, ok, bad string) registry.GCCheck {
		if pass {
			return registry.GCCheck{Name: name, Pass: true, Reason: ok}
		}
		return registry.GCCheck{Name: name, Reason: bad}
	}
	out := []registry.GCCheck{
		check(gcNoSharedMemory, !shared,
			"linear memory is not shared: the crate does not depend on wasm threads, which Wasm GC does not combine with yet",
			"a module declares shared linear memory (wasm threads); GC-managed objects cannot be shared between threads yet"),
		check(gcNoAtomics, !atomics,
			"the target_features section does not enable atomics",
			"the module was built with atomics; the shared-everything threads proposal that would let GC code use them is not standard yet"),
		check(gcNoEnvImports, !env,
			"nothing is imported from \"env\": every import comes from a defined interface (WASI or none)",
			"imports from \"env\" ("+strings.Join(envNames, ", ")+") are symbols left for C code or JS glue to provide; a GC host would have to supply them"),
		check(gcRefTypesClean, !refs,
			"imports and exports use only numeric types, so GC reference types can be introduced at the boundary without breaking callers",
			"the boundary already uses externref/funcref or exports a table; moving to GC types would change how callers pass objects"),
		check(gcNoBindgenGlue, !bindgen,
			"no wasm-bindgen JS glue: objects do not cross the boundary through a handle table",
			"imports __wbindgen glue, which manages JS objects through a handle table that Wasm GC would replace"),
	}
	switch {
	case in.testsRan == 0:
		out = append(out, registry.GCCheck{Name: gcBoundedMemory, Reason: "no wasm test ran to an end, so memory growth is unknown"})
	case in.oom > 0:
		out = append(out, registry.GCCheck{Name: gcBoundedMemory, Reason: fmt.Sprintf("%d wasm test(s) ran out of the linear-memory limit", in.oom)})
	default:
		out = append(out, check(gcBoundedMemory, in.peak <= boundedMemory,
			fmt.Sprintf("peak linear memory during the wasm tests was %s (limit for this check %s): growth stays bounded", humanBytes(in.peak), humanBytes(boundedMemory)),
			fmt.Sprintf("peak linear memory during the wasm tests was %s, above %s: a GC heap beside it would compete for memory", humanBytes(in.peak), humanBytes(boundedMemory))))
	}
	return out
}

func humanBytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// scoreInput is what the score is computed from.
type scoreInput struct {
	wasmTargets  []*registry.TargetReport // wasm32-unknown-unknown, wasm32-wasip1 (nil when not planned)
	wasip1       *registry.TargetReport
	native       *registry.TargetReport
	gc           []registry.GCCheck
	deps         []registry.DepReport
	depsBroken   bool
	timing       *registry.TimingSummary
	testsBlocked string // for verdict builds: why the wasm tests were not run, for reasons not the crate's (else "")
}

// Score weights (docs/PIPELINE.md). They add up to 100.
const (
	wWasmBuild = 30
	wWasmTests = 30
	wNative    = 10
	wGC        = 15
	wDeps      = 10
	wSpeed     = 5
)

// computeScore returns the 0–100 score and its breakdown. A part that could
// not be assessed for reasons that are not the crate's (a missing
// toolchain, dependencies this node does not have) has Max 0 and does not
// count; the score is the points earned over the points assessable.
func computeScore(in scoreInput) (uint64, []registry.ScorePart) {
	var parts []registry.ScorePart
	// wasm builds
	{
		var built, tried int
		var names []string
		for _, t := range in.wasmTargets {
			if t == nil || (t.Build != buildOK && nodeOutcome(t.Outcome)) {
				continue // the node could not try it: not the crate's fault
			}
			tried++
			if t.Build == buildOK {
				built++
				names = append(names, t.Target)
			}
		}
		p := registry.ScorePart{Name: "wasm-build", Max: wWasmBuild}
		switch {
		case tried == 0:
			p.Max, p.Reason = 0, "not assessed: no wasm toolchain could build this crate on this node"
		default:
			p.Points = uint64(wWasmBuild * built / tried)
			p.Reason = fmt.Sprintf("built for %d of %d wasm targets", built, tried)
			if built > 0 {
				p.Reason += " (" + strings.Join(names, ", ") + ")"
			}
		}
		parts = append(parts, p)
	}
	// wasm tests
	{
		p := registry.ScorePart{Name: "wasm-tests", Max: wWasmTests}
		t := in.wasip1
		switch {
		case in.testsBlocked != "":
			// Verdict builds: the tests were not run for the node's
			// reasons, so this part is scaled out rather than lost.
			p.Max, p.Reason = 0, "not assessed, so not counted: "+in.testsBlocked
		case t == nil || t.Outcome == registry.OutcomeToolchainMissing:
			p.Max, p.Reason = 0, "not assessed: no wasm32-wasip1 toolchain on this node"
		case t.Tests == nil || t.Build != buildOK:
			p.Reason = "the wasm tests did not build"
		default:
			c := t.Tests
			ran := c.Passed + c.Failed + c.Timeout + c.OOM + c.NotRun
			if ran == 0 {
				p.Reason = "no tests ran under wazero, so there is no evidence of behaviour in wasm"
			} else {
				p.Points = wWasmTests * c.Passed / ran
				p.Reason = fmt.Sprintf("%d of %d tests passed under wazero", c.Passed, ran)
			}
		}
		parts = append(parts, p)
	}
	// native
	{
		p := registry.ScorePart{Name: "native", Max: wNative}
		t := in.native
		switch {
		case t == nil || t.Outcome == registry.OutcomeToolchainMissing:
			p.Max, p.Reason = 0, "not assessed: no host toolchain"
		case t.Build != buildOK:
			p.Reason = "does not build natively"
		default:
			p.Points = wNative / 2
			p.Reason = "builds natively"
			if t.Outcome == registry.OutcomeTestPass {
				p.Points = wNative
				p.Reason += " and its tests pass"
			} else {
				p.Reason += "; tests: " + t.Outcome
			}
		}
		parts = append(parts, p)
	}
	// GC readiness
	{
		var pass int
		for _, c := range in.gc {
			if c.Pass {
				pass++
			}
		}
		n := max(len(in.gc), 1)
		parts = append(parts, registry.ScorePart{Name: "gc-readiness", Max: wGC, Points: uint64(wGC * pass / n),
			Reason: fmt.Sprintf("%d of %d GC-readiness checks pass", pass, len(in.gc))})
	}
	// dependencies
	{
		p := registry.ScorePart{Name: "dependencies", Max: wDeps}
		var bad []string
		for _, d := range in.deps {
			if d.Depth > 0 && d.Wasm == registry.WasmIncompatible {
				bad = append(bad, d.Name+"@"+d.Version)
			}
		}
		switch {
		case in.depsBroken:
			p.Reason = "dependencies could not be resolved for the wasm target"
		case len(bad) > 0:
			p.Points = uint64(max(0, wDeps-5*len(bad)))
			p.Reason = "this registry's reports mark dependencies incompatible with wasm: " + strings.Join(bad, ", ")
		default:
			p.Points = wDeps
			p.Reason = fmt.Sprintf("%d dependencies resolved offline for wasm; none is known to be incompatible", max(0, len(in.deps)-1))
		}
		parts = append(parts, p)
	}
	// speed
	{
		p := registry.ScorePart{Name: "wasm-speed", Max: wSpeed}
		switch {
		case in.timing == nil || in.timing.Compared == 0:
			p.Max, p.Reason = 0, "not assessed: no test passed both natively and under wazero"
		case in.timing.Timed == 0 || in.timing.Ratio == 0:
			p.Max, p.Reason = 0, "not assessed: every test that passed on both sides is too short to time"
		default:
			r := in.timing.Ratio
			switch {
			case r <= 2000:
				p.Points = wSpeed
			case r <= 5000:
				p.Points = 3
			case r <= 20000:
				p.Points = 1
			}
			p.Reason = fmt.Sprintf("wasm took %s× the native time over %d tests", milli(r), in.timing.Timed)
		}
		parts = append(parts, p)
	}
	var got, of uint64
	for _, p := range parts {
		got += p.Points
		of += p.Max
	}
	if of == 0 {
		return 0, parts
	}
	return (got*100 + of/2) / of, parts
}

// milli formats a ×1000 fixed-point number.
func milli(v uint64) string {
	return fmt.Sprintf("%d.%03d", v/1000, v%1000)
}
