package store

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// The audit log: one entry per action taken through this node's API, in
// the same Badger transaction as the change it records, each hashing the
// one before, so that an entry cannot be lost, changed, removed or
// inserted without Verify noticing. Its head (seq, hash) goes into the
// node's signed checkpoints, which pins it against a rewrite of the whole
// chain.
//
//	A seq(8) → AuditEntry (JSON), seq from 1

// AuditEntry is one line of the audit log: an action taken through this
// node's API, who took it and what it produced.
type AuditEntry struct {
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Action  string    `json:"action"`            // "submit", "yank", "settings", …
	Actor   string    `json:"actor"`             // the identity: "person (token name)", or a peer ID
	Subject string    `json:"subject,omitempty"` // name@version, setting key, …
	Record  string    `json:"record,omitempty"`  // ID of a record it wrote
	Detail  string    `json:"detail,omitempty"`
	Prev    string    `json:"prev"` // Hash of the entry before (hex; "" for the first)
	Hash    string    `json:"hash"` // hex SHA-256 of this entry's JSON with Hash ""
}

// hashEntry is the hash of e's JSON with Hash empty (encoding/json writes
// struct fields in declaration order, so the bytes are fixed by the
// fields' values).
func hashEntry(e AuditEntry) (string, error) {
	e.Hash = ""
	b, err := json.Marshal(e)
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:]), nil
}

// AuditHead is the newest entry's position and hash.
type AuditHead struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
}

type auditState struct {
	mu   sync.Mutex // guards head; writers also hold DB.writeMu
	head AuditHead
}

// loadAudit reads the audit log's head.
func (db *DB) loadAudit() error {
	return db.bdb.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Reverse = true
		o.Prefix = []byte{pAudit}
		it := txn.NewIterator(o)
		defer it.Close()
		it.Seek(seqKey(pAudit, ^uint64(0)))
		if !it.Valid() {
			return nil
		}
		var e AuditEntry
		if err := it.Item().Value(func(b []byte) error { return json.Unmarshal(b, &e) }); err != nil {
			return registry.E("store.Open", registry.EINTERNAL, "the newest audit entry is corrupt; run `wasm-crates-registry-cli audit verify`", err)
		}
		db.audit.head = AuditHead{Seq: binary.BigEndian.Uint64(it.Item().Key()[1:]), Hash: e.Hash}
		return nil
	})
}

// appendAudit writes entries after the head in txn and returns the new
// head, which the caller installs (setAuditHead) once txn commits. writeMu
// must be held.
func (db *DB) appendAudit(txn *badger.Txn, entries []AuditEntry) (AuditHead, error) {
	const op = "store.Audit"
	db.audit.mu.Lock()
	head := db.audit.head
	db.audit.mu.Unlock()
	now := db.opts.Now().UTC()
	for _, e := range entries {
		if e.Time.IsZero() {
			e.Time = now
		}
		e.Seq, e.Prev = head.Seq+1, head.Hash
		h, err := hashEntry(e)
		if err != nil {
			return head, registry.E(op, registry.EINTERNAL, "encoding an audit entry", err)
		}
		e.Hash = h
		b, err := json.Marshal(e)
		if err != nil {
			return head, registry.E(op, registry.EINTERNAL, "encoding an audit entry", err)
		}
		if err := txn.Set(seqKey(pAudit, e.Seq), b); err != nil {
			return head, wrapTxn(op, err)
		}
		head = AuditHead{Seq: e.Seq, Hash: h}
	}
	return head, nil
}

func (db *DB) setAuditHead(h AuditHead) {
	db.audit.mu.Lock()
	db.audit.head = h
	db.audit.mu.Unlock()
}

// AuditHeadNow returns the audit log's head.
func (db *DB) AuditHeadNow() AuditHead {
	db.audit.mu.Lock()
	defer db.audit.mu.Unlock()
	return db.audit.head
}

