package pipeline

import (
	"fmt"
	"strings"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// verdict is the report's wasm verdict with, for builds, why the tests
// were not run on this node.
type verdict struct {
	wasm   string
	reason string
}

// crateFault reports whether ts failed to build for the crate's own
// reasons (a build failure that control builds did not put on the node).
func crateFault(ts *targetState) bool {
	return ts != nil && ts.rep.Build == buildFailed && !nodeOutcome(ts.rep.Outcome)
}

func builtOK(ts *targetState) bool { return ts != nil && ts.rep.Build == buildOK }

// wasmTried reports whether some wasm target could be tried: it built, or
// failed for the crate's own reasons. Otherwise why says, per wasm target,
// what stopped it.
func (r *jobRun) wasmTried() (why []string, tried bool) {
	for _, ts := range r.targets {
		if !isWasm(ts.status.Target) {
			continue
		}
		if builtOK(ts) || crateFault(ts) {
			tried = true
		}
		why = append(why, ts.status.Target+": "+ts.rep.Outcome+": "+ts.rep.Message)
	}
	return why, tried
}

// wasmVerdict decides the verdict from the wasm targets' results and the
// resolution of wasm32-wasip1's toolchain (res, may be nil):
//   - incompatible: no wasm target builds, for the crate's own reasons;
//   - partial: one wasm target builds and another fails for the crate's
//     reasons, or the crate's own tests fail under wazero, or do not
//     compile for wasm while they compile natively with the same toolchain;
//   - builds: it builds for a wasm target, and its tests were not run here
//     for the node's reasons (dev-dependencies the node cannot supply, a
//     toolchain too old for the tests, no WASI toolchain, the node's caps
//     on the number of tests, tests that do not compile natively either);
//   - compatible: it builds and every wasm test that ran passed.
func wasmVerdict(uu, wasi *targetState, res *resolution) verdict {
	if !builtOK(uu) && !builtOK(wasi) {
		return verdict{wasm: registry.WasmIncompatible}
	}
	if crateFault(uu) || crateFault(wasi) {
		return verdict{wasm: registry.WasmPartial}
	}
	builds := func(why string) verdict {
		why = "Its tests were not run under wazero on this node: " + strings.TrimSuffix(why, ".") + "."
		if len(why) > registry.MaxReasonLen {
			why = why[:registry.MaxReasonLen-len("…")] + "…"
		}
		return verdict{wasm: registry.WasmBuilds, reason: why}
	}
	if !builtOK(wasi) {
		if wasi == nil {
			return builds("this node has no toolchain for " + TargetWasip1)
		}
		return builds(TargetWasip1 + " could not be tried (" + wasi.rep.Outcome + "): " + wasi.rep.Message)
	}
	if res != nil && res.devStripped {
		return builds(res.why)
	}
	rep := wasi.rep
	switch {
	case rep.Outcome == registry.OutcomeTestPass && rep.Tests != nil && rep.Tests.NotRun > 0:
		return builds(fmt.Sprintf("%d of its tests were left out by this node's cap of tests per target; the %d that ran passed", rep.Tests.NotRun, rep.Tests.Passed))
	case rep.Outcome == registry.OutcomeTestPass:
		return verdict{wasm: registry.WasmCompatible}
	case rep.Outcome == registry.OutcomeBuildFail && wasi.hostFails:
		return builds(fmt.Sprintf("its tests do not compile for the host either with rustc %s, so their failure says nothing about wasm", wasi.tc.Version))
	case nodeOutcome(rep.Outcome):
		return builds(rep.Message)
	}
	return verdict{wasm: registry.WasmPartial}
}

// overallOutcome is the report's outcome: that of wasm32-wasip1, where the
// crate is both built and tested, unless that target could not be tried
// for the node's reasons, in which case that of wasm32-unknown-unknown.
func overallOutcome(uu, wasi *targetState) (string, string) {
	if wasi != nil && (builtOK(wasi) || !nodeOutcome(wasi.rep.Outcome) || uu == nil) {
		msg := wasi.rep.Message
		if wasi.rep.Build == buildOK && uu != nil && uu.rep.Build == buildFailed {
			msg += "; it does not build for wasm32-unknown-unknown: " + uu.rep.Message
		}
		return wasi.rep.Outcome, TargetWasip1 + ": " + msg
	}
	if uu != nil {
		return uu.rep.Outcome, TargetWasmUnknown + ": " + uu.rep.Message
	}
	return registry.OutcomeError, "no wasm target was tried"
}

// missingDeps are the packages the wasm targets' toolchains could not get
// from the node's sources and its registry's releases.
func (r *jobRun) missingDeps() []string {
	var out []string
	seen := map[string]bool{}
	for _, ts := range r.targets {
		if !isWasm(ts.status.Target) {
			continue
		}
		if res := r.resolved[ts.status.Toolchain]; res != nil {
			for _, m := range res.missing {
				if !seen[m] && len(out) < registry.MaxMissingDeps {
					seen[m] = true
					out = append(out, m)
				}
			}
		}
	}
	return out
}
