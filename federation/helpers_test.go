package federation

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/store"
)

// baseTime is the time of generated records: an hour in the past, so they
// are applicable whatever the test clock.
var baseTime = time.Now().Add(-time.Hour).Truncate(time.Millisecond)

var (
	poolOnce sync.Once
	pool     []*registry.Record
	poolKey  registry.PrivateKey
)

// recordPool returns n distinct signed review records (n ≤ 6000), made once
// per test binary. Times repeat, so that ties are broken by ID.
func recordPool(t testing.TB, n int) []*registry.Record {
	t.Helper()
	poolOnce.Do(func() {
		rng := rand.New(rand.NewPCG(1, 2))
		key, _ := registry.KeyFromSeed(make([]byte, 32))
		poolKey = key
		for i := range 6000 {
			at := baseTime.Add(time.Duration(rng.IntN(1500)) * time.Millisecond)
			r, err := registry.Sign(key, registry.KindReview, fmt.Sprintf("crate%d@1.0.%d", i%97, i),
				&registry.ReviewBody{Verdict: registry.VerdictApprove, Comment: fmt.Sprintf("review %d", i)}, at)
			if err != nil {
				panic(err)
			}
			pool = append(pool, r)
		}
	})
	if n > len(pool) {
		t.Fatalf("record pool holds %d records, %d wanted", len(pool), n)
	}
	return pool[:n]
}

// newStore opens a real Badger store: in memory when dir is "", else on
// disk.
func newStore(t testing.TB, dir string) *store.DB {
	t.Helper()
	db, err := store.Open(dir, store.Options{InMemory: dir == "", GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// ids returns the set of IDs of recs.
func ids(recs []*registry.Record) map[registry.ID]bool {
	m := make(map[registry.ID]bool, len(recs))
	for _, r := range recs {
		m[r.ID()] = true
	}
	return m
}

func fingerprintOf(recs []*registry.Record) registry.Fingerprint {
	var fp registry.Fingerprint
	for id := range ids(recs) {
		fp.Add(id)
	}
	return fp
}

var _ Store = (*store.DB)(nil)
