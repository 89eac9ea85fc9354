package registry

import (
	"fmt"
	"math/rand"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

var rt0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func mustSign(t testing.TB, k PrivateKey, kind Kind, subject string, body any, at time.Time) *Record {
	t.Helper()
	r, err := Sign(k, kind, subject, body, at)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func rel(t testing.TB, k PrivateKey, name, version string, at time.Time, content string) *Record {
	id := Sum([]byte(content))
	return mustSign(t, k, KindRelease, ReleaseSubject(name, version),
		&ReleaseBody{Name: name, Version: version, Cksum: id.Hex(), Blob: id.Bytes(), Size: uint64(len(content))}, at)
}

// summary renders a State deterministically, so two states can be compared.
func summary(st *State) string {
	var b strings.Builder
	ids := func(rs []*Record) string {
		var out []string
		for _, r := range rs {
			out = append(out, r.ID().String()[:12])
		}
		return strings.Join(out, ",")
	}
	names := make([]string, 0, len(st.Crates))
	for n := range st.Crates {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		cs := st.Crates[n]
		fmt.Fprintf(&b, "crate %s founder=%x\n", n, []byte(cs.Founder))
		for _, s := range cs.Owners {
			var ks []string
			for _, k := range s.Owners {
				ks = append(ks, k.PeerID()[:16])
			}
			rid := ""
			if s.Record != nil {
				rid = s.Record.ID().String()[:12]
			}
			fmt.Fprintf(&b, "  owners@%v/%d %s by %s\n", s.At.Pending, s.At.Time, strings.Join(ks, ","), rid)
		}
		fmt.Fprintf(&b, "  rejected-owners %s\n  orphans %s\n", ids(cs.RejectedOwners), ids(cs.Orphans))
		versions := make([]string, 0, len(cs.Releases))
		for v := range cs.Releases {
			versions = append(versions, v)
		}
		sort.Strings(versions)
		for _, v := range versions {
			r := cs.Releases[v]
			yank := ""
			if r.Yank != nil {
				yank = r.Yank.ID().String()[:12]
			}
			var claims []string
			for _, c := range r.Conflicts {
				claims = append(claims, fmt.Sprintf("%s/%v/%v/%v", c.Record.ID().String()[:12], c.Authorized, c.Backdated, c.Order.Pending))
			}
			fmt.Fprintf(&b, "  %s win=%s unauth=%v backdated=%v pending=%v conflicts=%s yank=%s yanked=%v reports=%s reviews=%s superseded=%s\n",
				v, r.Release.ID().String()[:12], r.Unauthorized, r.Backdated, r.Order.Pending, strings.Join(claims, ","), yank, r.Yanked, ids(r.Reports), ids(r.Reviews), ids(r.Superseded))
		}
	}
	keys := make([]string, 0, len(st.Keys))
	for k := range st.Keys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "key %s %s\n", k[:16], ids(st.Keys[k]))
	}
	fmt.Fprintf(&b, "unknown %s\nfuture %s\n", ids(st.Unknown), ids(st.Future))
	return b.String()
}

// randomRecords makes a record set full of conflicts: competing releases of
// the same version, yanks by owners and strangers, owners changes, reports and
// reviews from several authors, equal timestamps, duplicates, unknown kinds
// and records far in the future.
func randomRecords(t testing.TB, rng *rand.Rand, keys []PrivateKey, n int) []*Record {
	names := []string{"alpha", "beta"}
	versions := []string{"1.0.0", "1.1.0", "2.0.0-rc.1"}
	var out []*Record
	at := func() time.Time {
		// Few distinct times, so ties are common; sometimes far in the future.
		if rng.Intn(20) == 0 {
			return rt0.Add(time.Hour)
		}
		return rt0.Add(time.Duration(rng.Intn(8)) * time.Second)
	}
	for len(out) < n {
		k := keys[rng.Intn(len(keys))]
		name := names[rng.Intn(len(names))]
		subject := ReleaseSubject(name, versions[rng.Intn(len(versions))])
		var r *Record
		switch rng.Intn(8) {
		case 0, 1:
			_, v, _ := strings.Cut(subject, "@")
			r = rel(t, k, name, v, at(), fmt.Sprintf("content-%d", rng.Intn(3)))
		case 2:
			r = mustSign(t, k, KindYank, subject, &YankBody{Yanked: rng.Intn(2) == 0}, at())
		case 3:
			r = mustSign(t, k, KindReport, subject, &ReportBody{Release: Sum([]byte{byte(rng.Intn(3))}).Bytes(), Outcome: "test-pass", Wasm: WasmCompatible, Score: uint64(rng.Intn(101)), Gate: GateNeedsReview}, at())
		case 4:
			r = mustSign(t, k, KindReview, subject, &ReviewBody{Verdict: []string{VerdictApprove, VerdictReject, VerdictFlag}[rng.Intn(3)]}, at())
		case 5:
			var owners []PublicKey
			for _, o := range keys {
				if rng.Intn(2) == 0 {
					owners = append(owners, o.Public())
				}
			}
			if len(owners) == 0 {
				owners = append(owners, k.Public())
			}
			r = mustSign(t, k, KindOwners, name, NewOwnersBody(owners), at())
		case 6:
			other := keys[rng.Intn(len(keys))].Public()
			r = mustSign(t, k, KindKey, other.KeyID(), &KeyBody{Key: other, Name: "dev", Roles: []string{RoleTester}, Revoked: rng.Intn(3) == 0}, at())
		case 7:
			r = mustSign(t, k, Kind("future-kind"), subject, map[int]int{1: rng.Intn(5)}, at())
		}
		out = append(out, r)
		if rng.Intn(10) == 0 {
			out = append(out, r) // duplicate delivery
		}
	}
	return out
}

