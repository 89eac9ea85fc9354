package registry

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"strings"
	"testing"
	"time"
)

// grant signs a key record by author giving subject roles (and scopes).
func grant(t *testing.T, author PrivateKey, subject PublicKey, at time.Time, roles []string, scopes ...string) *Record {
	t.Helper()
	return mustSign(t, author, KindKey, subject.KeyID(), &KeyBody{Key: subject, Name: "k", Roles: roles, Scopes: scopes}, at)
}

func revoke(t *testing.T, author PrivateKey, subject PublicKey, at time.Time) *Record {
	t.Helper()
	return mustSign(t, author, KindKey, subject.KeyID(), &KeyBody{Key: subject, Name: "k", Revoked: true}, at)
}

// witnessAt is a WitnessFunc over a fixed table.
func witnessAt(m map[ID]time.Time) WitnessFunc {
	return func(id ID) (int64, bool) {
		t, ok := m[id]
		return t.UnixMilli(), ok
	}
}

func TestTrustDelegationChainsThroughAdmins(t *testing.T) {
	root, b, a, dev, scoped, stranger := goldenKey(t, 1), goldenKey(t, 2), goldenKey(t, 3), goldenKey(t, 4), goldenKey(t, 5), goldenKey(t, 6)
	now := rt0.Add(time.Hour)
	recs := []*Record{
		grant(t, root, b.Public(), rt0, []string{RoleAdmin}),                                // C trusts B
		grant(t, b, a.Public(), rt0, []string{RoleAdmin, RolePublisher}),                    // B vouches for A
		grant(t, a, dev.Public(), rt0, []string{RolePublisher}),                             // A registers a developer
		grant(t, root, scoped.Public(), rt0, []string{RolePublisher, RoleTester}, "wasm-*"), // scoped to wasm-*
		grant(t, stranger, stranger.Public(), rt0, []string{RoleAdmin, RolePublisher}),      // self-appointed
		grant(t, dev, stranger.Public(), rt0, []string{RolePublisher}),                      // a publisher cannot delegate
		grant(t, stranger, goldenKey(t, 7).Public(), rt0, []string{RolePublisher}),          // nor can a stranger
		grant(t, goldenKey(t, 8), goldenKey(t, 9).Public(), rt0, []string{RoleAdmin}),       // a cycle outside the roots
		grant(t, goldenKey(t, 9), goldenKey(t, 8).Public(), rt0, []string{RoleAdmin}),
	}
	tr := NewTrust([]PublicKey{root.Public()}, recs, now, DefaultMaxSkew)
	for _, c := range []struct {
		who         PrivateKey
		role, crate string
		want        bool
	}{
		{root, RolePublisher, "anything", true},
		{b, RoleAdmin, "", true},
		{b, RolePublisher, "x", false}, // B was made admin only
		{a, RolePublisher, "x", true},
		{dev, RolePublisher, "x", true},
		{dev, RoleAdmin, "", false},
		{scoped, RolePublisher, "wasm-bindgen", true},
		{scoped, RolePublisher, "WASM-thing", true},
		{scoped, RolePublisher, "serde", false},
		{scoped, RoleTester, "serde", false},
		{stranger, RolePublisher, "x", false},
		{goldenKey(t, 7), RolePublisher, "x", false},
		{goldenKey(t, 8), RoleAdmin, "", false},
	} {
		if got := tr.May(c.who.Public(), c.role, c.crate); got != c.want {
			t.Errorf("May(%s, %s, %q) = %v, want %v", c.who.Public().PeerID()[:12], c.role, c.crate, got, c.want)
		}
	}
	if !tr.Witness(a.Public()) || tr.Witness(dev.Public()) || tr.Witness(stranger.Public()) {
		t.Error("witnesses must be exactly the roots and admins")
	}

	// B revokes A: A and the developer A registered lose everything.
	recs = append(recs, revoke(t, b, a.Public(), rt0.Add(time.Minute)))
	tr2 := NewTrust([]PublicKey{root.Public()}, recs, now, DefaultMaxSkew)
	if tr2.May(a.Public(), RolePublisher, "x") || tr2.May(dev.Public(), RolePublisher, "x") {
		t.Error("a revoked admin and its delegates kept their roles")
	}
	if tr2.Digest() == tr.Digest() {
		t.Error("the digest did not change with the trust")
	}
	// The same inputs in another order give the same digest.
	rev := make([]*Record, len(recs))
	for i, r := range recs {
		rev[len(recs)-1-i] = r
	}
	if NewTrust([]PublicKey{root.Public()}, rev, now, DefaultMaxSkew).Digest() != tr2.Digest() {
		t.Error("the digest depends on the order of the key records")
	}
}

