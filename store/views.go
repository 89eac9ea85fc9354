package store

import (
	"bytes"
	"errors"
	"slices"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/fxamacker/cbor/v2"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// ReleaseView is the derived, queryable state of one name@version: the
// winning release and everything that the conflict rules attach to it. It is
// a cache of registry.ResolveCrate over the crate's records under the
// store's Authority and witnessed times, rebuilt whenever a record about the
// crate arrives, a checkpoint witnesses one, or the Authority changes.
// Reports and reviews are listed with their authors, whoever they are:
// readers count those whose authors hold the tester or reviewer role.
type ReleaseView struct {
	Name         string               `cbor:"1,keyasint"`
	Version      string               `cbor:"2,keyasint"`
	Release      registry.ID          `cbor:"3,keyasint"`
	Author       registry.PublicKey   `cbor:"4,keyasint"`
	Time         int64                `cbor:"5,keyasint"`
	Body         registry.ReleaseBody `cbor:"6,keyasint"`
	Unauthorized bool                 `cbor:"7,keyasint,omitempty"`
	// 8 held conflicting release IDs before claims (15) replaced it.
	Yanked     bool                 `cbor:"9,keyasint,omitempty"`
	Yank       *RecordRef           `cbor:"10,keyasint,omitempty"`
	YankReason string               `cbor:"11,keyasint,omitempty"`
	Reports    []ReportRef          `cbor:"12,keyasint,omitempty"`
	Reviews    []ReviewRef          `cbor:"13,keyasint,omitempty"`
	Owners     []registry.PublicKey `cbor:"14,keyasint,omitempty"`
	// Claims are the other releases of this name@version, first first.
	Claims []ClaimRef `cbor:"15,keyasint,omitempty"`
	// Witnessed is the winning release's witnessed time (0: pending, no
	// trusted checkpoint includes it yet).
	Witnessed int64 `cbor:"16,keyasint,omitempty"`
	// Backdated: the winning release claims a time more than MaxSkew
	// before its witnessed time.
	Backdated bool `cbor:"17,keyasint,omitempty"`
	// A view lists every claim, report and review whose author the
	// Authority trusts for it (authorized claims; reports by testers and
	// reviews by reviewers of the crate), and at most MaxUntrusted others
	// of each: the first claims by Order, the newest reports and reviews.
	// These flags say that more were left out, so that a flood from fresh
	// keys cannot grow a view (see ApplyCaps).
	ClaimsOmitted  bool `cbor:"18,keyasint,omitempty"`
	ReportsOmitted bool `cbor:"19,keyasint,omitempty"`
	ReviewsOmitted bool `cbor:"20,keyasint,omitempty"`
	// Filters are the values the view is indexed under in the filter
	// index, in filterFields order, as they were when it was written
	// (store-internal: putView sets it).
	Filters []string `cbor:"21,keyasint,omitempty" json:"-"`
}

// MaxUntrusted is how many untrusted claims, reports and reviews a view
// lists, each.
const MaxUntrusted = 32

// ClaimRef is a release that does not win its name@version: evidence of a
// conflict, of backdating, or an untrusted claim.
type ClaimRef struct {
	RecordRef  `cbor:"1,keyasint"`
	Witnessed  int64 `cbor:"2,keyasint,omitempty"` // 0: pending
	Authorized bool  `cbor:"3,keyasint,omitempty"`
	Backdated  bool  `cbor:"4,keyasint,omitempty"`
}

// RecordRef names a record and who made it when.
type RecordRef struct {
	ID     registry.ID        `cbor:"1,keyasint"`
	Author registry.PublicKey `cbor:"2,keyasint"`
	Time   int64              `cbor:"3,keyasint"`
}

// ReportRef is the summary of a live report (one per author), newest first.
type ReportRef struct {
	RecordRef `cbor:"1,keyasint"`
	Release   registry.ID `cbor:"2,keyasint"` // the release record the report tested
	Outcome   string      `cbor:"3,keyasint"`
	Wasm      string      `cbor:"4,keyasint"`
	GCReady   bool        `cbor:"5,keyasint"`
	Dual      bool        `cbor:"6,keyasint"`
	Score     uint64      `cbor:"7,keyasint"`
	Gate      string      `cbor:"8,keyasint"`
	Reason    string      `cbor:"9,keyasint,omitempty"` // for verdict builds: why the tests were not run
	// Figures the gates' performance thresholds read (0: not measured).
	TimeRatio  uint64 `cbor:"10,keyasint,omitempty"` // wasm/native time ×1000
	WasmSize   uint64 `cbor:"11,keyasint,omitempty"` // bytes of the largest wasm module that is not a test
	PeakMemory uint64 `cbor:"12,keyasint,omitempty"` // bytes, peak memory of the wasm tests
}

// reportRef summarises a report for a view.
func reportRef(r *registry.Record, b *registry.ReportBody) ReportRef {
	ratio, size, peak := b.Figures()
	return ReportRef{
		RecordRef: ref(r), Release: b.ReleaseID(), Outcome: b.Outcome, Wasm: b.Wasm,
		GCReady: b.GCReady, Dual: b.Dual, Score: b.Score, Gate: b.Gate, Reason: b.Reason,
		TimeRatio: ratio, WasmSize: size, PeakMemory: peak,
	}
}

// ReviewRef is a live review (one per author), newest first.
type ReviewRef struct {
	RecordRef `cbor:"1,keyasint"`
	Verdict   string `cbor:"2,keyasint"`
	Comment   string `cbor:"3,keyasint,omitempty"`
}

// Subject returns "name@version".
func (v *ReleaseView) Subject() string { return registry.ReleaseSubject(v.Name, v.Version) }

// TrustedReport returns the newest live report about the winning release
// whose author trusted accepts, or nil.
func (v *ReleaseView) TrustedReport(trusted func(registry.PublicKey) bool) *ReportRef {
	for i := range v.Reports {
		r := &v.Reports[i]
		if r.Release == v.Release && trusted(r.Author) {
			return r
		}
	}
	return nil
}

func viewKey(name, version string) []byte {
	k := make([]byte, 0, 2+len(name)+len(version))
	k = append(k, pView)
	k = append(k, name...)
	k = append(k, 0)
	return append(k, version...)
}

func ref(r *registry.Record) RecordRef {
	return RecordRef{ID: r.ID(), Author: r.Author, Time: r.Time}
}

// buildViews turns a resolved crate into views, capped (see capView).
func buildViews(cs *registry.CrateState, auth registry.Authority) []*ReleaseView {
	out := make([]*ReleaseView, 0, len(cs.Releases))
	for _, rs := range cs.Releases {
		v := &ReleaseView{
			Name:         rs.Body.Name,
			Version:      rs.Body.Version,
			Release:      rs.Release.ID(),
			Author:       rs.Release.Author,
			Time:         rs.Release.Time,
			Body:         *rs.Body,
			Unauthorized: rs.Unauthorized,
			Yanked:       rs.Yanked,
			Owners:       cs.Owners.Current(),
			Backdated:    rs.Backdated,
		}
		if !rs.Order.Pending {
			v.Witnessed = rs.Order.Time
		}
		for _, c := range rs.Conflicts {
			cr := ClaimRef{RecordRef: ref(c.Record), Authorized: c.Authorized, Backdated: c.Backdated}
			if !c.Order.Pending {
				cr.Witnessed = c.Order.Time
			}
			v.Claims = append(v.Claims, cr)
		}
		if rs.Yank != nil {
			yr := ref(rs.Yank)
			v.Yank = &yr
			if b, err := rs.Yank.DecodeBody(); err == nil {
				v.YankReason = b.(*registry.YankBody).Reason
			}
		}
		for _, r := range rs.Reports {
			b, err := r.DecodeBody()
			if err != nil {
				continue
			}
			rb := b.(*registry.ReportBody)
			v.Reports = append(v.Reports, reportRef(r, rb))
		}
		for _, r := range rs.Reviews {
			b, err := r.DecodeBody()
			if err != nil {
				continue
			}
			rb := b.(*registry.ReviewBody)
			v.Reviews = append(v.Reviews, ReviewRef{RecordRef: ref(r), Verdict: rb.Verdict, Comment: rb.Comment})
		}
		capView(v, auth)
		out = append(out, v)
	}
	return out
}

// capView keeps in v's lists every entry whose author auth trusts for it
// and the first MaxUntrusted others of each list (claims are first first,
// reports and reviews newest first), setting the Omitted flags when more
// were left out. Every path that writes a view applies it, so a view
// updated in place equals one derived again.
func capView(v *ReleaseView, auth registry.Authority) {
	var o bool
	v.Claims, o = capList(v.Claims, func(c *ClaimRef) bool { return c.Authorized })
	v.ClaimsOmitted = v.ClaimsOmitted || o
	v.Reports, o = capList(v.Reports, func(r *ReportRef) bool { return auth.May(r.Author, registry.RoleTester, v.Name) })
	v.ReportsOmitted = v.ReportsOmitted || o
	v.Reviews, o = capList(v.Reviews, func(r *ReviewRef) bool { return auth.May(r.Author, registry.RoleReviewer, v.Name) })
	v.ReviewsOmitted = v.ReviewsOmitted || o
}

// capList keeps the trusted entries of list and its first MaxUntrusted
// others, in order; omitted reports whether any was dropped.
func capList[T any](list []T, trusted func(*T) bool) (out []T, omitted bool) {
	n := 0
	out = list[:0]
	for i := range list {
		if !trusted(&list[i]) {
			if n == MaxUntrusted {
				omitted = true
				continue
			}
			n++
		}
		out = append(out, list[i])
	}
	return out, omitted
}

// writeViews resolves crate name from all of its records and writes its
// views in txn. With fresh, the filter index holds no entries of the
// crate (it was dropped), so every entry is written anew. writeMu must be
// held.
func (db *DB) writeViews(txn *badger.Txn, name string, recs []*registry.Record, fresh bool) error {
	const op = "store.writeViews"
	db.derived.Add(1)
	auth := db.authority()
	cs := registry.ResolveCrate(name, recs, db.opts.Now(), db.opts.MaxSkew, auth, db.witness(txn, auth))
	for _, v := range buildViews(cs, auth) {
		var was viewWas
		if !fresh {
			var err error
			if was, err = readWas(txn, v.Name, v.Version); err != nil {
				return err
			}
		}
		if err := putView(txn, v, was, auth); err != nil {
			return registry.E(op, registry.KindOf(err), "writing the views of "+name, err)
		}
	}
	return nil
}

// viewDec decodes views, which this store wrote itself: no canonical-form
// check is needed, unlike for signed data.
var viewDec, _ = cbor.DecOptions{}.DecMode()

func decodeView(b []byte) (*ReleaseView, error) {
	v := new(ReleaseView)
	if err := viewDec.Unmarshal(b, v); err != nil {
		return nil, registry.E("store.decodeView", registry.EINTERNAL, "stored release view is corrupt", err)
	}
	return v, nil
}

// GetView returns the view of name@version; ENOTFOUND when there is no
// release of it.
func (db *DB) GetView(name, version string) (*ReleaseView, error) {
	const op = "store.GetView"
	var v *ReleaseView
	err := db.bdb.View(func(txn *badger.Txn) error {
		it, err := txn.Get(viewKey(name, version))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return notFound(op, "release "+registry.ReleaseSubject(name, version))
		}
		if err != nil {
			return internal(op, err)
		}
		return it.Value(func(b []byte) error {
			v, err = decodeView(b)
			return err
		})
	})
	return v, err
}