// Audit appends entries in a transaction of their own, for actions whose
// change is not in the store (a sync, a peer dialled) or is made by
// another call in the same transaction (see PutRecordsAudited,
// PutLocalJSONAudited).
func (db *DB) Audit(entries ...AuditEntry) error {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	return db.update("store.Audit", entries, func(*badger.Txn) error { return nil })
}

// update runs fn and appends entries in one transaction. writeMu must be
// held.
func (db *DB) update(op string, entries []AuditEntry, fn func(*badger.Txn) error) error {
	txn := db.bdb.NewTransaction(true)
	defer txn.Discard()
	if err := fn(txn); err != nil {
		return wrapTxn(op, err)
	}
	head, err := db.appendAudit(txn, entries)
	if err != nil {
		return err
	}
	if err := txn.Commit(); err != nil {
		return internal(op, err)
	}
	db.setAuditHead(head)
	return nil
}

// PutLocalJSONAudited stores a node-local value and its audit entry in one
// transaction.
func (db *DB) PutLocalJSONAudited(key string, v any, entry AuditEntry) error {
	const op = "store.PutLocalJSON"
	b, err := json.Marshal(v)
	if err != nil {
		return registry.E(op, registry.EINTERNAL, "encoding "+key, err)
	}
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	return db.update(op, []AuditEntry{entry}, func(txn *badger.Txn) error { return txn.Set(localKey(key), b) })
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

// AuditCheck is the result of VerifyAudit.
type AuditCheck struct {
	Entries uint64    `json:"entries"`
	Head    AuditHead `json:"head"`
	OK      bool      `json:"ok"`
	// Bad is the first entry that breaks the chain (0 when OK) and
	// Problem says how.
	Bad     uint64 `json:"bad,omitempty"`
	Problem string `json:"problem,omitempty"`
}

// VerifyAudit walks the whole audit log: sequence numbers without gaps,
// each entry's hash, each link to the entry before, and the head against
// the store's; pins (seq → hash, from the node's signed checkpoints) must
// match the entries at those positions.
func (db *DB) VerifyAudit(pins map[uint64]string) (*AuditCheck, error) {
	head := db.AuditHeadNow()
	c := &AuditCheck{Head: head}
	bad := func(seq uint64, format string, args ...any) {
		if c.Bad == 0 {
			c.Bad, c.Problem = seq, fmt.Sprintf("entry %d: ", seq)+fmt.Sprintf(format, args...)
		}
	}
	var prev string
	err := db.bdb.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Prefix = []byte{pAudit}
		it := txn.NewIterator(o)
		defer it.Close()
		want := uint64(1)
		for it.Rewind(); it.Valid() && c.Bad == 0; it.Next() {
			seq := binary.BigEndian.Uint64(it.Item().Key()[1:])
			if seq > head.Seq {
				break // written after the head was read
			}
			if seq != want {
				bad(want, "missing (the next entry held is %d)", seq)
				break
			}
			var e AuditEntry
			if err := it.Item().Value(func(b []byte) error { return json.Unmarshal(b, &e) }); err != nil {
				bad(seq, "does not decode: %v", err)
				break
			}
			h, err := hashEntry(e)
			switch {
			case err != nil:
				bad(seq, "cannot be encoded: %v", err)
			case e.Seq != seq:
				bad(seq, "is stored under %d but says %d", seq, e.Seq)
			case h != e.Hash:
				bad(seq, "its contents do not match its hash (changed after it was written)")
			case e.Prev != prev:
				bad(seq, "does not link to the entry before it")
			case pins[seq] != "" && pins[seq] != e.Hash:
				bad(seq, "differs from the hash the node's signed checkpoint holds for it")
			}
			prev = e.Hash
			want++
			c.Entries++
		}
		if c.Bad == 0 && want-1 != head.Seq {
			bad(want, "missing (the head is %d)", head.Seq)
		}
		return nil
	})
	if err != nil {
		return nil, internal("store.VerifyAudit", err)
	}
	if c.Bad == 0 && prev != head.Hash {
		bad(head.Seq, "is not the head the store holds")
	}
	c.OK = c.Bad == 0
	return c, nil
}
