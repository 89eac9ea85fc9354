package node

import (
	"context"
	"fmt"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/federation"
	"github.com/wasmrust/wasm-crates-registry/node/metrics"
	"github.com/wasmrust/wasm-crates-registry/rest"
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
func (n *Node) Peers(ctx context.Context) ([]rest.PeerInfo, error) {
	out := []rest.PeerInfo{}
	if n.net == nil {
		return out, nil
	}
	for _, p := range n.net.Peers() {
		out = append(out, rest.PeerInfo(p))
	}
	return out, nil
}

// syncReport is the REST shape of a federation sync report.
func syncReport(r federation.SyncReport) rest.SyncReport {
	out := rest.SyncReport{SyncStats: rest.SyncStats(r.SyncStats), Duration: r.Duration, Peers: []rest.PeerSync{}}
	for _, p := range r.Peers {
		out.Peers = append(out.Peers, rest.PeerSync{Peer: p.Peer, SyncStats: rest.SyncStats(p.SyncStats), Duration: p.Duration, Error: p.Error})
	}
	return out
}

// AddPeer joins another node by its full multiaddr. With trust, the peer
// becomes a trust root of this node and the node vouches for it in a key
// record; without, it only exchanges records (its own are untrusted
// claims here unless someone this node trusts vouches for it).
func (n *Node) AddPeer(ctx context.Context, actor, addr string, trust bool) (rest.PeerInfo, error) {
	if err := require(ctx, "node.AddPeer", ScopeAdmin, ""); err != nil {
		return rest.PeerInfo{}, err
	}
	if n.net == nil {
		return rest.PeerInfo{}, n.netOff("node.AddPeer")
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
	return rest.PeerInfo(p), err
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
func (n *Node) Sync(ctx context.Context, actor, peer string) (rest.SyncReport, error) {
	if err := require(ctx, "node.Sync", ScopeAdmin, ""); err != nil {
		return rest.SyncReport{}, err
	}
	if n.net == nil {
		return rest.SyncReport{}, n.netOff("node.Sync")
	}
	rep, err := n.net.Sync(ctx, peer)
	if err == nil {
		n.audit(store.AuditEntry{Action: "sync", Actor: actor, Subject: peer,
			Detail: fmt.Sprintf("%d records in, %d out", rep.RecordsIn, rep.RecordsOut)})
	}
	return syncReport(rep), err
}