// ViewsByName returns the views of every version of crate name, in version
// string order.
func (db *DB) ViewsByName(name string) ([]*ReleaseView, error) {
	views, _, err := db.ListViews(ListQuery{Prefix: name, ExactName: true})
	return views, err
}

// ListQuery selects release views.
type ListQuery struct {
	// After is an opaque cursor from a previous page ("" = from the start).
	After string
	// Limit is the page size; 0 means no limit.
	Limit int
	// Prefix restricts to names starting with Prefix; with ExactName, to the
	// name Prefix itself.
	Prefix    string
	ExactName bool
	// Match, when set, keeps only views for which it returns true.
	Match func(*ReleaseView) bool
	// Filter, when set, keeps only views whose Filter.Field has
	// Filter.Value, read through the filter index: the views read are
	// those that have the value, not every view. Match applies on top.
	Filter *Filter
}

// ListViews returns views in (name, version) byte order, and the cursor of
// the next page ("" when there is none).
func (db *DB) ListViews(q ListQuery) ([]*ReleaseView, string, error) {
	const op = "store.ListViews"
	var out []*ReleaseView
	next := ""
	prefix := []byte{pView}
	prefix = append(prefix, q.Prefix...)
	if q.ExactName {
		prefix = append(prefix, 0)
	}
	start := prefix
	if q.After != "" {
		name, version, _ := strings.Cut(q.After, "@")
		start = append(viewKey(name, version), 0) // strictly after the cursor
		if bytes.Compare(start, prefix) < 0 {
			start = prefix
		}
	}
	err := db.bdb.View(func(txn *badger.Txn) error {
		if q.Filter != nil && db.filtersReady.Load() {
			var err error
			out, next, err = db.listFiltered(txn, q)
			return err
		}
		if q.Filter != nil {
			f, match, auth := *q.Filter, q.Match, db.authority()
			q.Match = func(v *ReleaseView) bool {
				return matchFilter(v, f, auth) && (match == nil || match(v))
			}
		}
		o := badger.DefaultIteratorOptions
		o.Prefix = prefix
		o.PrefetchSize = 64
		if q.Limit > 0 && q.Match == nil {
			o.PrefetchSize = q.Limit + 1
		}
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Seek(start); it.Valid(); it.Next() {
			var v *ReleaseView
			err := it.Item().Value(func(b []byte) error {
				var err error
				v, err = decodeView(b)
				return err
			})
			if err != nil {
				return err
			}
			if q.Match != nil && !q.Match(v) {
				continue
			}
			if q.Limit > 0 && len(out) == q.Limit {
				last := out[len(out)-1]
				next = last.Subject()
				return nil
			}
			out = append(out, v)
		}
		return nil
	})
	if err != nil {
		return nil, "", registry.E(op, registry.KindOf(err), "listing releases", err)
	}
	return out, next, nil
}

