package store

import (
	"encoding/binary"

	"github.com/dgraph-io/badger/v4"
)

// pUsage is the table of admission usage counters:
// U name → count(8, big-endian) bytes(8, big-endian).
const pUsage = 'U'

// Usage is what one admission account (an author, a peer, a kind) holds:
// records and their canonical bytes.
type Usage struct {
	Count int64 `json:"count"`
	Bytes int64 `json:"bytes"`
}

func usageKey(name string) []byte { return append([]byte{pUsage}, name...) }

// LoadUsage returns every persisted usage counter by account name.
func (db *DB) LoadUsage() (map[string]Usage, error) {
	out := map[string]Usage{}
	err := db.bdb.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Prefix = []byte{pUsage}
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			if len(v) != 16 {
				continue
			}
			out[string(it.Item().Key()[1:])] = Usage{
				Count: int64(binary.BigEndian.Uint64(v)),
				Bytes: int64(binary.BigEndian.Uint64(v[8:])),
			}
		}
		return nil
	})
	if err != nil {
		return nil, internal("store.LoadUsage", err)
	}
	return out, nil
}

// PutUsage durably sets the given usage counters (absolute values, not
// deltas), in one synced write.
func (db *DB) PutUsage(u map[string]Usage) error {
	if len(u) == 0 {
		return nil
	}
	wb := db.bdb.NewWriteBatch()
	defer wb.Cancel()
	for name, v := range u {
		var b [16]byte
		binary.BigEndian.PutUint64(b[:], uint64(v.Count))
		binary.BigEndian.PutUint64(b[8:], uint64(v.Bytes))
		if err := wb.Set(usageKey(name), b[:]); err != nil {
			return internal("store.PutUsage", err)
		}
	}
	if err := wb.Flush(); err != nil {
		return internal("store.PutUsage", err)
	}
	return nil
}
