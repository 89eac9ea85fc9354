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
}

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

// buildViews turns a resolved crate into views.
func buildViews(cs *registry.CrateState) []*ReleaseView {
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
			v.Reports = append(v.Reports, ReportRef{
				RecordRef: ref(r), Release: rb.ReleaseID(), Outcome: rb.Outcome, Wasm: rb.Wasm,
				GCReady: rb.GCReady, Dual: rb.Dual, Score: rb.Score, Gate: rb.Gate, Reason: rb.Reason,
			})
		}
		for _, r := range rs.Reviews {
			b, err := r.DecodeBody()
			if err != nil {
				continue
			}
			rb := b.(*registry.ReviewBody)
			v.Reviews = append(v.Reviews, ReviewRef{RecordRef: ref(r), Verdict: rb.Verdict, Comment: rb.Comment})
		}
		out = append(out, v)
	}
	return out
}

// writeViews resolves crate name from all of its records and writes its
// views in txn. writeMu must be held.
func (db *DB) writeViews(txn *badger.Txn, name string, recs []*registry.Record) error {
	const op = "store.writeViews"
	auth := db.authority()
	cs := registry.ResolveCrate(name, recs, db.opts.Now(), db.opts.MaxSkew, auth, db.witness(txn, auth))
	for _, v := range buildViews(cs) {
		b, err := registry.Marshal(v)
		if err != nil {
			return registry.E(op, registry.EINTERNAL, "encoding a release view", err)
		}
		if err := txn.Set(viewKey(v.Name, v.Version), b); err != nil {
			return wrapTxn(op, err)
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

// onlyVerdicts reports whether every record of recs is a report or a
// review: records that change one release's view and nothing else, so the
// view can be updated in place instead of derived from all the crate's
// records again.
func onlyVerdicts(recs []*registry.Record) bool {
	for _, r := range recs {
		if r.Kind != registry.KindReport && r.Kind != registry.KindReview {
			return false
		}
	}
	return len(recs) > 0
}

// applyVerdicts adds reports and reviews to the views of the releases
// they are about, with the same result as deriving the views again
// (TestIncrementalViewsEqualRebuilt): the live record per author is the
// greatest by (time, author, ID), lists are newest first, and a verdict
// about a version with no release is an orphan that no view shows.
// writeMu must be held.
func (db *DB) applyVerdicts(txn *badger.Txn, recs []*registry.Record) error {
	const op = "store.applyVerdicts"
	now, skew := db.opts.Now(), db.opts.MaxSkew
	bySubject := map[string][]*registry.Record{}
	for _, r := range recs {
		if registry.Applicable(r, now, skew) {
			bySubject[r.Subject] = append(bySubject[r.Subject], r)
		}
	}
	for subject, rs := range bySubject {
		name, version, ok := strings.Cut(subject, "@")
		if !ok {
			continue
		}
		it, err := txn.Get(viewKey(name, version))
		if errors.Is(err, badger.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return internal(op, err)
		}
		var v *ReleaseView
		if err := it.Value(func(b []byte) error {
			var derr error
			v, derr = decodeView(b)
			return derr
		}); err != nil {
			return err
		}
		changed := false
		for _, r := range rs {
			b, err := r.DecodeBody()
			if err != nil {
				continue
			}
			var did bool
			switch body := b.(type) {
			case *registry.ReportBody:
				v.Reports, did = livePerAuthorRef(v.Reports, ReportRef{
					RecordRef: ref(r), Release: body.ReleaseID(), Outcome: body.Outcome, Wasm: body.Wasm,
					GCReady: body.GCReady, Dual: body.Dual, Score: body.Score, Gate: body.Gate, Reason: body.Reason,
				}, func(x *ReportRef) *RecordRef { return &x.RecordRef })
			case *registry.ReviewBody:
				v.Reviews, did = livePerAuthorRef(v.Reviews, ReviewRef{RecordRef: ref(r), Verdict: body.Verdict, Comment: body.Comment},
					func(x *ReviewRef) *RecordRef { return &x.RecordRef })
			}
			changed = changed || did
		}
		if !changed {
			continue
		}
		slices.SortFunc(v.Reports, func(a, b ReportRef) int { return compareRefs(b.RecordRef, a.RecordRef) })
		slices.SortFunc(v.Reviews, func(a, b ReviewRef) int { return compareRefs(b.RecordRef, a.RecordRef) })
		vb, err := registry.Marshal(v)
		if err != nil {
			return registry.E(op, registry.EINTERNAL, "encoding a release view", err)
		}
		if err := txn.Set(viewKey(name, version), vb); err != nil {
			return wrapTxn(op, err)
		}
	}
	return nil
}
