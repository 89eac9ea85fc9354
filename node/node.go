// Package node is the composition root of a registry node: it wires the
// store, the federation and the pipeline together and offers the operations
// that the REST API, the Cargo protocol and the dashboard serve. It holds the
// node's key and signs the records made through it.
package node

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/node/metrics"
	"github.com/wasmrust/wasm-crates-registry/node/webhook"
	"github.com/wasmrust/wasm-crates-registry/store"
)

// Config configures a node. The daemon fills it from flags and environment.
type Config struct {
	// DataDir holds the Badger database, the node key (node.key) and the
	// admin token file (admin-token). Created if missing.
	DataDir string
	// Name is the registry's name on first start (later changed via settings).
	Name string
	// MaxCrateSize limits uploads (default registry.DefaultMaxCrateSize).
	MaxCrateSize int64
	// MaxSkew is the allowed clock skew of records (default 2 minutes).
	MaxSkew time.Duration
	// Version is the software version shown by health.
	Version string
	// Logger receives structured logs (default: discard).
	Logger *slog.Logger
	// Announce receives the one-time admin token message (default os.Stderr).
	Announce io.Writer
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Network, when set, federates the node (see federation.New).
	Network NetworkFactory
	// TrustedPeers are the peers (full multiaddrs or peer IDs) the node
	// was started to join with trust: they are trust roots (DESIGN.md §2).
	// Peers joined without trust are given to the Network only.
	TrustedPeers []string
	// TrustedKeys are trust-root keys given at start (PUBLIC_KEY): the
	// operator's developer key, typically.
	TrustedKeys []registry.PublicKey
	// Tester, when set, runs the testing pipeline for queued jobs.
	Tester TesterFactory
	// Workers is the number of concurrent pipeline jobs (default 1).
	Workers int
	// Shared shares test work with the federation's other testers
	// (leases.go); only with a Tester.
	Shared SharedTesting
	// CheckpointInterval is how often the node checks whether its log needs
	// a new signed checkpoint (checkpoint.go); 0 or less: never on its own.
	CheckpointInterval time.Duration
	// Quotas bound the records untrusted authors and peers can make the
	// node store (zero fields: DefaultQuotas).
	Quotas Quotas
	// ScrubInterval is how often every stored record and blob is
	// re-verified in the background (default DefaultScrubInterval; < 0
	// off).
	ScrubInterval time.Duration
	// Upstream configures the pull-through mirror of upstream sparse
	// indexes (upstream.go).
	Upstream UpstreamConfig
}

// Node is a running registry node. Its methods are safe for concurrent use.
type Node struct {
	cfg     Config
	log     *slog.Logger
	db      *store.DB
	key     registry.PrivateKey
	started time.Time

	net    Network // nil when not federated
	tester Tester  // nil when the pipeline is off

	submitMu sync.Mutex // serialises the check-then-write of submissions
	tokenMu  sync.Mutex // serialises changes to the token list
	signMu   sync.Mutex // keeps this node's mutable records strictly ordered

	settingsMu sync.RWMutex
	settings   registry.Settings

	trust    atomic.Pointer[trustSnap] // see Trust
	trustMu  sync.Mutex                // serialises computing a new trust set
	trustGen atomic.Uint64             // bumped when settings or peers change

	jobs  *jobRunner
	adm   *admission
	scrub scrubber

	shared *sharedWork // nil unless shared testing is on

	ckMu sync.Mutex    // serialises checkpoint signing
	ckpt *checkpointer // nil when checkpoints are signed only on request

	up *upstreams

	metrics *metrics.Metrics
	hooks   *webhook.Dispatcher
	// events carries stored records to eventLoop, which runs from the end
	// of Open until eventsStop is closed; the channel itself is never
	// closed, so a record stored while the node closes cannot panic.
	events     chan []*registry.Record
	eventsStop chan struct{}
	eventsDone chan struct{}

	closeOnce sync.Once
}

