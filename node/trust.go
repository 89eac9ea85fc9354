package node

import (
	"strings"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// TrustSet is this node's authority (DESIGN.md §2, "Authority and time"):
// its trust roots — its own key, the keys its admins configured, and the
// peers its admins joined it to with trust — and the roles the key records
// of those roots (and of the admins they appoint) delegate. It decides who
// founds, owns, publishes and yanks crates, whose reports and reviews count
// and whose checkpoints witness time. A TrustSet never changes once made.
type TrustSet struct{ *registry.Trust }

// Tests returns whether an author's reports count towards crate's verdict.
func (t *TrustSet) Tests(crate string) func(registry.PublicKey) bool {
	return func(k registry.PublicKey) bool { return t.May(k, registry.RoleTester, crate) }
}

// Key returns a digest of the set: two trust sets have the same Key
// exactly when they decide every question the same way.
func (t *TrustSet) Key() string { return t.Digest() }

// trustTTL bounds how long a trust snapshot serves while nothing this node
// tracks changes (the record set, the settings, the peers joined through
// it).
const trustTTL = time.Second

// trustSnap is the trust set as of a record set and a settings/peers
// generation.
type trustSnap struct {
	fp  registry.Fingerprint
	gen uint64
	at  time.Time
	set *TrustSet
}

// Trust returns the node's current trust set. It is computed again only
// when the record set (key records delegate trust), the settings or the
// peers changed, or after trustTTL, so callers may ask on every request.
// When the result differs from the authority the store's views were built
// under, the views are derived again first.
func (n *Node) Trust() *TrustSet {
	fp, gen := n.db.Fingerprint(), n.trustGen.Load()
	if s := n.trust.Load(); s != nil && s.fp == fp && s.gen == gen && time.Since(s.at) < trustTTL {
		return s.set
	}
	n.trustMu.Lock()
	defer n.trustMu.Unlock()
	if s := n.trust.Load(); s != nil && s.fp == fp && s.gen == gen && time.Since(s.at) < trustTTL {
		return s.set
	}
	set := n.computeTrust()
	if prev := n.trust.Load(); prev == nil || prev.set.Key() != set.Key() {
		if k, err := n.db.SetAuthority(set); err != nil {
			n.log.Error("deriving release views under the new trust", "err", err)
		} else if k > 0 {
			n.log.Info("trust changed: release views derived again", "crates", k)
		}
	}
	n.trust.Store(&trustSnap{fp: fp, gen: gen, at: time.Now(), set: set})
	return set
}

// trustChanged computes the trust set again now (settings or peers
// changed), so that views follow before the caller answers.
func (n *Node) trustChanged() {
	n.trustGen.Add(1)
	n.Trust()
}

// trustRoots lists the node's trust roots.
func (n *Node) trustRoots() []registry.PublicKey {
	s := n.Settings()
	roots := append([]registry.PublicKey{n.key.Public()}, n.cfg.TrustedKeys...)
	ids := append(append([]string{}, s.Trust.Keys...), s.Trust.Peers...)
	for _, a := range n.cfg.TrustedPeers {
		ids = append(ids, peerIDOf(a))
	}
	for _, id := range ids {
		if k, err := registry.ParsePeerID(id); err == nil {
			roots = append(roots, k)
		}
	}
	return roots
}

// peerIDOf returns the peer ID of a full multiaddr (…/p2p/<id>), or s
// itself when it is not one.
func peerIDOf(s string) string {
	if i := strings.LastIndex(s, "/p2p/"); i >= 0 {
		s = s[i+len("/p2p/"):]
	}
	if i := strings.IndexByte(s, '/'); i >= 0 {
		s = s[:i]
	}
	return s
}

func (n *Node) computeTrust() *TrustSet {
	if n.Settings().Trust.All {
		return &TrustSet{registry.TrustEveryone()}
	}
	recs, err := n.db.RecordsByKind(registry.KindKey)
	if err != nil {
		n.log.Warn("reading key records for trust", "err", err)
	}
	return &TrustSet{registry.NewTrust(n.trustRoots(), recs, n.cfg.Now(), n.cfg.MaxSkew)}
}
