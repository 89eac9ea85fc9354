package store

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// tlogBenchSize is the log size the proof and checkpoint benchmarks run at.
const tlogBenchSize = 1 << 20

var fakeAuthor []byte

// fakeRecord builds a record structure with a unique ID without signing
// it: the log only needs the ID and the kind, and a million signatures
// would dominate the set-up. Never stored as a record.
func fakeRecord(b testing.TB, i int) *registry.Record {
	if fakeAuthor == nil {
		fakeAuthor = []byte(key(b, 1).Public())
	}
	raw, err := registry.Marshal(map[int]any{1: "yank", 2: fmt.Sprintf("c%d@1.0.0", i), 3: map[int]any{1: true}, 4: fakeAuthor, 5: int64(i + 1), 6: make([]byte, 64)})
	if err != nil {
		b.Fatal(err)
	}
	r, err := registry.DecodeStored(raw)
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// appendFake appends n fake records in transactions of batch entries.
func appendFake(b testing.TB, db *DB, from, n, batch int) {
	for i := from; i < from+n; i += batch {
		var recs []*registry.Record
		for j := i; j < min(i+batch, from+n); j++ {
			recs = append(recs, fakeRecord(b, j))
		}
		commitLog(b, db, recs)
	}
}

func commitLog(b testing.TB, db *DB, recs []*registry.Record) {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	txn := db.bdb.NewTransaction(true)
	defer txn.Discard()
	p, err := db.appendLog(txn, recs)
	if err != nil {
		b.Fatal(err)
	}
	if err := txn.Commit(); err != nil {
		p.abort()
		b.Fatal(err)
	}
	p.commit()
}

// signNext signs and appends the next checkpoint of db's log by k, as the
// node's signer does: read the entries since the last one, the root, sign,
// append (which runs the chain verifier on it).
func signNext(b testing.TB, db *DB, k registry.PrivateKey, prev uint64, at time.Time) uint64 {
	end := min(db.LogSize(), prev+registry.MaxCheckpointLeaves)
	ents, err := db.LogEntries(prev, int(end-prev))
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]registry.ID, len(ents))
	for i, e := range ents {
		ids[i] = e.ID
	}
	root, err := db.LogRoot(end)
	if err != nil {
		b.Fatal(err)
	}
	r, err := registry.Sign(k, registry.KindCheckpoint, k.Public().PeerID(), registry.NewCheckpointBody(k.Public().PeerID(), prev, ids, root), at)
	if err != nil {
		b.Fatal(err)
	}
	commitLog(b, db, []*registry.Record{r})
	return end
}

// BenchmarkTlog1M measures the log at a million entries: appending (one
// entry per synced transaction, and 4,096 per transaction), signing and
// verifying a 4,096-entry checkpoint, and building inclusion and
// consistency proofs and roots.
func BenchmarkTlog1M(b *testing.B) {
	db, err := Open(b.TempDir(), Options{GCInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	k := key(b, 9)
	start := time.Now()
	var prev uint64
	at := t0
	for db.LogSize() < tlogBenchSize {
		appendFake(b, db, int(db.LogSize()), registry.MaxCheckpointLeaves, registry.MaxCheckpointLeaves)
		at = at.Add(time.Second)
		prev = signNext(b, db, k, prev, at)
	}
	b.Logf("set-up: %d entries with %d-entry checkpoints in %s", db.LogSize(), registry.MaxCheckpointLeaves, time.Since(start))
	next := 1 << 30
	b.Run("append-1-per-txn", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			commitLog(b, db, []*registry.Record{fakeRecord(b, next)})
			next++
		}
	})
	b.Run("append-4096-per-txn", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			recs := make([]*registry.Record, registry.MaxCheckpointLeaves)
			for j := range recs {
				recs[j] = fakeRecord(b, next)
				next++
			}
			b.StartTimer()
			commitLog(b, db, recs)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*registry.MaxCheckpointLeaves), "ns/entry")
	})
	b.Run("checkpoint-4096", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			if db.LogSize()-prev < registry.MaxCheckpointLeaves {
				appendFake(b, db, next, registry.MaxCheckpointLeaves, registry.MaxCheckpointLeaves)
				next += registry.MaxCheckpointLeaves
			}
			at = at.Add(time.Second)
			b.StartTimer()
			prev = signNext(b, db, k, prev, at)
		}
	})
	size := db.LogSize()
	rng := rand.New(rand.NewPCG(1, 1))
	ents, err := db.LogEntries(0, 1000)
	if err != nil {
		b.Fatal(err)
	}
	_ = ents
	root, _ := db.LogRoot(size)
	b.Run("inclusion-proof", func(b *testing.B) {
		var sample []registry.ID
		for len(sample) < 256 {
			e, _ := db.LogEntries(rng.Uint64N(size), 1)
			sample = append(sample, e[0].ID)
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, _, err := db.InclusionProof(sample[i%len(sample)], size); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("inclusion-verify", func(b *testing.B) {
		e, _ := db.LogEntries(size/3, 1)
		idx, p, err := db.InclusionProof(e[0].ID, size)
		if err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := registry.VerifyInclusion(e[0].ID, idx, size, p, root); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("consistency-proof", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := db.ConsistencyProof(1+rng.Uint64N(size-1), size); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("root", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := db.LogRoot(1 + rng.Uint64N(size)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
