package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"time"

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

// AuditEntry is one line of the audit log: an action taken through this
// node's API, who took it and what it produced.
type AuditEntry struct {
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Action  string    `json:"action"`            // "submit", "yank", "settings", …
	Actor   string    `json:"actor"`             // token name or peer ID
	Subject string    `json:"subject,omitempty"` // name@version, setting key, …
	Record  string    `json:"record,omitempty"`  // ID of a record it wrote
	Detail  string    `json:"detail,omitempty"`
}

// Audit appends an entry (Seq and, when zero, Time are filled in).
func (db *DB) Audit(e AuditEntry) error {
	const op = "store.Audit"
	if e.Time.IsZero() {
		e.Time = db.opts.Now().UTC()
	}
	err := db.bdb.Update(func(txn *badger.Txn) error {
		seq, err := nextSeq(txn, "audit")
		if err != nil {
			return err
		}
		e.Seq = seq
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		return txn.Set(seqKey(pAudit, seq), b)
	})
	if err != nil {
		return internal(op, err)
	}
	return nil
}

// AuditLog returns up to limit entries, newest first, with Seq < before (0 =
// from the newest).
func (db *DB) AuditLog(before uint64, limit int) ([]AuditEntry, error) {
	var out []AuditEntry
	err := db.bdb.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Reverse = true
		o.Prefix = []byte{pAudit}
		it := txn.NewIterator(o)
		defer it.Close()
		start := seqKey(pAudit, ^uint64(0))
		if before > 0 {
			start = seqKey(pAudit, before-1)
		}
		for it.Seek(start); it.Valid() && (limit <= 0 || len(out) < limit); it.Next() {
			var e AuditEntry
			if err := it.Item().Value(func(b []byte) error { return json.Unmarshal(b, &e) }); err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, internal("store.AuditLog", err)
	}
	return out, nil
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
