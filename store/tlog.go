package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// The node's transparency log (DESIGN.md §2 "Authority and time").
//
// Every record the store accepts is appended to the log in the same Badger
// transaction that stores it, exactly once, in acceptance order. The log's
// tree keeps every perfect subtree root, so a root, an inclusion proof or a
// consistency proof at any size costs O(log n) reads. Checkpoint records
// by the node's witnesses (Authority.Witness) are also fed to that
// author's chain verifier, and the entries they witness are indexed by
// record ID; the checkpoints of other keys are only logged. Chains exist
// exactly for the witnesses of the Authority last set (see syncChains).
//
// Tables (never reuse these prefixes):
//
//	G index(8) → entry ID(34) ‖ flags(1)   the log, in order; flag 1 = a checkpoint
//	g ID → index(8)                         where an ID is in the log
//	H level(1) index(8) → hash(32)          roots of the tree's perfect subtrees above
//	                                        the leaves (a leaf's hash is derived from G)
//	W ID author → time(8) index(8) ckpt(34) witnessed times, per checkpoint author
//	E author A B reason → Evidence (JSON)   equivocation evidence
//	C author → registry.ChainHead (CBOR)    each witness's chain head
//	M "logsize" → size(8)                   the log's size
const (
	pLog      = 'G'
	pLogIndex = 'g'
	pTree     = 'H'
	pWitness  = 'W'
	pEvidence = 'E'
	pChain    = 'C'
)

var logSizeKey = []byte{pMeta, 'l', 'o', 'g', 's', 'i', 'z', 'e'}

const flagCheckpoint = 1

func logKey(i uint64) []byte {
	k := make([]byte, 9)
	k[0] = pLog
	binary.BigEndian.PutUint64(k[1:], i)
	return k
}

func logIndexKey(id registry.ID) []byte { return append([]byte{pLogIndex}, id[:]...) }

func treeKey(n registry.TreeNode) []byte {
	k := make([]byte, 10)
	k[0], k[1] = pTree, n.Level
	binary.BigEndian.PutUint64(k[2:], n.Index)
	return k
}

func witnessKey(id registry.ID, author registry.PublicKey) []byte {
	k := make([]byte, 0, 1+len(id)+len(author))
	k = append(k, pWitness)
	k = append(k, id[:]...)
	return append(k, author...)
}

func evidenceKey(e registry.Evidence) []byte {
	k := []byte{pEvidence}
	k = append(k, e.Author...)
	k = append(k, e.A[:]...)
	k = append(k, e.B[:]...)
	return append(k, e.Reason...)
}

func chainKey(author registry.PublicKey) []byte { return append([]byte{pChain}, author...) }

// tlogState is the in-memory head of the log. mu guards it; writers also
// hold DB.writeMu.
type tlogState struct {
	mu       sync.RWMutex
	frontier *registry.Frontier
	content  uint64 // the log size just after its last entry that is not a checkpoint
	// chains caches the whole chains of the few authors whose checkpoints
	// last needed one (out of order, or after equivocation), so that their
	// next in-order checkpoints are O(their leaves), not O(their log).
	// Only appendLog (under writeMu) uses it.
	chains map[string]*registry.Chain
	// loads counts chains derived from the log (loadChain), for tests.
	loads atomic.Uint64
}

// maxCachedChains bounds tlogState.chains.
const maxCachedChains = 8

// loadLog reads the log's head: its size and frontier, and where its last
// non-checkpoint entry is.
func (db *DB) loadLog() error {
	const op = "store.Open"
	return db.bdb.View(func(txn *badger.Txn) error {
		var size uint64
		it, err := txn.Get(logSizeKey)
		if err == nil {
			v, err := it.ValueCopy(nil)
			if err != nil || len(v) != 8 {
				return registry.Errorf(op, registry.EINTERNAL, "the log's size is corrupt")
			}
			size = binary.BigEndian.Uint64(v)
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return internal(op, err)
		}
		f, err := readFrontier(txn, op, size)
		if err != nil {
			return err
		}
		db.tl.frontier = f
		o := badger.DefaultIteratorOptions
		o.Reverse = true
		o.Prefix = []byte{pLog}
		iter := txn.NewIterator(o)
		defer iter.Close()
		for iter.Seek(logKey(size)); iter.Valid(); iter.Next() {
			v, err := iter.Item().ValueCopy(nil)
			if err != nil {
				return internal(op, err)
			}
			if len(v) == 35 && v[34]&flagCheckpoint == 0 {
				db.tl.content = binary.BigEndian.Uint64(iter.Item().Key()[1:]) + 1
				break
			}
		}
		return nil
	})
}

