package rest

import (
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// Release is a release as the API shows it: the winning release record of a
// name@version, its yank state, its conflicts and this node's verdict from
// the reports of the authors it trusts.
type Release struct {
	ID            registry.ID         `json:"id"`
	Name          string              `json:"name"`
	Version       string              `json:"version"`
	Subject       string              `json:"subject"`
	Author        string              `json:"author"`
	Published     time.Time           `json:"published"`
	Cksum         string              `json:"cksum"`
	Blob          registry.ID         `json:"blob"`
	Size          uint64              `json:"size"`
	Description   string              `json:"description,omitempty"`
	License       string              `json:"license,omitempty"`
	Repository    string              `json:"repository,omitempty"`
	Homepage      string              `json:"homepage,omitempty"`
	Documentation string              `json:"documentation,omitempty"`
	Keywords      []string            `json:"keywords,omitempty"`
	Categories    []string            `json:"categories,omitempty"`
	Edition       string              `json:"edition,omitempty"`
	RustVersion   string              `json:"rust_version,omitempty"`
	Links         string              `json:"links,omitempty"`
	Deps          []registry.Dep      `json:"deps"`
	Features      map[string][]string `json:"features"`
	Yanked        bool                `json:"yanked"`
	Yank          *YankInfo           `json:"yank,omitempty"`
	// Unauthorized: no author this node trusts to publish the crate made
	// this release; it is an untrusted claim, never indexed or served.
	Unauthorized bool `json:"unauthorized,omitempty"`
	// Witnessed is when the first trusted checkpoint included the release
	// (absent while pending); Backdated says it claims a time more than the
	// allowed skew before that.
	Witnessed *time.Time    `json:"witnessed,omitempty"`
	Backdated bool          `json:"backdated,omitempty"`
	Conflicts []registry.ID `json:"conflicts,omitempty"`
	// Claims details the conflicting releases, first first.
	Claims []ClaimInfo `json:"claims,omitempty"`
	// Omitted names the lists (claims, reports, reviews) that hold more
	// untrusted entries than a release shows (store.MaxUntrusted each).
	Omitted []string `json:"omitted,omitempty"`
	Owners  []string `json:"owners"`
	// The verdict of the newest trusted report (untested when none).
	Wasm    string  `json:"wasm"`
	GCReady bool    `json:"gc_ready"`
	Dual    bool    `json:"dual"`
	Score   *uint64 `json:"score,omitempty"`
	Gate    string  `json:"gate,omitempty"`
	// GateReasons say why the gate is what it is (thresholds, reviews).
	GateReasons []string        `json:"gate_reasons,omitempty"`
	Reports     []ReportSummary `json:"reports"`
	Reviews     []ReviewSummary `json:"reviews"`

	// WasmReason says, for verdict builds, why the tests were not run.
	WasmReason string `json:"wasm_reason,omitempty"`
}

// YankInfo says who set the yank state and why.
type YankInfo struct {
	Record registry.ID `json:"record"`
	By     string      `json:"by"`
	At     time.Time   `json:"at"`
	Reason string      `json:"reason,omitempty"`
}

// ClaimInfo is a release of the same name@version that did not win.
type ClaimInfo struct {
	ID         registry.ID `json:"id"`
	Author     string      `json:"author"`
	Claimed    time.Time   `json:"claimed"`
	Witnessed  *time.Time  `json:"witnessed,omitempty"`
	Authorized bool        `json:"authorized"`
	Backdated  bool        `json:"backdated,omitempty"`
}

// ReportSummary is one live report about a release.
type ReportSummary struct {
	ID      registry.ID `json:"id"`
	Author  string      `json:"author"`
	Trusted bool        `json:"trusted"`
	Time    time.Time   `json:"time"`
	Release registry.ID `json:"release"`
	Current bool        `json:"current"` // it tested the winning release
	Outcome string      `json:"outcome"`
	Wasm    string      `json:"wasm"`
	GCReady bool        `json:"gc_ready"`
	Dual    bool        `json:"dual"`
	Score   uint64      `json:"score"`
	Gate    string      `json:"gate"`
	Reason  string      `json:"wasm_reason,omitempty"` // for verdict builds: why the tests were not run
}

// ReviewSummary is one live review of a release.
type ReviewSummary struct {
	ID      registry.ID `json:"id"`
	Author  string      `json:"author"`
	Trusted bool        `json:"trusted"`
	Time    time.Time   `json:"time"`
	Verdict string      `json:"verdict"`
	Comment string      `json:"comment,omitempty"`
}

// Page is one page of releases.
type Page struct {
	Crates     []*Release `json:"crates"`
	NextCursor string     `json:"next_cursor,omitempty"`
}
