package federation

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	ma "github.com/multiformats/go-multiaddr"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// Node is a registry node's libp2p peer: it gossips records, reconciles
// record sets with its peers, serves and fetches blobs, and keeps its peer
// book. It is safe for concurrent use.
type Node struct {
	cfg   Config
	st    Store
	log   *slog.Logger
	host  host.Host
	cm    *connmgr.BasicConnMgr
	gater *gater
	ps    *pubsub.PubSub
	topic *pubsub.Topic
	sub   *pubsub.Subscription
	idx   *index
	rec   reconParams

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error

	ingestMu    sync.Mutex
	ingestCh    chan gossiped
	bundles     bundler             // records this node publishes, gossiped in bundles (bundle.go)
	ingestBytes *semaphore.Weighted // bytes of the records in ingestCh and being stored
	blobQ       chan blobJob
	kick        chan struct{}
	inbound     chan struct{} // semaphore of inbound sessions
	blobSem     chan struct{} // semaphore of served blob streams

	mu       sync.Mutex
	book     map[peer.ID]*bookEntry
	recent   map[peer.ID]*recentEntry // guarded by mu (recent.go)
	peers    map[peer.ID]*peerState
	inflight map[registry.ID]struct{}
	scores   map[peer.ID]float64

	// refused remembers records the Admission refused, so that
	// reconciliation does not ask for them again and again while this node
	// runs (a restart forgets them, in case the quotas changed).
	refused *lru.Cache[registry.ID, struct{}]

	stats counters
}

// gossiped is a record accepted by the gossip validator.
type gossiped struct {
	rec  *registry.Record
	from peer.ID
}

type counters struct {
	gossipAccepted, gossipRejected, gossipHeld, gossipFuture, gossipBundles atomic.Uint64
	gossipOverQuota, overQuota                                              atomic.Uint64
	ingested                                                                atomic.Uint64
	sessionsIn, sessionsOut, sessionErrors                                  atomic.Uint64
	violations                                                              atomic.Uint64
	blobsFetched, blobsServed                                               atomic.Uint64
	syncBytesIn, syncBytesOut, syncRoundTrips                               atomic.Uint64
}

// Stats are the node's federation counters since it started.
type Stats struct {
	GossipAccepted      uint64 `json:"gossip_accepted"`       // new records accepted from gossip
	GossipBundles       uint64 `json:"gossip_bundles"`        // bundles (messages of several records) accepted
	GossipRejected      uint64 `json:"gossip_rejected"`       // forged, malformed or oversized
	GossipIgnoredHeld   uint64 `json:"gossip_ignored_held"`   // already held (replays included)
	GossipIgnoredFuture uint64 `json:"gossip_ignored_future"` // too far ahead of this node's clock
	GossipIgnoredQuota  uint64 `json:"gossip_ignored_quota"`  // over a quota: not stored, not relayed
	RecordsOverQuota    uint64 `json:"records_over_quota"`    // received (gossip or reconciliation), verified and refused by a quota
	RecordsIngested     uint64 `json:"records_ingested"`      // new records stored from peers
	SessionsIn          uint64 `json:"sessions_in"`
	SessionsOut         uint64 `json:"sessions_out"`
	SessionErrors       uint64 `json:"session_errors"`
	Violations          uint64 `json:"violations"` // protocol violations by peers
	BlobsFetched        uint64 `json:"blobs_fetched"`
	BlobsServed         uint64 `json:"blobs_served"`
	SyncBytesIn         uint64 `json:"sync_bytes_in"`    // bytes of the reconciliations this node started
	SyncBytesOut        uint64 `json:"sync_bytes_out"`   //
	SyncRoundTrips      uint64 `json:"sync_round_trips"` // their round trips
	IndexRecords        int    `json:"index_records"`
}

