package cargo

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/node"
)

// Publish framing per the Cargo book's "Web API: Publish"; every refusal is
// Cargo's error JSON with a sentence saying what to do.
func TestPublishFraming(t *testing.T) {
	tn := newTestNode(t, node.Config{MaxCrateSize: 64 << 10}, Config{})
	crate := simpleCrate(t, "framed", "1.0.0", "")
	meta := map[string]any{"name": "framed", "vers": "1.0.0", "deps": []any{}, "readme": "ignored", "badges": map[string]any{}}
	good := publishBody(t, meta, crate)
	le := func(n int) []byte { return binary.LittleEndian.AppendUint32(nil, uint32(n)) }

	cases := []struct {
		name   string
		body   []byte
		auth   string
		status int
		detail string
	}{
		{"no token", good, "", 401, "needs a token"},
		{"wrong token", good, "wcr_0000", 401, "not valid on this registry node"},
		{"empty", nil, tn.token, 400, "Cargo's format"},
		{"short JSON", append(le(100), `{"name":"x"}`...), tn.token, 400, "ends before"},
		{"short archive", append(append(le(2), "{}"...), le(50)...), tn.token, 400, "only 0 follow"},
		{"trailing bytes", append(bytes.Clone(good), 0), tn.token, 400, "1 bytes follow"},
		{"not JSON", append(append(append(le(3), "{{{"...), le(len(crate))...), crate...), tn.token, 400, "not JSON"},
		{"no name", publishBody(t, map[string]any{"vers": "1.0.0"}, crate), tn.token, 400, "no name or vers"},
		{"huge metadata", append(le(maxMetadata+1), make([]byte, 8)...), tn.token, 413, "metadata is"},
		{"huge archive", append(append(le(2), "{}"...), le(1<<20)...), tn.token, 413, "accepts at most 65536"},
		{"name mismatch", publishBody(t, map[string]any{"name": "other", "vers": "1.0.0"}, crate), tn.token, 400, "names other 1.0.0 but the .crate archive's Cargo.toml is framed 1.0.0"},
		{"version mismatch", publishBody(t, map[string]any{"name": "framed", "vers": "1.0.1"}, crate), tn.token, 400, "framed 1.0.1"},
		{"not a crate", publishBody(t, meta, []byte("not gzip")), tn.token, 400, "not gzip"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var hdr []string
			if c.auth != "" {
				hdr = []string{"Authorization", c.auth}
			}
			r := tn.do("PUT", "/api/v1/crates/new", c.body, hdr...)
			if r.status != c.status || !strings.Contains(detail(t, r), c.detail) {
				t.Fatalf("status %d, body %s; want %d with %q", r.status, r.body, c.status, c.detail)
			}
		})
	}
	if r := tn.do("GET", "/index/fr/am/framed", nil); r.status != 404 {
		t.Fatalf("a refused publish left an index file: %d", r.status)
	}

	r := tn.do("PUT", "/api/v1/crates/new", good, "Authorization", tn.token)
	var ok struct {
		Warnings PublishWarnings `json:"warnings"`
	}
	if r.status != 200 || json.Unmarshal(r.body, &ok) != nil || ok.Warnings.Other == nil || ok.Warnings.InvalidBadges == nil {
		t.Fatalf("publish: %d %s", r.status, r.body)
	}
	// The same archive again changes nothing and says so; another archive
	// for the same version is a conflict.
	r = tn.do("PUT", "/api/v1/crates/new", good, "Authorization", "Bearer "+tn.token)
	if r.status != 200 || !strings.Contains(string(r.body), "already published with exactly this archive") {
		t.Fatalf("republish: %d %s", r.status, r.body)
	}
	other := simpleCrate(t, "framed", "1.0.0", "license = \"MIT\"\n")
	r = tn.do("PUT", "/api/v1/crates/new", publishBody(t, meta, other), "Authorization", tn.token)
	if r.status != 409 || !strings.Contains(detail(t, r), "bump the version") {
		t.Fatalf("conflicting publish: %d %s", r.status, r.body)
	}
	if r := tn.do("GET", "/api/v1/crates/new", nil); r.status != 405 || r.header.Get("Allow") != "PUT" {
		t.Fatalf("GET /api/v1/crates/new: %d %v", r.status, r.header)
	}
}

