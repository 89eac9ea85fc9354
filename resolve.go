package registry

import (
	"bytes"
	"cmp"
	"slices"
	"time"
)

// This file holds the conflict rules of DESIGN.md §2 as pure functions. The
// visible state is a function of the set of records alone (and of "now", for
// records too far in the future), so two nodes holding the same set show the
// same state whatever order the records arrived in.

// CompareNewest orders records by (time, author, ID), the order in which the
// greatest is the live record of a mutable kind.
func CompareNewest(a, b *Record) int {
	if c := cmp.Compare(a.Time, b.Time); c != 0 {
		return c
	}
	if c := bytes.Compare(a.Author, b.Author); c != 0 {
		return c
	}
	return a.id.Compare(b.id)
}

// CompareFirst orders records by (time, ID), the order in which the least
// release for a name@version wins.
func CompareFirst(a, b *Record) int {
	if c := cmp.Compare(a.Time, b.Time); c != 0 {
		return c
	}
	return a.id.Compare(b.id)
}

// OwnerStep is one change of a crate's owners: from Time on, Owners may
// publish and yank. Record is nil for the founding step.
type OwnerStep struct {
	Time   int64
	Owners []PublicKey
	Record *Record
}

// OwnerTimeline is the history of a crate's owners, oldest first.
type OwnerTimeline []OwnerStep

// BuildOwnerTimeline folds a crate's owners records in (time, author, ID)
// order, starting from the founder (the author of the crate's first release
// by (time, ID)) at the founding time. An owners record takes effect only if
// its author is an owner at its time; otherwise it is kept but not applied.
// It returns the timeline and the owners records that were not applied.
func BuildOwnerTimeline(founder *Record, owners []*Record) (OwnerTimeline, []*Record) {
	sorted := slices.Clone(owners)
	slices.SortFunc(sorted, CompareNewest)
	if founder == nil {
		return nil, sorted
	}
	tl := OwnerTimeline{{Time: founder.Time, Owners: []PublicKey{founder.Author}}}
	var rejected []*Record
	for _, o := range sorted {
		if !tl.Allows(o.Author, o.Time) {
			rejected = append(rejected, o)
			continue
		}
		body, err := o.DecodeBody()
		if err != nil {
			rejected = append(rejected, o)
			continue
		}
		tl = append(tl, OwnerStep{Time: o.Time, Owners: body.(*OwnersBody).Keys(), Record: o})
	}
	return tl, rejected
}

// At returns the owners in effect at time t (nil before the founding).
func (tl OwnerTimeline) At(t int64) []PublicKey {
	var cur []PublicKey
	for _, s := range tl {
		if s.Time > t {
			break
		}
		cur = s.Owners
	}
	return cur
}

// Allows reports whether key is an owner at time t.
func (tl OwnerTimeline) Allows(key PublicKey, t int64) bool {
	return slices.ContainsFunc(tl.At(t), key.Equal)
}

// Current returns the owners in effect now.
func (tl OwnerTimeline) Current() []PublicKey {
	if len(tl) == 0 {
		return nil
	}
	return tl[len(tl)-1].Owners
}

// ReleaseState is the resolved state of one name@version.
type ReleaseState struct {
	Subject string
	// Release is the winning release: the first authorized one by (time, ID),
	// or, when none is authorized, the first of all (then Unauthorized is set).
	Release      *Record
	Body         *ReleaseBody
	Unauthorized bool
	// Conflicts are the other releases for the same name@version, first
	// first. They are evidence and never win later.
	Conflicts []*Record
	// Yank is the live authorized yank record, nil when never yanked.
	Yank   *Record
	Yanked bool
	// Reports and Reviews hold the live record per author, newest first.
	Reports []*Record
	Reviews []*Record
	// Superseded holds records for this subject that are not live: older
	// yanks, reports and reviews, and yanks whose author was not an owner.
	Superseded []*Record
}

// CrateState is the resolved state of one crate name.
type CrateState struct {
	Name     string
	Founder  PublicKey
	Owners   OwnerTimeline
	Releases map[string]*ReleaseState // by version
	// Orphans are yanks, reports and reviews for versions with no release.
	Orphans []*Record
	// RejectedOwners are owners records whose author was not an owner.
	RejectedOwners []*Record
}

// ResolveCrate resolves all records about one crate name. Records not about
// name, not applicable at now (see Applicable) or duplicated are skipped, so
// the caller may pass any superset.
func ResolveCrate(name string, recs []*Record, now time.Time, maxSkew time.Duration) *CrateState {
	recs = dedupe(recs, func(r *Record) bool {
		return r.SubjectName() == name && Applicable(r, now, maxSkew)
	})
	cs := &CrateState{Name: name, Releases: map[string]*ReleaseState{}}

	var releases, owners, others []*Record
	for _, r := range recs {
		switch r.Kind {
		case KindRelease:
			releases = append(releases, r)
		case KindOwners:
			owners = append(owners, r)
		default:
			others = append(others, r)
		}
	}
	slices.SortFunc(releases, CompareFirst)
	var founder *Record
	if len(releases) > 0 {
		founder = releases[0]
		cs.Founder = founder.Author
	}
	cs.Owners, cs.RejectedOwners = BuildOwnerTimeline(founder, owners)

	bySubject := map[string][]*Record{}
	for _, r := range releases {
		bySubject[r.Subject] = append(bySubject[r.Subject], r)
	}
	for subject, rs := range bySubject { // rs is sorted by CompareFirst
		rel := &ReleaseState{Subject: subject}
		win := slices.IndexFunc(rs, func(r *Record) bool { return cs.Owners.Allows(r.Author, r.Time) })
		if win < 0 {
			win = 0
			rel.Unauthorized = true
		}
		rel.Release = rs[win]
		rel.Conflicts = slices.Delete(slices.Clone(rs), win, win+1)
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
			if !cs.Owners.Allows(r.Author, r.Time) {
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

// Resolve computes the state of a whole record set.
func Resolve(recs []*Record, now time.Time, maxSkew time.Duration) *State {
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
		st.Crates[n] = ResolveCrate(n, rs, now, maxSkew)
	}
	st.Keys = ResolveKeys(recs, now, maxSkew)
	slices.SortFunc(st.Unknown, CompareFirst)
	slices.SortFunc(st.Future, CompareFirst)
	return st
}
