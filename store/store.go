// Package store keeps a node's data in Badger: signed records and their
// derived indexes, the node's transparency log and the witnessed times of
// records (tlog.go), .crate blobs, node-local settings, the pipeline job
// queue and the audit log. It is the only package that imports Badger.
//
// Durability contract: every write method returns only after its data is
// synced to disk (Badger SyncWrites), so an acknowledged write survives
// kill -9. Records are never deleted; indexes and release views are derived
// from the records and can be rebuilt with Reindex.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	lru "github.com/hashicorp/golang-lru/v2"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// Key prefixes. Every key starts with one byte naming its table; never reuse
// a prefix for something else.
const (
	pRecord   = 'r' // r ID → canonical record bytes
	pTime     = 't' // t time(8, big-endian) ID → ""
	pName     = 'n' // n name 0x00 ID → "" (no longer written; see indexKeys)
	pSubject  = 's' // s subject 0x00 ID → ""
	pKind     = 'k' // k kind 0x00 ID → "" (rare kinds only; see indexedKind)
	pAuthor   = 'a' // a author(36) ID → "" (no longer written; see indexKeys)
	pView     = 'v' // v name 0x00 version → ReleaseView (CBOR)
	pBlob     = 'b' // b ID → blob bytes
	pLocal    = 'L' // L key → value
	pJob      = 'j' // j seq(8) → Job (JSON)
	pAudit    = 'A' // A seq(8) → AuditEntry (JSON)
	pMeta     = 'M' // M key → value (schema version, sequences)
	schemaVer = "1"
)

// recordCacheSize bounds the decoded-record cache (about 1 KiB each).
const recordCacheSize = 32 << 10