// The publish metadata decides which registry each dependency is from, in
// the index's terms; the archive decides everything else. The node has no
// public URL here: the indexes under the URL the client used are its own.
func TestPublishDependencyRegistries(t *testing.T) {
	tn := newTestNode(t, node.Config{}, Config{SameRegistry: []string{"sparse+https://peer.example/index/"}})
	manifest := `[package]
name = "deps"
version = "1.0.0"

[dependencies]
here = { version = "1", registry-index = "sparse+` + tn.url + `/index/" }
peer = { version = "1", registry-index = "sparse+https://peer.example/index/" }
viawasm = { version = "1", registry-index = "sparse+` + tn.url + `/wasm/index/" }
cratesio = "1"
renamed = { package = "real-name", version = "2" }

[target.'cfg(unix)'.dependencies]
unixy = { version = "3", registry-index = "sparse+https://elsewhere.example/index/" }

[dev-dependencies]
here = { version = "1", registry-index = "sparse+` + tn.url + `/index/" }
`
	crate := crateArchive(t, "deps", "1.0.0", manifest)
	str := func(s string) *string { return &s }
	crates := "https://github.com/rust-lang/crates.io-index"
	meta := PublishMetadata{Name: "deps", Vers: "1.0.0", Deps: []PublishDep{
		{Name: "here", VersionReq: "^1", Kind: "normal"},
		{Name: "peer", VersionReq: "^1", Kind: "normal", Registry: str("sparse+https://peer.example/index/")},
		{Name: "viawasm", VersionReq: "^1", Kind: "normal", Registry: str("sparse+" + tn.url + "/wasm/index/")},
		{Name: "cratesio", VersionReq: "^1", Kind: "normal", Registry: str(crates)},
		{Name: "real-name", VersionReq: "^2", Kind: "normal", Registry: str(crates), ExplicitNameInToml: str("renamed")},
		{Name: "unixy", VersionReq: "^3", Kind: "normal", Target: str("cfg(unix)"), Registry: str("sparse+https://elsewhere.example/index/")},
		{Name: "here", VersionReq: "^1", Kind: "dev"},
	}}
	if r := tn.do("PUT", "/api/v1/crates/new", publishBody(t, meta, crate), "Authorization", tn.token); r.status != 200 {
		t.Fatalf("publish: %d %s", r.status, r.body)
	}
	lines, _ := tn.indexLines("/index/", "deps")
	if len(lines) != 1 {
		t.Fatalf("lines: %+v", lines)
	}
	got := map[string]string{}
	for _, d := range lines[0].Deps {
		got[d.Kind+":"+d.Name] = d.Registry
	}
	want := map[string]string{
		"normal:here": "", "normal:peer": "", "normal:viawasm": "", "normal:cratesio": crates, "normal:renamed": crates,
		"normal:unixy": "sparse+https://elsewhere.example/index/", "dev:here": "",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("dependency registries:\n got %v\nwant %v", got, want)
	}
}

func TestYankEndpoints(t *testing.T) {
	tn := newTestNode(t, node.Config{}, Config{})
	tn.mustPublish("yanky", "1.0.0", simpleCrate(t, "yanky", "1.0.0", ""))
	auth := []string{"Authorization", tn.token}
	for _, c := range []struct {
		method, path string
		hdr          []string
		status       int
		detail       string
	}{
		{"DELETE", "/api/v1/crates/yanky/1.0.0/yank", nil, 401, "needs a token"},
		{"DELETE", "/api/v1/crates/yanky/9.9.9/yank", auth, 404, "yanky@9.9.9"},
		{"DELETE", "/api/v1/crates/nope/1.0.0/yank", auth, 404, "nope@1.0.0"},
		{"DELETE", "/api/v1/crates/yanky/1.0/yank", auth, 400, "not a semantic version"},
		{"PUT", "/api/v1/crates/yanky/1.0.0/yank", auth, 405, "use DELETE"},
		{"DELETE", "/api/v1/crates/yanky/1.0.0/unyank", auth, 405, "use PUT"},
	} {
		r := tn.do(c.method, c.path, nil, c.hdr...)
		if r.status != c.status || !strings.Contains(detail(t, r), c.detail) {
			t.Errorf("%s %s: %d %s; want %d with %q", c.method, c.path, r.status, r.body, c.status, c.detail)
		}
	}
	for _, step := range []struct {
		method, path string
		yanked       bool
	}{
		{"DELETE", "/api/v1/crates/yanky/1.0.0/yank", true},
		{"DELETE", "/api/v1/crates/yanky/1.0.0/yank", true},
		{"PUT", "/api/v1/crates/yanky/1.0.0/unyank", false},
		{"DELETE", "/wasm/api/v1/crates/yanky/1.0.0/yank", true},
	} {
		if r := tn.do(step.method, step.path, nil, auth...); r.status != 200 || string(r.body) != "{\"ok\":true}\n" {
			t.Fatalf("%s %s: %d %s", step.method, step.path, r.status, r.body)
		}
		if lines, _ := tn.indexLines("/index/", "yanky"); len(lines) != 1 || lines[0].Yanked != step.yanked {
			t.Fatalf("after %s %s: %+v", step.method, step.path, lines)
		}
	}
}