// Open opens (or initialises) the node's data directory and starts the
// node's background work. Close releases everything.
func Open(ctx context.Context, cfg Config) (*Node, error) {
	const op = "node.Open"
	if cfg.DataDir == "" {
		return nil, registry.Errorf(op, registry.EINVALID, "no data directory given")
	}
	if cfg.MaxCrateSize <= 0 {
		cfg.MaxCrateSize = registry.DefaultMaxCrateSize
	}
	if cfg.MaxSkew <= 0 {
		cfg.MaxSkew = registry.DefaultMaxSkew
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Announce == nil {
		cfg.Announce = os.Stderr
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Name == "" {
		cfg.Name = "wasm-crates-registry"
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 1
	}
	if cfg.ScrubInterval == 0 {
		cfg.ScrubInterval = DefaultScrubInterval
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, registry.E(op, registry.EINVALID, fmt.Sprintf("cannot create the data directory %s", cfg.DataDir), err)
	}
	key, err := loadOrCreateKey(filepath.Join(cfg.DataDir, "node.key"))
	if err != nil {
		return nil, err
	}
	db, err := store.Open(cfg.DataDir, store.Options{Logger: cfg.Logger, MaxSkew: cfg.MaxSkew, Now: cfg.Now})
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: cfg.Logger, db: db, key: key, started: cfg.Now(), up: newUpstreams(cfg.Upstream)}
	if cfg.Shared.Enabled && cfg.Tester != nil {
		n.shared = newSharedWork(n, cfg.Shared)
	}
	n.metrics = n.newMetrics()
	if n.hooks, err = webhook.New(ctx, webhookStore{db}, key.Public().PeerID(), webhook.Options{Logger: cfg.Logger, OnAttempt: n.metrics.Webhook}); err != nil {
		db.Close()
		return nil, err
	}
	n.events = make(chan []*registry.Record, eventQueue)
	if err := n.loadSettings(); err != nil {
		db.Close()
		return nil, err
	}
	if err := n.initAdminToken(); err != nil {
		db.Close()
		return nil, err
	}
	n.vouchForStartPeers(ctx)
	n.Trust() // the views follow this node's trust before anything is served
	if n.adm, err = newAdmission(db, cfg.Quotas, key.Public(), n.Trust); err != nil {
		db.Close()
		return nil, err
	}
	if cfg.Network != nil {
		n.net, err = cfg.Network(ctx, n.key, netStore{n})
		if err != nil {
			db.Close()
			return nil, err
		}
	}
	n.adm.ready.Store(true)
	if cfg.Tester != nil {
		n.tester, err = cfg.Tester(n.log)
		if err != nil {
			n.closeNet()
			db.Close()
			return nil, err
		}
	}
	n.jobs = newJobRunner(n)
	if err := n.jobs.start(cfg.Workers); err != nil {
		n.Close()
		return nil, err
	}
	if n.shared != nil {
		n.shared.start()
	}
	n.startCheckpointer()
	n.startScrub(cfg.ScrubInterval)
	n.eventsStop, n.eventsDone = make(chan struct{}), make(chan struct{})
	go n.eventLoop()
	return n, nil
}

// Close stops the node and closes its store.
func (n *Node) Close() error {
	var err error
	n.closeOnce.Do(func() {
		n.stopCheckpointer()
		n.stopScrub()
		if n.shared != nil {
			n.shared.stop()
		}
		if n.jobs != nil {
			n.jobs.stop()
		}
		if n.tester != nil {
			if err := n.tester.Close(); err != nil {
				n.log.Warn("closing the pipeline", "err", err)
			}
		}
		n.closeNet()
		if n.eventsStop != nil {
			close(n.eventsStop)
			<-n.eventsDone
		}
		if n.hooks != nil {
			n.hooks.Close()
		}
		err = n.db.Close()
	})
	return err
}

func (n *Node) closeNet() {
	if n.net != nil {
		if err := n.net.Close(); err != nil {
			n.log.Warn("closing the p2p host", "err", err)
		}
	}
}

// PeerID is the node's libp2p peer ID, the ID of the key that signs its
// records.
func (n *Node) PeerID() string { return n.key.Public().PeerID() }

// PublicKey is the node's public key.
func (n *Node) PublicKey() registry.PublicKey { return n.key.Public() }

// Store exposes the node's store to tests of other packages that set up
// or inspect state directly. Code reaches the store through the node's
// methods (reads.go and the rest), never through this.
func (n *Node) Store() *store.DB { return n.db }

// MaxCrateSize is the upload limit in bytes.
func (n *Node) MaxCrateSize() int64 { return n.cfg.MaxCrateSize }

// loadOrCreateKey reads the node key (a hex ed25519 seed) or creates it with
// mode 0600.
func loadOrCreateKey(path string) (registry.PrivateKey, error) {
	const op = "node.key"
	b, err := os.ReadFile(path)
	if err == nil {
		seed, derr := hex.DecodeString(strings.TrimSpace(string(b)))
		if derr != nil || len(seed) != ed25519.SeedSize {
			return nil, registry.Errorf(op, registry.EINVALID, "%s is not a node key (64 hex characters); move it away to make a new identity", path)
		}
		return registry.KeyFromSeed(seed)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, registry.E(op, registry.EINTERNAL, "cannot read "+path, err)
	}
	k, err := registry.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(path, []byte(hex.EncodeToString(k.Seed())+"\n"), 0o600); err != nil {
		return nil, registry.E(op, registry.EINTERNAL, "cannot write "+path, err)
	}
	return k, nil
}

// writeFileAtomic writes data to path durably: a synced temp file renamed
// into place, then the directory synced.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
