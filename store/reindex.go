package store

import (
	"github.com/dgraph-io/badger/v4"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// Reindex drops every derived index and release view and rebuilds them from
// the records. It returns the number of records indexed. Writes are held off
// while it runs.
func (db *DB) Reindex() (int, error) {
	const op = "store.Reindex"
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	if err := db.bdb.DropPrefix([]byte{pTime}, []byte{pName}, []byte{pSubject}, []byte{pKind}, []byte{pAuthor}, []byte{pView}); err != nil {
		return 0, internal(op, err)
	}
	names := map[string]bool{}
	n := 0
	wb := db.bdb.NewWriteBatch()
	defer wb.Cancel()
	err := db.bdb.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Prefix = []byte{pRecord}
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			b, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			r, err := registry.DecodeStored(b)
			if err != nil {
				return err
			}
			for _, k := range indexKeys(r) {
				if err := wb.Set(k, nil); err != nil {
					return err
				}
			}
			if name := r.SubjectName(); name != "" {
				names[name] = true
			}
			n++
		}
		return nil
	})
	if err == nil {
		err = wb.Flush()
	}
	if err != nil {
		return n, registry.E(op, registry.KindOf(err), "rebuilding indexes", err)
	}
	list := make([]string, 0, len(names))
	for name := range names {
		list = append(list, name)
	}
	if err := db.rebuildViews(list); err != nil {
		return n, err
	}
	if err := db.bdb.Sync(); err != nil {
		return n, internal(op, err)
	}
	return n, db.loadCounters()
}
