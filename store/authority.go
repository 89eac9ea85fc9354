package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"slices"

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

// AuthorityDigest returns the Digest of the Authority the views and the
// filter index are derived under ("" before SetAuthority).
func (db *DB) AuthorityDigest() string { return db.authority().Digest() }

func (db *DB) authority() Authority {
	if a, ok := db.auth.Load().(Authority); ok {
		return a
	}
	return noAuthority{}
}

// SetAuthority makes a the Authority of every view. When the views were
// built under another Authority (its Digest differs, also across restarts)
// or before the filter index existed, every view is derived again before
// SetAuthority returns; writes wait meanwhile. It returns how many crates
// were derived again.
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
	if built != nil && string(built) == a.Digest() && db.filtersReady.Load() {
		return 0, nil
	}
	if err := db.syncChains(a); err != nil {
		return 0, err
	}
	names, err := db.crateNames()
	if err != nil {
		return 0, registry.E(op, registry.KindOf(err), "listing crates", err)
	}
	fresh := !db.filtersReady.Load()
	if fresh {
		if err := db.bdb.DropPrefix([]byte{pFilter}); err != nil {
			return 0, internal(op, err)
		}
	}
	crates, err := db.rebuildViews(names, fresh)
	if err != nil {
		return 0, registry.E(op, registry.KindOf(err), "deriving views under the new authority", err)
	}
	if err := db.bdb.Update(func(txn *badger.Txn) error { return txn.Set(authKey, []byte(a.Digest())) }); err != nil {
		return 0, internal(op, err)
	}
	if err := db.markFiltersReady(); err != nil {
		return 0, err
	}
	return crates, nil
}

// crateNames lists every crate name some record is about, from the
// subject index: a subject's name is the part before its '@' (releases,
// yanks, reports, reviews) or the whole subject (owners). Subjects of
// other kinds (key IDs, peer IDs) may be listed too; deriving their views
// finds no release and writes none.
func (db *DB) crateNames() ([]string, error) {
	var names []string
	err := db.bdb.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.PrefetchValues = false
		o.Prefix = []byte{pSubject}
		it := txn.NewIterator(o)
		defer it.Close()
		last := ""
		for it.Rewind(); it.Valid(); it.Next() {
			name, ok := subjectKeyName(it.Item().Key())
			if ok && name != last {
				names = append(names, name)
				last = name
			}
		}
		return nil
	})
	slices.Sort(names)
	return slices.Compact(names), err
}

// subjectKeyName returns the crate name of a subject index key ("s"
// subject 0x00 ID): the subject up to its first '@'.
func subjectKeyName(k []byte) (string, bool) {
	if len(k) < 2+len(registry.ID{}) {
		return "", false
	}
	subject := k[1 : len(k)-len(registry.ID{})-1]
	if i := bytes.IndexByte(subject, '@'); i >= 0 {
		subject = subject[:i]
	}
	if len(subject) == 0 {
		return "", false
	}
	return string(subject), true
}

// rebuildCrates bounds the crates whose views one transaction of
// rebuildViews derives (a transaction that grows too big commits early).
const rebuildCrates = 512

// rebuildViews derives the views of names again, many crates per synced
// transaction, and returns how many of names some record is about (the
// others are skipped). fresh: the filter index was dropped (see
// writeViews). Records are read through a read-only transaction, which
// writeMu keeps current. writeMu must be held.
func (db *DB) rebuildViews(names []string, fresh bool) (int, error) {
	const op = "store.rebuildViews"
	rtxn := db.bdb.NewTransaction(false)
	defer rtxn.Discard()
	txn := db.bdb.NewTransaction(true)
	defer func() { txn.Discard() }()
	inTxn := 0
	commit := func() error {
		err := txn.Commit()
		txn, inTxn = db.bdb.NewTransaction(true), 0
		return err
	}
	crates := 0
	for _, name := range names {
		recs, err := db.readByName(rtxn, name)
		if err != nil {
			return crates, registry.E(op, registry.KindOf(err), "reading the records of "+name, err)
		}
		if len(recs) == 0 {
			continue
		}
		err = db.writeViews(txn, name, recs, fresh)
		if errors.Is(err, badger.ErrTxnTooBig) && inTxn > 0 {
			// What this crate wrote so far is committed with the others;
			// writing its views again replaces it.
			if err := commit(); err != nil {
				return crates, internal(op, err)
			}
			err = db.writeViews(txn, name, recs, fresh)
		}
		if err != nil {
			return crates, registry.E(op, registry.KindOf(err), "deriving the views of "+name, err)
		}
		crates++
		if inTxn++; inTxn == rebuildCrates {
			if err := commit(); err != nil {
				return crates, internal(op, err)
			}
		}
	}
	if inTxn > 0 {
		if err := commit(); err != nil {
			return crates, internal(op, err)
		}
	}
	return crates, nil
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

// syncChains makes the store keep checkpoint chains for exactly a's
// witnesses (every checkpoint author when a witnesses everyone): a key
// that is no longer a witness loses its chain head, its witnessed times
// and its evidence, and a new witness's chain is derived from its
// checkpoints in the log, O(that author's log). Every step can be run
// again, so an interrupted sync is completed by the next SetAuthority
// (the authority's digest is stored only after it). writeMu must be held.
func (db *DB) syncChains(a Authority) error {
	const op = "store.syncChains"
	have, err := db.chainAuthors()
	if err != nil {
		return registry.E(op, registry.KindOf(err), "listing checkpoint chains", err)
	}
	want := map[string]registry.PublicKey{}
	if ws := a.Witnesses(); ws != nil {
		for _, w := range ws {
			want[string(w)] = w
		}
	} else if want, err = db.checkpointAuthors(); err != nil {
		return registry.E(op, registry.KindOf(err), "listing checkpoint authors", err)
	}
	db.tl.mu.Lock()
	db.tl.chains = nil
	db.tl.mu.Unlock()
	for k, author := range have {
		if _, ok := want[k]; !ok {
			if err := db.dropChain(author); err != nil {
				return registry.E(op, registry.KindOf(err), "dropping the chain of "+author.PeerID(), err)
			}
		}
	}
	for k, author := range want {
		if _, ok := have[k]; !ok {
			if err := db.buildChain(author); err != nil {
				return registry.E(op, registry.KindOf(err), "deriving the chain of "+author.PeerID(), err)
			}
		}
	}
	return nil
}

// chainAuthors lists the authors whose chains the store keeps.
func (db *DB) chainAuthors() (map[string]registry.PublicKey, error) {
	out := map[string]registry.PublicKey{}
	err := db.bdb.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.PrefetchValues = false
		o.Prefix = []byte{pChain}
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().KeyCopy(nil)[1:]
			out[string(k)] = registry.PublicKey(k)
		}
		return nil
	})
	return out, err
}

