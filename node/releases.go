package node

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/rest"
	"github.com/wasmrust/wasm-crates-registry/store"
)

func ms(t int64) time.Time { return time.UnixMilli(t).UTC() }

// Curation is the gate this node gives the release of v: its gates
// (settings) applied to the trusted report tr and to the live reviews of
// the crate's reviewers, from any node.
func Curation(v *store.ReleaseView, tr *store.ReportRef, trust *TrustSet, g registry.Gates) registry.GateDecision {
	in := registry.GateInput{Score: tr.Score, Wasm: tr.Wasm, TimeRatio: tr.TimeRatio, WasmSize: tr.WasmSize, PeakMemory: tr.PeakMemory}
	for _, rv := range v.Reviews {
		if !trust.May(rv.Author, registry.RoleReviewer, v.Name) {
			continue
		}
		switch rv.Verdict {
		case registry.VerdictApprove:
			in.Approvals = append(in.Approvals, rv.Author.PeerID())
		case registry.VerdictReject:
			in.Rejections = append(in.Rejections, rv.Author.PeerID())
		case registry.VerdictFlag:
			in.Flags = append(in.Flags, rv.Author.PeerID())
		}
	}
	return g.Decide(in)
}

// Verdicts returns the wasm verdict and gate this node gives the release
// of v now ("untested" and no gate without a trusted report).
func (n *Node) Verdicts(v *store.ReleaseView, trust *TrustSet) (wasm string, gate registry.GateDecision) {
	tr := v.TrustedReport(trust.Tests(v.Name))
	if tr == nil {
		return registry.WasmUntested, registry.GateDecision{}
	}
	return tr.Wasm, Curation(v, tr, trust, n.Settings().Gates)
}

// releaseFromView renders a view under a trust set and gates.
func releaseFromView(v *store.ReleaseView, trust *TrustSet, gates registry.Gates) *Release {
	b := v.Body
	r := &Release{
		ID: v.Release, Name: v.Name, Version: v.Version, Subject: v.Subject(),
		Author: v.Author.PeerID(), Published: ms(v.Time),
		Cksum: b.Cksum, Blob: b.BlobID(), Size: b.Size,
		Description: b.Description, License: b.License, Repository: b.Repository,
		Homepage: b.Homepage, Documentation: b.Documentation, Keywords: b.Keywords,
		Categories: b.Categories, Edition: b.Edition, RustVersion: b.RustVersion, Links: b.Links,
		Deps: b.Deps, Features: b.Features,
		Yanked: v.Yanked, Unauthorized: v.Unauthorized, Backdated: v.Backdated,
		Wasm:    registry.WasmUntested,
		Reports: []ReportSummary{}, Reviews: []ReviewSummary{}, Owners: []string{},
	}
	if r.Deps == nil {
		r.Deps = []registry.Dep{}
	}
	if r.Features == nil {
		r.Features = map[string][]string{}
	}
	if v.Witnessed != 0 {
		w := ms(v.Witnessed)
		r.Witnessed = &w
	}
	for _, c := range v.Claims {
		ci := ClaimInfo{ID: c.ID, Author: c.Author.PeerID(), Claimed: ms(c.Time), Authorized: c.Authorized, Backdated: c.Backdated}
		if c.Witnessed != 0 {
			w := ms(c.Witnessed)
			ci.Witnessed = &w
		}
		r.Conflicts = append(r.Conflicts, c.ID)
		r.Claims = append(r.Claims, ci)
	}
	for _, o := range []struct {
		list    string
		omitted bool
	}{{"claims", v.ClaimsOmitted}, {"reports", v.ReportsOmitted}, {"reviews", v.ReviewsOmitted}} {
		if o.omitted {
			r.Omitted = append(r.Omitted, o.list)
		}
	}
	for _, o := range v.Owners {
		r.Owners = append(r.Owners, o.PeerID())
	}
	if v.Yank != nil {
		r.Yank = &YankInfo{Record: v.Yank.ID, By: v.Yank.Author.PeerID(), At: ms(v.Yank.Time), Reason: v.YankReason}
	}
	for _, rep := range v.Reports {
		r.Reports = append(r.Reports, ReportSummary{
			ID: rep.ID, Author: rep.Author.PeerID(), Trusted: trust.May(rep.Author, registry.RoleTester, v.Name), Time: ms(rep.Time),
			Release: rep.Release, Current: rep.Release == v.Release, Outcome: rep.Outcome, Wasm: rep.Wasm,
			GCReady: rep.GCReady, Dual: rep.Dual, Score: rep.Score, Gate: rep.Gate, Reason: rep.Reason,
		})
	}
	if tr := v.TrustedReport(trust.Tests(v.Name)); tr != nil {
		d := Curation(v, tr, trust, gates)
		r.Wasm, r.GCReady, r.Dual, r.Gate, r.GateReasons, r.WasmReason = tr.Wasm, tr.GCReady, tr.Dual, d.Gate, d.Reasons, tr.Reason
		score := tr.Score
		r.Score = &score
	}
	for _, rv := range v.Reviews {
		r.Reviews = append(r.Reviews, ReviewSummary{
			ID: rv.ID, Author: rv.Author.PeerID(), Trusted: trust.May(rv.Author, registry.RoleReviewer, v.Name), Time: ms(rv.Time),
			Verdict: rv.Verdict, Comment: rv.Comment,
		})
	}
	return r
}

