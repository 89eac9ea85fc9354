package store

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	registry "github.com/wasmrust/wasm-crates-registry"
)

func yanks(t testing.TB, k registry.PrivateKey, n int) []*registry.Record {
	out := make([]*registry.Record, n)
	for i := range out {
		out[i] = sign(t, k, registry.KindYank, fmt.Sprintf("c%d@1.0.0", i), &registry.YankBody{Yanked: true}, t0.Add(time.Duration(i)*time.Millisecond))
	}
	return out
}

func ids(recs []*registry.Record) []registry.ID {
	out := make([]registry.ID, len(recs))
	for i, r := range recs {
		out[i] = r.ID()
	}
	return out
}

// trustWitness makes ws the store's witnesses (trust roots).
func trustWitness(t testing.TB, db *DB, ws ...registry.PrivateKey) {
	t.Helper()
	var roots []registry.PublicKey
	for _, w := range ws {
		roots = append(roots, w.Public())
	}
	if _, err := db.SetAuthority(registry.NewTrust(roots, nil, time.Now(), time.Minute)); err != nil {
		t.Fatal(err)
	}
}

func checkpointRec(t testing.TB, k registry.PrivateKey, prev uint64, leaves []registry.ID, root registry.Hash, at time.Time) *registry.Record {
	return sign(t, k, registry.KindCheckpoint, k.Public().PeerID(), registry.NewCheckpointBody(k.Public().PeerID(), prev, leaves, root), at)
}

// checkLog checks the log against the records in acceptance order: its
// size, root, entries and every inclusion proof, and consistency proofs
// between sizes.
func checkLog(t *testing.T, db *DB, want []registry.ID) {
	t.Helper()
	size, root := db.LogHead()
	if size != uint64(len(want)) || root != registry.TreeRoot(want) {
		t.Fatalf("log head %d %s, want %d %s", size, root, len(want), registry.TreeRoot(want))
	}
	ents, err := db.LogEntries(0, len(want)+10)
	if err != nil || len(ents) != len(want) {
		t.Fatalf("entries: %d, %v", len(ents), err)
	}
	for i, e := range ents {
		if e.ID != want[i] || e.Index != uint64(i) {
			t.Fatalf("entry %d is %s, want %s", i, e.ID, want[i])
		}
	}
	for _, sz := range []uint64{1, size / 3, size/2 + 1, size} {
		if sz == 0 {
			continue
		}
		r, err := db.LogRoot(sz)
		if err != nil || r != registry.TreeRoot(want[:sz]) {
			t.Fatalf("root at %d: %v", sz, err)
		}
		for i := uint64(0); i < sz; i += 1 + sz/7 {
			idx, p, err := db.InclusionProof(want[i], sz)
			if err != nil || idx != i {
				t.Fatalf("inclusion of %d in %d: %v", i, sz, err)
			}
			if err := registry.VerifyInclusion(want[i], i, sz, p, r); err != nil {
				t.Fatalf("inclusion of %d in %d: %v", i, sz, err)
			}
		}
		cp, err := db.ConsistencyProof(sz, size)
		if err != nil {
			t.Fatal(err)
		}
		if err := registry.VerifyConsistency(sz, size, cp, r, root); err != nil {
			t.Fatalf("consistency %d→%d: %v", sz, size, err)
		}
	}
}

func TestLogAppendsEveryRecordOnce(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	recs := yanks(t, key(t, 1), 300)
	if _, err := db.PutRecords(recs[:100]); err != nil {
		t.Fatal(err)
	}
	// Duplicates, within a batch and of held records, are not appended.
	if _, err := db.PutRecords(append(append(recs[50:200:200], recs[150]), recs[0])); err != nil {
		t.Fatal(err)
	}
	if _, err := db.PutRecords(recs[200:]); err != nil {
		t.Fatal(err)
	}
	checkLog(t, db, ids(recs))
	if db.LogContentSize() != 300 {
		t.Fatalf("content size %d", db.LogContentSize())
	}
	db.Close()
	db, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	checkLog(t, db, ids(recs))
	more := yanks(t, key(t, 2), 5)
	if _, err := db.PutRecords(more); err != nil {
		t.Fatal(err)
	}
	checkLog(t, db, append(ids(recs), ids(more)...))
}