// checkpointAuthors lists the authors of every checkpoint in the log.
func (db *DB) checkpointAuthors() (map[string]registry.PublicKey, error) {
	var ids []registry.ID
	err := db.bdb.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Prefix = []byte{pLog}
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			_ = it.Item().Value(func(v []byte) error {
				if len(v) == 35 && v[34]&flagCheckpoint != 0 {
					var id registry.ID
					copy(id[:], v)
					ids = append(ids, id)
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return nil, internal("store.checkpointAuthors", err)
	}
	out := map[string]registry.PublicKey{}
	for _, id := range ids {
		r, err := db.GetRecord(id)
		if err != nil {
			return nil, err
		}
		out[string(r.Author)] = r.Author
	}
	return out, nil
}

// dropChain forgets author's chain: its head, the times it witnessed and
// its evidence.
func (db *DB) dropChain(author registry.PublicKey) error {
	ch, err := db.loadChain(author)
	if err != nil {
		return err
	}
	wb := db.bdb.NewWriteBatch()
	defer wb.Cancel()
	for id := range ch.Result().Times {
		if err := wb.Delete(witnessKey(id, author)); err != nil {
			return internal("store.dropChain", err)
		}
	}
	ev, err := db.evidenceKeys(author)
	if err != nil {
		return err
	}
	for _, k := range ev {
		if err := wb.Delete(k); err != nil {
			return internal("store.dropChain", err)
		}
	}
	if err := wb.Delete(chainKey(author)); err != nil {
		return internal("store.dropChain", err)
	}
	if err := wb.Flush(); err != nil {
		return internal("store.dropChain", err)
	}
	return nil
}

// buildChain derives author's chain from its checkpoints in the log and
// writes its head, the times it witnesses and its evidence.
func (db *DB) buildChain(author registry.PublicKey) error {
	const op = "store.buildChain"
	ch, err := db.loadChain(author)
	if err != nil {
		return err
	}
	res := ch.Result()
	wb := db.bdb.NewWriteBatch()
	defer wb.Cancel()
	for _, w := range res.Times {
		if err := wb.Set(witnessKey(w.ID, author), encodeWitness(w)); err != nil {
			return internal(op, err)
		}
	}
	for _, e := range res.Evidence {
		b, _ := json.Marshal(e)
		if err := wb.Set(evidenceKey(e), b); err != nil {
			return internal(op, err)
		}
	}
	hb, err := registry.Marshal(ch.Summary())
	if err != nil {
		return registry.E(op, registry.EINTERNAL, "encoding a chain head", err)
	}
	if err := wb.Set(chainKey(author), hb); err != nil {
		return internal(op, err)
	}
	if err := wb.Flush(); err != nil {
		return internal(op, err)
	}
	return nil
}

// evidenceKeys lists the keys of author's evidence.
func (db *DB) evidenceKeys(author registry.PublicKey) ([][]byte, error) {
	var out [][]byte
	err := db.bdb.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.PrefetchValues = false
		o.Prefix = append([]byte{pEvidence}, author...)
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			out = append(out, it.Item().KeyCopy(nil))
		}
		return nil
	})
	if err != nil {
		return nil, internal("store.evidenceKeys", err)
	}
	return out, nil
}
