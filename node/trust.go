package node

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// TrustSet decides whose reports and reviews count towards this node's
// verdicts (DESIGN.md §2): its own key, the peers it was told to join, the
// keys in its settings, and keys that its own key registered with the admin
// or tester role; or everyone, with trust.all.
type TrustSet struct {
	all  bool
	keys map[string]bool
}

// Trusts reports whether k counts.
func (t *TrustSet) Trusts(k registry.PublicKey) bool {
	return t.all || t.keys[string(k)]
}

// Trust computes the node's current trust set.
func (n *Node) Trust() *TrustSet {
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
			if !t.keys[string(r.Author)] || !r.Author.Equal(n.key.Public()) {
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

// Key returns a digest of the set of trusted keys: two trust sets have the
// same Key exactly when they trust the same authors.
func (t *TrustSet) Key() string {
	if t.all {
		return "all"
	}
	keys := make([]string, 0, len(t.keys))
	for k, ok := range t.keys {
		if ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	h := sha256.New()
	for _, k := range keys {
		h.Write([]byte{byte(len(k))})
		h.Write([]byte(k))
	}
	return hex.EncodeToString(h.Sum(nil))
}