// New starts a node: a libp2p host with cfg.Key as its identity listening on
// cfg.Listen, the gossip topic of cfg.Network, the reconciliation and blob
// protocols, and reconnection to remembered and bootstrap peers. It reads the
// (time, ID) index of st into memory; ctx bounds that start-up only. Close
// stops the node.
func New(ctx context.Context, cfg Config, st Store) (*Node, error) {
	cfg.fillDefaults()
	listen, bootstrap, err := cfg.check()
	if err != nil {
		return nil, err
	}
	n := newNode(cfg, st)
	if err := n.loadIndex(ctx); err != nil {
		return nil, err
	}
	if err := n.loadBook(); err != nil {
		return nil, err
	}
	n.loadRecent()
	if err := n.startHost(listen); err != nil {
		return nil, err
	}
	if err := n.startProtocols(); err != nil {
		return nil, err
	}
	n.joinBootstrap(bootstrap)
	n.startLoops()
	n.log.Info("federation started", "peer_id", n.host.ID().String(), "network", n.cfg.Network, "addrs", n.Addrs(), "records", n.idx.count())
	return n, nil
}

func validNetwork(s string) error {
	if s == "" || len(s) > maxNetworkName {
		return registry.Errorf("federation.New", registry.EINVALID, "network name must be 1 to %d characters", maxNetworkName)
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return registry.Errorf("federation.New", registry.EINVALID, "network name %q may contain only a-z, 0-9, '-', '_' and '.'", s)
		}
	}
	return nil
}

// Close stops the node, saves the peer book and closes the host. It does
// not close the store. Calling it again does nothing.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.cancel()
		if n.sub != nil {
			n.sub.Cancel()
		}
		err := n.host.Close()
		n.wg.Wait()
		n.saveBook()
		n.saveRecent()
		if err != nil {
			n.closeErr = registry.E("federation.Close", registry.EINTERNAL, "closing the libp2p host", err)
		}
	})
	return n.closeErr
}

// PeerID returns the node's libp2p peer ID ("12D3Koo…").
func (n *Node) PeerID() string { return n.host.ID().String() }

// Addrs returns the node's full multiaddrs (…/p2p/<peer ID>), the form
// other nodes join with.
func (n *Node) Addrs() []string {
	p2p, _ := ma.NewComponent("p2p", n.host.ID().String())
	var out []string
	for _, a := range n.host.Addrs() {
		out = append(out, a.Encapsulate(p2p).String())
	}
	return out
}

// Digest returns the state digest of the records this node holds
// (registry.Fingerprint.Digest): equal on two nodes exactly when they hold
// the same set.
func (n *Node) Digest() string { return n.idx.fingerprint().Digest() }

// Fingerprint returns the fingerprint of the records this node holds.
func (n *Node) Fingerprint() registry.Fingerprint { return n.idx.fingerprint() }

// Stats returns the node's counters.
func (n *Node) Stats() Stats {
	return Stats{
		GossipAccepted:      n.stats.gossipAccepted.Load(),
		GossipBundles:       n.stats.gossipBundles.Load(),
		GossipRejected:      n.stats.gossipRejected.Load(),
		GossipIgnoredHeld:   n.stats.gossipHeld.Load(),
		GossipIgnoredFuture: n.stats.gossipFuture.Load(),
		GossipIgnoredQuota:  n.stats.gossipOverQuota.Load(),
		RecordsOverQuota:    n.stats.overQuota.Load(),
		RecordsIngested:     n.stats.ingested.Load(),
		SessionsIn:          n.stats.sessionsIn.Load(),
		SessionsOut:         n.stats.sessionsOut.Load(),
		SessionErrors:       n.stats.sessionErrors.Load(),
		Violations:          n.stats.violations.Load(),
		BlobsFetched:        n.stats.blobsFetched.Load(),
		BlobsServed:         n.stats.blobsServed.Load(),
		SyncBytesIn:         n.stats.syncBytesIn.Load(),
		SyncBytesOut:        n.stats.syncBytesOut.Load(),
		SyncRoundTrips:      n.stats.syncRoundTrips.Load(),
		IndexRecords:        n.idx.count(),
	}
}

