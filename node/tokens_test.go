package node

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// A person's token does what its scopes and crate patterns allow and
// nothing else; it can pass on no more than it holds; expired and revoked
// tokens authenticate nobody; the audit log names the person.
func TestTokensPerPersonWithScopes(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixMilli())
	n := openNode(t, func() time.Time { return time.UnixMilli(clock.Load()) })
	admin := context.Background() // the node itself: no limits
	tok, err := n.CreateToken(admin, TokenRequest{Name: "ci", Person: "alice", Scopes: []string{ScopePublishNew, ScopeYank}, Crates: []string{"wasm-*"}, ExpiresIn: "90d"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok.Token, tokenPrefix) || tok.Info.Hash != "" || tok.Info.Expires == nil {
		t.Fatalf("new token %+v", tok)
	}
	id, err := n.AuthenticateIdentity("Bearer " + tok.Token)
	if err != nil || id.Person != "alice" || id.Token != "ci" {
		t.Fatalf("identity %+v %v", id, err)
	}
	alice := WithIdentity(context.Background(), id)

	if _, _, err := n.Submit(alice, id.String(), crateBytes(t, "wasm-one", "1.0.0")); err != nil {
		t.Fatalf("publish-new within the pattern: %v", err)
	}
	for _, c := range []struct{ name, version, why string }{
		{"other", "1.0.0", "outside the crate patterns"},
		{"wasm-one", "1.1.0", "a new version needs publish-update"},
	} {
		if _, _, err := n.Submit(alice, id.String(), crateBytes(t, c.name, c.version)); registry.KindOf(err) != registry.EFORBIDDEN {
			t.Errorf("%s@%s (%s): %v", c.name, c.version, c.why, err)
		}
	}
	if _, err := n.SetYank(alice, id.String(), "wasm-one@1.0.0", true, "bad"); err != nil {
		t.Fatalf("yank with the yank scope: %v", err)
	}
	if _, err := n.Review(alice, id.String(), "wasm-one@1.0.0", registry.VerdictApprove, ""); registry.KindOf(err) != registry.EFORBIDDEN {
		t.Errorf("review without the review scope: %v", err)
	}
	if _, err := n.UpdateSettings(alice, id.String(), []byte(`{"name":"x"}`)); registry.KindOf(err) != registry.EFORBIDDEN {
		t.Errorf("settings without admin: %v", err)
	}

	// Passing on scopes.
	for _, req := range []TokenRequest{
		{Name: "x", Person: "bob", Scopes: []string{ScopeYank}, Crates: []string{"wasm-*"}},
		{Name: "x", Scopes: []string{ScopeOwners}, Crates: []string{"wasm-*"}},
		{Name: "x", Scopes: []string{ScopeYank}},
		{Name: "x", Scopes: []string{ScopeYank}, Crates: []string{"w*"}},
	} {
		if _, err := n.CreateToken(alice, req); registry.KindOf(err) != registry.EFORBIDDEN {
			t.Errorf("alice passes on %+v: %v", req, err)
		}
	}
	narrow, err := n.CreateToken(alice, TokenRequest{Name: "narrow", Scopes: []string{ScopeYank}, Crates: []string{"wasm-one"}, ExpiresIn: "1h"})
	if err != nil || narrow.Info.Person != "alice" {
		t.Fatalf("a narrower token: %+v %v", narrow, err)
	}
	list, err := n.Tokens(alice)
	if err != nil || len(list) != 2 {
		t.Fatalf("alice sees %d tokens: %v", len(list), err)
	}
	for _, bad := range []TokenRequest{
		{Name: "", Scopes: []string{ScopeYank}},
		{Name: "x", Person: "bob", Scopes: []string{"root"}},
		{Name: "x", Person: "bob", Scopes: []string{ScopeYank}, Crates: []string{"../etc"}},
		{Name: "x", Person: "bob", Scopes: []string{ScopeYank}, ExpiresIn: "forever"},
		{Name: "x\x01y", Person: "bob", Scopes: []string{ScopeYank}},
	} {
		if _, err := n.CreateToken(admin, bad); registry.KindOf(err) != registry.EINVALID {
			t.Errorf("%+v: %v", bad, err)
		}
	}

	// Expiry and revocation.
	clock.Add((2 * time.Hour).Milliseconds())
	if _, err := n.AuthenticateIdentity(narrow.Token); registry.KindOf(err) != registry.EUNAUTHORIZED || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired token: %v", err)
	}
	if _, err := n.RevokeToken(alice, tok.Info.ID[:10]); err != nil {
		t.Fatal(err)
	}
	if _, err := n.AuthenticateIdentity(tok.Token); registry.KindOf(err) != registry.EUNAUTHORIZED || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("revoked token: %v", err)
	}

	// The audit log names the person for each write.
	entries, err := n.db.AuditLog(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range entries {
		if strings.HasPrefix(e.Actor, "alice (token ci)") {
			actions = append(actions, e.Action)
		}
	}
	if strings.Join(actions, ",") != "token-revoke,token-create,yank,submit" {
		t.Fatalf("alice's audit entries, newest first: %v", actions)
	}
	if c, err := n.VerifyAudit(admin); err != nil || !c.OK {
		t.Fatalf("audit verify: %+v %v", c, err)
	}
	if _, err := n.VerifyAudit(alice); registry.KindOf(err) != registry.EFORBIDDEN {
		t.Fatalf("audit verify without admin: %v", err)
	}
}

func TestMatchCrate(t *testing.T) {
	for _, c := range []struct {
		p, name string
		want    bool
	}{
		{"wasm-*", "wasm-bindgen", true}, {"wasm-*", "wasm_bindgen", true}, {"wasm-*", "wasmer", false},
		{"serde", "Serde", true}, {"serde", "serde_json", false}, {"*", "anything", true},
	} {
		if got := matchCrate(c.p, c.name); got != c.want {
			t.Errorf("matchCrate(%q, %q) = %v", c.p, c.name, got)
		}
	}
}
