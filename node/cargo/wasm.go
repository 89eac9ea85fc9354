package cargo

import (
	"slices"
	"strings"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/node"
	"github.com/wasmrust/wasm-crates-registry/store"
)

// WasmPolicy decides which releases the wasm-only view serves. A release
// passes when this node's trusted report about it (the newest live report,
// by an author the node trusts, about the winning release record) has one of
// Gates as its quality gate and one of Verdicts as its wasm verdict. A
// release with no trusted report never passes.
type WasmPolicy struct {
	// Gates are the accepted quality gates: "curated", "needs-review".
	Gates []string
	// Verdicts are the accepted wasm verdicts: "compatible", "builds",
	// "partial".
	Verdicts []string
}

// DefaultWasmPolicy accepts curated releases that are compatible, build
// for wasm (tests not run on the node that reported, for the node's
// reasons) or partial: a crate that builds for wasm belongs in the wasm
// view. With the default gates only compatible releases pass in practice,
// since the gates never curate the others.
func DefaultWasmPolicy() WasmPolicy {
	return WasmPolicy{
		Gates:    []string{registry.GateCurated},
		Verdicts: []string{registry.WasmCompatible, registry.WasmBuilds, registry.WasmPartial},
	}
}

// ParseWasmPolicy reads a policy from two comma-separated lists, as a flag
// would give them: gates ("curated" or "curated,needs-review") and verdicts
// ("compatible,builds,partial"). Empty lists take the defaults.
func ParseWasmPolicy(gates, verdicts string) (WasmPolicy, error) {
	p := DefaultWasmPolicy()
	if s := splitList(gates); s != nil {
		p.Gates = s
	}
	if s := splitList(verdicts); s != nil {
		p.Verdicts = s
	}
	return p, p.Validate()
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// Validate checks that the policy names only gates and verdicts a report
// can carry and accepts something.
func (p WasmPolicy) Validate() error {
	const op = "cargo.WasmPolicy"
	if len(p.Gates) == 0 || len(p.Verdicts) == 0 {
		return registry.Errorf(op, registry.EINVALID, "the wasm view needs at least one accepted gate (curated, needs-review) and one accepted wasm verdict (compatible, builds, partial)")
	}
	for _, g := range p.Gates {
		if g != registry.GateCurated && g != registry.GateNeedsReview {
			return registry.Errorf(op, registry.EINVALID, "wasm view gate %q: use curated or needs-review", g)
		}
	}
	for _, v := range p.Verdicts {
		if v != registry.WasmCompatible && v != registry.WasmBuilds && v != registry.WasmPartial {
			return registry.Errorf(op, registry.EINVALID, "wasm view verdict %q: use compatible, builds or partial", v)
		}
	}
	return nil
}

// Passes reports whether the policy lets a release into the wasm view,
// given the wasm verdict and gate the node gives it (node.Verdicts).
func (p WasmPolicy) Passes(wasm string, gate registry.GateDecision) bool {
	return slices.Contains(p.Gates, gate.Gate) && slices.Contains(p.Verdicts, wasm)
}

// passes applies p to a view under trust, as the node judges it.
func (h *Handler) passes(v *store.ReleaseView, trust *node.TrustSet) bool {
	return h.cfg.Wasm.Passes(h.n.Verdicts(v, trust))
}