// TestBackdatedStrangerCannotTakeACrate is the takeover of DESIGN.md §2: a
// fresh key outside every trust set signs releases and an owners record
// dated 1970; the crate stays with its owner.
func TestBackdatedStrangerCannotTakeACrate(t *testing.T) {
	node, owner, attacker := goldenKey(t, 1), goldenKey(t, 2), goldenKey(t, 3)
	reg := grant(t, node, owner.Public(), rt0, []string{RolePublisher})
	real1 := rel(t, owner, "victim", "1.0.0", rt0.Add(time.Minute), "real")
	epoch := time.UnixMilli(1)
	fake0 := rel(t, attacker, "victim", "0.0.1", epoch, "fake")
	fake1 := rel(t, attacker, "victim", "1.0.0", epoch, "fake-1.0.0")
	grab := mustSign(t, attacker, KindOwners, "victim", NewOwnersBody([]PublicKey{attacker.Public()}), epoch)
	yank := mustSign(t, attacker, KindYank, "victim@1.0.0", &YankBody{Yanked: true}, epoch)
	now := rt0.Add(time.Hour)
	recs := []*Record{reg, real1, fake0, fake1, grab, yank}
	auth := NewTrust([]PublicKey{node.Public()}, recs, now, DefaultMaxSkew)
	for _, w := range []WitnessFunc{NoWitness, witnessAt(map[ID]time.Time{real1.ID(): rt0.Add(time.Minute), fake0.ID(): now, fake1.ID(): now, grab.ID(): now})} {
		cs := ResolveCrate("victim", recs, now, DefaultMaxSkew, auth, w)
		if !cs.Founder.Equal(owner.Public()) || len(cs.Owners.Current()) != 1 || !cs.Owners.Current()[0].Equal(owner.Public()) {
			t.Fatalf("founder %v owners %v: the owner lost the crate", cs.Founder, cs.Owners.Current())
		}
		r := cs.Releases["1.0.0"]
		if r.Release != real1 || r.Unauthorized || r.Yanked {
			t.Fatalf("1.0.0 = %s unauthorized=%v yanked=%v; want the owner's release, live", r.Release.ID(), r.Unauthorized, r.Yanked)
		}
		if len(r.Conflicts) != 1 || r.Conflicts[0].Record != fake1 || r.Conflicts[0].Authorized {
			t.Fatal("the attacker's 1.0.0 is not kept as an unauthorized claim")
		}
		if !cs.Releases["0.0.1"].Unauthorized {
			t.Fatal("the attacker's 0.0.1 is not an untrusted claim")
		}
		if len(cs.RejectedOwners) != 1 {
			t.Fatal("the attacker's owners record was applied")
		}
	}
}

