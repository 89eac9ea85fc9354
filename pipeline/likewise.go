package pipeline

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
)

// Like with like: what the report compares between the host and wasm
// must differ only in the target. The host target that feeds the
// comparisons (per-test times and ratios, sizes, dual, the score) is
// built and tested by the toolchain that builds the tested wasm target;
// the best native toolchain, when it is another one, builds and tests the
// crate as well, and its result is kept as an extra target, shown as
// information only. Every build caps the crate's own lints at warnings,
// as Cargo does for dependencies, so that a lint newer than the crate
// cannot fail it.

// likeWithLike rewrites plan so that the host target uses the toolchain
// of wasm32-wasip1 (else of wasm32-unknown-unknown) when that toolchain
// has the host's standard library, and appends the host target with the
// toolchain it had before, marked Extra, when that was another one. A
// plan without a wasm toolchain, or whose wasm toolchain cannot build for
// the host, is returned unchanged. Extra entries always come after the
// others, so that the first entry for a target is the one compared.
func likeWithLike(plan []TargetStatus, tcs []Toolchain, host string) []TargetStatus {
	wasmTC := ""
	for _, t := range []string{TargetWasip1, TargetWasmUnknown} {
		for _, st := range plan {
			if st.Target == t && st.Toolchain != "" && wasmTC == "" {
				wasmTC = st.Toolchain
			}
		}
	}
	hi := -1
	for i, st := range plan {
		if st.Target == host && !st.Extra {
			hi = i
			break
		}
	}
	if wasmTC == "" || hi < 0 || plan[hi].Toolchain == wasmTC {
		return plan
	}
	var tc *Toolchain
	for i := range tcs {
		if tcs[i].ID == wasmTC && tcs[i].Usable {
			tc = &tcs[i]
		}
	}
	if tc == nil {
		return plan
	}
	triple := tc.tripleFor(host)
	if triple == "" {
		return plan
	}
	newest := plan[hi]
	plan[hi].Toolchain, plan[hi].Triple = wasmTC, triple
	plan[hi].Missing, plan[hi].Install = "", ""
	if newest.Toolchain != "" {
		// Right after the host target, before the wasm targets: their
		// control builds ask whether a newer toolchain built the crate.
		newest.Extra = true
		plan = slices.Insert(plan, hi+1, newest)
	}
	return plan
}

// capLints is the rustc flag that turns every lint of the crate under
// test into at most a warning. Cargo already passes --cap-lints allow to
// dependencies from registries; rustc keeps the first --cap-lints it is
// given, so dependencies stay silent.
const capLints = "--cap-lints=warn"

// lintEnv is the environment that caps the crate's lints for rustc (the
// library, its tests and its benches built for the requested --target:
// Cargo applies RUSTFLAGS to target units, not to build scripts or proc
// macros, which are host units when --target is given) and for rustdoc
// (documentation tests). No Cargo configuration of the node sets
// rustflags and the crate's own never applies, so these are the only
// flags.
func lintEnv() []string {
	return []string{"RUSTFLAGS=" + capLints, "RUSTDOCFLAGS=" + capLints}
}

// Peak memory. A process's ru_maxrss keeps the high-water mark of the
// memory it had before exec, and Go starts a command in its parent's
// memory (vfork), so every command the supervisor starts reads at least
// the supervisor's own resident set there. The kernel's VmHWM is the
// current program's alone; the supervisor reads it when a process of the
// tree calls exit_group (the seccomp filter stops the call until it is
// answered).

// ownPeak is the peak resident set of the largest process of a tree, in
// bytes, from ru, the tree's ru_maxrss; hwm, the largest VmHWM seen at
// exit_group (0: none); and floor, the supervisor's own VmHWM. An ru
// above floor cannot be inherited, so it is some process's own peak;
// otherwise hwm is, when a process ended by exit_group (one killed by a
// signal shows only in ru).
func ownPeak(ru, hwm, floor uint64) uint64 {
	if hwm == 0 || ru > floor {
		return ru
	}
	return hwm
}

// vmHWM reads the peak resident set (bytes) of the process /proc/<pid>.
func vmHWM(pid string) (uint64, bool) {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0, false
	}
	return parseVmHWM(string(b))
}

// parseVmHWM reads the VmHWM line ("VmHWM:\t    1234 kB") of a
// /proc/<pid>/status text.
func parseVmHWM(status string) (uint64, bool) {
	for _, line := range strings.Split(status, "\n") {
		v, ok := strings.CutPrefix(line, "VmHWM:")
		if !ok {
			continue
		}
		v, ok = strings.CutSuffix(strings.TrimSpace(v), " kB")
		if !ok {
			return 0, false
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil || n > 1<<40 {
			return 0, false
		}
		return n << 10, true
	}
	return 0, false
}

// atomicMax raises a to v if v is larger.
func atomicMax(a *atomic.Uint64, v uint64) {
	for {
		old := a.Load()
		if v <= old || a.CompareAndSwap(old, v) {
			return
		}
	}
}

// stageTarget names ts in progress events, stage times, logs and
// messages: its target, and for an extra target the toolchain too, so
// that the two runs for the host can be told apart.
func stageTarget(ts *targetState) string {
	if ts.status.Extra {
		return ts.status.Target + " (extra: rustc " + ts.tc.Version + ")"
	}
	return ts.status.Target
}
