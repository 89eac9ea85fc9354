package node

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// TrustSet decides whose reports and reviews count towards this node's
// verdicts (DESIGN.md §2): its own key, the peers it was told to join, the
// keys in its settings, and keys that its own key registered with the admin
// or tester role; or everyone, with trust.all.
// A TrustSet never changes once made.
type TrustSet struct {
	all  bool
	keys map[string]bool
	key  string // digest of the set, see Key
}

// Trusts reports whether k counts.
func (t *TrustSet) Trusts(k registry.PublicKey) bool {
	return t.all || t.keys[string(k)]
}

// trustTTL bounds how long a trust snapshot serves while nothing this node
// tracks changes (the record set, the settings, the peers joined through
// it), in case the federation remembers or forgets a peer by itself.
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
// when the record set (key records decide trust), the settings or the
// peers changed, or after trustTTL, so callers may ask on every request.
func (n *Node) Trust() *TrustSet {
	fp, gen := n.db.Fingerprint(), n.trustGen.Load()
	if s := n.trust.Load(); s != nil && s.fp == fp && s.gen == gen && time.Since(s.at) < trustTTL {
		return s.set
	}
	set := n.computeTrust()
	n.trust.Store(&trustSnap{fp: fp, gen: gen, at: time.Now(), set: set})
	return set
}

// trustChanged makes the next Trust call compute the set again.
func (n *Node) trustChanged() { n.trustGen.Add(1) }

func (n *Node) computeTrust() *TrustSet {
	t := n.trustedKeys()
	t.digest()
	return t
}

func (n *Node) trustedKeys() *TrustSet {
	s := n.Settings()
	t := &TrustSet{all: s.Trust.All, keys: map[string]bool{string(n.key.Public()): true}}
	if t.all {
		return t
	}
	for _, id := range s.Trust.Keys {
		if k, err := registry.ParsePeerID(id); err == nil {
			t.keys[string(k)] = true
		}
	}
	if n.net != nil {
		for _, p := range n.net.Peers() {
			if p.Saved {
				if k, err := registry.ParsePeerID(p.ID); err == nil {
					t.keys[string(k)] = true
				}
			}
		}
	}
	recs, err := n.db.RecordsByKind(registry.KindKey)
	if err != nil {
		n.log.Warn("reading key records for trust", "err", err)
		return t
	}
	ks := registry.ResolveKeys(recs, n.cfg.Now(), n.cfg.MaxSkew)
	for _, live := range ks {
		for _, r := range live {
			if !r.Author.Equal(n.key.Public()) {
				continue
			}
			b, err := r.DecodeBody()
			if err != nil {
				continue
			}
			kb := b.(*registry.KeyBody)
			if kb.HasRole(registry.RoleAdmin) || kb.HasRole(registry.RoleTester) {
				t.keys[string(kb.Key)] = true
			}
		}
	}
	return t
}

// Key returns a digest of the set: two trust sets have the same Key
// exactly when they trust the same authors.
func (t *TrustSet) Key() string { return t.key }

func (t *TrustSet) digest() {
	if t.all {
		t.key = "all"
		return
	}
	keys := make([]string, 0, len(t.keys))
	for k := range t.keys {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	h := sha256.New()
	for _, k := range keys {
		h.Write([]byte{byte(len(k))})
		h.Write([]byte(k))
	}
	t.key = hex.EncodeToString(h.Sum(nil))
}