// TestResolveIsOrderIndependent is the convergence property of DESIGN.md §2:
// any delivery order of the same record set gives the same state.
func TestResolveIsOrderIndependent(t *testing.T) {
	keys := []PrivateKey{goldenKey(t, 1), goldenKey(t, 2), goldenKey(t, 3)}
	now := rt0.Add(time.Minute)
	for seed := int64(0); seed < 60; seed++ {
		rng := rand.New(rand.NewSource(seed))
		recs := randomRecords(t, rng, keys, 10+rng.Intn(60))
		want := summary(Resolve(recs, now, DefaultMaxSkew, TrustEveryone(), NoWitness))
		for perm := 0; perm < 8; perm++ {
			shuffled := slices.Clone(recs)
			rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			if got := summary(Resolve(shuffled, now, DefaultMaxSkew, TrustEveryone(), NoWitness)); got != want {
				t.Fatalf("seed %d: order changed the state\nfirst:\n%s\nshuffled:\n%s", seed, want, got)
			}
		}
		// Per-crate resolution over a superset gives the same crate state.
		for name, cs := range Resolve(recs, now, DefaultMaxSkew, TrustEveryone(), NoWitness).Crates {
			again := ResolveCrate(name, recs, now, DefaultMaxSkew, TrustEveryone(), NoWitness)
			a := summary(&State{Crates: map[string]*CrateState{name: cs}})
			b := summary(&State{Crates: map[string]*CrateState{name: again}})
			if a != b {
				t.Fatalf("seed %d: ResolveCrate differs from Resolve for %s", seed, name)
			}
		}
	}
}

func TestFirstReleaseWinsAndConflictsAreKept(t *testing.T) {
	a := goldenKey(t, 1)
	early := rel(t, a, "foo", "1.0.0", rt0, "a")
	late := rel(t, a, "foo", "1.0.0", rt0.Add(time.Second), "b")
	tie := rel(t, a, "foo", "1.0.0", rt0, "c")
	cs := ResolveCrate("foo", []*Record{late, tie, early}, rt0.Add(time.Hour), DefaultMaxSkew, TrustEveryone(), NoWitness)
	r := cs.Releases["1.0.0"]
	wantWin := early
	if tie.ID().Compare(early.ID()) < 0 {
		wantWin = tie
	}
	if r.Release != wantWin {
		t.Fatalf("winner %s, want the smaller ID at the earliest time %s", r.Release.ID(), wantWin.ID())
	}
	if len(r.Conflicts) != 2 {
		t.Fatalf("%d conflicts kept, want 2", len(r.Conflicts))
	}
}

