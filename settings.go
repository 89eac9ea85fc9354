package registry

import (
	"fmt"
	"slices"
	"strings"
)

// Gates are a registry's quality gates: they turn a trusted report and the
// reviews of the crate's reviewers into curated, needs-review or rejected,
// with the reasons (Decide).
type Gates struct {
	// CuratedMinScore is the lowest score that is curated (default 80).
	CuratedMinScore uint64 `json:"curated_min_score"`
	// RejectBelowScore: scores below it are rejected (default 30).
	RejectBelowScore uint64 `json:"reject_below_score"`
	// RequireWasm: a crate that does not build for any wasm target is
	// rejected whatever its score (default true).
	RequireWasm bool `json:"require_wasm"`
	// MinWasm is the lowest wasm verdict curated without reviews:
	// compatible (the default, also when empty), builds or partial.
	MinWasm string `json:"min_wasm,omitempty"`
	// Performance thresholds (0: none). MaxTimeRatio is the highest
	// wasm/native time ratio of the report's timed comparison,
	// MaxWasmSize the largest wasm module (bytes), MaxPeakMemory the
	// highest peak memory of the wasm tests (bytes).
	MaxTimeRatio  float64 `json:"max_time_ratio,omitempty"`
	MaxWasmSize   uint64  `json:"max_wasm_size,omitempty"`
	MaxPeakMemory uint64  `json:"max_peak_memory,omitempty"`
	// Approvals is how many approving reviews by reviewers of the crate
	// curate a release that needs review (default 2; 0: reviews never
	// curate). A rejecting review by a reviewer rejects the release
	// unless IgnoreRejections; a flag keeps it from automatic curation.
	Approvals        int  `json:"approvals"`
	IgnoreRejections bool `json:"ignore_rejections,omitempty"`
}

// DefaultGates are the gates of a new registry.
func DefaultGates() Gates {
	return Gates{CuratedMinScore: 80, RejectBelowScore: 30, RequireWasm: true, MinWasm: WasmCompatible, Approvals: 2}
}

// wasmRank orders verdicts from worst to best.
func wasmRank(v string) int {
	return map[string]int{WasmIncompatible: 0, WasmPartial: 1, WasmBuilds: 2, WasmCompatible: 3}[v]
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
	switch g.MinWasm {
	case "", WasmCompatible, WasmBuilds, WasmPartial:
	default:
		return Errorf(op, EINVALID, "min_wasm %q: use compatible, builds or partial", g.MinWasm)
	}
	if g.MaxTimeRatio < 0 || g.MaxTimeRatio > 1e6 || g.MaxTimeRatio != g.MaxTimeRatio {
		return Errorf(op, EINVALID, "max_time_ratio is a wasm/native time ratio from 0 (none) up")
	}
	if g.Approvals < 0 || g.Approvals > 100 {
		return Errorf(op, EINVALID, "approvals is a number of reviews from 0 (reviews never curate) to 100")
	}
	return nil
}

// Verdict applies the gates to a score and a wasm verdict alone (a
// report's own gate, before reviews). Only a release at MinWasm or above
// is ever curated.
func (g Gates) Verdict(score uint64, wasm string) string {
	return g.Decide(GateInput{Score: score, Wasm: wasm}).Gate
}

// GateInput is what the gates decide from: a trusted report's summary and
// figures, and the reviewers (peer IDs) of the crate that approved,
// rejected or flagged the release.
type GateInput struct {
	Score      uint64
	Wasm       string
	TimeRatio  uint64 // wasm/native ×1000; 0: not measured
	WasmSize   uint64 // bytes; 0: not measured
	PeakMemory uint64 // bytes; 0: not measured
	Approvals  []string
	Rejections []string
	Flags      []string
}

// GateDecision is a gate with the reasons for it, in order.
type GateDecision struct {
	Gate    string   `json:"gate"`
	Reasons []string `json:"reasons"`
}

// Decide applies the gates: a reviewer's rejection, a crate that does not
// build for wasm (RequireWasm) or a score below RejectBelowScore rejects;
// a release that meets every threshold and was flagged by no reviewer is
// curated; otherwise it needs review, and Approvals approving reviews
// curate it.
func (g Gates) Decide(in GateInput) GateDecision {
	d := GateDecision{Reasons: []string{}}
	reject := func(format string, a ...any) GateDecision {
		d.Gate = GateRejected
		d.Reasons = append(d.Reasons, fmt.Sprintf(format, a...))
		return d
	}
	switch {
	case len(in.Rejections) > 0 && !g.IgnoreRejections:
		return reject("rejected by reviewer %s", strings.Join(in.Rejections, ", "))
	case g.RequireWasm && in.Wasm == WasmIncompatible:
		return reject("it does not build for any wasm target")
	case in.Score < g.RejectBelowScore:
		return reject("score %d is below reject_below_score %d", in.Score, g.RejectBelowScore)
	}
	minWasm := g.MinWasm
	if minWasm == "" {
		minWasm = WasmCompatible
	}
	if in.Score < g.CuratedMinScore {
		d.Reasons = append(d.Reasons, fmt.Sprintf("score %d is below curated_min_score %d", in.Score, g.CuratedMinScore))
	}
	if wasmRank(in.Wasm) < wasmRank(minWasm) {
		d.Reasons = append(d.Reasons, fmt.Sprintf("wasm verdict %s is below min_wasm %s", in.Wasm, minWasm))
	}
	if g.MaxTimeRatio > 0 && in.TimeRatio > 0 && float64(in.TimeRatio)/1000 > g.MaxTimeRatio {
		d.Reasons = append(d.Reasons, fmt.Sprintf("wasm takes %.2f× the native time, above max_time_ratio %.2f", float64(in.TimeRatio)/1000, g.MaxTimeRatio))
	}
	if g.MaxWasmSize > 0 && in.WasmSize > g.MaxWasmSize {
		d.Reasons = append(d.Reasons, fmt.Sprintf("its wasm module is %d bytes, above max_wasm_size %d", in.WasmSize, g.MaxWasmSize))
	}
	if g.MaxPeakMemory > 0 && in.PeakMemory > g.MaxPeakMemory {
		d.Reasons = append(d.Reasons, fmt.Sprintf("its wasm tests peak at %d bytes of memory, above max_peak_memory %d", in.PeakMemory, g.MaxPeakMemory))
	}
	if len(in.Flags) > 0 {
		d.Reasons = append(d.Reasons, "flagged by reviewer "+strings.Join(in.Flags, ", "))
	}
	if len(d.Reasons) == 0 {
		d.Gate = GateCurated
		d.Reasons = append(d.Reasons, fmt.Sprintf("score %d, %s, within every threshold", in.Score, in.Wasm))
		return d
	}
	if g.Approvals > 0 && len(in.Approvals) >= g.Approvals {
		d.Gate = GateCurated
		d.Reasons = append(d.Reasons, fmt.Sprintf("approved by %d reviewers (%s), which curates it", len(in.Approvals), strings.Join(in.Approvals, ", ")))
		return d
	}
	d.Gate = GateNeedsReview
	if g.Approvals > 0 {
		d.Reasons = append(d.Reasons, fmt.Sprintf("%d of the %d approving reviews that curate it", len(in.Approvals), g.Approvals))
	}
	return d
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