func TestLogRefusesHostileQueries(t *testing.T) {
	stores(t, func(t *testing.T, db *DB) {
		recs := yanks(t, key(t, 1), 10)
		if _, err := db.PutRecords(recs); err != nil {
			t.Fatal(err)
		}
		if _, _, err := db.InclusionProof(registry.Sum([]byte("absent")), 10); registry.KindOf(err) != registry.ENOTFOUND {
			t.Errorf("absent record: %v", err)
		}
		if _, _, err := db.InclusionProof(recs[0].ID(), 11); registry.KindOf(err) != registry.EINVALID {
			t.Errorf("size past the log: %v", err)
		}
		if _, _, err := db.InclusionProof(recs[5].ID(), 5); registry.KindOf(err) != registry.EINVALID {
			t.Errorf("entry after the size: %v", err)
		}
		if _, err := db.ConsistencyProof(6, 5); registry.KindOf(err) != registry.EINVALID {
			t.Errorf("backwards consistency: %v", err)
		}
		if _, err := db.ConsistencyProof(1, 1<<40); registry.KindOf(err) != registry.EINVALID {
			t.Errorf("consistency past the log: %v", err)
		}
		if _, err := db.LogRoot(11); registry.KindOf(err) != registry.EINVALID {
			t.Errorf("root past the log: %v", err)
		}
		if e, err := db.LogEntries(1<<62, 10); err != nil || len(e) != 0 {
			t.Errorf("entries past the end: %v %v", e, err)
		}
	})
}

// A database written before the log existed gets its records appended on
// open.
func TestLogBackfillsOldRecords(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	recs := yanks(t, key(t, 1), 40)
	if _, err := db.PutRecords(recs); err != nil {
		t.Fatal(err)
	}
	if err := db.bdb.DropPrefix([]byte{pLog}, []byte{pLogIndex}, []byte{pTree}, logSizeKey); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if db.LogSize() != 40 {
		t.Fatalf("log size %d after back-fill, want 40", db.LogSize())
	}
	checkLog(t, db, ids(recs)) // yanks were signed in time order
}

func TestWitnessIndexAndEquivocation(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	w := key(t, 9) // a witnessing node
	trustWitness(t, db, w)
	recs := yanks(t, key(t, 1), 12)
	if _, err := db.PutRecords(recs); err != nil {
		t.Fatal(err)
	}
	all := ids(recs)
	c1 := checkpointRec(t, w, 0, all[:5], registry.TreeRoot(all[:5]), t0.Add(time.Second))
	c2 := checkpointRec(t, w, 5, all[5:8], registry.TreeRoot(all[:8]), t0.Add(2*time.Second))
	if _, err := db.PutRecords([]*registry.Record{c1, c2}); err != nil {
		t.Fatal(err)
	}
	wt, err := db.WitnessTimes(all[6])
	if err != nil || len(wt) != 1 || !wt[0].Author.Equal(w.Public()) || wt[0].Time != c2.Time || wt[0].Index != 6 || wt[0].Checkpoint != c2.ID() {
		t.Fatalf("witness times of entry 6: %+v %v", wt, err)
	}
	if wt, _ := db.WitnessTimes(all[9]); len(wt) != 0 {
		t.Fatalf("an entry no checkpoint includes is witnessed: %+v", wt)
	}
	head, err := db.Checkpoint(w.Public())
	if err != nil || head.ID() != c2.ID() {
		t.Fatalf("head %v %v", head, err)
	}
	db.Close()

	// After a restart the chain continues where it was.
	db, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c3 := checkpointRec(t, w, 8, all[8:10], registry.TreeRoot(all[:10]), t0.Add(3*time.Second))
	if _, err := db.PutRecords([]*registry.Record{c3}); err != nil {
		t.Fatal(err)
	}
	if wt, _ := db.WitnessTimes(all[9]); len(wt) != 1 || wt[0].Time != c3.Time {
		t.Fatalf("entry 9 after the restart: %+v", wt)
	}
	if ev, _ := db.Evidence(); len(ev) != 0 {
		t.Fatalf("evidence without equivocation: %+v", ev)
	}

	// A fork of the tree of size 8, delivered late, is equivocation: kept
	// as evidence, and the log witnesses nothing from size 8 on.
	forked := append(append([]registry.ID(nil), all[:5]...), all[11], all[10], all[9])
	fork := checkpointRec(t, w, 5, forked[5:], registry.TreeRoot(forked), t0.Add(2*time.Second+time.Millisecond))
	if _, err := db.PutRecords([]*registry.Record{fork}); err != nil {
		t.Fatal(err)
	}
	ev, err := db.Evidence()
	if err != nil || len(ev) != 1 || ev[0].Reason != registry.ReasonFork || ev[0].At != 8 ||
		!(ev[0].A == c2.ID() && ev[0].B == fork.ID() || ev[0].A == fork.ID() && ev[0].B == c2.ID()) {
		t.Fatalf("evidence %+v %v", ev, err)
	}
	if wt, _ := db.WitnessTimes(all[6]); len(wt) != 0 {
		t.Fatalf("entry 6 is still witnessed by an equivocating log: %+v", wt)
	}
	if wt, _ := db.WitnessTimes(all[2]); len(wt) != 1 || wt[0].Time != c1.Time {
		t.Fatalf("entry 2, witnessed before the fork, lost its time: %+v", wt)
	}
}

