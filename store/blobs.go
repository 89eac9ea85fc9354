package store

import (
	"errors"

	"github.com/dgraph-io/badger/v4"

	registry "github.com/wasmrust/wasm-crates-registry"
)

func blobKey(id registry.ID) []byte {
	k := make([]byte, 1+len(id))
	k[0] = pBlob
	copy(k[1:], id[:])
	return k
}

// PutBlob stores b under its multihash, which it computes itself, and
// returns it. Storing the same bytes again is a no-op.
func (db *DB) PutBlob(b []byte) (registry.ID, error) {
	const op = "store.PutBlob"
	id := registry.Sum(b)
	added := false
	err := db.bdb.Update(func(txn *badger.Txn) error {
		_, err := txn.Get(blobKey(id))
		if err == nil {
			return nil
		}
		if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		added = true
		return txn.Set(blobKey(id), b)
	})
	if err != nil {
		return id, internal(op, err)
	}
	if added {
		db.mu.Lock()
		db.blobs++
		db.mu.Unlock()
	}
	return id, nil
}

// GetBlob returns a blob, re-hashed on the way out so that a corrupt value
// is never served; ENOTFOUND when it is not held.
func (db *DB) GetBlob(id registry.ID) ([]byte, error) {
	const op = "store.GetBlob"
	var b []byte
	err := db.bdb.View(func(txn *badger.Txn) error {
		it, err := txn.Get(blobKey(id))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return notFound(op, "blob "+id.String())
		}
		if err != nil {
			return internal(op, err)
		}
		b, err = it.ValueCopy(nil)
		if err != nil {
			return internal(op, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if registry.Sum(b) != id {
		return nil, registry.Errorf(op, registry.EINTERNAL, "stored blob %s is corrupt (hash mismatch)", id)
	}
	return b, nil
}

// HasBlob reports whether the blob is held.
func (db *DB) HasBlob(id registry.ID) (bool, error) {
	var ok bool
	err := db.bdb.View(func(txn *badger.Txn) error {
		_, err := txn.Get(blobKey(id))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		ok = err == nil
		return err
	})
	if err != nil {
		return false, internal("store.HasBlob", err)
	}
	return ok, nil
}
