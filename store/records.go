package store

import (
	"encoding/binary"
	"errors"

	"github.com/dgraph-io/badger/v4"

	registry "github.com/wasmrust/wasm-crates-registry"
)

func recordKey(id registry.ID) []byte {
	k := make([]byte, 1+len(id))
	k[0] = pRecord
	copy(k[1:], id[:])
	return k
}

func timeKey(t int64, id registry.ID) []byte {
	k := make([]byte, 9+len(id))
	k[0] = pTime
	binary.BigEndian.PutUint64(k[1:], uint64(t))
	copy(k[9:], id[:])
	return k
}

func sepKey(prefix byte, s string, id registry.ID) []byte {
	k := make([]byte, 0, 2+len(s)+len(id))
	k = append(k, prefix)
	k = append(k, s...)
	k = append(k, 0)
	return append(k, id[:]...)
}

func sepPrefix(prefix byte, s string) []byte {
	k := make([]byte, 0, 2+len(s))
	k = append(k, prefix)
	k = append(k, s...)
	return append(k, 0)
}

// indexedKind reports whether records of kind k get a kind index entry.
// The kinds every crate has many of (releases, yanks, reports, reviews)
// do not: they are found through the subject index, and an entry per
// record would cost every ingest a key that no query of the node reads.
// Rare kinds (keys, owners, checkpoints, and kinds this node does not
// know) are indexed, so RecordsByKind finds them without a scan.
func indexedKind(k registry.Kind) bool {
	switch k {
	case registry.KindRelease, registry.KindYank, registry.KindReport, registry.KindReview:
		return false
	}
	return true
}

// indexKeys returns every derived index key of r (all but the record
// itself): the time index, the subject index (which also finds a crate's
// records: their subjects are its name or start with "name@"), and the
// kind index for indexed kinds. Earlier versions also wrote a name and an
// author index and a kind entry for every record; such entries are never
// read and Reindex drops them.
func indexKeys(r *registry.Record) [][]byte {
	id := r.ID()
	keys := [][]byte{
		timeKey(r.Time, id),
		sepKey(pSubject, r.Subject, id),
	}
	if indexedKind(r.Kind) {
		keys = append(keys, sepKey(pKind, string(r.Kind), id))
	}
	return keys
}

// maxBatch bounds the records written in one Badger transaction; larger
// batches are split (each part is durable before the call returns).
const maxBatch = 4096

// PutRecords stores verified records (from registry.Sign or
// registry.DecodeRecord) with their indexes and updates the release views of
// the crates they are about. Records already held are skipped. It returns
// the records that were added, in input order, once they are synced to disk.
// Each added record is appended to the node's transparency log in the same
// transaction (tlog.go).
func (db *DB) PutRecords(recs []*registry.Record) ([]*registry.Record, error) {
	return db.PutRecordsAudited(recs, nil)
}

// PutRecordsAudited is PutRecords with audit entries: audit is called with
// the records a transaction adds and its entries are written in that same
// transaction, so an added record and its entries are durable together or
// not at all. A nil audit writes none.
func (db *DB) PutRecordsAudited(recs []*registry.Record, audit func(added []*registry.Record) []AuditEntry) ([]*registry.Record, error) {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	var added []*registry.Record
	for len(recs) > 0 {
		n := min(len(recs), maxBatch)
		for {
			got, err := db.putBatch(recs[:n], audit)
			if errors.Is(err, badger.ErrTxnTooBig) && n > 1 {
				n /= 2
				continue
			}
			if err != nil {
				return added, err
			}
			added = append(added, got...)
			break
		}
		recs = recs[n:]
	}
	return added, nil
}