// ResolveView finds the release an API {id} names: "name@version", a
// release record ID (base32 or base58), the ID of any record about a
// release (a yank, report or review), or a bare crate name (its newest
// version by SemVer precedence, preferring versions that are not yanked).
func (n *Node) ResolveView(ctx context.Context, id string) (*store.ReleaseView, error) {
	const op = "node.Resolve"
	id = strings.TrimSpace(id)
	if id == "" {
		return nil, registry.Errorf(op, registry.EINVALID, "empty crate ID; use name@version or a record ID")
	}
	if strings.Contains(id, "@") {
		name, version, err := registry.ParseReleaseSubject(id)
		if err != nil {
			return nil, err
		}
		return n.db.GetView(name, version)
	}
	if registry.ValidateCrateName(id) == nil && !looksLikeRecordID(id) {
		views, err := n.db.ViewsByName(id)
		if err != nil {
			return nil, err
		}
		if len(views) == 0 {
			return nil, registry.Errorf(op, registry.ENOTFOUND, "no crate named %s", id)
		}
		return newestView(views), nil
	}
	rid, err := registry.ParseID(id)
	if err != nil {
		return nil, registry.Errorf(op, registry.EINVALID, "%q is neither name@version, a crate name nor a record ID", truncate(id, 80))
	}
	rec, err := n.db.GetRecord(rid)
	if err != nil {
		return nil, err
	}
	name, version, err := registry.ParseReleaseSubject(rec.Subject)
	if err != nil {
		return nil, registry.Errorf(op, registry.EINVALID, "record %s is a %s record about %q, not about a release", rid, rec.Kind, rec.Subject)
	}
	return n.db.GetView(name, version)
}

func looksLikeRecordID(s string) bool {
	if len(s) < 40 {
		return false
	}
	_, err := registry.ParseID(s)
	return err == nil
}

