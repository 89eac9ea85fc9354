package registry

import "strings"

// Gates are a registry's quality gates: they turn a report's score and wasm
// verdict into curated, needs-review or rejected.
type Gates struct {
	// CuratedMinScore is the lowest score that is curated (default 80).
	CuratedMinScore uint64 `json:"curated_min_score"`
	// RejectBelowScore: scores below it are rejected (default 30).
	RejectBelowScore uint64 `json:"reject_below_score"`
	// RequireWasm: a crate that does not build for any wasm target is
	// rejected whatever its score (default true).
	RequireWasm bool `json:"require_wasm"`
}

// DefaultGates are the gates of a new registry.
func DefaultGates() Gates {
	return Gates{CuratedMinScore: 80, RejectBelowScore: 30, RequireWasm: true}
}

// Validate checks the thresholds.
func (g Gates) Validate() error {
	const op = "registry.Gates"
	if g.CuratedMinScore > 100 || g.RejectBelowScore > 100 {
		return Errorf(op, EINVALID, "gate thresholds are scores from 0 to 100")
	}
	if g.RejectBelowScore > g.CuratedMinScore {
		return Errorf(op, EINVALID, "reject_below_score (%d) must not exceed curated_min_score (%d)", g.RejectBelowScore, g.CuratedMinScore)
	}
	return nil
}

// Verdict applies the gates to a score and a wasm verdict.
func (g Gates) Verdict(score uint64, wasm string) string {
	switch {
	case g.RequireWasm && wasm == WasmIncompatible:
		return GateRejected
	case score < g.RejectBelowScore:
		return GateRejected
	case score >= g.CuratedMinScore && wasm == WasmCompatible:
		return GateCurated
	default:
		return GateNeedsReview
	}
}

// Trust is a node's local trust policy: whose reports and reviews count
// towards its verdicts. It never changes which record wins (DESIGN.md §2).
type Trust struct {
	// All trusts every validly signed author: for open test networks.
	All bool `json:"all"`
	// Keys are trusted peer IDs in addition to the node's own key and the
	// peers it was told to join.
	Keys []string `json:"keys"`
}

// Validate checks that every key is a peer ID.
func (t Trust) Validate() error {
	for _, k := range t.Keys {
		if _, err := ParsePeerID(k); err != nil {
			return E("registry.Trust", EINVALID, "trust.keys", err)
		}
	}
	return nil
}

// Settings are a registry's settings that an admin may change over REST.
type Settings struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Gates       Gates  `json:"gates"`
	Trust       Trust  `json:"trust"`
	// AutoTest queues the pipeline for every release this node accepts.
	AutoTest bool `json:"auto_test"`
}

// Validate checks every field.
func (s Settings) Validate() error {
	const op = "registry.Settings"
	if n := strings.TrimSpace(s.Name); n == "" || len(n) > 64 {
		return Errorf(op, EINVALID, "name must be 1 to 64 characters")
	}
	if len(s.Description) > 1024 {
		return Errorf(op, EINVALID, "description must be at most 1024 characters")
	}
	if err := s.Gates.Validate(); err != nil {
		return err
	}
	return s.Trust.Validate()
}