// compareRefs orders record refs as registry.CompareNewest orders records:
// by (claimed time, author, ID).
func compareRefs(a, b RecordRef) int {
	if a.Time != b.Time {
		if a.Time < b.Time {
			return -1
		}
		return 1
	}
	if c := bytes.Compare(a.Author, b.Author); c != 0 {
		return c
	}
	return a.ID.Compare(b.ID)
}

// livePerAuthorRef keeps the newest ref per author, as registry's conflict
// rules do for reports and reviews. It reports whether r changed list.
func livePerAuthorRef[T any](list []T, r T, ref func(*T) *RecordRef) ([]T, bool) {
	nr := ref(&r)
	for i := range list {
		cur := ref(&list[i])
		if !cur.Author.Equal(nr.Author) {
			continue
		}
		if compareRefs(*nr, *cur) <= 0 {
			return list, false
		}
		list[i] = r
		return list, true
	}
	return append(list, r), true
}

// inPlace reports whether every record of batch, all about crate name,
// changes its views in a way that can be applied to them in place:
// reports and reviews, and releases, yanks and owners records by authors
// auth does not let publish name, which can never found, own, publish or
// yank it. Such records are what a stranger can send in bulk, so they must
// not derive the crate's views from all of its records again.
func inPlace(batch []*registry.Record, auth registry.Authority, name string) bool {
	for _, r := range batch {
		switch r.Kind {
		case registry.KindReport, registry.KindReview:
		case registry.KindRelease, registry.KindYank, registry.KindOwners:
			if auth.May(r.Author, registry.RolePublisher, name) {
				return false
			}
		default:
			return false
		}
	}
	return len(batch) > 0
}

