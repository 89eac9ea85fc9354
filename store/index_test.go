package store

import (
	"slices"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// countPrefix counts the keys under prefix.
func countPrefix(t *testing.T, db *DB, prefix ...byte) int {
	t.Helper()
	n := 0
	err := db.bdb.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.PrefetchValues = false
		o.Prefix = prefix
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func sortedIDs(rs []*registry.Record) []registry.ID {
	out := make([]registry.ID, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.ID())
	}
	slices.SortFunc(out, registry.ID.Compare)
	return out
}

// lookalikes are records whose subjects resemble crate "foo" without being
// about it: other crates whose names start with "foo", and records of
// kinds that are not about a crate whose subject is "foo" or "foo@1.0.0".
func lookalikes(t *testing.T, k registry.PrivateKey) []*registry.Record {
	return []*registry.Record{
		release(t, k, "foo-bar", "1.0.0", t0, []byte("foo-bar")),
		release(t, k, "foo_x", "1.0.0", t0, []byte("foo_x")),
		release(t, k, "fo", "1.0.0", t0, []byte("fo")),
		release(t, k, "foobar", "1.0.0", t0, []byte("foobar")),
		sign(t, k, "note", "foo", map[int]string{1: "a note whose subject is a crate name"}, t0),
		sign(t, k, "note", "foo@1.0.0", map[int]string{1: "a note whose subject is a release"}, t0),
		sign(t, k, registry.KindReview, "foo-bar@1.0.0", &registry.ReviewBody{Verdict: registry.VerdictApprove}, t0),
	}
}

// TestFewerIndexKeysPerRecord: a record gets a time and a subject index
// entry, a kind entry only when its kind is rare, and no name or author
// entry (docs/BENCHMARKS.md: each key is ingest CPU on every node).
func TestFewerIndexKeysPerRecord(t *testing.T) {
	stores(t, func(t *testing.T, db *DB) {
		a, b := key(t, 1), key(t, 2)
		rel := release(t, a, "foo", "1.0.0", t0, []byte("one"))
		recs := []*registry.Record{
			rel,
			sign(t, a, registry.KindYank, "foo@1.0.0", &registry.YankBody{Yanked: true}, t0.Add(time.Second)),
			sign(t, b, registry.KindReview, "foo@1.0.0", &registry.ReviewBody{Verdict: registry.VerdictApprove}, t0.Add(2*time.Second)),
			sign(t, a, registry.KindOwners, "foo", &registry.OwnersBody{Owners: [][]byte{a.Public()}}, t0.Add(3*time.Second)),
			sign(t, b, "note", "foo", map[int]string{1: "x"}, t0.Add(4*time.Second)),
		}
		if _, err := db.PutRecords(recs); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			table byte
			want  int
		}{{pTime, 5}, {pSubject, 5}, {pKind, 2}, {pName, 0}, {pAuthor, 0}} {
			if got := countPrefix(t, db, c.table); got != c.want {
				t.Errorf("index %q holds %d keys, want %d", c.table, got, c.want)
			}
		}
	})
}

// TestRecordsByNameIgnoresLookalikes: reading a crate's records through
// the subject index finds exactly the records about it, whatever other
// crates and kinds share the start of its subjects; the views, SetAuthority
// and Reindex agree.
func TestRecordsByNameIgnoresLookalikes(t *testing.T) {
	stores(t, func(t *testing.T, db *DB) {
		a, b := key(t, 1), key(t, 2)
		mine := []*registry.Record{
			release(t, a, "foo", "1.0.0", t0, []byte("one")),
			release(t, a, "foo", "1.0.0-rc.1", t0, []byte("rc")),
			sign(t, a, registry.KindYank, "foo@1.0.0", &registry.YankBody{Yanked: true}, t0.Add(time.Second)),
			sign(t, b, registry.KindReview, "foo@1.0.0", &registry.ReviewBody{Verdict: registry.VerdictApprove}, t0.Add(2*time.Second)),
			sign(t, a, registry.KindOwners, "foo", &registry.OwnersBody{Owners: [][]byte{a.Public()}}, t0.Add(3*time.Second)),
		}
		others := lookalikes(t, b)
		if _, err := db.PutRecords(append(slices.Clone(mine), others...)); err != nil {
			t.Fatal(err)
		}
		check := func(when string) {
			t.Helper()
			got, err := db.RecordsByName("foo")
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(sortedIDs(got), sortedIDs(mine)) {
				t.Fatalf("%s: RecordsByName(foo) = %d records, want exactly foo's %d", when, len(got), len(mine))
			}
			views, err := db.ViewsByName("foo")
			if err != nil || len(views) != 2 {
				t.Fatalf("%s: foo has %d views (%v), want 2", when, len(views), err)
			}
			for _, name := range []string{"foo-bar", "foo_x", "fo", "foobar"} {
				if vs, _ := db.ViewsByName(name); len(vs) != 1 {
					t.Fatalf("%s: %s has %d views, want 1", when, name, len(vs))
				}
			}
		}
		check("after ingest")
		all := append(slices.Clone(mine), others...)
		for _, kind := range []registry.Kind{registry.KindRelease, registry.KindReview, registry.KindOwners, "note"} {
			got, err := db.RecordsByKind(kind)
			if err != nil {
				t.Fatal(err)
			}
			var want []*registry.Record
			for _, r := range all {
				if r.Kind == kind {
					want = append(want, r)
				}
			}
			if !slices.Equal(sortedIDs(got), sortedIDs(want)) {
				t.Fatalf("RecordsByKind(%s) = %d records, want %d", kind, len(got), len(want))
			}
		}
		if got, _ := db.RecordsByAuthor(b.Public()); !slices.Equal(sortedIDs(got), sortedIDs(append(others, mine[3]))) {
			t.Fatalf("RecordsByAuthor = %d records, want %d", len(got), len(others)+1)
		}
		// Five crates have releases; the notes' subjects are not crates.
		n, err := db.SetAuthority(registry.NewTrust([]registry.PublicKey{a.Public()}, nil, time.Now(), time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if n != 5 {
			t.Fatalf("SetAuthority derived %d crates, want 5", n)
		}
		check("after SetAuthority")
		if _, err := db.Reindex(); err != nil {
			t.Fatal(err)
		}
		check("after Reindex")
	})
}