// Options configure Open.
type Options struct {
	// InMemory keeps everything in memory (tests); dir is ignored.
	InMemory bool
	// Logger receives Badger's warnings and the store's own messages.
	Logger *slog.Logger
	// MaxSkew is the conflict rules' allowance for clocks ahead of ours.
	MaxSkew time.Duration
	// GCInterval is how often value-log GC runs (default 10 minutes; <0 off).
	GCInterval time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// DB is a node's store. It is safe for concurrent use.
type DB struct {
	bdb  *badger.DB
	opts Options
	log  *slog.Logger

	writeMu sync.Mutex   // serialises record writes, so view derivation never races
	auth    atomic.Value // Authority; see SetAuthority
	audit   auditState
	derived atomic.Uint64 // crates whose views were derived from all their records (writeViews), for tests
	// filtersReady: the filter index covers every view (filter.go).
	filtersReady atomic.Bool
	jobMu        sync.Mutex // serialises job queue read-modify-writes

	mu    sync.RWMutex // guards the fields below
	fp    registry.Fingerprint
	blobs int64

	// recs caches decoded records by ID. Records never change, so an entry
	// is never stale; it saves the read and decode when a crate's views are
	// derived again for each new record about it.
	recs *lru.Cache[registry.ID, *registry.Record]

	tl tlogState // the transparency log's head and chain verifiers (tlog.go)

	cancel context.CancelFunc
	done   chan struct{}
}

// Open opens (creating if needed) the Badger database in dir.
func Open(dir string, opts Options) (*DB, error) {
	const op = "store.Open"
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxSkew == 0 {
		opts.MaxSkew = registry.DefaultMaxSkew
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.GCInterval == 0 {
		opts.GCInterval = 10 * time.Minute
	}
	bo := badger.DefaultOptions(dir).
		WithSyncWrites(true).
		WithLogger(badgerLogger{opts.Logger}).
		WithNumVersionsToKeep(1).
		WithCompactL0OnClose(true).
		// Memory: Badger's defaults (a 256 MiB block cache, 64 MiB
		// memtables, five of them, four compactors building tables of up
		// to 64 MiB each in memory) would hold a node of a million
		// records at over a GiB. See docs/benchmarks/scale.md.
		WithBlockCacheSize(32 << 20).
		WithMemTableSize(32 << 20).
		WithNumMemtables(3).
		WithNumCompactors(2)
	bo.TableSizeMultiplier = 1
	if opts.InMemory {
		bo = bo.WithInMemory(true).WithDir("").WithValueDir("")
	}
	bdb, err := badger.Open(bo)
	if err != nil {
		return nil, registry.E(op, registry.EINTERNAL, fmt.Sprintf("cannot open the Badger database in %s (is another node using it?)", dir), err)
	}
	recs, err := lru.New[registry.ID, *registry.Record](recordCacheSize)
	if err != nil {
		bdb.Close()
		return nil, registry.E(op, registry.EINTERNAL, "record cache", err)
	}
	db := &DB{bdb: bdb, opts: opts, log: opts.Logger, done: make(chan struct{}), recs: recs}
	if err := db.checkSchema(); err != nil {
		bdb.Close()
		return nil, err
	}
	if err := db.loadCounters(); err != nil {
		bdb.Close()
		return nil, err
	}
	if err := db.loadFiltersReady(); err != nil {
		bdb.Close()
		return nil, err
	}
	if err := db.loadLog(); err != nil {
		bdb.Close()
		return nil, err
	}
	if err := db.loadAudit(); err != nil {
		bdb.Close()
		return nil, err
	}
	if err := db.backfillLog(); err != nil {
		bdb.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	db.cancel = cancel
	go db.gcLoop(ctx)
	return db, nil
}

// Close stops background work and closes the database.
func (db *DB) Close() error {
	db.cancel()
	<-db.done
	if err := db.bdb.Close(); err != nil {
		return registry.E("store.Close", registry.EINTERNAL, "closing Badger", err)
	}
	return nil
}

func (db *DB) checkSchema() error {
	const op = "store.Open"
	key := []byte{pMeta, 's', 'c', 'h', 'e', 'm', 'a'}
	return db.bdb.Update(func(txn *badger.Txn) error {
		it, err := txn.Get(key)
		if errors.Is(err, badger.ErrKeyNotFound) {
			// A new database: its filter index covers its (no) views.
			if err := txn.Set(filtersKey, []byte("1")); err != nil {
				return err
			}
			return txn.Set(key, []byte(schemaVer))
		}
		if err != nil {
			return registry.E(op, registry.EINTERNAL, "reading schema version", err)
		}
		v, err := it.ValueCopy(nil)
		if err != nil {
			return registry.E(op, registry.EINTERNAL, "reading schema version", err)
		}
		if string(v) != schemaVer {
			return registry.Errorf(op, registry.EINTERNAL, "the database has schema version %s; this node understands %s", v, schemaVer)
		}
		return nil
	})
}

// loadCounters computes the whole-set fingerprint and the blob count.
func (db *DB) loadCounters() error {
	var fp registry.Fingerprint
	var blobs int64
	err := db.bdb.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.PrefetchValues = false
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Seek([]byte{pTime}); it.ValidForPrefix([]byte{pTime}); it.Next() {
			k := it.Item().Key()
			var id registry.ID
			copy(id[:], k[9:])
			fp.Add(id)
		}
		for it.Seek([]byte{pBlob}); it.ValidForPrefix([]byte{pBlob}); it.Next() {
			blobs++
		}
		return nil
	})
	if err != nil {
		return registry.E("store.Open", registry.EINTERNAL, "scanning the database", err)
	}
	db.mu.Lock()
	db.fp, db.blobs = fp, blobs
	db.mu.Unlock()
	return nil
}

func (db *DB) gcLoop(ctx context.Context) {
	defer close(db.done)
	if db.opts.InMemory || db.opts.GCInterval < 0 {
		return
	}
	t := time.NewTicker(db.opts.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for db.bdb.RunValueLogGC(0.5) == nil {
				if ctx.Err() != nil {
					return
				}
			}
		}
	}
}

// Fingerprint returns the fingerprint of the whole record set; its Digest is
// the state digest.
func (db *DB) Fingerprint() registry.Fingerprint {
	db.mu.RLock()
	defer db.mu.RUnlock()
	return db.fp
}

// Counts returns the number of records and blobs held.
func (db *DB) Counts() (records, blobs int64) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	return int64(db.fp.Count), db.blobs
}

type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	b.l.Error("badger: " + trimNL(fmt.Sprintf(f, a...)))
}
func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn("badger: " + trimNL(fmt.Sprintf(f, a...)))
}
func (b badgerLogger) Infof(f string, a ...any) { b.l.Debug("badger: " + trimNL(fmt.Sprintf(f, a...))) }
func (b badgerLogger) Debugf(f string, a ...any) {
	b.l.Debug("badger: " + trimNL(fmt.Sprintf(f, a...)))
}

func trimNL(s string) string {
	for len(s) > 0 && s[len(s)-1] == '\n' {
		s = s[:len(s)-1]
	}
	return s
}

func notFound(op, what string) error {
	return registry.Errorf(op, registry.ENOTFOUND, "%s not found", what)
}

func internal(op string, err error) error {
	return registry.E(op, registry.EINTERNAL, "database error", err)
}