// The witness index always equals the pure function of the checkpoint set.
func TestWitnessIndexMatchesWitness(t *testing.T) {
	db, err := Open("", Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	w := key(t, 9)
	trustWitness(t, db, w)
	recs := yanks(t, key(t, 1), 30)
	all := ids(recs)
	var cks []*registry.Record
	for size, i := uint64(0), 0; size < 30; i++ {
		n := uint64(1 + i%4)
		if size+n > 30 {
			n = 30 - size
		}
		cks = append(cks, checkpointRec(t, w, size, all[size:size+n], registry.TreeRoot(all[:size+n]), t0.Add(time.Duration(i)*time.Second)))
		size += n
	}
	// Deliver out of order and in several batches.
	order := []int{3, 0, 5, 1, 2, 7, 4, 6}
	for _, i := range order {
		if i < len(cks) {
			if _, err := db.PutRecords([]*registry.Record{cks[i]}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := db.PutRecords(cks); err != nil {
		t.Fatal(err)
	}
	want := registry.Witness(cks)[w.Public().PeerID()]
	for _, id := range all {
		got, err := db.WitnessTimes(id)
		if err != nil {
			t.Fatal(err)
		}
		ww, ok := want.Times[id]
		if ok != (len(got) == 1) || ok && (got[0].Time != ww.Time || got[0].Index != ww.Index) {
			t.Fatalf("entry %s: store %+v, Witness %+v", id, got, ww)
		}
	}
}

// Random checkpoint sets with forks, backdating and gaps, delivered in
// random batches with a restart in the middle: the witness index and the
// evidence equal the pure function of the set.
func TestWitnessIndexPropertyWithRestart(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 21))
	for round := 0; round < 12; round++ {
		dir := t.TempDir()
		db, err := Open(dir, Options{GCInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		w := key(t, byte(30+round))
		trustWitness(t, db, w)
		all := ids(yanks(t, key(t, 1), 40))
		var cks []*registry.Record
		at := t0
		for size := uint64(0); size < 40; {
			n := min(uint64(1+rng.IntN(5)), 40-size)
			at = at.Add(time.Duration(rng.IntN(1000)) * time.Millisecond)
			cks = append(cks, checkpointRec(t, w, size, all[size:size+n], registry.TreeRoot(all[:size+n]), at))
			switch rng.IntN(10) {
			case 0:
				alt := append([]registry.ID(nil), all[:size+n]...)
				alt[size] = registry.Sum([]byte{byte(round), byte(size)})
				cks = append(cks, checkpointRec(t, w, size, alt[size:], registry.TreeRoot(alt), at.Add(time.Millisecond)))
			case 1:
				if size+n < 40 {
					cks = append(cks, checkpointRec(t, w, size+n, all[size+n:size+n+1], registry.TreeRoot(all[:size+n+1]), at.Add(-time.Second)))
				}
			}
			size += n
		}
		order := rng.Perm(len(cks))
		for i := 0; i < len(order); {
			n := 1 + rng.IntN(3)
			var batch []*registry.Record
			for _, j := range order[i:min(i+n, len(order))] {
				batch = append(batch, cks[j])
			}
			if _, err := db.PutRecords(batch); err != nil {
				t.Fatal(err)
			}
			i += n
			if i >= len(order)/2 && i-n < len(order)/2 {
				db.Close()
				if db, err = Open(dir, Options{GCInterval: -1}); err != nil {
					t.Fatal(err)
				}
			}
		}
		want := registry.Witness(cks)[w.Public().PeerID()]
		for _, id := range all {
			got, err := db.WitnessTimes(id)
			if err != nil {
				t.Fatal(err)
			}
			ww, ok := want.Times[id]
			if ok != (len(got) == 1) || ok && (got[0].Time != ww.Time || got[0].Index != ww.Index || got[0].Checkpoint != ww.Checkpoint) {
				t.Fatalf("round %d, entry %s: store %+v, Witness %+v (ok %v)", round, id, got, ww, ok)
			}
		}
		ev, err := db.Evidence()
		if err != nil {
			t.Fatal(err)
		}
		key := func(e registry.Evidence) string { return e.A.String() + e.B.String() + e.Reason }
		got := map[string]bool{}
		for _, e := range ev {
			got[key(e)] = true
		}
		if len(ev) != len(want.Evidence) {
			t.Fatalf("round %d: store has %d pieces of evidence, Witness %d", round, len(ev), len(want.Evidence))
		}
		for _, e := range want.Evidence {
			if !got[key(e)] {
				t.Fatalf("round %d: the store lacks evidence %+v", round, e)
			}
		}
		db.Close()
	}
}

// Checkpoints that alternate between the head's fast path and the whole
// chain (gaps filled late) end with every entry witnessed.
func TestWitnessAcrossFastAndSlowPaths(t *testing.T) {
	db, err := Open("", Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	w := key(t, 9)
	trustWitness(t, db, w)
	all := ids(yanks(t, key(t, 1), 12))
	var c []*registry.Record
	for i := 0; i < 6; i++ {
		c = append(c, checkpointRec(t, w, uint64(2*i), all[2*i:2*i+2], registry.TreeRoot(all[:2*i+2]), t0.Add(time.Duration(i)*time.Second)))
	}
	for _, i := range []int{1, 0, 2, 4, 3, 5} { // gap, fill, in order, gap, fill, in order
		if _, err := db.PutRecords([]*registry.Record{c[i]}); err != nil {
			t.Fatal(err)
		}
	}
	for i, id := range all {
		if wt, _ := db.WitnessTimes(id); len(wt) != 1 || wt[0].Time != c[i/2].Time {
			t.Fatalf("entry %d: %+v", i, wt)
		}
	}
	if h, err := db.Checkpoint(w.Public()); err != nil || h.ID() != c[5].ID() {
		t.Fatalf("head %v", err)
	}
}

// A key that is not one of the node's witnesses cannot make the store
// verify its checkpoints: out-of-order and forked checkpoints by a
// stranger are logged like any record, derive no chain, witness nothing
// and leave no evidence. When the key becomes a witness its chain is
// derived once, with its witnessed times and evidence; when it stops
// being one they are gone again.
func TestCheckpointsOfStrangersAreOnlyLogged(t *testing.T) {
	db, err := Open("", Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	w, stranger := key(t, 9), key(t, 10)
	trustWitness(t, db, w)
	all := ids(yanks(t, key(t, 1), 12))
	if _, err := db.PutRecords(yanks(t, key(t, 1), 12)); err != nil {
		t.Fatal(err)
	}
	var cks []*registry.Record
	for i := 0; i < 6; i++ {
		cks = append(cks, checkpointRec(t, stranger, uint64(2*i), all[2*i:2*i+2], registry.TreeRoot(all[:2*i+2]), t0.Add(time.Duration(i)*time.Second)))
	}
	// A fork of the last checkpoint: same size, its two leaves swapped.
	forked := append(append([]registry.ID{}, all[:10]...), all[11], all[10])
	fork := checkpointRec(t, stranger, 10, forked[10:], registry.TreeRoot(forked), t0.Add(time.Hour))
	loads := db.tl.loads.Load()
	for _, i := range []int{5, 3, 1, 4, 2, 0} { // every arrival out of order
		if _, err := db.PutRecords([]*registry.Record{cks[i]}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.PutRecords([]*registry.Record{fork}); err != nil {
		t.Fatal(err)
	}
	if n := db.tl.loads.Load() - loads; n != 0 {
		t.Fatalf("a stranger's out-of-order checkpoints derived %d chains", n)
	}
	if wt, _ := db.WitnessTimes(all[0]); len(wt) != 0 {
		t.Fatalf("a stranger's checkpoint witnessed a record: %+v", wt)
	}
	if ev, _ := db.Evidence(); len(ev) != 0 {
		t.Fatalf("a stranger's fork is kept as evidence: %+v", ev)
	}
	if _, err := db.Checkpoint(stranger.Public()); registry.KindOf(err) != registry.ENOTFOUND {
		t.Fatalf("a stranger has a chain head: %v", err)
	}
	if _, err := db.LogIndex(fork.ID()); err != nil {
		t.Fatalf("the stranger's checkpoint is not in the log: %v", err)
	}

	// Trusted, its chain is derived from the log.
	trustWitness(t, db, w, stranger)
	wt, _ := db.WitnessTimes(all[3])
	if len(wt) != 1 || !wt[0].Author.Equal(stranger.Public()) || wt[0].Time != cks[1].Time {
		t.Fatalf("once trusted, entry 3 is witnessed %+v, want at %d", wt, cks[1].Time)
	}
	if ev, _ := db.Evidence(); len(ev) != 1 || ev[0].Reason != registry.ReasonFork {
		t.Fatalf("once trusted, evidence %+v", ev)
	}
	// Its next checkpoint extends the derived chain.
	extra := registry.Sum([]byte("a record the store does not hold"))
	next := checkpointRec(t, stranger, 12, []registry.ID{extra}, registry.TreeRoot(append(append([]registry.ID{}, all...), extra)), t0.Add(2*time.Hour))
	if _, err := db.PutRecords([]*registry.Record{next}); err != nil {
		t.Fatal(err)
	}
	if wt, _ := db.WitnessTimes(extra); len(wt) != 0 {
		t.Fatalf("an entry past the fork is witnessed: %+v", wt)
	}
	if wt, _ := db.WitnessTimes(all[3]); len(wt) != 1 {
		t.Fatalf("entry 3 lost its witnessed time: %+v", wt)
	}
	// Trust withdrawn: nothing of its chain is left.
	trustWitness(t, db, w)
	if wt, _ := db.WitnessTimes(all[3]); len(wt) != 0 {
		t.Fatalf("after trust is withdrawn, entry 3 is witnessed %+v", wt)
	}
	if ev, _ := db.Evidence(); len(ev) != 0 {
		t.Fatalf("after trust is withdrawn, evidence %+v", ev)
	}
}

// Reindex derives the log's position index and tree, the witness index,
// the chain heads and the evidence again: damaged or deleted, they come
// back exactly as they were.
func TestReindexRebuildsTheLogAndWitnessIndex(t *testing.T) {
	db, err := Open(t.TempDir(), Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	w := key(t, 9)
	trustWitness(t, db, w)
	recs := yanks(t, key(t, 1), 12)
	if _, err := db.PutRecords(recs); err != nil {
		t.Fatal(err)
	}
	all := ids(recs)
	c1 := checkpointRec(t, w, 0, all[:5], registry.TreeRoot(all[:5]), t0.Add(time.Second))
	c2 := checkpointRec(t, w, 5, all[5:8], registry.TreeRoot(all[:8]), t0.Add(2*time.Second))
	c2f := checkpointRec(t, w, 5, []registry.ID{all[6], all[5], all[7]}, registry.TreeRoot(append(append([]registry.ID{}, all[:5]...), all[6], all[5], all[7])), t0.Add(3*time.Second))
	if _, err := db.PutRecords([]*registry.Record{c1, c2, c2f}); err != nil {
		t.Fatal(err)
	}
	want := append(append([]registry.ID{}, all...), c1.ID(), c2.ID(), c2f.ID())
	wt3, _ := db.WitnessTimes(all[3])
	ev, _ := db.Evidence()
	if len(wt3) != 1 || len(ev) != 1 {
		t.Fatalf("before: witness times %+v, evidence %+v", wt3, ev)
	}
	// Damage every derived table of the log.
	err = db.bdb.Update(func(txn *badger.Txn) error {
		for _, k := range [][]byte{witnessKey(all[3], w.Public()), chainKey(w.Public()), evidenceKey(ev[0]), logIndexKey(all[4]), treeKey(registry.TreeNode{Level: 1, Index: 0})} {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		return txn.Set(treeKey(registry.TreeNode{Level: 2, Index: 1}), make([]byte, 32))
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Reindex(); err != nil {
		t.Fatal(err)
	}
	checkLog(t, db, want)
	if got, _ := db.WitnessTimes(all[3]); len(got) != 1 || got[0].Time != wt3[0].Time || got[0].Checkpoint != wt3[0].Checkpoint || got[0].Index != wt3[0].Index {
		t.Fatalf("after reindex: witness times %+v, want %+v", got, wt3)
	}
	if got, _ := db.Evidence(); len(got) != 1 || got[0].A != ev[0].A || got[0].B != ev[0].B {
		t.Fatalf("after reindex: evidence %+v, want %+v", got, ev)
	}
	if ck, err := db.Checkpoint(w.Public()); err != nil || ck.Size != 8 {
		t.Fatalf("after reindex: checkpoint %+v %v", ck, err)
	}
}
