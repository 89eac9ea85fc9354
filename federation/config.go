package federation

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	registry "github.com/wasmrust/wasm-crates-registry"
)

// RecordStore is the part of the node's store that federation reads and
// writes records through. Every record passed to PutRecords has been fully
// verified (registry.DecodeRecord) by federation.
type RecordStore interface {
	// PutRecords durably stores records (one synced batch) and returns those
	// that were not held before.
	PutRecords(recs []*registry.Record) (added []*registry.Record, err error)
	// GetRecord returns a held record; an error of kind registry.ENOTFOUND
	// when it is not held.
	GetRecord(id registry.ID) (*registry.Record, error)
	// ScanTimeIndex calls fn for every held record in (time, ID) order.
	ScanTimeIndex(fn func(t int64, id registry.ID) error) error
}

// BlobStore holds .crate archives by multihash.
type BlobStore interface {
	// PutBlob stores b under the multihash it computes itself.
	PutBlob(b []byte) (registry.ID, error)
	// GetBlob returns a held blob; registry.ENOTFOUND when it is not held.
	GetBlob(id registry.ID) ([]byte, error)
	HasBlob(id registry.ID) (bool, error)
}

// LocalStore keeps node-local values that are never replicated (the peer
// book lives under the key PeerBookKey).
type LocalStore interface {
	// GetLocal returns a value; registry.ENOTFOUND when unset.
	GetLocal(key string) ([]byte, error)
	PutLocal(key string, v []byte) error
}

// Store is everything federation needs from the node's storage.
type Store interface {
	RecordStore
	BlobStore
	LocalStore
}

// PeerBookKey is the LocalStore key of the remembered peers (JSON).
const PeerBookKey = "federation/peers"

// DefaultNetwork is the gossip network a node joins unless told otherwise.
const DefaultNetwork = "main"

// DefaultListen are the listen addresses of a node with no configuration:
// TCP and QUIC on port 4001 on every interface.
var DefaultListen = []string{"/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"}

// Config configures a Node. Zero fields take the defaults documented on
// them.
type Config struct {
	// Key is the node's identity: its libp2p peer ID and the author of the
	// records it signs. Required.
	Key registry.PrivateKey
	// Listen are multiaddrs to listen on (default DefaultListen).
	Listen []string
	// Network names the gossip network (default DefaultNetwork). Nodes on
	// different networks never exchange records.
	Network string
	// Bootstrap are full multiaddrs (…/p2p/<peer ID>) of peers to join. They
	// are added to the peer book, so they are remembered across restarts.
	Bootstrap []string
	// MaxSkew is how far ahead of this node's clock a record's time may be
	// before it is held back (default registry.DefaultMaxSkew).
	MaxSkew time.Duration
	// SyncInterval is how often the node reconciles with every connected
	// peer (default 1 minute; negative disables periodic reconciliation —
	// reconciliation on connect and on demand still runs).
	SyncInterval time.Duration
	// Logger receives the node's logs (default: discarded).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// OnIngest, if set, is called with the records that arrived from peers
	// (by gossip or reconciliation) once they are durably stored, in
	// batches, from one goroutine at a time. It must not block for long.
	OnIngest func(added []*registry.Record)
	// Metrics, if set, receives libp2p's own metrics (swarm, identify,
	// resource manager, …); without it they are off.
	Metrics prometheus.Registerer
	// Admission, if set, decides which verified records from peers are
	// stored and relayed (quotas); nil admits every record.
	Admission Admission
	// Limits bound what peers may make this node do.
	Limits Limits
}

// Admission enforces the node's quotas on records from peers
// (docs/FEDERATION.md §8). It is called concurrently.
type Admission interface {
	// Admit reports whether rec, received from the peer with ID from, may
	// be stored and relayed now, without counting it; and whether it is
	// useful (signed by a trust root), so that delivering it first earns the
	// sender gossip credit. A record that is not admitted is neither stored
	// nor relayed, and its sender is neither credited nor penalised.
	Admit(rec *registry.Record, from string) (ok, useful bool)
	// Charge counts the records that fit their quotas and reports, per
	// record, whether it may be stored. It is called with records not yet
	// held, each with the peer it came from, just before they are stored.
	Charge(recs []*registry.Record, from []string) ([]bool, error)
}

// Limits bound the work and memory any peer can cause. Zero fields take the
// defaults documented on them.
type Limits struct {
	// MaxBlobSize is the largest blob served or fetched (default 10 MiB,
	// registry.DefaultMaxCrateSize; the node passes its maximum crate
	// size). A blob fetched for a release is further capped by the size the
	// release declares.
	MaxBlobSize int64
	// StreamIdle is the longest wait for the next frame or chunk on any
	// stream (default 15 s).
	StreamIdle time.Duration
	// SessionTimeout bounds one whole reconciliation (default 5 minutes).
	SessionTimeout time.Duration
	// BlobTimeout bounds one blob transfer (default 2 minutes).
	BlobTimeout time.Duration
	// MaxInboundSessions bounds concurrent reconciliations started by peers
	// (default 8; one per peer at a time).
	MaxInboundSessions int
	// MaxBlobStreams bounds concurrent blob requests served (default 16;
	// 4 per peer).
	MaxBlobStreams int
	// SessionBlobs is how many missing blobs a reconciliation fetches before
	// it returns (default 64); the rest are fetched in the background.
	SessionBlobs int
	// IngestQueueBytes bounds the bytes of gossiped records accepted and
	// waiting to be stored (default 16 MiB); while it is full, gossip is
	// read no faster than it is stored.
	IngestQueueBytes int64
	// SessionBuffer bounds the received record bytes one reconciliation
	// holds before it verifies and stores them (default 4 MiB).
	SessionBuffer int
	// SessionWants bounds the record IDs one reconciliation remembers as
	// missing here (default 16384); the peer's further offers are left to
	// a later reconciliation.
	SessionWants int
	// BanDuration is how long a peer whose gossip score fell below the
	// graylist threshold is refused (default 10 minutes).
	BanDuration time.Duration
}

func (l *Limits) fill() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defD := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if l.MaxBlobSize <= 0 {
		l.MaxBlobSize = registry.DefaultMaxCrateSize
	}
	if l.IngestQueueBytes <= 0 {
		l.IngestQueueBytes = 16 << 20
	}
	def(&l.SessionBuffer, 4<<20)
	def(&l.SessionWants, 16384)
	defD(&l.StreamIdle, 15*time.Second)
	defD(&l.SessionTimeout, 5*time.Minute)
	defD(&l.BlobTimeout, 2*time.Minute)
	defD(&l.BanDuration, 10*time.Minute)
	def(&l.MaxInboundSessions, 8)
	def(&l.MaxBlobStreams, 16)
	def(&l.SessionBlobs, 64)
}

const (
	// ReconcileProtocol is the libp2p protocol of range-based reconciliation.
	ReconcileProtocol = "/wcr/reconcile/1"
	// BlobProtocol is the libp2p protocol that serves blobs by multihash.
	BlobProtocol = "/wcr/blob/1"
)

// Topic returns the gossipsub topic of a network.
func Topic(network string) string { return "wcr/" + network + "/records/1" }