// claimOrder is the Order of a claim, or of a view's winning release.
func claimOrder(id registry.ID, time, witnessed int64) registry.Order {
	if witnessed != 0 {
		return registry.Order{Time: witnessed, Claimed: time, ID: id}
	}
	return registry.Order{Pending: true, Time: time, Claimed: time, ID: id}
}

// applyInPlace applies a batch for which inPlace holds to the views of
// crate name, with the same result as deriving them again
// (TestIncrementalViewsEqualRebuilt):
//   - an untrusted release of a version that has a view is a claim,
//     inserted in Order, or, when the view is itself an untrusted claim
//     that the release precedes, the release wins and the old winner
//     becomes a claim;
//   - an untrusted release of a new version makes its view from the
//     records of that name@version alone, unless one of them is a release
//     or yank by a publisher (ok is then false: derive the crate again);
//   - untrusted yanks and owners records change no view;
//   - reports and reviews replace their author's older one; about a
//     version with no release they are orphans that no view shows.
//
// Every view written is capped (capView). rtxn reads the committed records;
// writeMu must be held.
func (db *DB) applyInPlace(txn, rtxn *badger.Txn, name string, batch []*registry.Record) (ok bool, err error) {
	const op = "store.applyInPlace"
	now, skew := db.opts.Now(), db.opts.MaxSkew
	auth := db.authority()
	witness := db.witness(txn, auth)
	views := map[string]*ReleaseView{}
	was := map[string]viewWas{}
	dirty := map[string]bool{}
	get := func(version string) (*ReleaseView, error) {
		if v, ok := views[version]; ok {
			return v, nil
		}
		it, err := txn.Get(viewKey(name, version))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, internal(op, err)
		}
		var v *ReleaseView
		if err := it.Value(func(b []byte) error {
			var derr error
			v, derr = decodeView(b)
			return derr
		}); err != nil {
			return nil, err
		}
		views[version], was[version] = v, wasView(v)
		return v, nil
	}
	var releases, verdicts []*registry.Record
	for _, r := range batch {
		if !registry.Applicable(r, now, skew) {
			continue
		}
		switch r.Kind {
		case registry.KindRelease:
			releases = append(releases, r)
		case registry.KindReport, registry.KindReview:
			verdicts = append(verdicts, r)
		}
	}
	done := map[registry.ID]bool{}
	for _, r := range releases {
		if done[r.ID()] {
			continue
		}
		_, version, _ := strings.Cut(r.Subject, "@")
		v, err := get(version)
		if err != nil {
			return false, err
		}
		if v == nil {
			if v, err = db.subjectView(rtxn, name, r.Subject, batch, auth, witness); v == nil || err != nil {
				return false, err
			}
			for _, x := range batch {
				if x.Subject == r.Subject {
					done[x.ID()] = true
				}
			}
			views[version], was[version], dirty[version] = v, nil, true
			continue
		}
		o := registry.OrderOf(r, witness)
		c := ClaimRef{RecordRef: ref(r), Backdated: registry.Backdated(r, witness, skew)}
		if !o.Pending {
			c.Witnessed = o.Time
		}
		if v.Unauthorized && o.Compare(claimOrder(v.Release, v.Time, v.Witnessed)) < 0 {
			body, err := r.DecodeBody()
			if err != nil {
				return false, registry.E(op, registry.EINTERNAL, "a stored release does not decode", err)
			}
			old := ClaimRef{RecordRef: RecordRef{ID: v.Release, Author: v.Author, Time: v.Time}, Witnessed: v.Witnessed, Backdated: v.Backdated}
			v.Release, v.Author, v.Time, v.Body = r.ID(), r.Author, r.Time, *body.(*registry.ReleaseBody)
			v.Witnessed, v.Backdated = c.Witnessed, c.Backdated
			c = old
		}
		co := claimOrder(c.ID, c.Time, c.Witnessed)
		i, _ := slices.BinarySearchFunc(v.Claims, co, func(x ClaimRef, o registry.Order) int {
			return claimOrder(x.ID, x.Time, x.Witnessed).Compare(o)
		})
		v.Claims = slices.Insert(v.Claims, i, c)
		dirty[version] = true
	}
	for _, r := range verdicts {
		if done[r.ID()] {
			continue
		}
		_, version, _ := strings.Cut(r.Subject, "@")
		v, err := get(version)
		if err != nil {
			return false, err
		}
		if v == nil {
			continue
		}
		b, err := r.DecodeBody()
		if err != nil {
			continue
		}
		var did bool
		switch body := b.(type) {
		case *registry.ReportBody:
			v.Reports, did = livePerAuthorRef(v.Reports, reportRef(r, body), func(x *ReportRef) *RecordRef { return &x.RecordRef })
			slices.SortFunc(v.Reports, func(a, b ReportRef) int { return compareRefs(b.RecordRef, a.RecordRef) })
		case *registry.ReviewBody:
			v.Reviews, did = livePerAuthorRef(v.Reviews, ReviewRef{RecordRef: ref(r), Verdict: body.Verdict, Comment: body.Comment},
				func(x *ReviewRef) *RecordRef { return &x.RecordRef })
			slices.SortFunc(v.Reviews, func(a, b ReviewRef) int { return compareRefs(b.RecordRef, a.RecordRef) })
		}
		dirty[version] = dirty[version] || did
	}
	for version := range dirty {
		v := views[version]
		capView(v, auth)
		if err := putView(txn, v, was[version], auth); err != nil {
			return false, err
		}
	}
	return true, nil
}