// backfillLog appends records stored before the log existed (in time
// order), so that every record held is in the log.
func (db *DB) backfillLog() error {
	const op = "store.Open"
	if uint64(db.fp.Count) <= db.tl.frontier.Size() {
		return nil
	}
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	return db.backfillLocked()
}

// backfillLocked is backfillLog with writeMu held.
func (db *DB) backfillLocked() error {
	const op = "store.backfillLog"
	var missing []registry.ID
	err := db.ScanTimeIndex(func(_ int64, id registry.ID) error {
		return db.bdb.View(func(txn *badger.Txn) error {
			if _, err := txn.Get(logIndexKey(id)); errors.Is(err, badger.ErrKeyNotFound) {
				missing = append(missing, id)
			}
			return nil
		})
	})
	if err != nil {
		return internal(op, err)
	}
	for len(missing) > 0 {
		n := min(len(missing), 1024)
		var recs []*registry.Record
		for _, id := range missing[:n] {
			r, err := db.GetRecord(id)
			if err != nil {
				return err
			}
			recs = append(recs, r)
		}
		txn := db.bdb.NewTransaction(true)
		ap, err := db.appendLog(txn, recs)
		if err == nil {
			err = txn.Commit()
		}
		txn.Discard()
		if err != nil {
			if ap != nil {
				ap.abort()
			}
			return internal(op, err)
		}
		ap.commit()
		missing = missing[n:]
	}
	db.log.Info("records appended to the transparency log", "size", db.LogSize())
	return nil
}

// pendingLog is an append written into a transaction but not committed.
type pendingLog struct {
	db       *DB
	frontier *registry.Frontier
	content  uint64
	touched  []string // authors whose cached chains saw this transaction
	// rewitnessed are the records whose witnessed time under some witness
	// author changed in this transaction, with those authors.
	rewitnessed []rewitness
}

type rewitness struct {
	id     registry.ID
	author registry.PublicKey
}

func (p *pendingLog) commit() {
	p.db.tl.mu.Lock()
	p.db.tl.frontier, p.db.tl.content = p.frontier, p.content
	p.db.tl.mu.Unlock()
}

// abort is called when the transaction did not commit: cached chains that
// saw its checkpoints are dropped (they are re-derived when next needed).
func (p *pendingLog) abort() {
	p.db.tl.mu.Lock()
	defer p.db.tl.mu.Unlock()
	for _, a := range p.touched {
		delete(p.db.tl.chains, a)
	}
}