func TestOwnersEndpoints(t *testing.T) {
	tn := newTestNode(t, node.Config{}, Config{})
	tn.mustPublish("owned", "1.0.0", simpleCrate(t, "owned", "1.0.0", ""))
	self := tn.n.PeerID()
	friend := testKey(t, 7).Public().PeerID()
	auth := []string{"Authorization", tn.token}
	users := func() []Owner {
		t.Helper()
		r := tn.do("GET", "/api/v1/crates/owned/owners", nil)
		var out struct {
			Users []Owner `json:"users"`
		}
		if r.status != 200 || json.Unmarshal(r.body, &out) != nil {
			t.Fatalf("owners: %d %s", r.status, r.body)
		}
		return out.Users
	}
	if u := users(); len(u) != 1 || u[0].Login != self || u[0].Name == nil || u[0].ID != ownerID(self) {
		t.Fatalf("owners: %+v", u)
	}
	body := func(logins ...string) []byte {
		b, _ := json.Marshal(map[string]any{"users": logins})
		return b
	}
	for _, c := range []struct {
		method string
		body   []byte
		hdr    []string
		status int
		detail string
	}{
		{"PUT", body(friend), nil, 401, "needs a token"},
		{"PUT", body("alice"), auth, 400, "not a peer ID"},
		{"PUT", []byte("{"), auth, 400, `{"users"`},
		{"PUT", body(), auth, 400, `{"users"`},
		{"DELETE", body(friend), auth, 400, "is not an owner of owned"},
		{"DELETE", body(self), auth, 400, "without owners"},
		{"POST", body(friend), auth, 405, "use GET or PUT or DELETE"},
	} {
		r := tn.do(c.method, "/api/v1/crates/owned/owners", c.body, c.hdr...)
		if r.status != c.status || !strings.Contains(detail(t, r), c.detail) {
			t.Errorf("%s owners %s: %d %s; want %d with %q", c.method, c.body, r.status, r.body, c.status, c.detail)
		}
	}
	if r := tn.do("GET", "/api/v1/crates/nobody/owners", nil); r.status != 404 {
		t.Errorf("owners of an unknown crate: %d", r.status)
	}
	r := tn.do("PUT", "/api/v1/crates/owned/owners", body(friend), auth...)
	if r.status != 200 || !strings.Contains(string(r.body), `"ok":true`) || !strings.Contains(string(r.body), friend) {
		t.Fatalf("add owner: %d %s", r.status, r.body)
	}
	if u := users(); len(u) != 2 {
		t.Fatalf("after adding: %+v", u)
	}
	if r := tn.do("DELETE", "/api/v1/crates/owned/owners", body(friend), auth...); r.status != 200 {
		t.Fatalf("remove owner: %d %s", r.status, r.body)
	}
	if u := users(); len(u) != 1 || u[0].Login != self {
		t.Fatalf("after removing: %+v", u)
	}
	// Giving the crate away: this node can no longer yank it.
	if r := tn.do("PUT", "/api/v1/crates/owned/owners", body(friend), auth...); r.status != 200 {
		t.Fatal(r.status)
	}
	if r := tn.do("DELETE", "/api/v1/crates/owned/owners", body(self), auth...); r.status != 200 {
		t.Fatalf("remove self: %d %s", r.status, r.body)
	}
	if r := tn.do("DELETE", "/api/v1/crates/owned/1.0.0/yank", nil, auth...); r.status != 403 || !strings.Contains(detail(t, r), "only an owner") {
		t.Fatalf("yank by a former owner: %d %s", r.status, r.body)
	}
	if r := tn.publish("owned", "2.0.0", simpleCrate(t, "owned", "2.0.0", "")); r.status != 403 || !strings.Contains(detail(t, r), "not an owner") {
		t.Fatalf("publish by a former owner: %d %s", r.status, r.body)
	}
}

