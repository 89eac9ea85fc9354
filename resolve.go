package registry

import (
	"bytes"
	"cmp"
	"slices"
	"time"
)

// This file holds the conflict rules of DESIGN.md §2 as pure functions. The
// visible state is a function of the set of records and of the node's
// authority (its trust roots, and through them the key and checkpoint
// records it holds) — and of "now", for records too far in the future — so
// two nodes holding the same set under the same trust roots show the same
// state whatever order the records arrived in.

// CompareNewest orders records by (claimed time, author, ID), the order in
// which the greatest is the live record of a mutable kind among the
// authorized ones.
func CompareNewest(a, b *Record) int {
	if c := cmp.Compare(a.Time, b.Time); c != 0 {
		return c
	}
	if c := bytes.Compare(a.Author, b.Author); c != 0 {
		return c
	}
	return a.id.Compare(b.id)
}

// Witnessed gives the witnessed time of a record (DESIGN.md §2): the time of
// the earliest checkpoint by a witness of the node's Authority whose log
// includes it. ok is false while no such checkpoint does (the record is
// pending).
type WitnessFunc func(id ID) (t int64, ok bool)

// NoWitness is the WitnessFunc of a node that holds no checkpoints: every
// record is pending.
func NoWitness(ID) (int64, bool) { return 0, false }

// Order is where a record stands when the conflict rules ask who was first:
// witnessed records before pending ones, then by witnessed time (for
// pending records: their claimed time), then by claimed time, then by ID.
// A pending record can therefore never displace a witnessed one; the
// claimed time only orders records one checkpoint witnessed together (a
// release and the yank its owner signed a moment later), never across
// checkpoints.
type Order struct {
	Pending bool
	Time    int64
	Claimed int64
	ID      ID
}

// Compare orders a before b (negative), after (positive) or equal.
func (a Order) Compare(b Order) int {
	if a.Pending != b.Pending {
		if a.Pending {
			return 1
		}
		return -1
	}
	if c := cmp.Compare(a.Time, b.Time); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Claimed, b.Claimed); c != 0 {
		return c
	}
	return a.ID.Compare(b.ID)
}

// OrderOf returns r's Order under witness.
func OrderOf(r *Record, witness WitnessFunc) Order {
	if t, ok := witness(r.id); ok {
		return Order{Time: t, Claimed: r.Time, ID: r.id}
	}
	return Order{Pending: true, Time: r.Time, Claimed: r.Time, ID: r.id}
}

// Backdated reports whether r claims a time more than maxSkew before its
// witnessed time.
func Backdated(r *Record, witness WitnessFunc, maxSkew time.Duration) bool {
	t, ok := witness(r.id)
	return ok && r.Time < t-maxSkew.Milliseconds()
}

// OwnerStep is one change of a crate's owners: from At on, Owners may
// publish and yank. Record is the founding release for the first step and
// the owners record for the others.
type OwnerStep struct {
	At     Order
	Owners []PublicKey
	Record *Record
}

// OwnerTimeline is the history of a crate's owners, oldest first.
type OwnerTimeline []OwnerStep

// At returns the owners in effect at o (nil before the founding).
func (tl OwnerTimeline) At(o Order) []PublicKey {
	var cur []PublicKey
	for _, s := range tl {
		if s.At.Compare(o) > 0 {
			break
		}
		cur = s.Owners
	}
	return cur
}

// Allows reports whether key is an owner at o.
func (tl OwnerTimeline) Allows(key PublicKey, o Order) bool {
	return slices.ContainsFunc(tl.At(o), key.Equal)
}

// Current returns the owners in effect now.
func (tl OwnerTimeline) Current() []PublicKey {
	if len(tl) == 0 {
		return nil
	}
	return tl[len(tl)-1].Owners
}

// Claim is a release of a name@version that does not win: a later
// release, a backdated one, or one by an author without authority. It is
// kept as evidence and never wins later.
type Claim struct {
	Record     *Record
	Order      Order
	Authorized bool // its author could publish it (an authorized owner at its order)
	Backdated  bool // it claims a time more than MaxSkew before its witnessed time
}

// ReleaseState is the resolved state of one name@version.
type ReleaseState struct {
	Subject string
	// Release is the winning release: the first (by Order) whose author
	// was an owner with the publisher role at its Order; when there is no
	// such release, the first of all, with Unauthorized set: an untrusted
	// claim that is shown but never indexed or served.
	Release      *Record
	Body         *ReleaseBody
	Order        Order
	Unauthorized bool
	Backdated    bool
	// Conflicts are the other releases for the same name@version, first
	// first.
	Conflicts []Claim
	// Yank is the live authorized yank record, nil when never yanked.
	Yank   *Record
	Yanked bool
	// Reports and Reviews hold the live record per author, newest first,
	// whoever the author is: readers count those whose authors hold the
	// tester or reviewer role.
	Reports []*Record
	Reviews []*Record
	// Superseded holds records for this subject that are not live: older
	// yanks, reports and reviews, and yanks whose author was not an
	// authorized owner at its Order.
	Superseded []*Record
}