// TestRemovedOwnerStaysRemoved: an owner removed at witnessed time W
// signs an owners record dated inside its old window; it is witnessed
// after W, so it is rejected.
func TestRemovedOwnerStaysRemoved(t *testing.T) {
	node, a, b := goldenKey(t, 1), goldenKey(t, 2), goldenKey(t, 3)
	regs := []*Record{grant(t, node, a.Public(), rt0, []string{RolePublisher}), grant(t, node, b.Public(), rt0, []string{RolePublisher})}
	first := rel(t, a, "foo", "1.0.0", rt0, "x")
	add := mustSign(t, a, KindOwners, "foo", NewOwnersBody([]PublicKey{a.Public(), b.Public()}), rt0.Add(time.Minute))
	remove := mustSign(t, a, KindOwners, "foo", NewOwnersBody([]PublicKey{a.Public()}), rt0.Add(10*time.Minute))
	back := mustSign(t, b, KindOwners, "foo", NewOwnersBody([]PublicKey{b.Public()}), rt0.Add(5*time.Minute))
	backYank := mustSign(t, b, KindYank, "foo@1.0.0", &YankBody{Yanked: true}, rt0.Add(5*time.Minute))
	now := rt0.Add(time.Hour)
	recs := append(regs, first, add, remove, back, backYank)
	w := witnessAt(map[ID]time.Time{
		first.ID(): rt0, add.ID(): rt0.Add(time.Minute), remove.ID(): rt0.Add(10 * time.Minute),
		back.ID(): rt0.Add(20 * time.Minute), backYank.ID(): rt0.Add(20 * time.Minute),
	})
	cs := ResolveCrate("foo", recs, now, DefaultMaxSkew, NewTrust([]PublicKey{node.Public()}, recs, now, DefaultMaxSkew), w)
	cur := cs.Owners.Current()
	if len(cur) != 1 || !cur[0].Equal(a.Public()) {
		t.Fatalf("owners %v: the removed owner took the crate back", cur)
	}
	if cs.Releases["1.0.0"].Yanked {
		t.Fatal("the removed owner's backdated yank was applied")
	}
	// Had both been witnessed inside the window, they would have applied:
	// the rule is about witnessed time, not about b.
	w2 := witnessAt(map[ID]time.Time{
		first.ID(): rt0, add.ID(): rt0.Add(time.Minute), remove.ID(): rt0.Add(10 * time.Minute),
		back.ID(): rt0.Add(5 * time.Minute), backYank.ID(): rt0.Add(5 * time.Minute),
	})
	cs = ResolveCrate("foo", recs, now, DefaultMaxSkew, NewTrust([]PublicKey{node.Public()}, recs, now, DefaultMaxSkew), w2)
	if len(cs.RejectedOwners) != 1 || !cs.Releases["1.0.0"].Yanked {
		t.Fatalf("records witnessed inside b's window were not applied (rejected %d)", len(cs.RejectedOwners))
	}
}

// TestCompromisedPublisherBackdatingLosesToWitnessedFirst: a trusted key
// signs a second 1.0.0 dated before the real one; the real one was
// witnessed first and wins, and the other is shown as backdated.
func TestCompromisedPublisherBackdatingLosesToWitnessedFirst(t *testing.T) {
	node, a := goldenKey(t, 1), goldenKey(t, 2)
	reg := grant(t, node, a.Public(), rt0, []string{RolePublisher})
	real := rel(t, a, "foo", "1.0.0", rt0.Add(time.Hour), "real")
	evil := rel(t, a, "foo", "1.0.0", rt0, "evil")
	now := rt0.Add(3 * time.Hour)
	recs := []*Record{reg, real, evil}
	auth := NewTrust([]PublicKey{node.Public()}, recs, now, DefaultMaxSkew)
	w := witnessAt(map[ID]time.Time{real.ID(): rt0.Add(time.Hour), evil.ID(): rt0.Add(2 * time.Hour)})
	r := ResolveCrate("foo", recs, now, DefaultMaxSkew, auth, w).Releases["1.0.0"]
	if r.Release != real || r.Backdated {
		t.Fatalf("winner %s backdated=%v; want the witnessed first release", r.Release.ID(), r.Backdated)
	}
	if len(r.Conflicts) != 1 || !r.Conflicts[0].Backdated || !r.Conflicts[0].Authorized || r.Conflicts[0].Order.Pending {
		t.Fatalf("conflict %+v: want the backdated release kept as evidence", r.Conflicts)
	}
	// A pending release never displaces a witnessed one, whatever it claims.
	pendingEvil := ResolveCrate("foo", recs, now, DefaultMaxSkew, auth, witnessAt(map[ID]time.Time{real.ID(): rt0.Add(time.Hour)})).Releases["1.0.0"]
	if pendingEvil.Release != real || !pendingEvil.Conflicts[0].Order.Pending {
		t.Fatal("a pending release displaced a witnessed one")
	}
	// Without any witness, claimed time decides (both pending).
	if ResolveCrate("foo", recs, now, DefaultMaxSkew, auth, NoWitness).Releases["1.0.0"].Release != evil {
		t.Fatal("among pending releases the earliest claimed time must win")
	}
}