func TestOnlyOwnersYankAndPublish(t *testing.T) {
	owner, stranger, friend := goldenKey(t, 1), goldenKey(t, 2), goldenKey(t, 3)
	first := rel(t, owner, "foo", "1.0.0", rt0, "a")
	strangerRelease := rel(t, stranger, "foo", "1.1.0", rt0.Add(time.Second), "b")
	strangerYank := mustSign(t, stranger, KindYank, "foo@1.0.0", &YankBody{Yanked: true}, rt0.Add(2*time.Second))
	now := rt0.Add(time.Hour)

	cs := ResolveCrate("foo", []*Record{first, strangerRelease, strangerYank}, now, DefaultMaxSkew, TrustEveryone(), NoWitness)
	if cs.Releases["1.0.0"].Yanked {
		t.Fatal("a stranger's yank was applied")
	}
	if !cs.Releases["1.1.0"].Unauthorized {
		t.Fatal("a stranger's release of an owned crate is not marked unauthorized")
	}

	// The owner adds a friend; the friend's later yank applies, an earlier one does not.
	add := mustSign(t, owner, KindOwners, "foo", NewOwnersBody([]PublicKey{owner.Public(), friend.Public()}), rt0.Add(10*time.Second))
	before := mustSign(t, friend, KindYank, "foo@1.0.0", &YankBody{Yanked: true}, rt0.Add(5*time.Second))
	cs = ResolveCrate("foo", []*Record{first, add, before}, now, DefaultMaxSkew, TrustEveryone(), NoWitness)
	if cs.Releases["1.0.0"].Yanked {
		t.Fatal("a yank from before the signer became an owner was applied")
	}
	after := mustSign(t, friend, KindYank, "foo@1.0.0", &YankBody{Yanked: true, Reason: "bad"}, rt0.Add(11*time.Second))
	unyank := mustSign(t, owner, KindYank, "foo@1.0.0", &YankBody{Yanked: false}, rt0.Add(12*time.Second))
	cs = ResolveCrate("foo", []*Record{first, add, after}, now, DefaultMaxSkew, TrustEveryone(), NoWitness)
	if !cs.Releases["1.0.0"].Yanked {
		t.Fatal("an owner's yank was not applied")
	}
	cs = ResolveCrate("foo", []*Record{unyank, first, add, after}, now, DefaultMaxSkew, TrustEveryone(), NoWitness)
	if cs.Releases["1.0.0"].Yanked || cs.Releases["1.0.0"].Yank != unyank {
		t.Fatal("the last writer did not win")
	}
	// A stranger cannot take the crate over.
	takeover := mustSign(t, stranger, KindOwners, "foo", NewOwnersBody([]PublicKey{stranger.Public()}), rt0.Add(20*time.Second))
	cs = ResolveCrate("foo", []*Record{first, takeover}, now, DefaultMaxSkew, TrustEveryone(), NoWitness)
	if len(cs.RejectedOwners) != 1 || !cs.Owners.Allows(owner.Public(), Order{Pending: true, Time: now.UnixMilli()}) {
		t.Fatal("a stranger's owners record was applied")
	}
}

func TestFutureRecordsWaitUntilTheirTime(t *testing.T) {
	a := goldenKey(t, 1)
	first := rel(t, a, "foo", "1.0.0", rt0, "a")
	future := mustSign(t, a, KindYank, "foo@1.0.0", &YankBody{Yanked: true}, rt0.Add(time.Hour))
	st := Resolve([]*Record{first, future}, rt0, DefaultMaxSkew, TrustEveryone(), NoWitness)
	if st.Crates["foo"].Releases["1.0.0"].Yanked || len(st.Future) != 1 {
		t.Fatal("a record an hour ahead was applied")
	}
	st = Resolve([]*Record{first, future}, rt0.Add(time.Hour-time.Minute), DefaultMaxSkew, TrustEveryone(), NoWitness)
	if !st.Crates["foo"].Releases["1.0.0"].Yanked {
		t.Fatal("the record was not applied once within MaxSkew")
	}
}

func TestTiesAreBrokenByAuthorThenID(t *testing.T) {
	a, b := goldenKey(t, 1), goldenKey(t, 2)
	first := rel(t, a, "foo", "1.0.0", rt0, "a")
	add := mustSign(t, a, KindOwners, "foo", NewOwnersBody([]PublicKey{a.Public(), b.Public()}), rt0)
	ya := mustSign(t, a, KindYank, "foo@1.0.0", &YankBody{Yanked: true}, rt0.Add(time.Second))
	yb := mustSign(t, b, KindYank, "foo@1.0.0", &YankBody{Yanked: false}, rt0.Add(time.Second))
	cs := ResolveCrate("foo", []*Record{first, add, ya, yb}, rt0.Add(time.Hour), DefaultMaxSkew, TrustEveryone(), NoWitness)
	want := ya
	if CompareNewest(yb, ya) > 0 {
		want = yb
	}
	if cs.Releases["1.0.0"].Yank != want {
		t.Fatal("the tie was not broken by (author, ID)")
	}
}

// logOf signs checkpoints by k over the IDs of recs in the given order,
// cut into chunks, at increasing times from start: a node's honest log.
func logOf(t *testing.T, rng *rand.Rand, k PrivateKey, recs []*Record, start time.Time) []*Record {
	t.Helper()
	var ids []ID
	seen := map[ID]bool{}
	for _, r := range recs {
		if !seen[r.ID()] {
			seen[r.ID()] = true
			ids = append(ids, r.ID())
		}
	}
	var out []*Record
	prev := 0
	at := start
	for prev < len(ids) {
		n := min(len(ids)-prev, 1+rng.Intn(12))
		root := TreeRoot(ids[:prev+n])
		body := NewCheckpointBody(k.Public().PeerID(), uint64(prev), ids[prev:prev+n], root)
		out = append(out, mustSign(t, k, KindCheckpoint, k.Public().PeerID(), body, at))
		prev += n
		at = at.Add(time.Duration(1+rng.Intn(3)) * time.Second)
	}
	return out
}