// appendLog writes recs (new records of this transaction, none already in
// the log) to the log and feeds checkpoints to their authors' chains. The
// caller holds writeMu and must call commit or abort on the result.
//
// A checkpoint that cleanly extends its author's chain is verified against
// the chain head kept in the database (O(its leaves)); any other is added
// to the author's whole chain, re-derived from the author's checkpoints in
// the log (O(the author's log)).
func (db *DB) appendLog(txn *badger.Txn, recs []*registry.Record) (_ *pendingLog, err error) {
	const op = "store.appendLog"
	db.tl.mu.RLock()
	p := &pendingLog{db: db, frontier: db.tl.frontier.Clone(), content: db.tl.content}
	db.tl.mu.RUnlock()
	defer func() {
		if err != nil {
			p.abort()
		}
	}()
	var werr error
	set := func(k, v []byte) {
		if werr == nil {
			werr = txn.Set(k, v)
		}
	}
	var cks []*registry.Record
	for _, r := range recs {
		id := r.ID()
		i := p.frontier.Size()
		v := make([]byte, 35)
		copy(v, id[:])
		if r.Kind == registry.KindCheckpoint {
			v[34] = flagCheckpoint
			cks = append(cks, r)
		} else {
			p.content = i + 1
		}
		set(logKey(i), v)
		var ib [8]byte
		binary.BigEndian.PutUint64(ib[:], i)
		set(logIndexKey(id), ib[:])
		p.frontier.Append(id, func(n registry.TreeNode, h registry.Hash) {
			if n.Level > 0 { // a leaf's hash is derived from its entry
				set(treeKey(n), h[:])
			}
		})
	}
	var sb [8]byte
	binary.BigEndian.PutUint64(sb[:], p.frontier.Size())
	set(logSizeKey, sb[:])
	if werr != nil {
		return nil, wrapTxn(op, werr)
	}
	batch := map[string][]*registry.Checkpoint{} // this batch's checkpoints so far, by author
	auth := db.authority()
	everyone := auth.Witnesses() == nil
	for _, r := range cks {
		// Only the chains of this node's witnesses are verified: the
		// checkpoints of any other key are kept and relayed, but cost no
		// more than any other record (SetAuthority builds a chain when its
		// author becomes a witness).
		// Until SetAuthority is called after Open, the chains kept are
		// those of the witnesses of the authority set last.
		head, kept, err := chainHead(txn, r.Author)
		if err != nil {
			return nil, err
		}
		if !kept && !everyone && !auth.Witness(r.Author) {
			continue
		}
		ck, err := registry.ParseCheckpoint(r)
		if err != nil {
			db.log.Warn("stored checkpoint does not parse", "record", r.ID(), "err", err)
			continue
		}
		author := r.Author.PeerID()
		has := func(id registry.ID) (bool, error) {
			_, err := txn.Get(witnessKey(id, r.Author))
			if errors.Is(err, badger.ErrKeyNotFound) {
				return false, nil
			}
			return err == nil, err
		}
		next, wit, ok, err := head.Extend(ck, has)
		if err != nil {
			return nil, registry.E(op, registry.KindOf(err), "", err)
		}
		var d registry.Delta
		db.tl.mu.Lock()
		ch := db.tl.chains[author]
		db.tl.mu.Unlock()
		if ch != nil {
			p.touched = append(p.touched, author)
		}
		if ok {
			d.Witnessed = wit
			if ch != nil {
				ch.Add(ck)
			}
		} else {
			if ch == nil {
				if ch, err = db.loadChain(r.Author); err != nil {
					return nil, err
				}
				db.cacheChain(author, ch)
				p.touched = append(p.touched, author)
			}
			for _, earlier := range batch[author] {
				ch.Add(earlier)
			}
			if d, err = ch.Add(ck); err != nil {
				return nil, err
			}
			next = ch.Summary()
		}
		batch[author] = append(batch[author], ck)
		hb, err := registry.Marshal(next)
		if err != nil {
			return nil, err
		}
		set(chainKey(r.Author), hb)
		for _, w := range d.Witnessed {
			set(witnessKey(w.ID, r.Author), encodeWitness(w))
			p.rewitnessed = append(p.rewitnessed, rewitness{w.ID, r.Author})
		}
		for _, id := range d.Unwitnessed {
			if werr == nil {
				werr = txn.Delete(witnessKey(id, r.Author))
			}
			p.rewitnessed = append(p.rewitnessed, rewitness{id, r.Author})
		}
		for _, e := range d.Withdrawn {
			if werr == nil {
				werr = txn.Delete(evidenceKey(e))
			}
		}
		for _, e := range d.Evidence {
			b, _ := json.Marshal(e)
			set(evidenceKey(e), b)
			db.log.Warn("checkpoint equivocation", "author", author, "reason", e.Reason, "a", e.A, "b", e.B, "detail", e.Detail)
		}
		if werr != nil {
			return nil, wrapTxn(op, werr)
		}
	}
	return p, nil
}

