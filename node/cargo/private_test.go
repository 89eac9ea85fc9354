package cargo

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wasmrust/wasm-crates-registry/node"
	"github.com/wasmrust/wasm-crates-registry/node/api"
)

// newPrivateNode is newTestNode for a private node: the API's gate and the
// Cargo handler both in auth-required mode, as the daemon wires them with
// --auth-required.
func newPrivateNode(t *testing.T) *testNode {
	t.Helper()
	dir := t.TempDir()
	n, err := node.Open(context.Background(), node.Config{DataDir: dir, Announce: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	tok, err := os.ReadFile(filepath.Join(dir, node.AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	srv := api.NewWith(n, nil, api.Options{AuthRequired: true})
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	h, err := New(n, Config{AuthRequired: true})
	if err != nil {
		t.Fatal(err)
	}
	h.Mount(srv.Mount)
	return &testNode{t: t, n: n, h: h, srv: hs, url: hs.URL, token: strings.TrimSpace(string(tok)), dir: dir}
}

// TestPrivateIndexProtocol checks the protocol of RFC 3139 as the Cargo
// book's "Registry Index — Sparse authentication" describes it: an
// anonymous config.json, index file or download is 401 with a Cargo
// challenge and Cargo's error JSON; with the token (raw, as Cargo sends
// it) config.json says "auth-required": true and everything is served.
func TestPrivateIndexProtocol(t *testing.T) {
	tn := newPrivateNode(t)
	tn.mustPublish("wcr-private", "1.0.0", simpleCrate(t, "wcr-private", "1.0.0", ""))

	for _, p := range []string{"/index/config.json", "/index/wc/r-/wcr-private", "/wasm/index/config.json",
		"/api/v1/crates/wcr-private/1.0.0/download", "/api/v1/crates?q=wcr", "/api/v1/crates/wcr-private/owners"} {
		r := tn.do("GET", p, nil)
		if r.status != http.StatusUnauthorized || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Cargo") {
			t.Errorf("anonymous GET %s: %d, WWW-Authenticate %q; want 401 with a Cargo challenge", p, r.status, r.header.Get("WWW-Authenticate"))
			continue
		}
		if d := detail(t, r); !strings.Contains(d, "private") {
			t.Errorf("anonymous GET %s: detail %q does not say the registry is private", p, d)
		}
		if r := tn.do("GET", p, nil, "Authorization", "not-a-token"); r.status != http.StatusUnauthorized {
			t.Errorf("GET %s with a wrong token: %d, want 401", p, r.status)
		}
		if r := tn.do("GET", p, nil, "Authorization", tn.token); r.status != http.StatusOK {
			t.Errorf("GET %s with the token: %d %s", p, r.status, r.body)
		}
	}
	r := tn.do("GET", "/index/config.json", nil, "Authorization", tn.token)
	var cfg map[string]any
	if err := json.Unmarshal(r.body, &cfg); err != nil || cfg["auth-required"] != true {
		t.Errorf("config.json with the token = %s; want \"auth-required\": true", r.body)
	}
	if cc := r.header.Get("Cache-Control"); !strings.Contains(cc, "private") {
		t.Errorf("config.json of a private registry: Cache-Control %q, want private", cc)
	}
	dl := tn.do("GET", "/api/v1/crates/wcr-private/1.0.0/download", nil, "Authorization", tn.token)
	if cc := dl.header.Get("Cache-Control"); strings.Contains(cc, "public") {
		t.Errorf("download of a private registry: Cache-Control %q must not be public", cc)
	}
	// The REST API is private too; /health stays open for monitors.
	for _, p := range []string{"/crates", "/crates/wcr-private@1.0.0", "/registry", "/registry/state", "/ui/"} {
		if r := tn.do("GET", p, nil); r.status != http.StatusUnauthorized || r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("anonymous GET %s: %d, WWW-Authenticate %q; want 401 with a challenge", p, r.status, r.header.Get("WWW-Authenticate"))
		}
	}
	if r := tn.do("GET", "/health", nil); r.status != http.StatusOK {
		t.Errorf("anonymous GET /health on a private node: %d, want 200", r.status)
	}
}

// TestPrivateRegistryWithStockCargo: stock cargo (rustup's, sparse index)
// publishes to and builds a dependent crate from a private node with
// CARGO_REGISTRIES_WCR_TOKEN set, and without it fails on the 401, saying
// which token is missing.
func TestPrivateRegistryWithStockCargo(t *testing.T) {
	bin := requireCargo(t)
	tn := newPrivateNode(t)
	index := "sparse+" + tn.url + "/index/"
	// Cargo sends a token to an auth-required registry only through a
	// configured credential provider; cargo:token reads
	// CARGO_REGISTRIES_WCR_TOKEN (docs/CARGO.md).
	private := func(token string) *cargoEnv {
		c := newCargoEnv(t, bin, index, token)
		c.env = append(c.env, "CARGO_REGISTRIES_WCR_CREDENTIAL_PROVIDER=cargo:token")
		return c
	}
	pub := private(tn.token)
	pub.mustRun(fixture(t, "wcr-leaf", "0.1.0"), "publish", "--registry", "wcr", "--allow-dirty", "--no-verify")

	// A dependent, built by a user who holds a token.
	user := private(tn.token)
	dir := fixture(t, "wcr-app", "")
	out := user.mustRun(dir, "run", "--quiet")
	if got := strings.TrimSpace(out); got != "wcr-leaf 0.1.0 says 2 + 3 = 5" {
		t.Fatalf("wcr-app built against the private node printed %q", got)
	}

	// The same build without a token.
	anon := private("")
	out, ok := anon.run(fixture(t, "wcr-app", ""), "build")
	if ok {
		t.Fatalf("cargo built against a private node without a token:\n%s", out)
	}
	// Cargo reads the 401 on config.json as "this registry needs a token"
	// and says which one.
	if !strings.Contains(out, "no token found for `wcr`") || !strings.Contains(out, "CARGO_REGISTRIES_WCR_TOKEN") {
		t.Fatalf("cargo without a token did not fail with a clear 401:\n%s", out)
	}
	t.Logf("cargo without a token:\n%s", out)
}