func (db *DB) putBatch(recs []*registry.Record, audit func([]*registry.Record) []AuditEntry) ([]*registry.Record, error) {
	const op = "store.PutRecords"
	txn := db.bdb.NewTransaction(true)
	defer txn.Discard()
	var added []*registry.Record
	seen := make(map[registry.ID]bool, len(recs))
	names := map[string][]*registry.Record{}
	for _, r := range recs {
		id := r.ID()
		if id.IsZero() || len(r.Bytes()) == 0 {
			return nil, registry.Errorf(op, registry.EINTERNAL, "record was not built by registry.Sign or registry.DecodeRecord")
		}
		if seen[id] {
			continue
		}
		seen[id] = true
		rk := recordKey(id)
		if _, err := txn.Get(rk); err == nil {
			continue
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return nil, internal(op, err)
		}
		if err := txn.Set(rk, r.Bytes()); err != nil {
			return nil, wrapTxn(op, err)
		}
		for _, k := range indexKeys(r) {
			if err := txn.Set(k, nil); err != nil {
				return nil, wrapTxn(op, err)
			}
		}
		if n := r.SubjectName(); n != "" {
			names[n] = append(names[n], r)
		}
		added = append(added, r)
	}
	if len(added) == 0 {
		return nil, nil
	}
	lg, err := db.appendLog(txn, added)
	if err != nil {
		return nil, err
	}
	// Views are derived from the committed records of each crate plus this
	// batch's, and again for the crates whose releases, yanks or owners
	// records this batch's checkpoints witnessed (their order may change).
	// Reading through a separate read-only transaction keeps Badger from
	// re-sorting the batch's pending writes for every iterator; writeMu
	// guarantees nothing else commits in between.
	rtxn := db.bdb.NewTransaction(false)
	defer rtxn.Discard()
	auth := db.authority()
	rederive := map[string]bool{}
	for _, rw := range lg.rewitnessed {
		if !auth.Witness(rw.author) {
			continue
		}
		r, err := getRecord(txn, rw.id)
		if err != nil {
			continue // witnessed before it arrived here: its own arrival derives the views
		}
		switch r.Kind {
		case registry.KindRelease, registry.KindYank, registry.KindOwners:
			if n := r.SubjectName(); n != "" {
				rederive[n] = true
				if _, ok := names[n]; !ok {
					names[n] = nil
				}
			}
		}
	}
	for name, batch := range names {
		if !rederive[name] && inPlace(batch, auth, name) {
			ok, err := db.applyInPlace(txn, rtxn, name, batch)
			if err != nil {
				lg.abort()
				return nil, err
			}
			if ok {
				continue
			}
		}
		held, err := db.readByName(rtxn, name)
		if err != nil {
			lg.abort()
			return nil, err
		}
		if err := db.writeViews(txn, name, append(held, batch...), false); err != nil {
			lg.abort()
			return nil, err
		}
	}
	head := db.AuditHeadNow()
	if audit != nil {
		if head, err = db.appendAudit(txn, audit(added)); err != nil {
			lg.abort()
			return nil, err
		}
	}
	if err := txn.Commit(); err != nil {
		lg.abort()
		return nil, wrapTxn(op, err)
	}
	lg.commit()
	db.setAuditHead(head)
	db.mu.Lock()
	for _, r := range added {
		db.fp.Add(r.ID())
	}
	db.mu.Unlock()
	for _, r := range added {
		db.cache(r)
	}
	return added, nil
}

// maxCachedRecord is the largest record the decoded-record cache keeps, so
// that the cache holds at most recordCacheSize × maxCachedRecord bytes of
// record data whatever records peers send.
const maxCachedRecord = 4 << 10

// cache keeps a decoded record in the cache when it is small enough.
func (db *DB) cache(r *registry.Record) {
	if len(r.Bytes()) <= maxCachedRecord {
		db.recs.Add(r.ID(), r)
	}
}

func wrapTxn(op string, err error) error {
	if errors.Is(err, badger.ErrTxnTooBig) {
		return err
	}
	return internal(op, err)
}

// GetRecord returns a stored record; ENOTFOUND when it is not held.
func (db *DB) GetRecord(id registry.ID) (*registry.Record, error) {
	if r, ok := db.recs.Get(id); ok {
		return r, nil
	}
	var r *registry.Record
	err := db.bdb.View(func(txn *badger.Txn) error {
		var err error
		r, err = getRecord(txn, id)
		return err
	})
	if err == nil {
		db.cache(r)
	}
	return r, err
}

func getRecord(txn *badger.Txn, id registry.ID) (*registry.Record, error) {
	const op = "store.GetRecord"
	it, err := txn.Get(recordKey(id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, notFound(op, "record "+id.String())
	}
	if err != nil {
		return nil, internal(op, err)
	}
	b, err := it.ValueCopy(nil)
	if err != nil {
		return nil, internal(op, err)
	}
	if registry.Sum(b) != id {
		return nil, registry.Errorf(op, registry.EINTERNAL, "stored record %s is damaged (its bytes do not hash to its ID); run verify to quarantine it", id)
	}
	return registry.DecodeStored(b)
}

// HasRecord reports whether the record is held.
func (db *DB) HasRecord(id registry.ID) (bool, error) {
	var ok bool
	err := db.bdb.View(func(txn *badger.Txn) error {
		_, err := txn.Get(recordKey(id))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		ok = err == nil
		return err
	})
	if err != nil {
		return false, internal("store.HasRecord", err)
	}
	return ok, nil
}

// ScanTimeIndex calls fn for every record in (time, ID) order. A non-nil
// error from fn stops the scan and is returned.
func (db *DB) ScanTimeIndex(fn func(t int64, id registry.ID) error) error {
	return db.ScanTimeRange(0, registry.ID{}, fn)
}

// ScanTimeRange is ScanTimeIndex starting at the first record at or after
// (t, id).
func (db *DB) ScanTimeRange(t int64, id registry.ID, fn func(t int64, id registry.ID) error) error {
	return db.bdb.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.PrefetchValues = false
		o.Prefix = []byte{pTime}
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Seek(timeKey(t, id)); it.Valid(); it.Next() {
			k := it.Item().Key()
			var rid registry.ID
			copy(rid[:], k[9:])
			if err := fn(int64(binary.BigEndian.Uint64(k[1:9])), rid); err != nil {
				return err
			}
		}
		return nil
	})
}

