package store

import (
	"encoding/binary"
	"errors"

	"github.com/dgraph-io/badger/v4"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// Reindex drops every derived index and release view and rebuilds them from
// the records and the log: the record indexes, the log's position index and
// tree, the witness index with the chains and evidence of the current
// Authority's witnesses, and the views. Records missing from the log are
// appended to it. It returns the number of records indexed. Writes are held
// off while it runs.
func (db *DB) Reindex() (int, error) {
	const op = "store.Reindex"
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	if err := db.bdb.DropPrefix([]byte{pTime}, []byte{pName}, []byte{pSubject}, []byte{pKind}, []byte{pAuthor}, []byte{pView}, []byte{pFilter}); err != nil {
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
	if err := db.rebuildLog(); err != nil {
		return n, err
	}
	if err := db.loadCounters(); err != nil {
		return n, err
	}
	if err := db.backfillLocked(); err != nil {
		return n, err
	}
	// The witness index, the chain heads and the evidence are derived
	// from the log: dropped, then derived again for the node's witnesses.
	if err := db.bdb.DropPrefix([]byte{pWitness}, []byte{pChain}, []byte{pEvidence}); err != nil {
		return n, internal(op, err)
	}
	if err := db.syncChains(db.authority()); err != nil {
		return n, err
	}
	if _, err := db.rebuildViews(list, true); err != nil {
		return n, err
	}
	if err := db.markFiltersReady(); err != nil {
		return n, err
	}
	if err := db.bdb.Sync(); err != nil {
		return n, internal(op, err)
	}
	return n, db.loadCounters()
}

// rebuildLog derives the log's position index and tree again from its
// entries, which are primary data (the order of acceptance, signed in the
// node's checkpoints): a corrupt entry is an error, not something to drop,
// since dropping it would change every later root. An entry whose record
// the store no longer holds is kept and reported in the log.
func (db *DB) rebuildLog() error {
	const op = "store.rebuildLog"
	if err := db.bdb.DropPrefix([]byte{pLogIndex}, []byte{pTree}); err != nil {
		return internal(op, err)
	}
	f := registry.NewFrontier()
	wb := db.bdb.NewWriteBatch()
	defer wb.Cancel()
	var werr error
	missing := 0
	err := db.bdb.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Prefix = []byte{pLog}
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			i := binary.BigEndian.Uint64(it.Item().Key()[1:])
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return internal(op, err)
			}
			if len(v) != 35 || i != f.Size() {
				return registry.Errorf(op, registry.EINTERNAL, "the log's entry %d is corrupt or out of place; the log cannot be rebuilt", i)
			}
			var id registry.ID
			copy(id[:], v)
			if _, err := txn.Get(recordKey(id)); errors.Is(err, badger.ErrKeyNotFound) {
				missing++
			}
			var ib [8]byte
			binary.BigEndian.PutUint64(ib[:], i)
			if werr == nil {
				werr = wb.Set(logIndexKey(id), ib[:])
			}
			f.Append(id, func(n registry.TreeNode, h registry.Hash) {
				if n.Level > 0 && werr == nil {
					werr = wb.Set(treeKey(n), append([]byte(nil), h[:]...))
				}
			})
		}
		return nil
	})
	if err != nil {
		return err
	}
	if werr != nil {
		return internal(op, werr)
	}
	var sb [8]byte
	binary.BigEndian.PutUint64(sb[:], f.Size())
	if err := wb.Set(logSizeKey, sb[:]); err != nil {
		return internal(op, err)
	}
	if err := wb.Flush(); err != nil {
		return internal(op, err)
	}
	if missing > 0 {
		db.log.Warn("the log names records the store does not hold", "count", missing)
	}
	return db.loadLog()
}