func (db *DB) cacheChain(author string, ch *registry.Chain) {
	db.tl.mu.Lock()
	defer db.tl.mu.Unlock()
	if db.tl.chains == nil {
		db.tl.chains = map[string]*registry.Chain{}
	}
	for a := range db.tl.chains {
		if len(db.tl.chains) < maxCachedChains {
			break
		}
		delete(db.tl.chains, a)
	}
	db.tl.chains[author] = ch
}

func getChainHead(txn *badger.Txn, author registry.PublicKey) (*registry.ChainHead, error) {
	h, _, err := chainHead(txn, author)
	return h, err
}

// chainHead returns author's chain head and whether the store keeps a
// chain for author; an empty head when it does not.
func chainHead(txn *badger.Txn, author registry.PublicKey) (*registry.ChainHead, bool, error) {
	const op = "store.chainHead"
	it, err := txn.Get(chainKey(author))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return registry.NewChainHead(), false, nil
	}
	if err != nil {
		return nil, false, internal(op, err)
	}
	b, err := it.ValueCopy(nil)
	if err != nil {
		return nil, false, internal(op, err)
	}
	h := new(registry.ChainHead)
	if err := registry.Unmarshal(b, h); err != nil {
		return nil, false, registry.E(op, registry.EINTERNAL, "corrupt chain head", err)
	}
	return h, true, nil
}

func encodeWitness(w registry.Witnessed) []byte {
	b := make([]byte, 16+len(w.Checkpoint))
	binary.BigEndian.PutUint64(b, uint64(w.Time))
	binary.BigEndian.PutUint64(b[8:], w.Index)
	copy(b[16:], w.Checkpoint[:])
	return b
}

// loadChain derives author's whole chain from its checkpoints in the log.
func (db *DB) loadChain(author registry.PublicKey) (*registry.Chain, error) {
	db.tl.loads.Add(1)
	ch := registry.NewChain(author)
	recs, err := db.RecordsBySubject(author.PeerID())
	if err != nil {
		return nil, err
	}
	var cks []*registry.Checkpoint
	for _, r := range recs {
		if r.Kind != registry.KindCheckpoint || !r.Author.Equal(author) {
			continue
		}
		// The chain holds the checkpoints already in the log: a record
		// being appended (or back-filled) is added by its append.
		if _, err := db.LogIndex(r.ID()); err != nil {
			if registry.KindOf(err) == registry.ENOTFOUND {
				continue
			}
			return nil, err
		}
		ck, err := registry.ParseCheckpoint(r)
		if err != nil {
			continue
		}
		cks = append(cks, ck)
	}
	registry.SortCheckpoints(cks)
	for _, ck := range cks {
		if _, err := ch.Add(ck); err != nil {
			return nil, err
		}
	}
	return ch, nil
}

// readFrontier reads the compact range of the log's first size entries.
func readFrontier(txn *badger.Txn, op string, size uint64) (*registry.Frontier, error) {
	var hs []registry.Hash
	for _, n := range registry.FrontierNodes(size) {
		h, err := getTreeNode(txn, n)
		if err != nil {
			return nil, err
		}
		hs = append(hs, h)
	}
	f, err := registry.FrontierFrom(size, hs)
	if err != nil {
		return nil, registry.E(op, registry.EINTERNAL, "the log's tree is corrupt", err)
	}
	return f, nil
}

func getTreeNode(txn *badger.Txn, n registry.TreeNode) (registry.Hash, error) {
	const op = "store.tree"
	var h registry.Hash
	if n.Level == 0 {
		it, err := txn.Get(logKey(n.Index))
		if err != nil {
			return h, registry.E(op, registry.EINTERNAL, "the log is missing an entry", err)
		}
		v, err := it.ValueCopy(nil)
		if err != nil || len(v) != 35 {
			return h, registry.Errorf(op, registry.EINTERNAL, "the log has a corrupt entry")
		}
		var id registry.ID
		copy(id[:], v)
		return registry.LeafHash(id), nil
	}
	it, err := txn.Get(treeKey(n))
	if err != nil {
		return h, registry.E(op, registry.EINTERNAL, "the log's tree is missing a node", err)
	}
	v, err := it.ValueCopy(nil)
	if err != nil || len(v) != len(h) {
		return h, registry.Errorf(op, registry.EINTERNAL, "the log's tree has a corrupt node")
	}
	copy(h[:], v)
	return h, nil
}

