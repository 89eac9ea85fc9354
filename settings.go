package registry

import (
	"slices"
	"strings"
)

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

// Verdict applies the gates to a score and a wasm verdict. Only a
// compatible crate is ever curated: one whose verdict is builds (tests not
// run on the reporting node) or partial needs a review at best.
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

// TrustPolicy is the part of a node's trust roots its admins set over REST
// (DESIGN.md §2, "Authority and time"): with the node's own key and the
// peers it was started with, these keys may do everything, and key records
// they sign delegate roles to others.
type TrustPolicy struct {
	// All trusts every validly signed author: for open test networks only.
	All bool `json:"all"`
	// Keys are trust-root peer IDs (typically the operator's keys).
	Keys []string `json:"keys"`
	// Peers are the peers an admin joined this node to with trust
	// (peers add); peers add --no-trust and removing the peer take them out.
	Peers []string `json:"peers,omitempty"`
}

// Validate checks that every key is a peer ID.
func (t TrustPolicy) Validate() error {
	for _, k := range append(slices.Clone(t.Keys), t.Peers...) {
		if _, err := ParsePeerID(k); err != nil {
			return E("registry.TrustPolicy", EINVALID, "trust.keys and trust.peers hold peer IDs", err)
		}
	}
	return nil
}

// Settings are a registry's settings that an admin may change over REST.
type Settings struct {
	Name        string      `json:"name"`
	Description string      `json:"description"`
	Gates       Gates       `json:"gates"`
	Trust       TrustPolicy `json:"trust"`
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