// TestRevokedPublisherLosesAuthority: releases of a key whose grant is
// revoked become claims; a fresh key with no grant never founds a crate.
func TestRevokedPublisherLosesAuthority(t *testing.T) {
	node, a := goldenKey(t, 1), goldenKey(t, 2)
	r := rel(t, a, "foo", "1.0.0", rt0, "x")
	now := rt0.Add(time.Hour)
	recs := []*Record{grant(t, node, a.Public(), rt0, []string{RolePublisher}), r}
	if ResolveCrate("foo", recs, now, DefaultMaxSkew, NewTrust([]PublicKey{node.Public()}, recs, now, DefaultMaxSkew), NoWitness).Releases["1.0.0"].Unauthorized {
		t.Fatal("a registered publisher's release is unauthorized")
	}
	recs = append(recs, revoke(t, node, a.Public(), rt0.Add(time.Minute)))
	cs := ResolveCrate("foo", recs, now, DefaultMaxSkew, NewTrust([]PublicKey{node.Public()}, recs, now, DefaultMaxSkew), NoWitness)
	if !cs.Releases["1.0.0"].Unauthorized || cs.Founder != nil {
		t.Fatal("a revoked publisher's release is still authorized")
	}
	if ResolveCrate("foo", []*Record{r}, now, DefaultMaxSkew, NewTrust([]PublicKey{node.Public()}, nil, now, DefaultMaxSkew), NoWitness).Founder != nil {
		t.Fatal("an unregistered key founded a crate")
	}
}

// TestKeyScopesAreValidated: a key record's scopes are crate names or name
// prefixes followed by "*"; anything else, or too many, is refused when
// the record is signed or decoded.
func TestKeyScopesAreValidated(t *testing.T) {
	signer, subject := goldenKey(t, 1), goldenKey(t, 2)
	many := make([]string, maxScopes+1)
	for i := range many {
		many[i] = "c" + string(rune('a'+i%26)) + "x"
	}
	for _, scopes := range [][]string{{"a b"}, {"**"}, {"foo*bar"}, {""}, {"*x"}, {"é*"}, many} {
		_, err := Sign(signer, KindKey, subject.Public().KeyID(), &KeyBody{Key: subject.Public(), Name: "k", Roles: []string{RolePublisher}, Scopes: scopes}, rt0)
		if KindOf(err) != EINVALID {
			t.Errorf("scopes %q: err %v, want EINVALID", scopes[0], err)
		}
	}
	for _, scopes := range [][]string{{"*"}, {"wasm-*"}, {"serde", "serde_*"}} {
		if _, err := Sign(signer, KindKey, subject.Public().KeyID(), &KeyBody{Key: subject.Public(), Name: "k", Roles: []string{RolePublisher}, Scopes: scopes}, rt0); err != nil {
			t.Errorf("scopes %q refused: %v", scopes, err)
		}
	}
}

func TestParsePublicKeyEncodings(t *testing.T) {
	k, err := KeyFromSeed(bytes.Repeat([]byte{5}, 32))
	if err != nil {
		t.Fatal(err)
	}
	pub := k.Public()
	der, err := x509.MarshalPKIXPublicKey(pub.Ed25519())
	if err != nil {
		t.Fatal(err)
	}
	pemText := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	for _, s := range []string{
		pub.PeerID(), " " + pub.PeerID() + "\n", hex.EncodeToString(pub.Ed25519()), "ed25519:" + hex.EncodeToString(pub.Ed25519()),
		base64.StdEncoding.EncodeToString(pub.Ed25519()), pub.Hex(), pemText,
	} {
		got, err := ParsePublicKey(s)
		if err != nil || !got.Equal(pub) {
			t.Errorf("%q: %v %v", s, got, err)
		}
	}
	rsaPEM := "-----BEGIN PUBLIC KEY-----\nMFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAMEMZd0HwEBqMLyY0tGBOrEvFu2MmSFt\nfhJgJ6U6GSaHSmhZ7eVqGm4LHRAy3TCeZeAUm0D2K/2ZITD8Nm/ZR0MCAwEAAQ==\n-----END PUBLIC KEY-----\n"
	for _, s := range []string{"", "12D3KooWnope", "abcd", strings.Repeat("0", 64) + "00", "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n", rsaPEM} {
		if _, err := ParsePublicKey(s); KindOf(err) != EINVALID {
			t.Errorf("%q: %v", s, err)
		}
	}
}
