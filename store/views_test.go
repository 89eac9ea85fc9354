package store

import (
	"fmt"
	"math/rand"
	"reflect"
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

// BenchmarkReviewOnACrowdedCrate stores one review of a crate that already
// holds many (as a flood of reviews from fresh keys would make it): the
// cost must not grow with the crate's record count.
func BenchmarkReviewOnACrowdedCrate(b *testing.B) {
	for _, held := range []int{100, 3000} {
		b.Run(fmt.Sprintf("held=%d", held), func(b *testing.B) {
			db, err := Open(b.TempDir(), Options{Now: func() time.Time { return t0.Add(time.Hour) }, GCInterval: -1})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			if _, err := db.SetAuthority(registry.TrustEveryone()); err != nil {
				b.Fatal(err)
			}
			owner := key(b, 1)
			if _, err := db.PutRecords([]*registry.Record{release(b, owner, "crowded", "1.0.0", t0, []byte("x"))}); err != nil {
				b.Fatal(err)
			}
			mk := func(i int) *registry.Record {
				k, err := registry.KeyFromSeed(append(make([]byte, 24), byte(i>>24), byte(i>>16), byte(i>>8), byte(i), 1, 2, 3, 4))
				if err != nil {
					b.Fatal(err)
				}
				return sign(b, k, registry.KindReview, "crowded@1.0.0", &registry.ReviewBody{Verdict: registry.VerdictFlag}, t0)
			}
			var crowd []*registry.Record
			for i := 0; i < held; i++ {
				crowd = append(crowd, mk(i))
			}
			if _, err := db.PutRecords(crowd); err != nil {
				b.Fatal(err)
			}
			next := make([]*registry.Record, b.N)
			for i := range next {
				next[i] = mk(held + i)
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
