package node

import (
	"context"
	"log/slog"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/pipeline"
	"github.com/wasmrust/wasm-crates-registry/store"
)

// Network is what the node needs from the federation layer.
type Network interface {
	// Publish gossips a record this node has just stored.
	Publish(ctx context.Context, rec *registry.Record) error
	// FetchBlob gets a blob from peers, verified against its multihash.
	FetchBlob(ctx context.Context, id registry.ID) ([]byte, error)
	AddPeer(ctx context.Context, multiaddr string) (PeerInfo, error)
	RemovePeer(ctx context.Context, peer string) error
	Peers() []PeerInfo
	// Sync reconciles with one peer (a multiaddr or peer ID) or, for "",
	// with every connected peer.
	Sync(ctx context.Context, peer string) (SyncReport, error)
	// Addrs are the node's full listen multiaddrs (…/p2p/<peer ID>).
	Addrs() []string
	Close() error
}

// NetworkFactory starts the federation for a node. st is the node's storage
// as the network sees it.
type NetworkFactory func(ctx context.Context, key registry.PrivateKey, st NetStore) (Network, error)

// PeerInfo describes a known peer.
type PeerInfo struct {
	ID              string    `json:"id"`
	Addrs           []string  `json:"addrs"`
	Connected       bool      `json:"connected"`
	Remembered      bool      `json:"remembered"`
	LastSync        time.Time `json:"last_sync,omitzero"`
	LastError       string    `json:"last_error,omitempty"`
	RecordsSent     int64     `json:"records_sent"`
	RecordsReceived int64     `json:"records_received"`
}

// SyncReport says what a reconciliation moved.
type SyncReport struct {
	Peers           []string      `json:"peers"`
	RecordsSent     int64         `json:"records_sent"`
	RecordsReceived int64         `json:"records_received"`
	BlobsSent       int64         `json:"blobs_sent"`
	BlobsReceived   int64         `json:"blobs_received"`
	BytesSent       int64         `json:"bytes_sent"`
	BytesReceived   int64         `json:"bytes_received"`
	RoundTrips      int           `json:"round_trips"`
	Duration        time.Duration `json:"duration_ns"`
	Errors          []string      `json:"errors,omitempty"`
}

// Tester runs the testing pipeline on one release.
type Tester interface {
	// Test returns the report body for a crate outcome (failures of the
	// crate are reports). An error of kind EUNAVAILABLE means no report
	// can be made on this node (no wasm toolchain or dependency source can
	// take the crate); any other error means the registry itself failed.
	Test(ctx context.Context, job TestJob, progress func(store.JobEvent)) (*registry.ReportBody, error)
	// Toolchains describes the installed toolchains for health and docs.
	Toolchains() any
	Close() error
}

// TesterFactory builds the pipeline.
type TesterFactory func(log *slog.Logger) (Tester, error)

// TestJob is one release to test.
type TestJob struct {
	Release *registry.Record
	Body    *registry.ReleaseBody
	Crate   []byte
	Local   pipeline.LocalRegistry
}
