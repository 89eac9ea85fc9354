package store

import (
	"context"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// flipStored opens the closed store's Badger database directly and flips
// one bit of the value stored under key.
func flipStored(t *testing.T, dir string, key []byte, at int) {
	t.Helper()
	bdb, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithSyncWrites(true))
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	err = bdb.Update(func(txn *badger.Txn) error {
		it, err := txn.Get(key)
		if err != nil {
			return err
		}
		v, err := it.ValueCopy(nil)
		if err != nil {
			return err
		}
		v[at%len(v)] ^= 0x04
		return txn.Set(key, v)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestScrubFindsExactlyTheFlippedRecord (DESIGN.md §2 "Bounded by design":
// records are re-verified by a scrub): one flipped bit in one stored
// record's value, written behind the store's back, is reported for exactly
// that record; the record is quarantined (not served, not in the time
// index or the digest, its crate's views derived again without it) and a
// second scrub finds nothing.
func TestScrubFindsExactlyTheFlippedRecord(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	k := key(t, 1)
	blob := []byte("crate bytes")
	rel := release(t, k, "flip", "1.0.0", t0, blob)
	other := release(t, k, "keep", "1.0.0", t0, []byte("other crate"))
	var recs []*registry.Record
	recs = append(recs, rel, other)
	for i := range 50 {
		recs = append(recs, sign(t, k, registry.KindReview, "keep@1.0.0", &registry.ReviewBody{Verdict: registry.VerdictApprove, Comment: string(rune('a' + i%26))}, t0.Add(time.Duration(i)*time.Millisecond)))
	}
	if _, err := db.PutRecords(recs); err != nil {
		t.Fatal(err)
	}
	if _, err := db.PutBlob(blob); err != nil {
		t.Fatal(err)
	}
	clean, err := db.Scrub(context.Background(), ScrubOptions{Batch: 7})
	if err != nil {
		t.Fatal(err)
	}
	if len(clean.Damaged) != 0 || clean.Records != int64(len(recs)) || clean.Blobs != 1 || !clean.Complete {
		t.Fatalf("scrub of an intact store: %+v", clean)
	}
	before := db.Fingerprint()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	flipStored(t, dir, recordKey(rel.ID()), 200)

	db, err = Open(dir, Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.GetRecord(rel.ID()); registry.KindOf(err) != registry.EINTERNAL {
		t.Fatalf("reading the damaged record: %v, want an internal error, not the damaged record", err)
	}
	rep, err := db.Scrub(context.Background(), ScrubOptions{Batch: 7, Quarantine: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Damaged) != 1 || rep.Damaged[0].Kind != "record" || rep.Damaged[0].ID != rel.ID().String() {
		t.Fatalf("damaged = %+v, want exactly record %s", rep.Damaged, rel.ID())
	}
	if rep.Damaged[0].Time != rel.Time {
		t.Errorf("damaged record's time = %d, want %d from its time index", rep.Damaged[0].Time, rel.Time)
	}
	if _, err := db.GetRecord(rel.ID()); registry.KindOf(err) != registry.ENOTFOUND {
		t.Errorf("quarantined record is still served: %v", err)
	}
	if b, err := db.QuarantinedRecord(rel.ID()); err != nil || len(b) != len(rel.Bytes()) {
		t.Errorf("quarantined bytes: %d bytes, %v", len(b), err)
	}
	want := before
	var one registry.Fingerprint
	one.Add(rel.ID())
	want.Sub(one)
	if got := db.Fingerprint(); got != want {
		t.Errorf("digest after quarantine does not describe the remaining records")
	}
	if err := db.ScanTimeIndex(func(_ int64, id registry.ID) error {
		if id == rel.ID() {
			t.Errorf("quarantined record is still in the time index")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if rs, err := db.RecordsByName("flip"); err != nil || len(rs) != 0 {
		t.Errorf("records of the crate after quarantine: %d, %v", len(rs), err)
	}
	if _, err := db.GetView("flip", "1.0.0"); registry.KindOf(err) != registry.ENOTFOUND {
		t.Errorf("the view of the quarantined release is still served: %v", err)
	}
	if rs, err := db.RecordsByName("keep"); err != nil || len(rs) != 51 {
		t.Errorf("records of the intact crate: %d, %v", len(rs), err)
	}
	again, err := db.Scrub(context.Background(), ScrubOptions{Quarantine: true})
	if err != nil || len(again.Damaged) != 0 || again.Records != int64(len(recs)-1) {
		t.Fatalf("scrub after quarantine: %+v, %v", again, err)
	}
	// The intact copy can be stored again (reconciliation does this).
	if added, err := db.PutRecords([]*registry.Record{rel}); err != nil || len(added) != 1 {
		t.Fatalf("storing the intact copy: %d added, %v", len(added), err)
	}
	if db.Fingerprint() != before {
		t.Errorf("digest after the intact copy came back differs from the original")
	}
}

// TestScrubFindsADamagedBlob: a blob whose bytes no longer hash to its key
// is reported and quarantined, so that it is fetched again.
func TestScrubFindsADamagedBlob(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	good, bad := []byte("good blob"), []byte("blob that will rot")
	db.PutBlob(good)
	badID, _ := db.PutBlob(bad)
	db.Close()
	flipStored(t, dir, blobKey(badID), 3)
	db, err = Open(dir, Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rep, err := db.Scrub(context.Background(), ScrubOptions{Quarantine: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Damaged) != 1 || rep.Damaged[0].Kind != "blob" || rep.Damaged[0].ID != badID.String() {
		t.Fatalf("damaged = %+v, want exactly blob %s", rep.Damaged, badID)
	}
	if has, _ := db.HasBlob(badID); has {
		t.Errorf("damaged blob is still held")
	}
	if _, blobs := db.Counts(); blobs != 1 {
		t.Errorf("blob count = %d, want 1", blobs)
	}
}

// TestUsagePersists: admission usage survives a restart.
func TestUsagePersists(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.PutUsage(map[string]Usage{"author/x": {Count: 3, Bytes: 900}, "kind/review": {Count: 1 << 40, Bytes: 1 << 50}}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = Open(dir, Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	u, err := db.LoadUsage()
	if err != nil {
		t.Fatal(err)
	}
	if u["author/x"] != (Usage{3, 900}) || u["kind/review"] != (Usage{1 << 40, 1 << 50}) || len(u) != 2 {
		t.Fatalf("usage after restart = %v", u)
	}
}
