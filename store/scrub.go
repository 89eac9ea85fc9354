package store

import (
	"context"
	"errors"
	"time"

	"github.com/dgraph-io/badger/v4"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// pQuarantine holds damaged values moved out of their tables:
// Q 'r' ID → the damaged record bytes, Q 'b' ID → the damaged blob bytes.
// Nothing reads them back but an operator; they are evidence.
const pQuarantine = 'Q'

// Damage is one stored item that failed re-verification.
type Damage struct {
	Kind    string `json:"kind"` // "record" or "blob"
	ID      string `json:"id"`
	Problem string `json:"problem"`
	// Time is the record's signed time as its time index holds it (0 when
	// the index has no entry): with the ID, the record's reconciliation key.
	Time int64 `json:"time,omitempty"`
}

// ScrubReport is the result of one pass of Scrub.
type ScrubReport struct {
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Records  int64     `json:"records_checked"`
	Blobs    int64     `json:"blobs_checked"`
	Damaged  []Damage  `json:"damaged"`
	// Complete is false when the pass was cancelled before it checked
	// everything.
	Complete bool `json:"complete"`
}

// ScrubOptions pace a scrub.
type ScrubOptions struct {
	// Batch is how many items are read per read transaction (default 256).
	Batch int
	// Pause is slept between batches, so that a background scrub leaves
	// the disk to the node (default 0: full speed).
	Pause time.Duration
	// Quarantine moves damaged records and blobs out of the store (see
	// Quarantine); otherwise they are only reported.
	Quarantine bool
}

// Scrub re-reads every record and blob and verifies it: a record's bytes
// must hash to its key (the ID), decode in canonical form, match the
// schema of its kind and carry a valid signature; a blob's bytes must hash
// to its key. It reports the damaged items, and with opts.Quarantine moves
// them out of the store. It reads in small batches, each in its own
// transaction, so writes go on while it runs. A cancelled ctx ends the
// pass early with Complete false and no error.
func (db *DB) Scrub(ctx context.Context, opts ScrubOptions) (ScrubReport, error) {
	const op = "store.Scrub"
	if opts.Batch <= 0 {
		opts.Batch = 256
	}
	rep := ScrubReport{Started: time.Now().UTC(), Damaged: []Damage{}}
	var badRecs, badBlobs []registry.ID
	check := func(prefix byte, fn func(id registry.ID, v []byte)) error {
		next := []byte{prefix}
		for {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			n := 0
			var last []byte
			err := db.bdb.View(func(txn *badger.Txn) error {
				o := badger.DefaultIteratorOptions
				o.Prefix = []byte{prefix}
				o.PrefetchValues = false
				it := txn.NewIterator(o)
				defer it.Close()
				for it.Seek(next); it.Valid() && n < opts.Batch; it.Next() {
					k := it.Item().KeyCopy(nil)
					v, err := it.Item().ValueCopy(nil)
					if err != nil {
						return err
					}
					last = k
					n++
					var id registry.ID
					if len(k) != 1+len(id) {
						fn(registry.ID{}, nil)
						continue
					}
					copy(id[:], k[1:])
					fn(id, v)
				}
				return nil
			})
			if err != nil {
				return internal(op, err)
			}
			if n < opts.Batch {
				return nil
			}
			next = append(last, 0)
			if opts.Pause > 0 {
				t := time.NewTimer(opts.Pause)
				select {
				case <-ctx.Done():
					t.Stop()
					return ctx.Err()
				case <-t.C:
				}
			}
		}
	}
	err := check(pRecord, func(id registry.ID, v []byte) {
		rep.Records++
		if p := verifyRecord(id, v); p != "" {
			rep.Damaged = append(rep.Damaged, Damage{Kind: "record", ID: id.String(), Problem: p})
			badRecs = append(badRecs, id)
		}
	})
	if err == nil {
		err = check(pBlob, func(id registry.ID, v []byte) {
			rep.Blobs++
			if registry.Sum(v) != id {
				rep.Damaged = append(rep.Damaged, Damage{Kind: "blob", ID: id.String(), Problem: "bytes do not hash to the blob's multihash"})
				badBlobs = append(badBlobs, id)
			}
		})
	}
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return rep, err
	}
	rep.Complete = err == nil
	if len(badRecs) > 0 {
		times, err := db.recordTimes(badRecs)
		if err != nil {
			return rep, err
		}
		for i := range rep.Damaged {
			if rep.Damaged[i].Kind == "record" {
				id, _ := registry.ParseID(rep.Damaged[i].ID)
				rep.Damaged[i].Time = times[id]
			}
		}
	}
	if opts.Quarantine {
		if err := db.Quarantine(badRecs, badBlobs); err != nil {
			return rep, err
		}
	}
	rep.Finished = time.Now().UTC()
	return rep, nil
}

// verifyRecord returns what is wrong with the stored bytes v of record id,
// or "" when they verify.
func verifyRecord(id registry.ID, v []byte) string {
	if id.IsZero() {
		return "malformed record key"
	}
	if registry.Sum(v) != id {
		return "bytes do not hash to the record's ID"
	}
	if _, err := registry.DecodeRecord(v); err != nil {
		return registry.MessageOf(err)
	}
	return ""
}

