package pipeline

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
		newest.Extra = true
		plan = append(plan, newest)
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
