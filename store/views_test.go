package store

import (
	"bytes"
	"fmt"
	"math/rand"
	"reflect"
	"slices"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// allViews returns every view, in key order.
func allViews(t *testing.T, db *DB) []*ReleaseView {
	t.Helper()
	v, _, err := db.ListViews(ListQuery{})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestIncrementalViewsEqualRebuilt: reports and reviews update a release's
// view in place, without reading the crate's other records; whatever the
// batches and their order, the views equal those derived again from all
// records (Reindex).
func TestIncrementalViewsEqualRebuilt(t *testing.T) {
	keys := []registry.PrivateKey{key(t, 1), key(t, 2), key(t, 3), key(t, 4)}
	verdicts := []string{registry.VerdictApprove, registry.VerdictReject, registry.VerdictFlag}
	for seed := int64(0); seed < 12; seed++ {
		rng := rand.New(rand.NewSource(seed))
		db, err := Open("", Options{InMemory: true, Now: func() time.Time { return t0.Add(time.Hour) }})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.SetAuthority(registry.TrustEveryone()); err != nil {
			t.Fatal(err)
		}
		var recs []*registry.Record
		for i := 0; i < 4; i++ {
			recs = append(recs, release(t, keys[0], "foo", fmt.Sprintf("1.%d.0", i), t0.Add(time.Duration(i)*time.Second), []byte{byte(i)}))
		}
		for i := 0; i < 60; i++ {
			k := keys[rng.Intn(len(keys))]
			subject := fmt.Sprintf("foo@1.%d.0", rng.Intn(5)) // 1.4.0 has no release: an orphan
			at := t0.Add(time.Duration(rng.Intn(6)) * time.Second)
			if rng.Intn(2) == 0 {
				recs = append(recs, sign(t, k, registry.KindReport, subject, &registry.ReportBody{
					Release: registry.Sum([]byte{byte(rng.Intn(4))}).Bytes(), Outcome: registry.OutcomeTestPass,
					Wasm: registry.WasmCompatible, Score: uint64(rng.Intn(101)), Gate: registry.GateNeedsReview}, at))
			} else {
				recs = append(recs, sign(t, k, registry.KindReview, subject, &registry.ReviewBody{Verdict: verdicts[rng.Intn(3)], Comment: fmt.Sprint(i)}, at))
			}
		}
		// Releases first, then the verdicts in random batches and order.
		if _, err := db.PutRecords(recs[:4]); err != nil {
			t.Fatal(err)
		}
		rest := recs[4:]
		rng.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
		for len(rest) > 0 {
			n := min(len(rest), 1+rng.Intn(7))
			if _, err := db.PutRecords(rest[:n]); err != nil {
				t.Fatal(err)
			}
			rest = rest[n:]
		}
		got := allViews(t, db)
		if _, err := db.Reindex(); err != nil {
			t.Fatal(err)
		}
		want := allViews(t, db)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("seed %d: incremental views differ from rebuilt ones\ngot  %+v\nwant %+v", seed, got, want)
		}
		reports := 0
		for _, v := range want {
			reports += len(v.Reports) + len(v.Reviews)
		}
		if reports == 0 {
			t.Fatalf("seed %d: no verdict reached any view", seed)
		}
		db.Close()
	}
}

// BenchmarkStrangerOnACrowdedCrate stores one record by a fresh key about
// a crate that already holds many such records (as a flood from fresh keys
// would make it): a review, or a release of the same version (a claim).
// The cost must not grow with the crate's record count. For comparison,
// "owner-yank" stores a yank by the crate's owner, which derives the
// crate's views from all of its records.
func BenchmarkStrangerOnACrowdedCrate(b *testing.B) {
	for _, kind := range []string{"review", "release", "owner-yank"} {
		for _, held := range []int{100, 3000} {
			b.Run(fmt.Sprintf("%s/held=%d", kind, held), func(b *testing.B) {
				db, err := Open(b.TempDir(), Options{Now: func() time.Time { return t0.Add(time.Hour) }, GCInterval: -1})
				if err != nil {
					b.Fatal(err)
				}
				defer db.Close()
				owner := key(b, 1)
				if _, err := db.SetAuthority(registry.NewTrust([]registry.PublicKey{owner.Public()}, nil, t0, time.Minute)); err != nil {
					b.Fatal(err)
				}
				if _, err := db.PutRecords([]*registry.Record{release(b, owner, "crowded", "1.0.0", t0, []byte("x"))}); err != nil {
					b.Fatal(err)
				}
				mk := func(i int, kind string) *registry.Record {
					k, err := registry.KeyFromSeed(append(make([]byte, 24), byte(i>>24), byte(i>>16), byte(i>>8), byte(i), 1, 2, 3, 4))
					if err != nil {
						b.Fatal(err)
					}
					at := t0.Add(time.Duration(i) * time.Millisecond)
					switch kind {
					case "release":
						return release(b, k, "crowded", "1.0.0", at, []byte(fmt.Sprint("claim", i)))
					case "owner-yank":
						return sign(b, owner, registry.KindYank, "crowded@1.0.0", &registry.YankBody{Yanked: i%2 == 0}, at)
					}
					return sign(b, k, registry.KindReview, "crowded@1.0.0", &registry.ReviewBody{Verdict: registry.VerdictFlag}, at)
				}
				var crowd []*registry.Record
				for i := 0; i < held; i++ {
					crowd = append(crowd, mk(i, "review"), mk(i, "release"))
				}
				if _, err := db.PutRecords(crowd); err != nil {
					b.Fatal(err)
				}
				next := make([]*registry.Record, b.N)
				for i := range next {
					next[i] = mk(held+i, kind)
				}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := db.PutRecords(next[i : i+1]); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// TestInPlaceViewsEqualRebuiltUnderStrangers: releases, yanks and owners
// records by keys that may not publish the crate, with reports and reviews
// from more authors than a view lists, are applied to the views in place
// (claims inserted in order, an untrusted winner displaced by an earlier
// claim, new versions made from their own records, lists capped), mixed
// with the owner's records, which derive the crate again; in any batches
// and order, the views equal those derived again from all records.
func TestInPlaceViewsEqualRebuiltUnderStrangers(t *testing.T) {
	owner := key(t, 1)
	var strangers []registry.PrivateKey
	for i := 0; i < MaxUntrusted+13; i++ {
		strangers = append(strangers, key(t, byte(100+i)))
	}
	verdicts := []string{registry.VerdictApprove, registry.VerdictReject, registry.VerdictFlag}
	var omitted, displaced, fresh int
	for seed := int64(0); seed < 5; seed++ {
		rng := rand.New(rand.NewSource(seed))
		db, err := Open("", Options{InMemory: true, Now: func() time.Time { return t0.Add(time.Hour) }})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.SetAuthority(registry.NewTrust([]registry.PublicKey{owner.Public()}, nil, t0, time.Minute)); err != nil {
			t.Fatal(err)
		}
		var recs []*registry.Record
		for i := 0; i < 3; i++ {
			recs = append(recs, release(t, owner, "foo", fmt.Sprintf("1.%d.0", i), t0.Add(time.Duration(i)*time.Second), []byte{byte(i)}))
		}
		for i := 0; i < 1000; i++ {
			k := strangers[rng.Intn(len(strangers))]
			if rng.Intn(20) == 0 {
				k = owner
			}
			version := fmt.Sprintf("1.%d.0", rng.Intn(6)) // 1.3.0 and up: only strangers release them
			subject := "foo@" + version
			at := t0.Add(time.Duration(rng.Intn(7200)-3600) * time.Second)
			switch x := rng.Intn(10); {
			case x < 3:
				recs = append(recs, release(t, k, "foo", version, at, []byte{byte(seed), byte(i), byte(i >> 8), 9}))
			case x < 4:
				recs = append(recs, sign(t, k, registry.KindYank, subject, &registry.YankBody{Yanked: rng.Intn(2) == 0}, at))
			case x < 5:
				owners := [][]byte{k.Public(), owner.Public()}
				slices.SortFunc(owners, bytes.Compare)
				owners = slices.CompactFunc(owners, bytes.Equal)
				recs = append(recs, sign(t, k, registry.KindOwners, "foo", &registry.OwnersBody{Owners: owners}, at))
			case x < 8:
				recs = append(recs, sign(t, k, registry.KindReport, subject, &registry.ReportBody{
					Release: registry.Sum([]byte{byte(rng.Intn(4))}).Bytes(), Outcome: registry.OutcomeTestPass,
					Wasm: registry.WasmCompatible, Score: uint64(rng.Intn(101)), Gate: registry.GateNeedsReview}, at))
			default:
				recs = append(recs, sign(t, k, registry.KindReview, subject, &registry.ReviewBody{Verdict: verdicts[rng.Intn(3)], Comment: fmt.Sprint(i)}, at))
			}
		}
		if _, err := db.PutRecords(recs[:3]); err != nil {
			t.Fatal(err)
		}
		rest := recs[3:]
		rng.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
		var winners = map[string]registry.ID{}
		for len(rest) > 0 {
			n := min(len(rest), 1+rng.Intn(9))
			if _, err := db.PutRecords(rest[:n]); err != nil {
				t.Fatal(err)
			}
			rest = rest[n:]
			for _, v := range allViews(t, db) {
				if w, ok := winners[v.Version]; ok && w != v.Release && v.Unauthorized {
					displaced++
				}
				winners[v.Version] = v.Release
			}
		}
		got := allViews(t, db)
		if _, err := db.Reindex(); err != nil {
			t.Fatal(err)
		}
		want := allViews(t, db)
		if !reflect.DeepEqual(got, want) {
			for i := range got {
				if i < len(want) && !reflect.DeepEqual(got[i], want[i]) {
					t.Fatalf("seed %d: the view of %s differs\nin place %+v\nderived  %+v", seed, got[i].Subject(), got[i], want[i])
				}
			}
			t.Fatalf("seed %d: %d views in place, %d derived", seed, len(got), len(want))
		}
		for _, v := range want {
			if v.ClaimsOmitted || v.ReportsOmitted || v.ReviewsOmitted {
				omitted++
			}
			if v.Unauthorized {
				fresh++
			}
			var claims, reports, reviews int
			for _, c := range v.Claims {
				if !c.Authorized {
					claims++
				}
			}
			for _, r := range v.Reports {
				if !r.Author.Equal(owner.Public()) {
					reports++
				}
			}
			for _, r := range v.Reviews {
				if !r.Author.Equal(owner.Public()) {
					reviews++
				}
			}
			if claims > MaxUntrusted || reports > MaxUntrusted || reviews > MaxUntrusted {
				t.Fatalf("seed %d: %s lists %d untrusted claims, %d reports, %d reviews", seed, v.Subject(), claims, reports, reviews)
			}
		}
		db.Close()
	}
	if omitted == 0 || displaced == 0 || fresh == 0 {
		t.Fatalf("the records never exercised a path: %d capped views, %d displaced winners, %d untrusted versions", omitted, displaced, fresh)
	}
}

// A flood of releases, yanks and owners records by keys that may not
// publish a crate never derives the crate's views from all its records:
// each costs the same whatever the crate already holds.
func TestStrangersNeverDeriveTheCrateAgain(t *testing.T) {
	db, err := Open("", Options{InMemory: true, Now: func() time.Time { return t0.Add(time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	owner := key(t, 1)
	if _, err := db.SetAuthority(registry.NewTrust([]registry.PublicKey{owner.Public()}, nil, t0, time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.PutRecords([]*registry.Record{release(t, owner, "victim", "1.0.0", t0, []byte("real"))}); err != nil {
		t.Fatal(err)
	}
	before := db.derived.Load()
	for i := 0; i < 300; i++ {
		k := key(t, byte(10+i%200))
		var r *registry.Record
		switch i % 3 {
		case 0:
			r = release(t, k, "victim", "1.0.0", t0.Add(-time.Duration(i)*time.Minute), []byte(fmt.Sprint("fake", i)))
		case 1:
			r = sign(t, k, registry.KindYank, "victim@1.0.0", &registry.YankBody{Yanked: true}, t0.Add(-time.Duration(i)*time.Minute))
		default:
			r = sign(t, k, registry.KindOwners, "victim", &registry.OwnersBody{Owners: [][]byte{k.Public()}}, t0.Add(-time.Duration(i)*time.Minute))
		}
		if _, err := db.PutRecords([]*registry.Record{r}); err != nil {
			t.Fatal(err)
		}
	}
	if n := db.derived.Load() - before; n != 0 {
		t.Fatalf("strangers' records derived the crate's views %d times", n)
	}
	v, err := db.GetView("victim", "1.0.0")
	if err != nil || v.Unauthorized || v.Yanked || !v.Author.Equal(owner.Public()) || len(v.Claims) != MaxUntrusted || !v.ClaimsOmitted {
		t.Fatalf("the owner's release after the flood: %+v %v", v, err)
	}
}