// recordTimes finds the time index entries of the given records.
func (db *DB) recordTimes(ids []registry.ID) (map[registry.ID]int64, error) {
	want := make(map[registry.ID]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	out := map[registry.ID]int64{}
	err := db.ScanTimeIndex(func(t int64, id registry.ID) error {
		if want[id] {
			out[id] = t
		}
		return nil
	})
	return out, err
}

// Quarantine moves damaged records and blobs out of the store: each value
// is kept under the quarantine table, and a record's derived index entries
// are dropped and the release views of its crate derived again, so that it
// is neither served nor offered to peers and reconciliation can fetch an
// intact copy. Items not held are skipped.
func (db *DB) Quarantine(records, blobs []registry.ID) error {
	const op = "store.Quarantine"
	if len(records) == 0 && len(blobs) == 0 {
		return nil
	}
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	bad := make(map[registry.ID]bool, len(records))
	for _, id := range records {
		bad[id] = true
	}
	// Index keys end in the record ID; find them by scanning the indexes
	// (keys only), since damaged bytes cannot be trusted to derive them.
	var drop [][]byte
	names := map[string]bool{}
	if len(bad) > 0 {
		err := db.bdb.View(func(txn *badger.Txn) error {
			o := badger.DefaultIteratorOptions
			o.PrefetchValues = false
			it := txn.NewIterator(o)
			defer it.Close()
			for _, p := range []byte{pTime, pName, pSubject, pKind, pAuthor} {
				for it.Seek([]byte{p}); it.ValidForPrefix([]byte{p}); it.Next() {
					k := it.Item().Key()
					var id registry.ID
					if len(k) < 1+len(id) {
						continue
					}
					copy(id[:], k[len(k)-len(id):])
					if !bad[id] {
						continue
					}
					drop = append(drop, it.Item().KeyCopy(nil))
					if p == pSubject {
						if name, ok := subjectKeyName(k); ok {
							names[name] = true
						}
					}
				}
			}
			return nil
		})
		if err != nil {
			return internal(op, err)
		}
	}
	var removed registry.Fingerprint
	var blobsRemoved int64
	err := db.bdb.Update(func(txn *badger.Txn) error {
		move := func(table byte, id registry.ID) (bool, error) {
			k := append([]byte{table}, id[:]...)
			it, err := txn.Get(k)
			if errors.Is(err, badger.ErrKeyNotFound) {
				return false, nil
			}
			if err != nil {
				return false, err
			}
			v, err := it.ValueCopy(nil)
			if err != nil {
				return false, err
			}
			if err := txn.Set(append([]byte{pQuarantine, table}, id[:]...), v); err != nil {
				return false, err
			}
			return true, txn.Delete(k)
		}
		for id := range bad {
			ok, err := move(pRecord, id)
			if err != nil {
				return err
			}
			if ok {
				removed.Add(id)
			}
		}
		for _, id := range blobs {
			ok, err := move(pBlob, id)
			if err != nil {
				return err
			}
			if ok {
				blobsRemoved++
			}
		}
		for _, k := range drop {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return internal(op, err)
	}
	for id := range bad {
		db.recs.Remove(id)
	}
	for name := range names {
		err := db.bdb.Update(func(txn *badger.Txn) error {
			if err := dropViews(txn, name); err != nil {
				return err
			}
			recs, err := db.readByName(txn, name)
			if err != nil {
				return err
			}
			return db.writeViews(txn, name, recs, false)
		})
		if err != nil {
			return registry.E(op, registry.KindOf(err), "deriving the views of "+name+" again", err)
		}
	}
	db.mu.Lock()
	db.fp.Sub(removed)
	db.blobs -= blobsRemoved
	db.mu.Unlock()
	return nil
}

// QuarantinedRecord returns the damaged bytes kept for a quarantined
// record; ENOTFOUND when it was not quarantined.
func (db *DB) QuarantinedRecord(id registry.ID) ([]byte, error) {
	var b []byte
	err := db.bdb.View(func(txn *badger.Txn) error {
		it, err := txn.Get(append([]byte{pQuarantine, pRecord}, id[:]...))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return notFound("store.QuarantinedRecord", "quarantined record "+id.String())
		}
		if err != nil {
			return internal("store.QuarantinedRecord", err)
		}
		b, err = it.ValueCopy(nil)
		return err
	})
	return b, err
}

func dropPrefix(txn *badger.Txn, prefix []byte) error {
	o := badger.DefaultIteratorOptions
	o.PrefetchValues = false
	o.Prefix = prefix
	it := txn.NewIterator(o)
	var keys [][]byte
	for it.Rewind(); it.Valid(); it.Next() {
		keys = append(keys, it.Item().KeyCopy(nil))
	}
	it.Close()
	for _, k := range keys {
		if err := txn.Delete(k); err != nil {
			return err
		}
	}
	return nil
}
