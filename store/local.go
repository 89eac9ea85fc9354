package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"

	"github.com/dgraph-io/badger/v4"

	registry "github.com/wasmrust/wasm-crates-registry"
)

func localKey(key string) []byte { return append([]byte{pLocal}, key...) }

// GetLocal returns a node-local value (settings, token hashes, peer book);
// ENOTFOUND when unset. Local values are never replicated.
func (db *DB) GetLocal(key string) ([]byte, error) {
	const op = "store.GetLocal"
	var v []byte
	err := db.bdb.View(func(txn *badger.Txn) error {
		it, err := txn.Get(localKey(key))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return notFound(op, "setting "+key)
		}
		if err != nil {
			return internal(op, err)
		}
		v, err = it.ValueCopy(nil)
		if err != nil {
			return internal(op, err)
		}
		return nil
	})
	return v, err
}

// PutLocal durably sets a node-local value.
func (db *DB) PutLocal(key string, v []byte) error {
	if err := db.bdb.Update(func(txn *badger.Txn) error { return txn.Set(localKey(key), v) }); err != nil {
		return internal("store.PutLocal", err)
	}
	return nil
}

// GetLocalJSON decodes a JSON local value into v; ENOTFOUND when unset.
func (db *DB) GetLocalJSON(key string, v any) error {
	b, err := db.GetLocal(key)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return registry.E("store.GetLocalJSON", registry.EINTERNAL, "local value "+key+" is corrupt", err)
	}
	return nil
}

// PutLocalJSON stores v as JSON.
func (db *DB) PutLocalJSON(key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return registry.E("store.PutLocalJSON", registry.EINTERNAL, "encoding "+key, err)
	}
	return db.PutLocal(key, b)
}

func seqKey(prefix byte, seq uint64) []byte {
	k := make([]byte, 9)
	k[0] = prefix
	binary.BigEndian.PutUint64(k[1:], seq)
	return k
}

// nextSeq increments and returns a named sequence within txn.
func nextSeq(txn *badger.Txn, name string) (uint64, error) {
	key := append([]byte{pMeta, 'q'}, name...)
	var cur uint64
	it, err := txn.Get(key)
	switch {
	case err == nil:
		if err := it.Value(func(b []byte) error {
			if len(b) == 8 {
				cur = binary.BigEndian.Uint64(b)
			}
			return nil
		}); err != nil {
			return 0, err
		}
	case !errors.Is(err, badger.ErrKeyNotFound):
		return 0, err
	}
	cur++
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], cur)
	return cur, txn.Set(key, b[:])
}
