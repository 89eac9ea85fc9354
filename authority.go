package registry

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"
	"strings"
	"time"
)

// Authority is a node's trust as the conflict rules need it (DESIGN.md §2,
// "Authority and time"): who may act in which role on which crate, and
// whose checkpoints witness time. It never comes from the record set alone:
// it starts from the node's trust roots.
type Authority interface {
	// May reports whether key may act in role (Role*) on crate; crate is ""
	// for actions that are not about one crate.
	May(key PublicKey, role, crate string) bool
	// Witness reports whether key's checkpoints witness time.
	Witness(key PublicKey) bool
}

// Trust is the Authority derived from a set of trust roots and the key
// records a node holds: roots may do everything; a key record whose author
// is a root or holds the admin role grants its subject the record's roles
// (crate-related roles limited to its scopes). Admin grants chain, so in a
// line A–B–C of nodes, C trusts B and B's key record vouches for A. Only
// the live key record per (key, author) counts (greatest time, author,
// ID), so an author revokes its grant with a newer record. Grants by
// several admins add up. The zero value trusts nobody; a nil *Trust too.
type Trust struct {
	all    bool
	roots  map[string]bool
	grants map[string][]*KeyBody // by key bytes: the live grants by authorized admins
	admins []PublicKey           // roots and appointed admins, sorted
	digest string
}

var _ Authority = (*Trust)(nil)

// TrustEveryone is the authority of a node told to trust every author
// (development setups): every key may do everything.
func TrustEveryone() *Trust {
	return &Trust{all: true, digest: "all"}
}

// NewTrust derives the authority of roots over keyRecs (records of other
// kinds are ignored; records too far in the future are not applied).
func NewTrust(roots []PublicKey, keyRecs []*Record, now time.Time, maxSkew time.Duration) *Trust {
	t := &Trust{roots: map[string]bool{}, grants: map[string][]*KeyBody{}}
	for _, r := range roots {
		t.roots[string(r)] = true
	}
	type live struct {
		author PublicKey
		body   *KeyBody
	}
	// Live grants by subject key, whoever signed them.
	bySubject := map[string][]live{}
	for _, recs := range ResolveKeys(keyRecs, now, maxSkew) {
		for _, r := range recs {
			b, err := r.DecodeBody()
			if err != nil {
				continue
			}
			kb := b.(*KeyBody)
			if kb.Revoked || len(kb.Roles) == 0 {
				continue
			}
			bySubject[string(kb.Key)] = append(bySubject[string(kb.Key)], live{r.Author, kb})
		}
	}
	// Admins: the roots, then every key an admin grants the admin role to,
	// until nothing changes.
	admins := map[string]bool{}
	for k := range t.roots {
		admins[k] = true
	}
	for changed := true; changed; {
		changed = false
		for subj, ls := range bySubject {
			if admins[subj] {
				continue
			}
			for _, l := range ls {
				if admins[string(l.author)] && slices.Contains(l.body.Roles, RoleAdmin) {
					admins[subj] = true
					changed = true
					break
				}
			}
		}
	}
	for k := range admins {
		t.admins = append(t.admins, PublicKey(k))
	}
	slices.SortFunc(t.admins, func(a, b PublicKey) int { return strings.Compare(string(a), string(b)) })
	for subj, ls := range bySubject {
		for _, l := range ls {
			if admins[string(l.author)] {
				t.grants[subj] = append(t.grants[subj], l.body)
			}
		}
	}
	t.computeDigest()
	return t
}

// May implements Authority.
func (t *Trust) May(key PublicKey, role, crate string) bool {
	if t == nil {
		return false
	}
	if t.all || t.roots[string(key)] {
		return true
	}
	for _, g := range t.grants[string(key)] {
		if !slices.Contains(g.Roles, role) {
			continue
		}
		if role == RoleAdmin || crate == "" || g.Covers(crate) {
			return true
		}
	}
	return false
}

// Witness implements Authority: roots and admins witness time.
func (t *Trust) Witness(key PublicKey) bool { return t.May(key, RoleAdmin, "") }

// Witnesses lists the keys whose checkpoints witness time: the roots and
// the admins they appoint; nil when every key does (TrustEveryone).
func (t *Trust) Witnesses() []PublicKey {
	if t == nil {
		return []PublicKey{}
	}
	if t.all {
		return nil
	}
	return slices.Clone(t.admins)
}

// Trusted reports whether key holds any role at all (a root, or a key with
// a live grant), so that its records are not merely claims.
func (t *Trust) Trusted(key PublicKey) bool {
	return t != nil && (t.all || t.roots[string(key)] || len(t.grants[string(key)]) > 0)
}

// Digest identifies the authority: two Trusts with the same Digest decide
// every question the same way.
func (t *Trust) Digest() string {
	if t == nil {
		return ""
	}
	return t.digest
}

func (t *Trust) computeDigest() {
	h := sha256.New()
	field := func(tag byte, v string) {
		h.Write([]byte{tag, byte(len(v) >> 8), byte(len(v))})
		h.Write([]byte(v))
	}
	for _, k := range slices.Sorted(maps.Keys(t.roots)) {
		field('R', k)
	}
	for _, k := range slices.Sorted(maps.Keys(t.grants)) {
		field('G', k)
		var parts []string
		for _, g := range t.grants[k] {
			parts = append(parts, strings.Join(slices.Sorted(slices.Values(g.Roles)), ",")+"|"+strings.Join(slices.Sorted(slices.Values(g.Scopes)), ","))
		}
		slices.Sort(parts)
		for _, p := range parts {
			field('P', p)
		}
	}
	t.digest = hex.EncodeToString(h.Sum(nil))
}
