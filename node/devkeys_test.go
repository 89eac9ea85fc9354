package node

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// Hostile key registrations: a proof by another key, for another node or
// another name, an unreadable key, an admin role, bad crate patterns.
func TestKeyRegistrationRefusesHostileRequests(t *testing.T) {
	n := openNode(t, nil)
	ctx := WithIdentity(context.Background(), &Identity{Person: "mallory", Token: "t", Scopes: []string{ScopePublishNew}})
	dev, _ := registry.GenerateKey(nil)
	other, _ := registry.GenerateKey(nil)
	proof := func(k registry.PrivateKey, node, name string) string {
		return base64.StdEncoding.EncodeToString(k.Sign(registry.KeyProofMessage(node, dev.Public().PeerID(), name)))
	}
	for _, c := range []struct {
		name string
		reg  KeyRegistration
		kind registry.ErrorKind
	}{
		{"another key's proof", KeyRegistration{Key: dev.Public().PeerID(), Name: "laptop", Proof: proof(other, n.PeerID(), "laptop")}, registry.EFORBIDDEN},
		{"a proof for another node", KeyRegistration{Key: dev.Public().PeerID(), Name: "laptop", Proof: proof(dev, other.Public().PeerID(), "laptop")}, registry.EFORBIDDEN},
		{"a proof for another name", KeyRegistration{Key: dev.Public().PeerID(), Name: "laptop", Proof: proof(dev, n.PeerID(), "desktop")}, registry.EFORBIDDEN},
		{"no proof", KeyRegistration{Key: dev.Public().PeerID(), Name: "laptop", Proof: "%%%"}, registry.EFORBIDDEN},
		{"not a key", KeyRegistration{Key: "12D3KooWnotakey", Name: "laptop", Proof: proof(dev, n.PeerID(), "laptop")}, registry.EINVALID},
		{"the admin role", KeyRegistration{Key: dev.Public().PeerID(), Name: "laptop", Roles: []string{registry.RoleAdmin}, Proof: proof(dev, n.PeerID(), "laptop")}, registry.EINVALID},
		{"a bad pattern", KeyRegistration{Key: dev.Public().PeerID(), Name: "laptop", Crates: []string{"../x"}, Proof: proof(dev, n.PeerID(), "laptop")}, registry.EINVALID},
		{"a control character", KeyRegistration{Key: dev.Public().PeerID(), Name: "lap\x1btop", Proof: proof(dev, n.PeerID(), "lap\x1btop")}, registry.EINVALID},
	} {
		if _, err := n.RequestKey(ctx, c.reg); registry.KindOf(err) != c.kind {
			t.Errorf("%s: %v, want %s", c.name, err, c.kind)
		}
	}
	req, err := n.RequestKey(ctx, KeyRegistration{Key: dev.Public().PeerID(), Name: "laptop", Proof: proof(dev, n.PeerID(), "laptop")})
	if err != nil || req.State != KeyPending || req.Person != "mallory" {
		t.Fatalf("a good request: %+v %v", req, err)
	}
	if _, err := n.SetKey(ctx, dev.Public().PeerID(), true); registry.KindOf(err) != registry.EFORBIDDEN {
		t.Fatalf("approval without the admin scope: %v", err)
	}
	if n.Trust().May(dev.Public(), registry.RolePublisher, "anything") {
		t.Fatal("a pending key is trusted")
	}
}

// Hostile developer-signed records: garbage, a kind a developer does not
// sign, a release whose body does not describe the archive, a record
// from the future.
func TestPublishSignedRefusesHostileRecords(t *testing.T) {
	n := openNode(t, nil)
	ctx := context.Background()
	dev, _ := registry.GenerateKey(nil)
	crate := crateBytes(t, "signed", "1.0.0")
	body, err := registry.ParseCrate(crate, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	lying := *body
	lying.Description = "not what the archive says"
	sign := func(kind registry.Kind, subject string, b any, at time.Time) []byte {
		r, err := registry.Sign(dev, kind, subject, b, at)
		if err != nil {
			t.Fatal(err)
		}
		return r.Bytes()
	}
	for _, c := range []struct {
		name  string
		raw   []byte
		crate []byte
		kind  registry.ErrorKind
		says  string
	}{
		{"garbage", []byte("not a record"), crate, registry.EINVALID, ""},
		{"a key record", sign(registry.KindKey, dev.Public().KeyID(), &registry.KeyBody{Key: dev.Public(), Name: "me", Roles: []string{registry.RoleAdmin}}, time.Now()), nil, registry.EINVALID, "not key records"},
		{"a release without its archive", sign(registry.KindRelease, "signed@1.0.0", body, time.Now()), nil, registry.EINVALID, "archive"},
		{"a body the archive does not give", sign(registry.KindRelease, "signed@1.0.0", &lying, time.Now()), crate, registry.EINVALID, "does not describe"},
		{"a release from the future", sign(registry.KindRelease, "signed@1.0.0", body, time.Now().Add(time.Hour)), crate, registry.EINVALID, "ahead"},
		{"an unregistered key", sign(registry.KindRelease, "signed@1.0.0", body, time.Now()), crate, registry.EFORBIDDEN, "not registered"},
	} {
		_, err := n.PublishSigned(ctx, "t", c.raw, c.crate)
		if registry.KindOf(err) != c.kind || !strings.Contains(registry.MessageOf(err), c.says) {
			t.Errorf("%s: %v, want %s saying %q", c.name, err, c.kind, c.says)
		}
	}
	if v, err := n.db.ViewsByName("signed"); err != nil || len(v) != 0 {
		t.Fatalf("a refused record left a release: %d %v", len(v), err)
	}
}
