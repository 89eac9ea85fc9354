package node

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/federation"
	"github.com/wasmrust/wasm-crates-registry/pipeline"
	"github.com/wasmrust/wasm-crates-registry/store"
)

// Network is what the node needs from the federation layer; a
// *federation.Node is one.
type Network interface {
	// Publish indexes and gossips a record this node has just stored.
	Publish(ctx context.Context, rec *registry.Record) error
	// FetchBlob gets a blob from peers, verified against its multihash.
	FetchBlob(ctx context.Context, id registry.ID) ([]byte, error)
	AddPeer(ctx context.Context, multiaddr string) (federation.PeerInfo, error)
	RemovePeer(ctx context.Context, peer string) error
	Peers() []federation.PeerInfo
	// Sync reconciles with the peer at a full multiaddr or, for "", with
	// every connected peer.
	Sync(ctx context.Context, multiaddr string) (federation.SyncReport, error)
	// Addrs are the node's full listen multiaddrs (…/p2p/<peer ID>).
	Addrs() []string
	Close() error
}

var _ Network = (*federation.Node)(nil)

// NetworkFactory starts the federation for a node. st is the node's storage
// as the network sees it.
type NetworkFactory func(ctx context.Context, key registry.PrivateKey, st federation.Store) (Network, error)

// Federation starts a federation.Node with cfg (its Key is the node's).
func Federation(cfg federation.Config) NetworkFactory {
	return func(ctx context.Context, key registry.PrivateKey, st federation.Store) (Network, error) {
		cfg.Key = key
		if a, ok := st.(federation.Admission); ok && cfg.Admission == nil {
			cfg.Admission = a
		}
		if m, ok := st.(interface{ Registerer() prometheus.Registerer }); ok && cfg.Metrics == nil {
			cfg.Metrics = m.Registerer()
		}
		return federation.New(ctx, cfg, st)
	}
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