// CrateState is the resolved state of one crate name.
type CrateState struct {
	Name string
	// Founder is the author of the crate's first authorized release (nil
	// when no release is authorized).
	Founder PublicKey
	Owners  OwnerTimeline
	// Releases holds every version that has a release, authorized or not.
	Releases map[string]*ReleaseState // by version
	// Orphans are yanks, reports and reviews for versions with no release.
	Orphans []*Record
	// RejectedOwners are owners records whose author was not an authorized
	// owner at its Order.
	RejectedOwners []*Record
}

// ResolveCrate resolves all records about one crate name under auth and
// witness (DESIGN.md §2, "Authority and time"). Who was first — the
// founder, the release that wins a name@version, the order of owners
// changes — is decided by Order (witnessed time first); only authors that
// auth lets publish the crate found it, own it, publish, yank or change its
// owners. The yank that counts is the newest by claimed time among the
// authorized ones. Records not about name, not applicable at now (see
// Applicable) or duplicated are skipped, so the caller may pass any
// superset.
func ResolveCrate(name string, recs []*Record, now time.Time, maxSkew time.Duration, auth Authority, witness WitnessFunc) *CrateState {
	if witness == nil {
		witness = NoWitness
	}
	recs = dedupe(recs, func(r *Record) bool {
		return r.SubjectName() == name && Applicable(r, now, maxSkew)
	})
	cs := &CrateState{Name: name, Releases: map[string]*ReleaseState{}}
	publisher := func(k PublicKey) bool { return auth != nil && auth.May(k, RolePublisher, name) }

	type ordered struct {
		r *Record
		o Order
	}
	var releases, owners []ordered
	var others []*Record
	for _, r := range recs {
		switch r.Kind {
		case KindRelease:
			releases = append(releases, ordered{r, OrderOf(r, witness)})
		case KindOwners:
			owners = append(owners, ordered{r, OrderOf(r, witness)})
		default:
			others = append(others, r)
		}
	}
	byOrder := func(a, b ordered) int { return a.o.Compare(b.o) }
	slices.SortFunc(releases, byOrder)
	slices.SortFunc(owners, byOrder)

	// The founder is the author of the first release by a publisher.
	if i := slices.IndexFunc(releases, func(x ordered) bool { return publisher(x.r.Author) }); i >= 0 {
		f := releases[i]
		cs.Founder = f.r.Author
		cs.Owners = OwnerTimeline{{At: f.o, Owners: []PublicKey{f.r.Author}, Record: f.r}}
		for _, o := range owners {
			if o.o.Compare(f.o) < 0 || !cs.Owners.Allows(o.r.Author, o.o) || !publisher(o.r.Author) {
				cs.RejectedOwners = append(cs.RejectedOwners, o.r)
				continue
			}
			body, err := o.r.DecodeBody()
			if err != nil {
				cs.RejectedOwners = append(cs.RejectedOwners, o.r)
				continue
			}
			cs.Owners = append(cs.Owners, OwnerStep{At: o.o, Owners: body.(*OwnersBody).Keys(), Record: o.r})
		}
	} else {
		for _, o := range owners {
			cs.RejectedOwners = append(cs.RejectedOwners, o.r)
		}
	}
	authorized := func(r *Record, o Order) bool { return publisher(r.Author) && cs.Owners.Allows(r.Author, o) }

	bySubject := map[string][]ordered{}
	for _, x := range releases {
		bySubject[x.r.Subject] = append(bySubject[x.r.Subject], x)
	}
	for subject, rs := range bySubject { // rs is in Order
		rel := &ReleaseState{Subject: subject}
		win := slices.IndexFunc(rs, func(x ordered) bool { return authorized(x.r, x.o) })
		if win < 0 {
			win = 0
			rel.Unauthorized = true
		}
		rel.Release, rel.Order = rs[win].r, rs[win].o
		rel.Backdated = Backdated(rel.Release, witness, maxSkew)
		for i, x := range rs {
			if i != win {
				rel.Conflicts = append(rel.Conflicts, Claim{Record: x.r, Order: x.o,
					Authorized: authorized(x.r, x.o), Backdated: Backdated(x.r, witness, maxSkew)})
			}
		}
		body, _ := rel.Release.DecodeBody()
		rel.Body, _ = body.(*ReleaseBody)
		cs.Releases[rel.Body.Version] = rel
	}

	for _, r := range others {
		_, version, ok := cutSubject(r.Subject)
		rel := cs.Releases[version]
		if !ok || rel == nil || rel.Subject != r.Subject {
			cs.Orphans = append(cs.Orphans, r)
			continue
		}
		switch r.Kind {
		case KindYank:
			if !authorized(r, OrderOf(r, witness)) {
				rel.Superseded = append(rel.Superseded, r)
				continue
			}
			if rel.Yank == nil || CompareNewest(r, rel.Yank) > 0 {
				if rel.Yank != nil {
					rel.Superseded = append(rel.Superseded, rel.Yank)
				}
				rel.Yank = r
			} else {
				rel.Superseded = append(rel.Superseded, r)
			}
		case KindReport:
			rel.Reports, rel.Superseded = livePerAuthor(rel.Reports, rel.Superseded, r)
		case KindReview:
			rel.Reviews, rel.Superseded = livePerAuthor(rel.Reviews, rel.Superseded, r)
		default:
			cs.Orphans = append(cs.Orphans, r)
		}
	}
	for _, rel := range cs.Releases {
		if rel.Yank != nil {
			if b, err := rel.Yank.DecodeBody(); err == nil {
				rel.Yanked = b.(*YankBody).Yanked
			}
		}
		slices.SortFunc(rel.Reports, func(a, b *Record) int { return CompareNewest(b, a) })
		slices.SortFunc(rel.Reviews, func(a, b *Record) int { return CompareNewest(b, a) })
		slices.SortFunc(rel.Superseded, CompareNewest)
	}
	slices.SortFunc(cs.Orphans, CompareNewest)
	slices.SortFunc(cs.RejectedOwners, CompareNewest)
	return cs
}

