package store

import (
	"encoding/binary"
	"errors"

	"github.com/dgraph-io/badger/v4"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// Authority is the node's trust as the store applies it when it derives
// release views (DESIGN.md §2): who may found, own, publish and yank, and
// whose checkpoints witness time. Digest identifies it, so the store knows
// when its views were built under another one.
type Authority interface {
	registry.Authority
	Digest() string
	// Witnesses lists the keys whose checkpoints witness time (those for
	// which Witness is true); nil means every key.
	Witnesses() []registry.PublicKey
}

// authKey holds the Digest of the Authority the views were built with.
var authKey = []byte{pMeta, 'a', 'u', 't', 'h'}

// noAuthority trusts nobody: before SetAuthority every release is an
// untrusted claim.
type noAuthority struct{}

func (noAuthority) May(registry.PublicKey, string, string) bool { return false }
func (noAuthority) Witness(registry.PublicKey) bool             { return false }
func (noAuthority) Digest() string                              { return "" }
func (noAuthority) Witnesses() []registry.PublicKey             { return []registry.PublicKey{} }

func (db *DB) authority() Authority {
	if a, ok := db.auth.Load().(Authority); ok {
		return a
	}
	return noAuthority{}
}

// SetAuthority makes a the Authority of every view. When the views were
// built under another Authority (its Digest differs, also across restarts)
// every view is derived again before SetAuthority returns; writes wait
// meanwhile. It returns how many crates were derived again.
func (db *DB) SetAuthority(a Authority) (int, error) {
	const op = "store.SetAuthority"
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	db.auth.Store(a)
	var built []byte
	err := db.bdb.View(func(txn *badger.Txn) error {
		it, err := txn.Get(authKey)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		built, err = it.ValueCopy(nil)
		return err
	})
	if err != nil {
		return 0, internal(op, err)
	}
	if built != nil && string(built) == a.Digest() {
		return 0, nil
	}
	names, err := db.crateNames()
	if err != nil {
		return 0, registry.E(op, registry.KindOf(err), "listing crates", err)
	}
	if err := db.rebuildViews(names); err != nil {
		return 0, registry.E(op, registry.KindOf(err), "deriving views under the new authority", err)
	}
	if err := db.bdb.Update(func(txn *badger.Txn) error { return txn.Set(authKey, []byte(a.Digest())) }); err != nil {
		return 0, internal(op, err)
	}
	return len(names), nil
}

// crateNames lists every crate name some record is about.
func (db *DB) crateNames() ([]string, error) {
	var names []string
	err := db.bdb.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.PrefetchValues = false
		o.Prefix = []byte{pName}
		it := txn.NewIterator(o)
		defer it.Close()
		last := ""
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()[1:]
			if len(k) < len(registry.ID{})+1 {
				continue
			}
			name := string(k[:len(k)-len(registry.ID{})-1])
			if name != last {
				names = append(names, name)
				last = name
			}
		}
		return nil
	})
	return names, err
}

// rebuildViews derives the views of names again, one transaction per
// crate. writeMu must be held.
func (db *DB) rebuildViews(names []string) error {
	for _, name := range names {
		err := db.bdb.Update(func(txn *badger.Txn) error {
			recs, err := db.readIndexed(txn, sepPrefix(pName, name))
			if err != nil {
				return err
			}
			return db.writeViews(txn, name, recs)
		})
		if err != nil {
			return registry.E("store.rebuildViews", registry.KindOf(err), "deriving the views of "+name, err)
		}
	}
	return nil
}

// witness gives the witnessed times the views use, as of txn: for a
// record, the earliest time a checkpoint by one of auth's witnesses
// included it.
func (db *DB) witness(txn *badger.Txn, auth Authority) registry.WitnessFunc {
	ws := auth.Witnesses()
	return func(id registry.ID) (int64, bool) {
		best, found := int64(0), false
		consider := func(v []byte) {
			if len(v) < 8 {
				return
			}
			if t := int64(binary.BigEndian.Uint64(v)); !found || t < best {
				best, found = t, true
			}
		}
		if ws == nil {
			prefix := append([]byte{pWitness}, id[:]...)
			o := badger.DefaultIteratorOptions
			o.Prefix = prefix
			it := txn.NewIterator(o)
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				_ = it.Item().Value(func(v []byte) error { consider(v); return nil })
			}
			return best, found
		}
		for _, w := range ws {
			it, err := txn.Get(witnessKey(id, w))
			if err != nil {
				continue
			}
			_ = it.Value(func(v []byte) error { consider(v); return nil })
		}
		return best, found
	}
}