// LogSize returns the number of entries in the node's log.
func (db *DB) LogSize() uint64 {
	db.tl.mu.RLock()
	defer db.tl.mu.RUnlock()
	return db.tl.frontier.Size()
}

// LogHead returns the log's size and root hash.
func (db *DB) LogHead() (uint64, registry.Hash) {
	db.tl.mu.RLock()
	defer db.tl.mu.RUnlock()
	return db.tl.frontier.Size(), db.tl.frontier.Root()
}

// LogContentSize returns the log size just after its last entry that is
// not a checkpoint record: a log that has grown only by checkpoints since
// its last checkpoint needs no new one.
func (db *DB) LogContentSize() uint64 {
	db.tl.mu.RLock()
	defer db.tl.mu.RUnlock()
	return db.tl.content
}

func (db *DB) checkSize(op string, size uint64) error {
	if cur := db.LogSize(); size > cur {
		return registry.Errorf(op, registry.EINVALID, "the log has %d entries, not %d", cur, size)
	}
	return nil
}

// LogRoot returns the root hash of the log's tree of the given size
// (EINVALID when the log is smaller).
func (db *DB) LogRoot(size uint64) (registry.Hash, error) {
	const op = "store.LogRoot"
	if err := db.checkSize(op, size); err != nil {
		return registry.Hash{}, err
	}
	var root registry.Hash
	err := db.bdb.View(func(txn *badger.Txn) error {
		f, err := readFrontier(txn, op, size)
		if err != nil {
			return err
		}
		root = f.Root()
		return nil
	})
	return root, err
}

// LogIndex returns where id is in the log; ENOTFOUND when it is not.
func (db *DB) LogIndex(id registry.ID) (uint64, error) {
	const op = "store.LogIndex"
	var i uint64
	err := db.bdb.View(func(txn *badger.Txn) error {
		it, err := txn.Get(logIndexKey(id))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return notFound(op, "record "+id.String()+" in the log")
		}
		if err != nil {
			return internal(op, err)
		}
		v, err := it.ValueCopy(nil)
		if err != nil || len(v) != 8 {
			return registry.Errorf(op, registry.EINTERNAL, "corrupt log index")
		}
		i = binary.BigEndian.Uint64(v)
		return nil
	})
	return i, err
}

// LogEntry is one entry of the log.
type LogEntry struct {
	Index      uint64      `json:"index"`
	ID         registry.ID `json:"id"`
	Checkpoint bool        `json:"checkpoint,omitempty"`
}

// LogEntries returns up to limit entries from start, in order.
func (db *DB) LogEntries(start uint64, limit int) ([]LogEntry, error) {
	out := []LogEntry{}
	err := db.bdb.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Prefix = []byte{pLog}
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Seek(logKey(start)); it.Valid() && len(out) < limit; it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil || len(v) != 35 {
				return registry.Errorf("store.LogEntries", registry.EINTERNAL, "corrupt log entry")
			}
			var id registry.ID
			copy(id[:], v)
			out = append(out, LogEntry{Index: binary.BigEndian.Uint64(it.Item().Key()[1:]), ID: id, Checkpoint: v[34]&flagCheckpoint != 0})
		}
		return nil
	})
	return out, err
}

