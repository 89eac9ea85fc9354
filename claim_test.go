package registry

import (
	"testing"
	"time"
)

// claimAt signs a claim by k on subject for release at claimed time t
// with the given until, received by the judging node at recv.
func claimAt(t *testing.T, k PrivateKey, release ID, at, until, recv time.Time) SeenClaim {
	t.Helper()
	r, err := Sign(k, KindClaim, "lease@1.0.0", &ClaimBody{Release: release.Bytes(), Until: until.UnixMilli()}, at)
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.DecodeBody()
	if err != nil {
		t.Fatal(err)
	}
	return SeenClaim{Record: r, Body: b.(*ClaimBody), Received: recv}
}

func mustKey(t *testing.T) PrivateKey {
	t.Helper()
	k, err := GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// The lease rules of DESIGN.md §2 "Authority and time" applied to claims:
// every timestamp is a claim, so a lease runs on the receiver's clock from
// receipt, capped; only testers' claims count; a report supersedes.
func TestActiveLeasesHostile(t *testing.T) {
	rel, other := Sum([]byte("release")), Sum([]byte("other release"))
	tester, tester2, stranger := mustKey(t), mustKey(t), mustKey(t)
	testers := map[string]bool{string(tester.Public()): true, string(tester2.Public()): true}
	may := func(k PublicKey) bool { return testers[string(k)] }
	none := func(PublicKey) bool { return false }
	t0 := time.UnixMilli(1_800_000_000_000).UTC()
	max := 10 * time.Minute

	active := func(now time.Time, reported func(PublicKey) bool, cs ...SeenClaim) []SeenClaim {
		return ActiveLeases(cs, rel, now, max, may, reported)
	}
	t.Run("a tester's claim holds for its stated length from receipt", func(t *testing.T) {
		c := claimAt(t, tester, rel, t0, t0.Add(2*time.Minute), t0.Add(time.Minute))
		if got := active(t0.Add(2*time.Minute+59*time.Second), none, c); len(got) != 1 {
			t.Fatalf("lease received at +1m for 2m is not active at +2m59s: %d", len(got))
		}
		if got := active(t0.Add(3*time.Minute), none, c); len(got) != 0 {
			t.Fatal("the lease outlived its length counted from receipt")
		}
	})
	t.Run("a stranger's claim is ignored", func(t *testing.T) {
		c := claimAt(t, stranger, rel, t0, t0.Add(2*time.Minute), t0)
		if got := active(t0.Add(time.Second), none, c); len(got) != 0 {
			t.Fatal("a claim by a key without the tester role blocks the release")
		}
	})
	t.Run("a far-future until is capped at the maximum lease", func(t *testing.T) {
		c := claimAt(t, tester, rel, t0, t0.Add(100*365*24*time.Hour), t0)
		if got := active(t0.Add(max-time.Second), none, c); len(got) != 1 {
			t.Fatal("the capped lease did not hold within the cap")
		}
		if got := active(t0.Add(max), none, c); len(got) != 0 {
			t.Fatal("a far-future until blocked the release past the maximum lease")
		}
		c.Body.Until = 1<<63 - 1
		if end := LeaseEnd(c, max); !end.Equal(t0.Add(max)) {
			t.Fatalf("until = MaxInt64: lease ends %v, want %v", end, t0.Add(max))
		}
	})
	t.Run("a backdated claim runs from receipt, not from its time", func(t *testing.T) {
		c := claimAt(t, tester, rel, t0.Add(-24*time.Hour), t0.Add(-24*time.Hour+2*time.Minute), t0)
		if got := active(t0.Add(time.Minute), none, c); len(got) != 1 {
			t.Fatal("a claim received now was judged by its signed time")
		}
	})
	t.Run("an expired lease is retaken", func(t *testing.T) {
		c := claimAt(t, tester, rel, t0, t0.Add(time.Minute), t0)
		if got := active(t0.Add(time.Minute+time.Millisecond), none, c); len(got) != 0 {
			t.Fatal("an expired lease still holds")
		}
	})
	t.Run("a renewal extends the lease; an older claim cannot shorten it", func(t *testing.T) {
		c1 := claimAt(t, tester, rel, t0, t0.Add(time.Minute), t0)
		c2 := claimAt(t, tester, rel, t0.Add(50*time.Second), t0.Add(110*time.Second), t0.Add(50*time.Second))
		for _, order := range [][]SeenClaim{{c1, c2}, {c2, c1}} {
			got := active(t0.Add(100*time.Second), none, order...)
			if len(got) != 1 || got[0].Record.ID() != c2.Record.ID() {
				t.Fatal("the renewed lease does not hold after the first one ended")
			}
		}
	})
	t.Run("a lease given up ends at once", func(t *testing.T) {
		c1 := claimAt(t, tester, rel, t0, t0.Add(time.Minute), t0)
		c2 := claimAt(t, tester, rel, t0.Add(time.Second), t0.Add(time.Second), t0.Add(time.Second))
		if got := active(t0.Add(2*time.Second), none, c1, c2); len(got) != 0 {
			t.Fatal("a released lease still holds")
		}
	})
	t.Run("a claim on a release its author already reported is superseded", func(t *testing.T) {
		c := claimAt(t, tester, rel, t0, t0.Add(time.Minute), t0)
		reported := func(k PublicKey) bool { return k.Equal(tester.Public()) }
		if got := active(t0.Add(time.Second), reported, c); len(got) != 0 {
			t.Fatal("the report did not supersede its author's lease")
		}
	})
	t.Run("a claim on another release of the subject does not hold this one", func(t *testing.T) {
		c := claimAt(t, tester, other, t0, t0.Add(time.Minute), t0)
		if got := active(t0.Add(time.Second), none, c); len(got) != 0 {
			t.Fatal("a claim about another release record holds this one")
		}
	})
	t.Run("leases come first come first, the same on every node", func(t *testing.T) {
		a := claimAt(t, tester2, rel, t0, t0.Add(time.Minute), t0)
		b := claimAt(t, tester, rel, t0.Add(time.Millisecond), t0.Add(time.Minute), t0)
		for _, order := range [][]SeenClaim{{a, b}, {b, a}} {
			got := active(t0.Add(time.Second), none, order...)
			if len(got) != 2 || got[0].Record.ID() != a.Record.ID() {
				t.Fatal("the earlier claim does not come first")
			}
		}
	})
}

func TestClaimBodyRejectsHostileBodies(t *testing.T) {
	k := mustKey(t)
	now := time.Now()
	for _, tc := range []struct {
		name    string
		subject string
		body    any
	}{
		{"negative until", "a@1.0.0", &ClaimBody{Release: Sum([]byte("x")).Bytes(), Until: -1}},
		{"not a release subject", "a", &ClaimBody{Release: Sum([]byte("x")).Bytes(), Until: 1}},
		{"bad version", "a@one", &ClaimBody{Release: Sum([]byte("x")).Bytes(), Until: 1}},
		{"release is not an ID", "a@1.0.0", &ClaimBody{Release: []byte("short"), Until: 1}},
		{"unknown field", "a@1.0.0", map[int]any{1: Sum([]byte("x")).Bytes(), 2: int64(1), 3: "extra"}},
	} {
		if _, err := Sign(k, KindClaim, tc.subject, tc.body, now); err == nil {
			t.Errorf("%s: signed", tc.name)
		}
	}
	if _, err := Sign(k, KindClaim, "a@1.0.0", &ClaimBody{Release: Sum([]byte("x")).Bytes(), Until: now.UnixMilli()}, now); err != nil {
		t.Fatal(err)
	}
}

func TestConfirmationShareIsAFunctionOfTheRelease(t *testing.T) {
	in := 0
	const n = 20000
	for i := 0; i < n; i++ {
		id := Sum([]byte{byte(i), byte(i >> 8), byte(i >> 16)})
		a := InConfirmationShare(id, DefaultConfirmPerMille)
		if a != InConfirmationShare(id, DefaultConfirmPerMille) {
			t.Fatal("not deterministic")
		}
		if a {
			in++
		}
		if InConfirmationShare(id, 0) || !InConfirmationShare(id, 1000) {
			t.Fatal("share 0 must choose none and 1000 all")
		}
	}
	if in < n*8/100 || in > n*12/100 {
		t.Fatalf("%d of %d chosen at 10%%", in, n)
	}
}

// FuzzClaim decodes arbitrary claim records and checks the lease bound:
// whatever a claim says, its lease ends within [received, received+max].
func FuzzClaim(f *testing.F) {
	k, err := KeyFromSeed(make([]byte, 32))
	if err != nil {
		f.Fatal(err)
	}
	r, err := Sign(k, KindClaim, "a@1.0.0", &ClaimBody{Release: Sum([]byte("x")).Bytes(), Until: 1_800_000_060_000}, time.UnixMilli(1_800_000_000_000))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(r.Bytes(), int64(0), int64(-1))
	f.Fuzz(func(t *testing.T, b []byte, tm, until int64) {
		if rec, err := DecodeRecord(b); err == nil && rec.Kind == KindClaim {
			if _, err := rec.DecodeBody(); err != nil && KindOf(err) == EINTERNAL {
				t.Fatalf("internal error on a bad claim: %v", err)
			}
		}
		recv := time.UnixMilli(1_800_000_000_000)
		max := 10 * time.Minute
		c := SeenClaim{Record: &Record{Kind: KindClaim, Time: tm}, Body: &ClaimBody{Until: until}, Received: recv}
		end := LeaseEnd(c, max)
		if end.Before(recv) || end.After(recv.Add(max)) {
			t.Fatalf("time %d until %d: lease ends %v, outside [%v, %v]", tm, until, end, recv, recv.Add(max))
		}
	})
}
