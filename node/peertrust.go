package node

import (
	"context"
	"slices"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/store"
)

// A peer an admin joins this node to with trust becomes one of its trust
// roots, and the node says so in a signed key record (all roles), so that
// nodes which trust this one trust that peer too: in a line A–B–C, C
// trusts B and B's record vouches for A (DESIGN.md §2). Joining with
// no-trust, or removing the peer, takes the root away and revokes the
// record.

// peerRoles are the roles a node vouches for a peer it trusts with.
var peerRoles = []string{registry.RoleAdmin, registry.RolePublisher, registry.RoleReviewer, registry.RoleTester}

// vouch makes this node's live key record for peer say trusted (all
// roles) or not (revoked). It signs nothing when the record already says
// so, or when untrusting a peer the node never vouched for.
func (n *Node) vouch(ctx context.Context, peerID string, trusted bool) error {
	const op = "node.vouch"
	k, err := registry.ParsePeerID(peerID)
	if err != nil {
		return registry.E(op, registry.EINVALID, "peer ID", err)
	}
	recs, err := n.db.RecordsBySubject(k.KeyID())
	if err != nil {
		return err
	}
	var live *registry.KeyBody
	var liveRec *registry.Record
	for _, r := range recs {
		if r.Kind != registry.KindKey || !r.Author.Equal(n.key.Public()) {
			continue
		}
		if liveRec == nil || registry.CompareNewest(r, liveRec) > 0 {
			b, err := r.DecodeBody()
			if err != nil {
				continue
			}
			liveRec, live = r, b.(*registry.KeyBody)
		}
	}
	switch {
	case trusted && live != nil && !live.Revoked && len(live.Scopes) == 0 && slices.Equal(live.Roles, peerRoles):
		return nil
	case !trusted && (live == nil || live.Revoked):
		return nil
	}
	body := &registry.KeyBody{Key: k, Name: "peer " + peerID, Roles: peerRoles}
	if !trusted {
		body = &registry.KeyBody{Key: k, Name: "peer " + peerID, Revoked: true}
	}
	rec, err := n.sign(registry.KindKey, k.KeyID(), body)
	if err != nil {
		return err
	}
	action := "vouch"
	if !trusted {
		action = "unvouch"
	}
	return n.storeAndPublish(ctx, store.AuditEntry{Action: action, Actor: n.PeerID(), Subject: peerID, Detail: "key record for a peer joined with trust"}, rec)
}

// setPeerTrust records in the settings whether peer is a trust root
// joined through this node, and vouches for it (or revokes) accordingly.
func (n *Node) setPeerTrust(ctx context.Context, peerID string, trusted bool) error {
	n.settingsMu.Lock()
	next := n.settings
	next.Trust.Peers = slices.DeleteFunc(slices.Clone(next.Trust.Peers), func(p string) bool { return p == peerID })
	if trusted {
		next.Trust.Peers = append(next.Trust.Peers, peerID)
	}
	changed := !slices.Equal(next.Trust.Peers, n.settings.Trust.Peers)
	var err error
	if changed {
		if err = n.db.PutLocalJSON(settingsKey, next); err == nil {
			n.settings = next
		}
	}
	n.settingsMu.Unlock()
	if err != nil {
		return err
	}
	if err := n.vouch(ctx, peerID, trusted || n.startedTrusting(peerID)); err != nil {
		return err
	}
	n.trustChanged()
	return nil
}

// startedTrusting reports whether the daemon was started to join peer with
// trust (Config.TrustedPeers).
func (n *Node) startedTrusting(peerID string) bool {
	for _, a := range n.cfg.TrustedPeers {
		if peerIDOf(a) == peerID {
			return true
		}
	}
	return false
}

// vouchForStartPeers signs key records for the peers the node was started
// to trust, when it has not yet.
func (n *Node) vouchForStartPeers(ctx context.Context) {
	for _, a := range n.cfg.TrustedPeers {
		if err := n.vouch(ctx, peerIDOf(a), true); err != nil {
			n.log.Warn("cannot vouch for a trusted peer", "peer", a, "err", err)
		}
	}
}
