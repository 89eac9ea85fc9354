package node

import (
	"context"
	"fmt"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/federation"
	"github.com/wasmrust/wasm-crates-registry/node/metrics"
	"github.com/wasmrust/wasm-crates-registry/store"
)

// netStore is the node's storage as the federation sees it. Local keys are
// namespaced under "p2p/" so the federation cannot overwrite the node's own
// settings.
type netStore struct{ n *Node }

var _ federation.Store = netStore{}

func (s netStore) db() *store.DB { return s.n.db }

func (s netStore) PutRecords(recs []*registry.Record) ([]*registry.Record, error) {
	added, err := s.db().PutRecords(recs)
	s.n.stored(added, metrics.OriginPeer)
	return added, err
}
func (s netStore) GetRecord(id registry.ID) (*registry.Record, error) { return s.db().GetRecord(id) }
func (s netStore) ScanTimeIndex(fn func(int64, registry.ID) error) error {
	return s.db().ScanTimeIndex(fn)
}
func (s netStore) PutBlob(b []byte) (registry.ID, error)  { return s.db().PutBlob(b) }
func (s netStore) GetBlob(id registry.ID) ([]byte, error) { return s.db().GetBlob(id) }
func (s netStore) HasBlob(id registry.ID) (bool, error)   { return s.db().HasBlob(id) }
func (s netStore) GetLocal(key string) ([]byte, error)    { return s.db().GetLocal("p2p/" + key) }
func (s netStore) PutLocal(key string, v []byte) error    { return s.db().PutLocal("p2p/"+key, v) }

func (n *Node) netOff(op string) error {
	return registry.Errorf(op, registry.EUNAVAILABLE, "this node is not federated (start it with --p2p-listen or --peer)")
}

// Peers lists known peers.
func (n *Node) Peers(ctx context.Context) ([]federation.PeerInfo, error) {
	if n.net == nil {
		return []federation.PeerInfo{}, nil
	}
	p := n.net.Peers()
	if p == nil {
		p = []federation.PeerInfo{}
	}
	return p, nil
}

// AddPeer joins another node by its full multiaddr. With trust, the peer
// becomes a trust root of this node and the node vouches for it in a key
// record; without, it only exchanges records (its own are untrusted
// claims here unless someone this node trusts vouches for it).
func (n *Node) AddPeer(ctx context.Context, actor, addr string, trust bool) (federation.PeerInfo, error) {
	if err := require(ctx, "node.AddPeer", ScopeAdmin, ""); err != nil {
		return federation.PeerInfo{}, err
	}
	if n.net == nil {
		return federation.PeerInfo{}, n.netOff("node.AddPeer")
	}
	p, err := n.net.AddPeer(ctx, addr)
	if p.ID != "" {
		if terr := n.setPeerTrust(ctx, p.ID, trust); terr != nil && err == nil {
			err = terr
		}
	}
	if err == nil {
		detail := addr
		if !trust {
			detail += " (no trust)"
		}
		n.audit(store.AuditEntry{Action: "peer-add", Actor: actor, Subject: p.ID, Detail: detail})
	}
	return p, err
}

// RemovePeer forgets a peer.
func (n *Node) RemovePeer(ctx context.Context, actor, peer string) error {
	if err := require(ctx, "node.RemovePeer", ScopeAdmin, ""); err != nil {
		return err
	}
	if n.net == nil {
		return n.netOff("node.RemovePeer")
	}
	err := n.net.RemovePeer(ctx, peer)
	if err == nil {
		if id := peerIDOf(peer); !n.startedTrusting(id) {
			if terr := n.setPeerTrust(ctx, id, false); terr != nil {
				n.log.Warn("revoking trust in a removed peer", "peer", id, "err", terr)
			}
		}
		n.audit(store.AuditEntry{Action: "peer-remove", Actor: actor, Subject: peer})
	}
	return err
}

// Sync forces a reconciliation with one peer (a full multiaddr) or all.
func (n *Node) Sync(ctx context.Context, actor, peer string) (federation.SyncReport, error) {
	if err := require(ctx, "node.Sync", ScopeAdmin, ""); err != nil {
		return federation.SyncReport{}, err
	}
	if n.net == nil {
		return federation.SyncReport{}, n.netOff("node.Sync")
	}
	rep, err := n.net.Sync(ctx, peer)
	if err == nil {
		n.audit(store.AuditEntry{Action: "sync", Actor: actor, Subject: peer,
			Detail: fmt.Sprintf("%d records in, %d out", rep.RecordsIn, rep.RecordsOut)})
	}
	return rep, err
}