func TestSearch(t *testing.T) {
	tn := newTestNode(t, node.Config{}, Config{})
	tester := testKey(t, 1)
	trustKey(t, tn, tester)
	for _, c := range []struct{ name, version, extra string }{
		{"parse", "1.0.0", ""},
		{"parse", "1.2.0", ""},
		{"parse", "2.0.0", ""},
		{"parser-kit", "0.1.0", ""},
		{"json", "0.3.0", `keywords = ["parser"]` + "\n"},
		{"zz-parse", "0.1.0", ""},
		{"unrelated", "1.0.0", ""},
	} {
		tn.mustPublish(c.name, c.version, simpleCrate(t, c.name, c.version, c.extra))
	}
	tn.do("DELETE", "/api/v1/crates/parse/2.0.0/yank", nil, "Authorization", tn.token)
	tn.report(tester, "parser-kit", "0.1.0", registry.GateCurated, registry.WasmCompatible)
	tn.report(tester, "parse", "1.0.0", registry.GateCurated, registry.WasmCompatible)

	type result struct {
		Crates []SearchResult `json:"crates"`
		Meta   map[string]int `json:"meta"`
	}
	search := func(path string) result {
		t.Helper()
		r := tn.do("GET", path, nil)
		var out result
		if r.status != 200 || json.Unmarshal(r.body, &out) != nil {
			t.Fatalf("%s: %d %s", path, r.status, r.body)
		}
		return out
	}
	names := func(r result) string {
		var s []string
		for _, c := range r.Crates {
			s = append(s, c.Name+"="+c.MaxVersion)
		}
		return strings.Join(s, " ")
	}
	if r := search("/api/v1/crates?q=PARSE"); names(r) != "parse=1.2.0 parser-kit=0.1.0 json=0.3.0 zz-parse=0.1.0" || r.Meta["total"] != 4 {
		t.Fatalf("q=PARSE: %q total %d", names(r), r.Meta["total"])
	}
	if r := search("/api/v1/crates?q=parse&per_page=2"); names(r) != "parse=1.2.0 parser-kit=0.1.0" || r.Meta["total"] != 4 {
		t.Fatalf("per_page=2: %q total %d", names(r), r.Meta["total"])
	}
	if r := search("/api/v1/crates?per_page=100"); r.Meta["total"] != 5 || r.Crates[0].Description != "test crate json" {
		t.Fatalf("no query: %+v", r)
	}
	if r := search("/wasm/api/v1/crates?q=parse"); names(r) != "parse=1.0.0 parser-kit=0.1.0" || r.Meta["total"] != 2 {
		t.Fatalf("wasm view search: %q total %d", names(r), r.Meta["total"])
	}
	for _, p := range []string{"0", "101", "ten"} {
		if r := tn.do("GET", "/api/v1/crates?q=x&per_page="+p, nil); r.status != 400 || !strings.Contains(detail(t, r), "from 1 to 100") {
			t.Errorf("per_page=%s: %d %s", p, r.status, r.body)
		}
	}
}