// subjectView derives the view of a version that has none yet from the
// records of subject alone (those held and those of batch), when none of
// them is a release or yank by a publisher of name: then no owner history
// matters to it, and its owners are the crate's current ones, as any other
// view of the crate holds them. It returns nil when that does not hold.
func (db *DB) subjectView(rtxn *badger.Txn, name, subject string, batch []*registry.Record, auth registry.Authority, witness registry.WitnessFunc) (*ReleaseView, error) {
	held, err := db.readIndexed(rtxn, sepPrefix(pSubject, subject))
	if err != nil {
		return nil, err
	}
	recs := held
	for _, r := range batch {
		if r.Subject == subject {
			recs = append(recs, r)
		}
	}
	for _, r := range recs {
		if (r.Kind == registry.KindRelease || r.Kind == registry.KindYank) && auth.May(r.Author, registry.RolePublisher, name) {
			return nil, nil
		}
	}
	cs := registry.ResolveCrate(name, recs, db.opts.Now(), db.opts.MaxSkew, auth, witness)
	vs := buildViews(cs, auth)
	if len(vs) != 1 {
		return nil, nil
	}
	v := vs[0]
	o := badger.DefaultIteratorOptions
	o.Prefix = viewKey(name, "")
	it := rtxn.NewIterator(o)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		err := it.Item().Value(func(b []byte) error {
			other, err := decodeView(b)
			if err == nil {
				v.Owners = other.Owners
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		break
	}
	return v, nil
}
