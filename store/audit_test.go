package store

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// Concurrent writers each get exactly one entry per write, in one chain,
// and the chain survives a restart.
func TestAuditChainUnderConcurrentWrites(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	k := key(t, 1)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				r := sign(t, k, registry.KindYank, fmt.Sprintf("c%d-%d@1.0.0", w, i), &registry.YankBody{Yanked: true}, t0.Add(time.Duration(w*100+i)*time.Millisecond))
				var err error
				switch i % 3 {
				case 0:
					_, err = db.PutRecordsAudited([]*registry.Record{r}, func(added []*registry.Record) []AuditEntry {
						return []AuditEntry{{Action: "yank", Actor: fmt.Sprint("w", w), Record: added[0].ID().String()}}
					})
				case 1:
					err = db.PutLocalJSONAudited(fmt.Sprint("k", w), i, AuditEntry{Action: "settings", Actor: fmt.Sprint("w", w)})
				default:
					err = db.Audit(AuditEntry{Action: "sync", Actor: fmt.Sprint("w", w)})
				}
				if err != nil {
					t.Error(err)
				}
			}
		}(w)
	}
	wg.Wait()
	c, err := db.VerifyAudit(nil)
	if err != nil || !c.OK || c.Entries != 200 || c.Head.Seq != 200 {
		t.Fatalf("after 200 concurrent writes: %+v %v", c, err)
	}
	db.Close()
	if db, err = Open(dir, Options{GCInterval: -1}); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Audit(AuditEntry{Action: "after-restart"}); err != nil {
		t.Fatal(err)
	}
	if c, err := db.VerifyAudit(nil); err != nil || !c.OK || c.Entries != 201 {
		t.Fatalf("after a restart: %+v %v", c, err)
	}
}

// Changing, removing or re-hashing an entry on disk is found, and the
// entry named.
func TestAuditVerifyNamesTheTamperedEntry(t *testing.T) {
	setup := func(t *testing.T) *DB {
		db, err := Open("", Options{InMemory: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		for i := 0; i < 10; i++ {
			if err := db.Audit(AuditEntry{Action: "submit", Actor: "alice (token ci)", Detail: fmt.Sprint(i)}); err != nil {
				t.Fatal(err)
			}
		}
		return db
	}
	rewrite := func(t *testing.T, db *DB, seq uint64, f func(*AuditEntry)) {
		t.Helper()
		err := db.bdb.Update(func(txn *badger.Txn) error {
			it, err := txn.Get(seqKey(pAudit, seq))
			if err != nil {
				return err
			}
			var e AuditEntry
			if err := it.Value(func(b []byte) error { return json.Unmarshal(b, &e) }); err != nil {
				return err
			}
			f(&e)
			b, _ := json.Marshal(e)
			return txn.Set(seqKey(pAudit, seq), b)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Run("edited", func(t *testing.T) {
		db := setup(t)
		rewrite(t, db, 4, func(e *AuditEntry) { e.Actor = "mallory" })
		if c, _ := db.VerifyAudit(nil); c.OK || c.Bad != 4 {
			t.Fatalf("%+v", c)
		}
	})
	t.Run("edited and re-hashed", func(t *testing.T) {
		db := setup(t)
		rewrite(t, db, 4, func(e *AuditEntry) { e.Actor = "mallory"; e.Hash, _ = hashEntry(*e) })
		if c, _ := db.VerifyAudit(nil); c.OK || c.Bad != 5 {
			t.Fatalf("%+v", c)
		}
	})
	t.Run("removed", func(t *testing.T) {
		db := setup(t)
		if err := db.bdb.Update(func(txn *badger.Txn) error { return txn.Delete(seqKey(pAudit, 7)) }); err != nil {
			t.Fatal(err)
		}
		if c, _ := db.VerifyAudit(nil); c.OK || c.Bad != 7 {
			t.Fatalf("%+v", c)
		}
	})
	t.Run("whole chain rewritten against a signed pin", func(t *testing.T) {
		db := setup(t)
		logs, _ := db.AuditLog(0, 0)
		pin := map[uint64]string{6: logs[len(logs)-6].Hash}
		prev := ""
		for seq := uint64(1); seq <= 10; seq++ {
			rewrite(t, db, seq, func(e *AuditEntry) {
				if seq == 3 {
					e.Detail = "forged"
				}
				e.Prev = prev
				e.Hash, _ = hashEntry(*e)
				prev = e.Hash
			})
		}
		db.setAuditHead(AuditHead{Seq: 10, Hash: prev})
		if c, _ := db.VerifyAudit(nil); !c.OK {
			t.Fatalf("a consistent rewrite without a pin: %+v", c)
		}
		if c, _ := db.VerifyAudit(pin); c.OK || c.Bad != 6 {
			t.Fatalf("against the pin: %+v", c)
		}
	})
}