// TestResolveUnderRootsIsOrderIndependent extends the convergence property
// to authority and witnessed time: with the same trust roots, the same set
// of records — key records delegating roles, and two nodes' logs
// witnessing the others in different orders — gives the same state in any
// delivery order.
func TestResolveUnderRootsIsOrderIndependent(t *testing.T) {
	keys := []PrivateKey{goldenKey(t, 1), goldenKey(t, 2), goldenKey(t, 3), goldenKey(t, 4)}
	roots := []PublicKey{keys[0].Public()}
	now := rt0.Add(time.Hour)
	backdatedSeen, unauthorizedSeen, witnessedSeen := false, false, false
	for seed := int64(0); seed < 40; seed++ {
		rng := rand.New(rand.NewSource(seed))
		recs := randomRecords(t, rng, keys, 10+rng.Intn(50))
		for _, k := range keys[1:] {
			if rng.Intn(2) == 0 {
				roles := []string{RolePublisher}
				if rng.Intn(3) == 0 {
					roles = append(roles, RoleAdmin)
				}
				recs = append(recs, grant(t, keys[rng.Intn(2)], k.Public(), rt0, roles))
			}
		}
		// Two logs, each in its own arrival order, starting after the
		// records' claimed times so that some look backdated.
		a := slices.Clone(recs)
		rng.Shuffle(len(a), func(i, j int) { a[i], a[j] = a[j], a[i] })
		b := slices.Clone(recs)
		rng.Shuffle(len(b), func(i, j int) { b[i], b[j] = b[j], b[i] })
		recs = append(recs, logOf(t, rng, keys[0], a, rt0.Add(5*time.Minute))...)
		recs = append(recs, logOf(t, rng, keys[1], b[:len(b)/2], rt0.Add(time.Duration(rng.Intn(600))*time.Second))...)
		want := summary(ResolveUnder(recs, now, DefaultMaxSkew, roots))
		for perm := 0; perm < 6; perm++ {
			shuffled := slices.Clone(recs)
			rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			if got := summary(ResolveUnder(shuffled, now, DefaultMaxSkew, roots)); got != want {
				t.Fatalf("seed %d: order changed the state\nfirst:\n%s\nshuffled:\n%s", seed, want, got)
			}
		}
		for _, cs := range ResolveUnder(recs, now, DefaultMaxSkew, roots).Crates {
			for _, r := range cs.Releases {
				backdatedSeen = backdatedSeen || r.Backdated
				unauthorizedSeen = unauthorizedSeen || r.Unauthorized
				witnessedSeen = witnessedSeen || !r.Order.Pending
			}
		}
	}
	if !backdatedSeen || !unauthorizedSeen || !witnessedSeen {
		t.Fatalf("the random sets never exercised backdated (%v), unauthorized (%v) or witnessed (%v) releases", backdatedSeen, unauthorizedSeen, witnessedSeen)
	}
}

// A release and the owner's yank a moment later, witnessed by one
// checkpoint, have the same witnessed time: the yank still comes after
// the founding (claimed times order them), whatever their IDs.
func TestYankWitnessedWithItsReleaseCounts(t *testing.T) {
	owner := goldenKey(t, 1)
	first := rel(t, owner, "foo", "1.0.0", rt0, "a")
	witnessedAt := rt0.Add(time.Second).UnixMilli()
	together := func(ID) (int64, bool) { return witnessedAt, true }
	lower, higher := 0, 0
	for i := 0; i < 64; i++ {
		yank := mustSign(t, owner, KindYank, "foo@1.0.0", &YankBody{Yanked: true, Reason: fmt.Sprint(i)}, rt0.Add(time.Millisecond))
		if yank.ID().Compare(first.ID()) < 0 {
			lower++
		} else {
			higher++
		}
		cs := ResolveCrate("foo", []*Record{first, yank}, rt0.Add(time.Hour), DefaultMaxSkew, TrustEveryone(), together)
		if !cs.Releases["1.0.0"].Yanked {
			t.Fatalf("the owner's yank %d (ID %s, release %s) does not count", i, yank.ID(), first.ID())
		}
	}
	if lower == 0 || higher == 0 {
		t.Fatalf("the yanks' IDs never fell on both sides of the release's (%d below, %d above)", lower, higher)
	}
}
