package federation

import (
	"context"
	"log/slog"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	"golang.org/x/sync/semaphore"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// The steps of New, in the order it takes them. Errors carry New's
// operation label, since New is what the caller called.

// fillDefaults gives every unset field of cfg its default.
func (cfg *Config) fillDefaults() {
	if cfg.Network == "" {
		cfg.Network = DefaultNetwork
	}
	if len(cfg.Listen) == 0 {
		cfg.Listen = DefaultListen
	}
	if cfg.MaxSkew <= 0 {
		cfg.MaxSkew = registry.DefaultMaxSkew
	}
	if cfg.SyncInterval == 0 {
		cfg.SyncInterval = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Limits.fill()
}

// check validates cfg (with its defaults filled) and parses its listen
// and bootstrap addresses. Every error is EINVALID and names the value at
// fault.
func (cfg *Config) check() (listen []ma.Multiaddr, bootstrap []*peer.AddrInfo, err error) {
	const op = "federation.New"
	if len(cfg.Key) != 64 {
		return nil, nil, registry.Errorf(op, registry.EINVALID, "the node key must be an ed25519 private key")
	}
	if err := validNetwork(cfg.Network); err != nil {
		return nil, nil, err
	}
	for _, s := range cfg.Listen {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, nil, registry.E(op, registry.EINVALID, "listen address "+quote(s)+" is not a multiaddr (for example /ip4/0.0.0.0/tcp/4001 or /ip4/0.0.0.0/udp/4001/quic-v1)", err)
		}
		listen = append(listen, a)
	}
	for _, s := range cfg.Bootstrap {
		ai, err := parsePeerAddr(s)
		if err != nil {
			return nil, nil, err
		}
		bootstrap = append(bootstrap, ai)
	}
	return listen, bootstrap, nil
}

// newNode makes a node of cfg over st with its queues, semaphores and
// bounds; nothing runs yet.
func newNode(cfg Config, st Store) *Node {
	n := &Node{
		cfg:      cfg,
		st:       st,
		log:      cfg.Logger,
		idx:      newIndex(),
		ingestCh: make(chan gossiped, 4096),
		blobQ:    make(chan blobJob, 4096),
		kick:     make(chan struct{}, 1),
		inbound:  make(chan struct{}, cfg.Limits.MaxInboundSessions),
		blobSem:  make(chan struct{}, cfg.Limits.MaxBlobStreams),
		book:     map[peer.ID]*bookEntry{},
		peers:    map[peer.ID]*peerState{},
		inflight: map[registry.ID]struct{}{},
		scores:   map[peer.ID]float64{},
		gater:    newGater(),
	}
	n.bundles.n = n
	n.ingestBytes = semaphore.NewWeighted(max(cfg.Limits.IngestQueueBytes, registry.MaxRecordSize))
	n.refused, _ = lru.New[registry.ID, struct{}](refusedMemory)
	n.rec = defaultReconParams
	n.rec.idle = cfg.Limits.StreamIdle
	n.rec.session = cfg.Limits.SessionTimeout
	n.rec.blobPhase = cfg.Limits.BlobTimeout
	n.rec.buffer = cfg.Limits.SessionBuffer
	n.rec.wantsHeld = cfg.Limits.SessionWants
	n.rec.relsHeld = cfg.Limits.SessionBlobs
	return n
}

// loadIndex reads the store's (time, ID) index into memory; ctx bounds
// the scan.
func (n *Node) loadIndex(ctx context.Context) error {
	if err := n.st.ScanTimeIndex(func(t int64, id registry.ID) error {
		n.idx.appendSorted(key{t: t, id: id})
		return ctx.Err()
	}); err != nil {
		return registry.E("federation.New", registry.KindOf(err), "reading the record index", err)
	}
	return nil
}

// startHost starts the libp2p host with the node key as its identity,
// listening on listen, behind the connection manager and the gater.
func (n *Node) startHost(listen []ma.Multiaddr) error {
	const op = "federation.New"
	priv, err := crypto.UnmarshalEd25519PrivateKey(n.cfg.Key)
	if err != nil {
		return registry.E(op, registry.EINVALID, "the node key is not a usable ed25519 key", err)
	}
	n.cm, err = connmgr.NewConnManager(64, 256, connmgr.WithGracePeriod(time.Minute))
	if err != nil {
		return registry.E(op, registry.EINTERNAL, "connection manager", err)
	}
	n.host, err = libp2p.New(
		libp2p.Identity(priv),
		libp2p.ListenAddrs(listen...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.ConnectionManager(n.cm),
		libp2p.ConnectionGater(n.gater),
		metricsOption(n.cfg.Metrics),
		libp2p.DisableRelay(),
		libp2p.UserAgent("wasm-crates-registry"),
	)
	if err != nil {
		return registry.E(op, registry.EUNAVAILABLE, "cannot start the libp2p host on "+strings.Join(n.cfg.Listen, ", ")+" (is the port in use?)", err)
	}
	return nil
}

// startProtocols joins the gossip topic, serves the reconciliation and
// blob protocols and starts following the host's peer events. On error
// the host is closed.
func (n *Node) startProtocols() error {
	n.ctx, n.cancel = context.WithCancel(context.Background())
	if err := n.startGossip(); err != nil {
		n.cancel()
		n.host.Close()
		return err
	}
	n.host.SetStreamHandler(ReconcileProtocol, n.handleReconcile)
	n.host.SetStreamHandler(BlobProtocol, n.handleBlob)

	sub, err := n.host.EventBus().Subscribe([]any{new(event.EvtPeerIdentificationCompleted), new(event.EvtPeerConnectednessChanged)})
	if err != nil {
		n.Close()
		return registry.E("federation.New", registry.EINTERNAL, "subscribing to host events", err)
	}
	n.wg.Add(1)
	go n.eventLoop(sub)
	return nil
}

// joinBootstrap adds the bootstrap peers (other than this node) to the
// peer book, and protects every peer of the book in the connection
// manager with its addresses kept in the peerstore.
func (n *Node) joinBootstrap(bootstrap []*peer.AddrInfo) {
	for _, ai := range bootstrap {
		if ai.ID == n.host.ID() {
			continue
		}
		n.remember(ai)
	}
	if len(bootstrap) > 0 {
		n.saveBook()
	}
	n.mu.Lock()
	for pid, e := range n.book {
		n.cm.Protect(pid, protectTag)
		n.host.Peerstore().AddAddrs(pid, e.multiaddrs(), peerstorePermanent)
	}
	n.mu.Unlock()
}

// startLoops starts the node's background work: storing what peers send,
// fetching blobs, scheduling reconciliations and redialling recent peers.
// Close stops them.
func (n *Node) startLoops() {
	n.wg.Add(4)
	go n.ingestLoop()
	go n.blobLoop()
	go n.scheduleLoop()
	go n.dialRecent()
}
