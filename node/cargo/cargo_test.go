package cargo

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sync/atomic"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/node"
)

// TestCargoEndToEnd drives the real, modern cargo against a node: publish,
// search, build a dependent from a fresh CARGO_HOME, yank and see a fresh
// resolution skip the yanked version, unyank, owners, and a crate that uses
// a renamed dependency behind a namespaced feature (features2, v: 2).
func TestCargoEndToEnd(t *testing.T) {
	bin := requireCargo(t)
	tn := newTestNode(t, node.Config{}, Config{})
	index := "sparse+" + tn.url + "/index/"
	pub := newCargoEnv(t, bin, index, tn.token)

	for _, v := range []string{"0.1.0", "0.1.1"} {
		dir := fixture(t, "wcr-leaf", v)
		out := pub.mustRun(dir, "publish", "--registry", "wcr", "--allow-dirty")
		if !strings.Contains(out, "Published wcr-leaf v"+v) {
			t.Fatalf("cargo publish %s did not report the publish:\n%s", v, out)
		}
	}
	lines, r := tn.indexLines("/index/", "wcr-leaf")
	if r.status != 200 || versions(lines) != "0.1.0 0.1.1" {
		t.Fatalf("index after publishing: %d %q", r.status, versions(lines))
	}

	out := pub.mustRun(t.TempDir(), "search", "--registry", "wcr", "wcr")
	if !regexp.MustCompile(`(?m)^wcr-leaf = "0\.1\.1"\s+# Adds numbers`).MatchString(out) {
		t.Fatalf("cargo search does not list wcr-leaf 0.1.1:\n%s", out)
	}

	// A dependent, built by someone with a fresh CARGO_HOME and no token.
	build := func(app string) string {
		t.Helper()
		env := newCargoEnv(t, bin, index, "")
		dir := fixture(t, app, "")
		out := env.mustRun(dir, "run", "--quiet")
		lock, err := os.ReadFile(filepath.Join(dir, "Cargo.lock"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(lock), `source = "`+index) {
			t.Fatalf("Cargo.lock does not resolve through %s:\n%s", index, lock)
		}
		return strings.TrimSpace(out)
	}
	if got := build("wcr-app"); got != "wcr-leaf 0.1.1 says 2 + 3 = 5" {
		t.Fatalf("wcr-app printed %q", got)
	}

	out = pub.mustRun(t.TempDir(), "yank", "--registry", "wcr", "wcr-leaf@0.1.1")
	if !strings.Contains(out, "Yank wcr-leaf@0.1.1") {
		t.Fatalf("cargo yank:\n%s", out)
	}
	if lines, _ := tn.indexLines("/index/", "wcr-leaf"); versions(lines) != "0.1.0 0.1.1(yanked)" {
		t.Fatalf("index after yank: %q", versions(lines))
	}
	if got := build("wcr-app"); got != "wcr-leaf 0.1.0 says 2 + 3 = 5" {
		t.Fatalf("after yanking 0.1.1, a fresh build printed %q", got)
	}
	pub.mustRun(t.TempDir(), "yank", "--registry", "wcr", "--undo", "wcr-leaf@0.1.1")
	if got := build("wcr-app"); got != "wcr-leaf 0.1.1 says 2 + 3 = 5" {
		t.Fatalf("after unyanking 0.1.1, a fresh build printed %q", got)
	}

	out = pub.mustRun(t.TempDir(), "owner", "--registry", "wcr", "--list", "wcr-leaf")
	if !strings.Contains(out, tn.n.PeerID()) {
		t.Fatalf("cargo owner --list does not show the node's peer ID %s:\n%s", tn.n.PeerID(), out)
	}

	// A renamed, optional registry dependency behind "dep:": features2.
	pub.mustRun(fixture(t, "wcr-mid", ""), "publish", "--registry", "wcr", "--allow-dirty")
	lines, _ = tn.indexLines("/index/", "wcr-mid")
	if len(lines) != 1 || lines[0].V != 2 || lines[0].Features2["extra"] == nil || len(lines[0].Deps) != 1 {
		t.Fatalf("wcr-mid's index line: %+v", lines)
	}
	if d := lines[0].Deps[0]; d.Name != "leaf" || d.Package != "wcr-leaf" || d.Registry != "" || !d.Optional {
		t.Fatalf("wcr-mid's dependency: %+v", d)
	}
	// Cargo names the dependency's registry by URL in the packaged
	// Cargo.toml; the release records it as this registry, as the publish
	// metadata says, so every node and both views resolve it themselves.
	dl := tn.do("GET", "/api/v1/crates/wcr-mid/0.1.0/download", nil)
	if dl.status != 200 || !strings.Contains(archiveFile(t, dl.body, "Cargo.toml"), `registry-index = "`+index+`"`) {
		t.Fatalf("the packaged wcr-mid does not name its registry by URL (status %d):\n%s", dl.status, archiveFile(t, dl.body, "Cargo.toml"))
	}
	if v, err := tn.n.Store().GetView("wcr-mid", "0.1.0"); err != nil || v.Body.Deps[0].Registry != "" {
		t.Fatalf("wcr-mid's release records its dependency's registry as %q (%v); want \"\" (this registry)", v.Body.Deps[0].Registry, err)
	}
	if got := build("wcr-app-mid"); got != "double(21) = 42 with wcr-leaf 0.1.1" {
		t.Fatalf("wcr-app-mid printed %q", got)
	}
}

// TestCargoWasmView builds through the wasm-only index: cargo resolves to
// the newest version whose trusted report passes the wasm gates, not to the
// newest version, and follows the view as reports arrive.
func TestCargoWasmView(t *testing.T) {
	bin := requireCargo(t)
	tn := newTestNode(t, node.Config{}, Config{})
	tester, untrusted := testKey(t, 1), testKey(t, 2)
	trustKey(t, tn, tester)
	pub := newCargoEnv(t, bin, "sparse+"+tn.url+"/index/", tn.token)
	for _, v := range []string{"0.1.0", "0.1.1", "0.1.2"} {
		pub.mustRun(fixture(t, "wcr-leaf", v), "publish", "--registry", "wcr", "--allow-dirty", "--no-verify")
	}
	tn.report(tester, "wcr-leaf", "0.1.0", registry.GateCurated, registry.WasmCompatible)
	tn.report(tester, "wcr-leaf", "0.1.1", registry.GateRejected, registry.WasmIncompatible)
	tn.report(untrusted, "wcr-leaf", "0.1.2", registry.GateCurated, registry.WasmCompatible)

	wasmIndex := "sparse+" + tn.url + "/wasm/index/"
	build := func() string {
		t.Helper()
		env := newCargoEnv(t, bin, wasmIndex, "")
		out := env.mustRun(fixture(t, "wcr-app", ""), "run", "--quiet")
		return strings.TrimSpace(out)
	}
	if got := build(); got != "wcr-leaf 0.1.0 says 2 + 3 = 5" {
		t.Fatalf("through the wasm view, wcr-app printed %q; want wcr-leaf 0.1.0 (0.1.1 is rejected, 0.1.2 has only an untrusted report)", got)
	}
	search := newCargoEnv(t, bin, wasmIndex, "")
	if out := search.mustRun(t.TempDir(), "search", "--registry", "wcr", "wcr-leaf"); !strings.Contains(out, `wcr-leaf = "0.1.0"`) {
		t.Fatalf("cargo search on the wasm view:\n%s", out)
	}

	tn.report(tester, "wcr-leaf", "0.1.2", registry.GateCurated, registry.WasmCompatible)
	if got := build(); got != "wcr-leaf 0.1.2 says 2 + 3 = 5" {
		t.Fatalf("after a trusted curated report on 0.1.2, wcr-app printed %q", got)
	}
}

// TestCargoThroughAnotherNode publishes with cargo on node A, gives node B
// A's records and archives as federation sync does (verified records
// through Ingest, blobs by content), and builds through B's index.
func TestCargoThroughAnotherNode(t *testing.T) {
	bin := requireCargo(t)
	a := newTestNode(t, node.Config{}, Config{})
	b := newTestNode(t, node.Config{}, Config{})
	pub := newCargoEnv(t, bin, "sparse+"+a.url+"/index/", a.token)
	pub.mustRun(fixture(t, "wcr-leaf", "0.1.0"), "publish", "--registry", "wcr", "--allow-dirty", "--no-verify")
	pub.mustRun(fixture(t, "wcr-mid", ""), "publish", "--registry", "wcr", "--allow-dirty", "--no-verify")

	env := newCargoEnv(t, bin, "sparse+"+b.url+"/index/", "")
	if out, ok := env.run(fixture(t, "wcr-app-mid", ""), "build"); ok || !strings.Contains(out, "wcr-mid") {
		t.Fatalf("building through B before it synced should fail to find wcr-mid:\n%s", out)
	}
	syncRecords(t, a, b)
	// B serves A's releases once it trusts A, as it would a peer it joined.
	if _, err := b.n.UpdateSettings(context.Background(), "t", []byte(`{"trust":{"keys":["`+a.n.PeerID()+`"]}}`)); err != nil {
		t.Fatal(err)
	}
	env = newCargoEnv(t, bin, "sparse+"+b.url+"/index/", "")
	dir := fixture(t, "wcr-app-mid", "")
	if got := strings.TrimSpace(env.mustRun(dir, "run", "--quiet")); got != "double(21) = 42 with wcr-leaf 0.1.0" {
		t.Fatalf("through B, wcr-app-mid printed %q", got)
	}
	lock, _ := os.ReadFile(filepath.Join(dir, "Cargo.lock"))
	if strings.Contains(string(lock), a.url) || !strings.Contains(string(lock), b.url) {
		t.Fatalf("Cargo.lock should name only node B's index:\n%s", lock)
	}
}

// TestCargoWithPersonTokens: stock cargo publishes, yanks and searches with
// a person's scoped token; the audit log names the person; a token without
// the yank scope gets 403 from `cargo yank`, one for other crates 403 from
// `cargo publish`, and an expired token 401.
func TestCargoWithPersonTokens(t *testing.T) {
	bin := requireCargo(t)
	var clock atomic.Int64
	clock.Store(time.Now().UnixMilli())
	tn := newTestNode(t, node.Config{Now: func() time.Time { return time.UnixMilli(clock.Load()) }}, Config{})
	index := "sparse+" + tn.url + "/index/"
	mint := func(req node.TokenRequest) string {
		t.Helper()
		tok, err := tn.n.CreateToken(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		return tok.Token
	}
	carol := mint(node.TokenRequest{Name: "laptop", Person: "carol", Scopes: []string{node.ScopePublishNew, node.ScopePublishUpdate, node.ScopeYank}, Crates: []string{"wcr-*"}, ExpiresIn: "1h"})
	noYank := mint(node.TokenRequest{Name: "ci", Person: "carol", Scopes: []string{node.ScopePublishUpdate}, Crates: []string{"wcr-*"}})
	other := mint(node.TokenRequest{Name: "elsewhere", Person: "dave", Scopes: []string{node.ScopePublishNew}, Crates: []string{"dave-*"}})

	env := newCargoEnv(t, bin, index, carol)
	if out := env.mustRun(fixture(t, "wcr-leaf", "0.1.0"), "publish", "--registry", "wcr", "--allow-dirty", "--no-verify"); !strings.Contains(out, "Published wcr-leaf v0.1.0") {
		t.Fatalf("cargo publish with carol's token:\n%s", out)
	}
	if out := env.mustRun(t.TempDir(), "search", "--registry", "wcr", "wcr-leaf"); !strings.Contains(out, `wcr-leaf = "0.1.0"`) {
		t.Fatalf("cargo search:\n%s", out)
	}
	if out, ok := newCargoEnv(t, bin, index, noYank).run(t.TempDir(), "yank", "--registry", "wcr", "wcr-leaf@0.1.0"); ok || !strings.Contains(out, "403") || !strings.Contains(out, `"yank" scope`) {
		t.Fatalf("cargo yank without the yank scope: ok=%v\n%s", ok, out)
	}
	if out, ok := newCargoEnv(t, bin, index, other).run(fixture(t, "wcr-leaf", "0.1.1"), "publish", "--registry", "wcr", "--allow-dirty", "--no-verify"); ok || !strings.Contains(out, "403") {
		t.Fatalf("cargo publish outside the token's crates: ok=%v\n%s", ok, out)
	}
	env.mustRun(t.TempDir(), "yank", "--registry", "wcr", "wcr-leaf@0.1.0")
	if v, err := tn.n.Store().GetView("wcr-leaf", "0.1.0"); err != nil || !v.Yanked {
		t.Fatalf("after cargo yank: %+v %v", v, err)
	}
	entries, err := tn.n.Store().AuditLog(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var carols []string
	for _, e := range entries {
		if strings.HasPrefix(e.Actor, "carol (token laptop)") {
			carols = append(carols, e.Action)
		}
	}
	if strings.Join(carols, ",") != "yank,submit" {
		t.Fatalf("audit entries naming carol, newest first: %v", carols)
	}
	clock.Add((2 * time.Hour).Milliseconds())
	if out, ok := env.run(t.TempDir(), "yank", "--undo", "--registry", "wcr", "wcr-leaf@0.1.0"); ok || !strings.Contains(out, "401") || !strings.Contains(out, "expired") {
		t.Fatalf("cargo with an expired token: ok=%v\n%s", ok, out)
	}
}