// RecordsByName returns every record about crate name (releases, yanks,
// reports, reviews, owners), in no particular order.
func (db *DB) RecordsByName(name string) ([]*registry.Record, error) {
	var out []*registry.Record
	err := db.bdb.View(func(txn *badger.Txn) error {
		var err error
		out, err = db.readByName(txn, name)
		return err
	})
	return out, err
}

// readByName reads the records whose SubjectName is name, through the
// subject index: subjects "name" (owners) and "name@…" (the others).
func (db *DB) readByName(txn *badger.Txn, name string) ([]*registry.Record, error) {
	var out []*registry.Record
	for _, prefix := range [][]byte{sepPrefix(pSubject, name), append([]byte{pSubject}, name+"@"...)} {
		recs, err := db.readIndexed(txn, prefix)
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			if r.SubjectName() == name {
				out = append(out, r)
			}
		}
	}
	return out, nil
}

// RecordsBySubject returns every record with the given subject.
func (db *DB) RecordsBySubject(subject string) ([]*registry.Record, error) {
	return db.recordsByPrefix(sepPrefix(pSubject, subject))
}

// RecordsByKind returns every record of a kind. Rare kinds are read
// through the kind index; releases, yanks, reports and reviews (see
// indexedKind) by a scan of every record, O(records held).
func (db *DB) RecordsByKind(kind registry.Kind) ([]*registry.Record, error) {
	if indexedKind(kind) {
		return db.recordsByPrefix(sepPrefix(pKind, string(kind)))
	}
	return db.scanRecords(func(r *registry.Record) bool { return r.Kind == kind })
}

// RecordsByAuthor returns every record signed by author. No index serves
// it: it scans every record, O(records held).
func (db *DB) RecordsByAuthor(author registry.PublicKey) ([]*registry.Record, error) {
	return db.scanRecords(func(r *registry.Record) bool { return r.Author.Equal(author) })
}

// scanRecords returns every held record for which keep is true.
func (db *DB) scanRecords(keep func(*registry.Record) bool) ([]*registry.Record, error) {
	const op = "store.scanRecords"
	var out []*registry.Record
	err := db.bdb.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Prefix = []byte{pRecord}
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			b, err := it.Item().ValueCopy(nil)
			if err != nil {
				return internal(op, err)
			}
			var id registry.ID
			copy(id[:], it.Item().Key()[1:])
			if registry.Sum(b) != id {
				return registry.Errorf(op, registry.EINTERNAL, "stored record %s is damaged (its bytes do not hash to its ID); run verify to quarantine it", id)
			}
			r, err := registry.DecodeStored(b)
			if err != nil {
				return err
			}
			if keep(r) {
				out = append(out, r)
			}
		}
		return nil
	})
	return out, err
}

func (db *DB) recordsByPrefix(prefix []byte) ([]*registry.Record, error) {
	var out []*registry.Record
	err := db.bdb.View(func(txn *badger.Txn) error {
		var err error
		out, err = db.readIndexed(txn, prefix)
		return err
	})
	return out, err
}

// readIndexed reads the records named by an index whose keys end in a
// record ID, from the cache of decoded records where it can.
func (db *DB) readIndexed(txn *badger.Txn, prefix []byte) ([]*registry.Record, error) {
	o := badger.DefaultIteratorOptions
	o.PrefetchValues = false
	o.Prefix = prefix
	it := txn.NewIterator(o)
	defer it.Close()
	var ids []registry.ID
	for it.Rewind(); it.Valid(); it.Next() {
		k := it.Item().Key()
		if len(k) < len(prefix)+34 {
			continue
		}
		var id registry.ID
		copy(id[:], k[len(k)-34:])
		ids = append(ids, id)
	}
	out := make([]*registry.Record, 0, len(ids))
	for _, id := range ids {
		if r, ok := db.recs.Get(id); ok {
			out = append(out, r)
			continue
		}
		r, err := getRecord(txn, id)
		if err != nil {
			return nil, err
		}
		db.cache(r)
		out = append(out, r)
	}
	return out, nil
}