func TestDownload(t *testing.T) {
	tn := newTestNode(t, node.Config{}, Config{})
	crate := simpleCrate(t, "dl", "1.0.0", "")
	tn.mustPublish("dl", "1.0.0", crate)
	r := tn.do("GET", "/api/v1/crates/dl/1.0.0/download", nil)
	cksum := registry.Sum(crate).Hex()
	if r.status != 200 || !bytes.Equal(r.body, crate) || r.header.Get("ETag") != `"`+cksum+`"` {
		t.Fatalf("download: %d %v", r.status, r.header)
	}
	if lines, _ := tn.indexLines("/index/", "dl"); lines[0].Cksum != cksum {
		t.Fatalf("the index cksum %s is not the archive's sha256 %s", lines[0].Cksum, cksum)
	}
	if r := tn.do("GET", "/api/v1/crates/dl/1.0.0/download", nil, "If-None-Match", `"`+cksum+`"`); r.status != 304 {
		t.Fatalf("conditional download: %d", r.status)
	}
	if r := tn.do("HEAD", "/wasm/api/v1/crates/dl/1.0.0/download", nil); r.status != 200 || r.header.Get("Content-Length") != fmt.Sprint(len(crate)) {
		t.Fatalf("HEAD through the wasm API: %d %v", r.status, r.header)
	}
	for _, p := range []string{"/api/v1/crates/dl/2.0.0/download", "/api/v1/crates/nope/1.0.0/download"} {
		if r := tn.do("GET", p, nil); r.status != 404 || detail(t, r) == "" {
			t.Errorf("%s: %d %s", p, r.status, r.body)
		}
	}
	// A release whose archive this node lacks, with no peers to ask.
	body, err := registry.ParseCrate(simpleCrate(t, "orphan", "1.0.0", ""), 0)
	if err != nil {
		t.Fatal(err)
	}
	// Its publisher is trusted here, so only the missing archive stands in
	// the way.
	if _, err := tn.n.UpdateSettings(context.Background(), "t", []byte(`{"trust":{"keys":["`+testKey(t, 3).Public().PeerID()+`"]}}`)); err != nil {
		t.Fatal(err)
	}
	rec, err := registry.Sign(testKey(t, 3), registry.KindRelease, "orphan@1.0.0", &registry.ReleaseBody{
		Name: "orphan", Version: "1.0.0", Cksum: body.Cksum, Blob: body.Blob, Size: body.Size,
	}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tn.n.Store().PutRecords([]*registry.Record{rec})
	if r := tn.do("GET", "/api/v1/crates/orphan/1.0.0/download", nil); r.status != 404 || !strings.Contains(detail(t, r), "does not hold the archive") || r.header.Get("ETag") != "" {
		t.Fatalf("download without the blob: %d %v %s", r.status, r.header, r.body)
	}
}

func TestUnknownEndpoints(t *testing.T) {
	tn := newTestNode(t, node.Config{}, Config{})
	for _, c := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/api/v1/me", 404},
		{"GET", "/api/v1/crates/a/b/c/d", 404},
		{"GET", "/api/v1/crates/x/1.0.0/other", 404},
		{"POST", "/api/v1/crates", 405},
		{"GET", "/wasm/api/v1/", 404},
	} {
		r := tn.do(c.method, c.path, nil)
		if r.status != c.status || detail(t, r) == "" {
			t.Errorf("%s %s: %d %s", c.method, c.path, r.status, r.body)
		}
	}
}

func TestNewValidatesConfig(t *testing.T) {
	tn := newTestNode(t, node.Config{}, Config{})
	if _, err := New(tn.n, Config{PublicURL: "registry.example"}); registry.KindOf(err) != registry.EINVALID {
		t.Errorf("a public URL without a scheme: %v", err)
	}
	h, err := New(tn.n, Config{PublicURL: "https://Registry.Example/", SameRegistry: []string{"registry+https://old.example/index"}})
	if err != nil {
		t.Fatal(err)
	}
	for u, want := range map[string]bool{
		"": true, "sparse+https://registry.example/index/": true, "https://REGISTRY.example/wasm/index": true,
		"sparse+https://old.example/index/": true, "sparse+https://registry.example/other/": false,
		"https://github.com/rust-lang/crates.io-index": false,
	} {
		if got := h.isSameRegistry(u); got != want {
			t.Errorf("isSameRegistry(%q) = %v", u, got)
		}
	}
}

// FuzzParsePublish: any body is either refused with an invalid or too-large
// error or split into metadata and an archive that account for every byte.
func FuzzParsePublish(f *testing.F) {
	f.Add(publishBody(f, map[string]any{"name": "a", "vers": "1.0.0"}, []byte("crate")))
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add(append(binary.LittleEndian.AppendUint32(nil, 2), '{', '}', 0, 0, 0, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, crate, err := ParsePublish(b, 1<<20)
		if err != nil {
			if k := registry.KindOf(err); k != registry.EINVALID && k != registry.ETOOLARGE {
				t.Fatalf("error of kind %s: %v", k, err)
			}
			return
		}
		jl := int(binary.LittleEndian.Uint32(b))
		if m.Name == "" || m.Vers == "" || 4+jl+4+len(crate) != len(b) {
			t.Fatalf("accepted a body whose parts do not add up: %d+%d of %d", jl, len(crate), len(b))
		}
	})
}
