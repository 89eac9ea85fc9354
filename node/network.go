package node

import (
	"context"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/store"
)

// NetStore is the node's storage as the federation sees it: reads go to the
// store; writes are verified records from peers.
type NetStore interface {
	PutRecords(recs []*registry.Record) ([]*registry.Record, error)
	GetRecord(id registry.ID) (*registry.Record, error)
	HasRecord(id registry.ID) (bool, error)
	ScanTimeIndex(fn func(t int64, id registry.ID) error) error
	Fingerprint() registry.Fingerprint
	PutBlob(b []byte) (registry.ID, error)
	GetBlob(id registry.ID) ([]byte, error)
	HasBlob(id registry.ID) (bool, error)
	GetLocal(key string) ([]byte, error)
	PutLocal(key string, v []byte) error
	RecordsByName(name string) ([]*registry.Record, error)
}

// netStore adapts the node to NetStore. Local keys are namespaced under
// "p2p/" so the federation cannot overwrite the node's own settings.
type netStore struct{ n *Node }

var _ NetStore = netStore{}

func (s netStore) db() *store.DB { return s.n.db }

func (s netStore) PutRecords(recs []*registry.Record) ([]*registry.Record, error) {
	return s.db().PutRecords(recs)
}
func (s netStore) GetRecord(id registry.ID) (*registry.Record, error) { return s.db().GetRecord(id) }
func (s netStore) HasRecord(id registry.ID) (bool, error)             { return s.db().HasRecord(id) }
func (s netStore) ScanTimeIndex(fn func(int64, registry.ID) error) error {
	return s.db().ScanTimeIndex(fn)
}
func (s netStore) Fingerprint() registry.Fingerprint      { return s.db().Fingerprint() }
func (s netStore) PutBlob(b []byte) (registry.ID, error)  { return s.db().PutBlob(b) }
func (s netStore) GetBlob(id registry.ID) ([]byte, error) { return s.db().GetBlob(id) }
func (s netStore) HasBlob(id registry.ID) (bool, error)   { return s.db().HasBlob(id) }
func (s netStore) GetLocal(key string) ([]byte, error)    { return s.db().GetLocal("p2p/" + key) }
func (s netStore) PutLocal(key string, v []byte) error    { return s.db().PutLocal("p2p/"+key, v) }
func (s netStore) RecordsByName(n string) ([]*registry.Record, error) {
	return s.db().RecordsByName(n)
}

func (n *Node) netOff(op string) error {
	return registry.Errorf(op, registry.EUNAVAILABLE, "this node is not federated (start it with --p2p-listen or --peer)")
}

// Peers lists known peers.
func (n *Node) Peers(ctx context.Context) ([]PeerInfo, error) {
	if n.net == nil {
		return []PeerInfo{}, nil
	}
	p := n.net.Peers()
	if p == nil {
		p = []PeerInfo{}
	}
	return p, nil
}

// AddPeer joins another node by its full multiaddr.
func (n *Node) AddPeer(ctx context.Context, actor, addr string) (PeerInfo, error) {
	if n.net == nil {
		return PeerInfo{}, n.netOff("node.AddPeer")
	}
	p, err := n.net.AddPeer(ctx, addr)
	if err == nil {
		n.audit(store.AuditEntry{Action: "peer-add", Actor: actor, Subject: p.ID, Detail: addr})
	}
	return p, err
}

// RemovePeer forgets a peer.
func (n *Node) RemovePeer(ctx context.Context, actor, peer string) error {
	if n.net == nil {
		return n.netOff("node.RemovePeer")
	}
	err := n.net.RemovePeer(ctx, peer)
	if err == nil {
		n.audit(store.AuditEntry{Action: "peer-remove", Actor: actor, Subject: peer})
	}
	return err
}

// Sync forces a reconciliation with one peer or all.
func (n *Node) Sync(ctx context.Context, actor, peer string) (SyncReport, error) {
	if n.net == nil {
		return SyncReport{}, n.netOff("node.Sync")
	}
	return n.net.Sync(ctx, peer)
}