func newestView(views []*store.ReleaseView) *store.ReleaseView {
	best := views[0]
	for _, v := range views[1:] {
		switch {
		case best.Yanked && !v.Yanked:
			best = v
		case best.Yanked == v.Yanked && registry.CompareVersions(v.Version, best.Version) > 0:
			best = v
		}
	}
	return best
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// Release returns the release an API {id} names.
func (n *Node) Release(ctx context.Context, id string) (*Release, error) {
	v, err := n.ResolveView(ctx, id)
	if err != nil {
		return nil, err
	}
	return releaseFromView(v, n.Trust(), n.Settings().Gates), nil
}

// crateViews returns the views of every version of a crate; ENOTFOUND when
// there is none.
func (n *Node) crateViews(op, name string) ([]*store.ReleaseView, error) {
	if err := registry.ValidateCrateName(name); err != nil {
		return nil, err
	}
	views, err := n.db.ViewsByName(name)
	if err != nil {
		return nil, err
	}
	if len(views) == 0 {
		return nil, registry.Errorf(op, registry.ENOTFOUND, "no crate named %s", name)
	}
	return views, nil
}

// Versions returns every version of a crate, oldest first by SemVer.
func (n *Node) Versions(ctx context.Context, name string) ([]*Release, error) {
	views, err := n.crateViews("node.Versions", name)
	if err != nil {
		return nil, err
	}
	trust := n.Trust()
	out := make([]*Release, 0, len(views))
	for _, v := range views {
		out = append(out, releaseFromView(v, trust, n.Settings().Gates))
	}
	slices.SortFunc(out, func(a, b *Release) int { return registry.CompareVersions(a.Version, b.Version) })
	return out, nil
}

// ListParams are the filters of GET /crates and the CLI's list.
type ListParams struct {
	Query   string // substring of the name, description or keywords (case-insensitive)
	Name    string // exact crate name
	Yanked  *bool  // nil: both
	Wasm    string // compatible | builds | partial | incompatible | untested | "" (any)
	GCReady *bool
	Dual    *bool
	Limit   int    // 1..1000, default 50
	Cursor  string // from a previous page
}

// MaxListLimit bounds a page.
const MaxListLimit = 1000

// ParseListParams reads list filters from query parameters, with a
// specific error for each bad value.
func ParseListParams(get func(string) string) (ListParams, error) {
	const op = "node.ParseListParams"
	p := ListParams{Query: get("q"), Name: get("name"), Wasm: get("wasm"), Cursor: get("cursor")}
	if p.Name != "" {
		if err := registry.ValidateCrateName(p.Name); err != nil {
			return p, err
		}
	}
	if len(p.Query) > 128 {
		return p, registry.Errorf(op, registry.EINVALID, "q is longer than 128 characters")
	}
	switch p.Wasm {
	case "", registry.WasmCompatible, registry.WasmBuilds, registry.WasmPartial, registry.WasmIncompatible, registry.WasmUntested:
	default:
		return p, registry.Errorf(op, registry.EINVALID, "wasm=%q: use compatible, builds, partial, incompatible or untested", truncate(p.Wasm, 40))
	}
	var err error
	for _, f := range []struct {
		name string
		dst  **bool
	}{{"yanked", &p.Yanked}, {"gc_ready", &p.GCReady}, {"dual", &p.Dual}} {
		if *f.dst, err = parseOptBool(f.name, get(f.name)); err != nil {
			return p, err
		}
	}
	if s := get("limit"); s != "" {
		l, err := strconv.Atoi(s)
		if err != nil || l < 1 || l > MaxListLimit {
			return p, registry.Errorf(op, registry.EINVALID, "limit=%q: use a whole number from 1 to %d", truncate(s, 40), MaxListLimit)
		}
		p.Limit = l
	}
	return p, nil
}

func parseOptBool(name, s string) (*bool, error) {
	switch strings.ToLower(s) {
	case "", "any", "all":
		return nil, nil
	case "true", "1", "yes":
		t := true
		return &t, nil
	case "false", "0", "no":
		f := false
		return &f, nil
	}
	return nil, registry.Errorf("node.ParseListParams", registry.EINVALID, "%s=%q: use true or false", name, truncate(s, 40))
}

// List returns releases in (name, version) order, filtered and paginated.
func (n *Node) List(ctx context.Context, p ListParams) (*Page, error) {
	const op = "node.List"
	if p.Limit == 0 {
		p.Limit = 50
	}
	q := store.ListQuery{Limit: p.Limit}
	if p.Cursor != "" {
		after, err := base64.RawURLEncoding.DecodeString(p.Cursor)
		if err != nil || !strings.Contains(string(after), "@") {
			return nil, registry.Errorf(op, registry.EINVALID, "cursor %q is not one this node gave out; start without a cursor", truncate(p.Cursor, 40))
		}
		q.After = string(after)
	}
	if p.Name != "" {
		q.Prefix, q.ExactName = p.Name, true
	}
	trust := n.Trust()
	needle := strings.ToLower(p.Query)
	if needle != "" || p.Yanked != nil || p.Wasm != "" || p.GCReady != nil || p.Dual != nil {
		q.Match = func(v *store.ReleaseView) bool {
			if p.Yanked != nil && v.Yanked != *p.Yanked {
				return false
			}
			if needle != "" && !MatchesQuery(v, needle) {
				return false
			}
			if p.Wasm == "" && p.GCReady == nil && p.Dual == nil {
				return true
			}
			tr := v.TrustedReport(trust.Tests(v.Name))
			if p.Wasm != "" {
				got := registry.WasmUntested
				if tr != nil {
					got = tr.Wasm
				}
				if got != p.Wasm {
					return false
				}
			}
			if p.GCReady != nil && (tr != nil && tr.GCReady) != *p.GCReady {
				return false
			}
			if p.Dual != nil && (tr != nil && tr.Dual) != *p.Dual {
				return false
			}
			return true
		}
	}
	if q.Match != nil && trust.Digest() == n.db.AuthorityDigest() {
		// The store's filter index, derived under this same trust, reads
		// only the views with one of the asked values; Match still checks
		// every filter on them.
		q.Filter = listFilter(p)
	}
	views, next, err := n.db.ListViews(q)
	if err != nil {
		return nil, err
	}
	page := &Page{Crates: make([]*Release, 0, len(views))}
	for _, v := range views {
		page.Crates = append(page.Crates, releaseFromView(v, trust, n.Settings().Gates))
	}
	if next != "" {
		page.NextCursor = base64.RawURLEncoding.EncodeToString([]byte(next))
	}
	return page, nil
}

// listFilter picks the filter the store's filter index serves for p (nil
// when p has none of them): the wasm verdict, else GC readiness, dual
// support, yanked.
func listFilter(p ListParams) *store.Filter {
	bv := func(b bool) string {
		if b {
			return "true"
		}
		return "false"
	}
	switch {
	case p.Wasm != "":
		return &store.Filter{Field: store.FilterWasm, Value: p.Wasm}
	case p.GCReady != nil:
		return &store.Filter{Field: store.FilterGCReady, Value: bv(*p.GCReady)}
	case p.Dual != nil:
		return &store.Filter{Field: store.FilterDual, Value: bv(*p.Dual)}
	case p.Yanked != nil:
		return &store.Filter{Field: store.FilterYanked, Value: bv(*p.Yanked)}
	}
	return nil
}

// MatchesQuery reports whether a release's name, description or a keyword
// contains needle, which must be lower case.
func MatchesQuery(v *store.ReleaseView, needle string) bool {
	if strings.Contains(strings.ToLower(v.Name), needle) || strings.Contains(strings.ToLower(v.Body.Description), needle) {
		return true
	}
	for _, k := range v.Body.Keywords {
		if strings.Contains(strings.ToLower(k), needle) {
			return true
		}
	}
	return false
}

// RecordBytes returns the canonical signed bytes of a record.
func (n *Node) RecordBytes(ctx context.Context, id string) ([]byte, *registry.Record, error) {
	rid, err := registry.ParseID(id)
	if err != nil {
		return nil, nil, err
	}
	r, err := n.db.GetRecord(rid)
	if err != nil {
		return nil, nil, err
	}
	return r.Bytes(), r, nil
}

// Download returns the verified .crate of a release, fetching it from peers
// (and keeping it) when this node lacks it.
func (n *Node) Download(ctx context.Context, id string) ([]byte, *Release, error) {
	v, err := n.ResolveView(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	b, err := n.blob(ctx, v.Body.BlobID())
	if err != nil {
		return nil, nil, err
	}
	return b, releaseFromView(v, n.Trust(), n.Settings().Gates), nil
}

// blob returns a blob from the store or, failing that, from peers.
func (n *Node) blob(ctx context.Context, id registry.ID) ([]byte, error) {
	b, err := n.db.GetBlob(id)
	if registry.KindOf(err) != registry.ENOTFOUND {
		return b, err
	}
	if n.net == nil {
		return nil, registry.Errorf("node.blob", registry.ENOTFOUND, "this node does not hold the archive %s and has no peers to fetch it from", id)
	}
	b, err = n.net.FetchBlob(ctx, id)
	if err != nil {
		return nil, registry.E("node.blob", registry.KindOf(err), fmt.Sprintf("this node does not hold the archive %s and no peer provided it", id), err)
	}
	if registry.Sum(b) != id {
		return nil, registry.Errorf("node.blob", registry.EINTERNAL, "a peer returned wrong bytes for %s", id)
	}
	if _, err := n.db.PutBlob(b); err != nil {
		return nil, err
	}
	return b, nil
}

// The JSON shapes of these are the REST contract's (package rest).
type Release = rest.Release
type YankInfo = rest.YankInfo
type ClaimInfo = rest.ClaimInfo
type ReportSummary = rest.ReportSummary
type ReviewSummary = rest.ReviewSummary
type Page = rest.Page