// Publish announces a record this node has just stored itself (from its
// API or pipeline): it enters the reconciliation index and is gossiped. A
// record too far in the future is indexed but not gossiped. The node must
// call Publish for every record it stores other than through OnIngest, or
// its digest will not describe its store. Records are gossiped in bundles:
// within bundleFlush (1 ms) of each other, several go in one message.
func (n *Node) Publish(ctx context.Context, rec *registry.Record) error {
	const op = "federation.Publish"
	if rec == nil || rec.ID().IsZero() || len(rec.Bytes()) == 0 {
		return registry.Errorf(op, registry.EINTERNAL, "record was not built by registry.Sign or registry.DecodeRecord")
	}
	n.idx.add(keyOf(rec))
	if !registry.Applicable(rec, n.cfg.Now(), n.cfg.MaxSkew) {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return registry.E(op, registry.ECANCELED, "publishing was cancelled", err)
	}
	n.bundles.add(rec)
	return nil
}

// ingest stores verified records from peers, indexes the new ones and
// reports them. from attributes each record to the peer it came from.
// Records from gossip (inSession false) are counted per peer and their
// missing blobs queued here; a reconciliation does both itself.
func (n *Node) ingest(recs []*registry.Record, from []peer.ID, inSession bool) ([]*registry.Record, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	n.ingestMu.Lock()
	defer n.ingestMu.Unlock()
	recs, from, err := n.charge(recs, from)
	if err != nil {
		return nil, err
	}
	added, err := n.st.PutRecords(recs)
	if err != nil {
		return nil, err
	}
	if len(added) == 0 {
		return nil, nil
	}
	for _, r := range added {
		n.idx.add(keyOf(r))
	}
	n.stats.ingested.Add(uint64(len(added)))
	if !inSession {
		source := make(map[registry.ID]peer.ID, len(added))
		for i, r := range recs {
			if i < len(from) {
				source[r.ID()] = from[i]
			}
		}
		n.mu.Lock()
		for _, r := range added {
			if pid, ok := source[r.ID()]; ok {
				n.state(pid).recordsIn++
			}
		}
		n.mu.Unlock()
		for _, r := range releases(added) {
			n.queueBlob(r, source[r.ID()])
		}
	}
	if n.cfg.OnIngest != nil {
		n.cfg.OnIngest(added)
	}
	return added, nil
}

// refusedMemory is how many refused record IDs a node remembers (about
// 100 bytes each).
const refusedMemory = 65536

// charge keeps the records that are new here and admitted by the quotas,
// with their sources; n.ingestMu must be held.
func (n *Node) charge(recs []*registry.Record, from []peer.ID) ([]*registry.Record, []peer.ID, error) {
	if n.cfg.Admission == nil {
		return recs, from, nil
	}
	seen := make(map[registry.ID]bool, len(recs))
	var keep []*registry.Record
	var src []peer.ID
	var srcs []string
	for i, r := range recs {
		if seen[r.ID()] || n.idx.has(keyOf(r)) {
			continue
		}
		seen[r.ID()] = true
		var pid peer.ID
		if i < len(from) {
			pid = from[i]
		}
		keep, src, srcs = append(keep, r), append(src, pid), append(srcs, pid.String())
	}
	if len(keep) == 0 {
		return nil, nil, nil
	}
	ok, err := n.cfg.Admission.Charge(keep, srcs)
	if err != nil {
		return nil, nil, err
	}
	out, outFrom := keep[:0], src[:0]
	for i, r := range keep {
		if ok[i] {
			out, outFrom = append(out, r), append(outFrom, src[i])
		} else {
			n.stats.overQuota.Add(1)
			n.refused.Add(r.ID(), struct{}{})
		}
	}
	return out, outFrom, nil
}

func quote(s string) string {
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return `"` + s + `"`
}

// metricsOption turns libp2p's own metrics on, into reg, or off when there
// is no registry to hold them.
func metricsOption(reg prometheus.Registerer) libp2p.Option {
	if reg == nil {
		return libp2p.DisableMetrics()
	}
	return libp2p.PrometheusRegisterer(reg)
}