// livePerAuthor keeps the newest record per author in live and moves the
// loser to superseded.
func livePerAuthor(live, superseded []*Record, r *Record) ([]*Record, []*Record) {
	i := slices.IndexFunc(live, func(x *Record) bool { return x.Author.Equal(r.Author) })
	switch {
	case i < 0:
		return append(live, r), superseded
	case CompareNewest(r, live[i]) > 0:
		superseded = append(superseded, live[i])
		live[i] = r
		return live, superseded
	default:
		return live, append(superseded, r)
	}
}

func cutSubject(s string) (name, version string, ok bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '@' {
			return s[:i], s[i+1:], true
		}
	}
	return "", "", false
}

func dedupe(recs []*Record, keep func(*Record) bool) []*Record {
	seen := make(map[ID]struct{}, len(recs))
	out := make([]*Record, 0, len(recs))
	for _, r := range recs {
		if _, dup := seen[r.id]; dup || !keep(r) {
			continue
		}
		seen[r.id] = struct{}{}
		out = append(out, r)
	}
	return out
}

// KeyState is the live key record per (key ID, author).
type KeyState map[string][]*Record

// ResolveKeys returns, for every key ID, the live key record of each author,
// newest first. Which authors count is local trust policy, not decided here.
func ResolveKeys(recs []*Record, now time.Time, maxSkew time.Duration) KeyState {
	recs = dedupe(recs, func(r *Record) bool { return r.Kind == KindKey && Applicable(r, now, maxSkew) })
	ks := KeyState{}
	for _, r := range recs {
		ks[r.Subject], _ = livePerAuthor(ks[r.Subject], nil, r)
	}
	for _, rs := range ks {
		slices.SortFunc(rs, func(a, b *Record) int { return CompareNewest(b, a) })
	}
	return ks
}

// State is the whole resolved state of a record set.
type State struct {
	Crates  map[string]*CrateState
	Keys    KeyState
	Unknown []*Record // records of kinds this node does not apply
	Future  []*Record // records held back because they are too far ahead of now
}

// Resolve computes the state of a whole record set under auth and witness.
func Resolve(recs []*Record, now time.Time, maxSkew time.Duration, auth Authority, witness WitnessFunc) *State {
	st := &State{Crates: map[string]*CrateState{}}
	recs = dedupe(recs, func(*Record) bool { return true })
	byName := map[string][]*Record{}
	for _, r := range recs {
		switch {
		case !Applicable(r, now, maxSkew):
			st.Future = append(st.Future, r)
		case !r.Kind.Known():
			st.Unknown = append(st.Unknown, r)
		case r.Kind == KindKey:
		default:
			if n := r.SubjectName(); n != "" {
				byName[n] = append(byName[n], r)
			}
		}
	}
	for n, rs := range byName {
		st.Crates[n] = ResolveCrate(n, rs, now, maxSkew, auth, witness)
	}
	st.Keys = ResolveKeys(recs, now, maxSkew)
	slices.SortFunc(st.Unknown, CompareNewest)
	slices.SortFunc(st.Future, CompareNewest)
	return st
}

// WitnessUnder returns the WitnessFunc of the checkpoints in recs under
// auth: a record's witnessed time is the earliest time a checkpoint by one
// of auth's witnesses included it.
func WitnessUnder(recs []*Record, auth Authority) WitnessFunc {
	best := map[ID]int64{}
	for _, cr := range Witness(recs) {
		if auth == nil || !auth.Witness(cr.Author) {
			continue
		}
		for id, w := range cr.Times {
			if t, ok := best[id]; !ok || w.Time < t {
				best[id] = w.Time
			}
		}
	}
	return func(id ID) (int64, bool) {
		t, ok := best[id]
		return t, ok
	}
}

// ResolveUnder computes the state of a whole record set under the trust
// roots alone: the authority is derived from roots and the set's key
// records, witnessed times from the set's checkpoints by that authority's
// witnesses. It is the whole rule of DESIGN.md §2: the same roots and the
// same set give the same state.
func ResolveUnder(recs []*Record, now time.Time, maxSkew time.Duration, roots []PublicKey) *State {
	auth := NewTrust(roots, recs, now, maxSkew)
	return Resolve(recs, now, maxSkew, auth, WitnessUnder(recs, auth))
}