func (db *DB) buildProof(op string, plan registry.ProofPlan) ([]registry.Hash, error) {
	var hs []registry.Hash
	err := db.bdb.View(func(txn *badger.Txn) error {
		for _, n := range plan.Nodes() {
			h, err := getTreeNode(txn, n)
			if err != nil {
				return err
			}
			hs = append(hs, h)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return plan.Build(hs)
}

// InclusionProof proves that record id is in the log's tree of size. It
// returns the record's index and the proof (RFC 9162 §2.1.3); ENOTFOUND
// when the record is not in the log, EINVALID when it is not among the
// first size entries or the log is smaller than size.
func (db *DB) InclusionProof(id registry.ID, size uint64) (uint64, []registry.Hash, error) {
	const op = "store.InclusionProof"
	if err := db.checkSize(op, size); err != nil {
		return 0, nil, err
	}
	i, err := db.LogIndex(id)
	if err != nil {
		return 0, nil, err
	}
	if i >= size {
		return i, nil, registry.Errorf(op, registry.EINVALID, "record %s is entry %d, after the tree of size %d", id, i, size)
	}
	plan, err := registry.InclusionPlan(i, size)
	if err != nil {
		return i, nil, err
	}
	p, err := db.buildProof(op, plan)
	return i, p, err
}

// ConsistencyProof proves that the log's tree of size a is a prefix of its
// tree of size b (RFC 9162 §2.1.4); EINVALID unless a ≤ b ≤ LogSize.
func (db *DB) ConsistencyProof(a, b uint64) ([]registry.Hash, error) {
	const op = "store.ConsistencyProof"
	if err := db.checkSize(op, b); err != nil {
		return nil, err
	}
	if a > b {
		return nil, registry.Errorf(op, registry.EINVALID, "the first size %d is larger than the second %d", a, b)
	}
	plan, err := registry.ConsistencyPlan(a, b)
	if err != nil {
		return nil, err
	}
	return db.buildProof(op, plan)
}

// WitnessTime is a record's witnessed time under one checkpoint author.
type WitnessTime struct {
	Author     registry.PublicKey `json:"author"`
	Time       int64              `json:"time"`
	Index      uint64             `json:"index"`
	Checkpoint registry.ID        `json:"checkpoint"`
}

// WitnessTimes returns the witnessed times of a record, one per checkpoint
// author whose valid checkpoints include it (any author: the caller decides
// which are trust roots). Empty when none does yet.
func (db *DB) WitnessTimes(id registry.ID) ([]WitnessTime, error) {
	out := []WitnessTime{}
	prefix := append([]byte{pWitness}, id[:]...)
	err := db.bdb.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Prefix = prefix
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil || len(v) != 16+34 {
				return registry.Errorf("store.WitnessTimes", registry.EINTERNAL, "corrupt witness index")
			}
			w := WitnessTime{Author: registry.PublicKey(append([]byte(nil), it.Item().Key()[len(prefix):]...)),
				Time: int64(binary.BigEndian.Uint64(v)), Index: binary.BigEndian.Uint64(v[8:])}
			copy(w.Checkpoint[:], v[16:])
			out = append(out, w)
		}
		return nil
	})
	return out, err
}

// Evidence returns every piece of equivocation evidence held, grouped by
// author.
func (db *DB) Evidence() ([]registry.Evidence, error) {
	out := []registry.Evidence{}
	err := db.bdb.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Prefix = []byte{pEvidence}
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return internal("store.Evidence", err)
			}
			var e registry.Evidence
			if err := json.Unmarshal(v, &e); err != nil {
				return registry.E("store.Evidence", registry.EINTERNAL, "corrupt evidence", err)
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// Checkpoint returns the head of author's checkpoint chain: the first
// accepted checkpoint of its longest accepted tree. ENOTFOUND when the
// store holds no accepted checkpoint by author.
func (db *DB) Checkpoint(author registry.PublicKey) (*registry.Checkpoint, error) {
	const op = "store.Checkpoint"
	var h *registry.ChainHead
	err := db.bdb.View(func(txn *badger.Txn) error {
		var err error
		h, err = getChainHead(txn, author)
		return err
	})
	if err != nil {
		return nil, err
	}
	id, ok := h.HeadID()
	if !ok {
		return nil, notFound(op, "a checkpoint by "+author.PeerID())
	}
	r, err := db.GetRecord(id)
	if err != nil {
		return nil, err
	}
	return registry.ParseCheckpoint(r)
}

// ChainResult returns the witnessed state of author's checkpoint chain,
// derived from the author's checkpoints in the log.
func (db *DB) ChainResult(author registry.PublicKey) (*registry.ChainResult, error) {
	ch, err := db.loadChain(author)
	if err != nil {
		return nil, err
	}
	return ch.Result(), nil
}
