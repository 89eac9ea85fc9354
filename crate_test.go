package registry

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"strings"
	"testing"
)

type entry struct {
	name     string
	body     string
	typeflag byte
	link     string
}

func makeCrate(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		tf := e.typeflag
		if tf == 0 {
			tf = tar.TypeReg
		}
		h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tf, Linkname: e.link}
		if tf != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if tf == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

const fullManifest = `
[package]
name = "demo"
version = "0.3.1-beta.2"
edition = "2021"
rust-version = "1.63"
description = """
A demo crate.
"""
license = "MIT OR Apache-2.0"
repository = "https://example.org/demo"
keywords = ["wasm", "demo"]
categories = ["wasm"]
links = "demo"

[dependencies]
serde = { version = "1.0", features = ["derive"], default-features = false }
rand_core = "0.6"
log = { version = "0.4", optional = true }
web = { package = "web-sys", version = "0.3" }

[dev-dependencies]
proptest = "1"
local-helper = { path = "../helper" }

[build-dependencies]
cc = "1.0"

[target.'cfg(target_arch = "wasm32")'.dependencies]
getrandom = { version = "0.2", features = ["js"] }

[features]
default = ["std"]
std = []
logging = ["dep:log"]
`

func TestParseCrateReadsTheManifest(t *testing.T) {
	b := makeCrate(t,
		entry{name: "demo-0.3.1-beta.2/Cargo.toml", body: fullManifest},
		entry{name: "demo-0.3.1-beta.2/src/lib.rs", body: "pub fn f() {}"},
		entry{name: "demo-0.3.1-beta.2/src/", typeflag: tar.TypeDir},
	)
	r, err := ParseCrate(b, 0)
	if err != nil {
		t.Fatal(err)
	}
	if r.Name != "demo" || r.Version != "0.3.1-beta.2" || r.Edition != "2021" || r.RustVersion != "1.63" || r.Links != "demo" {
		t.Fatalf("package fields: %+v", r)
	}
	if r.Description != "A demo crate." || r.License != "MIT OR Apache-2.0" || len(r.Keywords) != 2 || r.Categories[0] != "wasm" {
		t.Fatalf("metadata: %+v", r)
	}
	if r.Cksum != Sum(b).Hex() || r.Size != uint64(len(b)) || r.BlobID() != Sum(b) {
		t.Fatal("archive fields do not describe the bytes")
	}
	byName := map[string]Dep{}
	for _, d := range r.Deps {
		byName[d.Name+"/"+d.Kind] = d
	}
	if len(r.Deps) != 7 {
		t.Fatalf("%d deps, want 7 (the path-only dev-dependency is dropped): %+v", len(r.Deps), r.Deps)
	}
	if d := byName["serde/normal"]; d.Req != "1.0" || d.DefaultFeatures || len(d.Features) != 1 || d.Features[0] != "derive" {
		t.Fatalf("serde: %+v", d)
	}
	if d := byName["log/normal"]; !d.Optional || !d.DefaultFeatures {
		t.Fatalf("log: %+v", d)
	}
	if d := byName["web/normal"]; d.Package != "web-sys" || d.CrateName() != "web-sys" {
		t.Fatalf("renamed dependency: %+v", d)
	}
	if d := byName["cc/build"]; d.Req != "1.0" {
		t.Fatalf("build dependency: %+v", d)
	}
	if d := byName["proptest/dev"]; d.Req != "1" {
		t.Fatalf("dev dependency: %+v", d)
	}
	if d := byName["getrandom/normal"]; d.Target != `cfg(target_arch = "wasm32")` || d.Features[0] != "js" {
		t.Fatalf("target dependency: %+v", d)
	}
	if len(r.Features) != 3 || r.Features["default"][0] != "std" || len(r.Features["std"]) != 0 || r.Features["logging"][0] != "dep:log" {
		t.Fatalf("features: %+v", r.Features)
	}
	// The body is valid as a release record.
	k := goldenKey(t, 1)
	if _, err := Sign(k, KindRelease, ReleaseSubject(r.Name, r.Version), r, goldenTime); err != nil {
		t.Fatalf("parsed release does not sign: %v", err)
	}
}

func TestParseCrateRefusesBadArchives(t *testing.T) {
	good := "[package]\nname = \"ok\"\nversion = \"1.0.0\"\n"
	cases := []struct {
		name string
		b    []byte
		kind ErrorKind
		msg  string
	}{
		{"empty", nil, EINVALID, "empty"},
		{"not-gzip", []byte("PK\x03\x04 this is a zip"), EINVALID, "not gzip"},
		{"gzip-not-tar", gz(t, []byte(strings.Repeat("not a tar ", 100))), EINVALID, "not a valid tar"},
		{"outside-prefix", makeCrate(t, entry{name: "ok-1.0.0/Cargo.toml", body: good}, entry{name: "other/evil.rs", body: "x"}), EINVALID, "outside"},
		{"dot-dot", makeCrate(t, entry{name: "ok-1.0.0/Cargo.toml", body: good}, entry{name: "ok-1.0.0/../../etc/passwd", body: "x"}), EINVALID, "escapes"},
		{"absolute", makeCrate(t, entry{name: "/etc/passwd", body: "x"}), EINVALID, "absolute"},
		{"symlink", makeCrate(t, entry{name: "ok-1.0.0/Cargo.toml", body: good}, entry{name: "ok-1.0.0/link", typeflag: tar.TypeSymlink, link: "/etc/passwd"}), EINVALID, "link"},
		{"hardlink", makeCrate(t, entry{name: "ok-1.0.0/Cargo.toml", body: good}, entry{name: "ok-1.0.0/hl", typeflag: tar.TypeLink, link: "ok-1.0.0/Cargo.toml"}), EINVALID, "link"},
		{"device", makeCrate(t, entry{name: "ok-1.0.0/Cargo.toml", body: good}, entry{name: "ok-1.0.0/dev", typeflag: tar.TypeChar}), EINVALID, "not a regular file"},
		{"no-manifest", makeCrate(t, entry{name: "ok-1.0.0/src/lib.rs", body: "x"}), EINVALID, "no ok-1.0.0/Cargo.toml"},
		{"name-disagrees", makeCrate(t, entry{name: "other-1.0.0/Cargo.toml", body: good}), EINVALID, "Cargo.toml says ok 1.0.0"},
		{"version-disagrees", makeCrate(t, entry{name: "ok-2.0.0/Cargo.toml", body: good}), EINVALID, "expected ok-1.0.0/"},
		{"invalid-version", makeCrate(t, entry{name: "ok-1.0/Cargo.toml", body: "[package]\nname = \"ok\"\nversion = \"1.0\"\n"}), EINVALID, "not a semantic version"},
		{"invalid-name", makeCrate(t, entry{name: "9ok-1.0.0/Cargo.toml", body: "[package]\nname = \"9ok\"\nversion = \"1.0.0\"\n"}), EINVALID, "must start with an ASCII letter"},
		{"bad-toml", makeCrate(t, entry{name: "ok-1.0.0/Cargo.toml", body: "[package\nname="}), EINVALID, "not valid TOML"},
		{"workspace-inherited", makeCrate(t, entry{name: "ok-1.0.0/Cargo.toml", body: "[package]\nname = \"ok\"\nversion.workspace = true\n"}), EINVALID, "inherited from a workspace"},
		{"dep-without-version", makeCrate(t, entry{name: "ok-1.0.0/Cargo.toml", body: good + "[dependencies]\nx = { path = \"../x\" }\n"}), EINVALID, "no version requirement"},
		{"duplicate-entry", makeCrate(t, entry{name: "ok-1.0.0/Cargo.toml", body: good}, entry{name: "ok-1.0.0/Cargo.toml", body: good}), EINVALID, "twice"},
		{"too-large", append(makeCrate(t, entry{name: "ok-1.0.0/Cargo.toml", body: good}), make([]byte, 2048)...), ETOOLARGE, "accepts at most"},
		{"zip-bomb", makeCrate(t, entry{name: "ok-1.0.0/Cargo.toml", body: good}, entry{name: "ok-1.0.0/big", body: strings.Repeat("0", 200<<10)}), ETOOLARGE, "unpacks to more than"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			limit := int64(8 << 10)
			if c.name == "too-large" {
				limit = int64(len(c.b) - 1)
			}
			_, err := ParseCrate(c.b, limit)
			if err == nil {
				t.Fatal("accepted")
			}
			if KindOf(err) != c.kind || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("got %s %q; want %s containing %q", KindOf(err), err, c.kind, c.msg)
			}
		})
	}
}

func gz(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func TestVersionsAndNames(t *testing.T) {
	for _, v := range []string{"1.0.0", "0.0.1-alpha.1+build.5", "10.20.30", "1.0.0-rc.1"} {
		if err := ValidateVersion(v); err != nil {
			t.Errorf("%s refused: %v", v, err)
		}
	}
	for _, v := range []string{"1.0", "01.0.0", "1.0.0-", "v1.0.0", "1.0.0-01", ""} {
		if ValidateVersion(v) == nil {
			t.Errorf("%q accepted", v)
		}
	}
	order := []string{"0.9.0", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.2.0", "1.10.0"}
	for i := 1; i < len(order); i++ {
		if CompareVersions(order[i-1], order[i]) >= 0 || CompareVersions(order[i], order[i-1]) <= 0 {
			t.Errorf("%s should sort before %s", order[i-1], order[i])
		}
	}
	for _, n := range []string{"a", "serde_json", "wasm-bindgen", "A1"} {
		if err := ValidateCrateName(n); err != nil {
			t.Errorf("%s refused", n)
		}
	}
	for _, n := range []string{"", "1a", "-a", "a b", "ä", strings.Repeat("a", 65), "a/b"} {
		if ValidateCrateName(n) == nil {
			t.Errorf("%q accepted", n)
		}
	}
}

func TestIDsParseBothBases(t *testing.T) {
	id := Sum([]byte("x"))
	for _, s := range []string{id.String(), id.Base58(), strings.ToUpper(id.String()[:1]) + strings.ToUpper(id.String()[1:])} {
		got, err := ParseID(s)
		if err != nil || got != id {
			t.Errorf("ParseID(%s) = %v, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "b", "zzzz", "not-an-id", "mAXASII", id.String()[:20]} {
		if _, err := ParseID(s); KindOf(err) != EINVALID {
			t.Errorf("ParseID(%q) kind %s", s, KindOf(err))
		}
	}
	k := goldenKey(t, 1).Public()
	back, err := ParsePeerID(k.PeerID())
	if err != nil || !back.Equal(k) || !strings.HasPrefix(k.PeerID(), "12D3Koo") {
		t.Fatalf("peer ID round trip: %s %v", k.PeerID(), err)
	}
}

func TestFingerprintIsAdditive(t *testing.T) {
	var all, a, b Fingerprint
	for i := 0; i < 100; i++ {
		id := Sum([]byte{byte(i)})
		all.Add(id)
		if i%2 == 0 {
			a.Add(id)
		} else {
			b.Add(id)
		}
	}
	a.Merge(b)
	if a != all || a.Digest() != all.Digest() {
		t.Fatal("merged halves differ from the whole")
	}
	a.Sub(b)
	b.Merge(a)
	if b != all {
		t.Fatal("sub then merge differs")
	}
	var empty Fingerprint
	if empty.Digest() == all.Digest() || empty.Short() == all.Short() {
		t.Fatal("empty and full sets share a digest")
	}
}

func TestSettingsValidation(t *testing.T) {
	s := Settings{Name: "x", Gates: DefaultGates()}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := []Settings{
		{Name: "", Gates: DefaultGates()},
		{Name: "x", Gates: Gates{CuratedMinScore: 101}},
		{Name: "x", Gates: Gates{CuratedMinScore: 50, RejectBelowScore: 60}},
		{Name: "x", Gates: DefaultGates(), Trust: TrustPolicy{Keys: []string{"nope"}}},
	}
	for i, b := range bad {
		if KindOf(b.Validate()) != EINVALID {
			t.Errorf("bad settings %d accepted", i)
		}
	}
	g := DefaultGates()
	if g.Verdict(95, WasmCompatible) != GateCurated || g.Verdict(95, WasmPartial) != GateNeedsReview ||
		g.Verdict(10, WasmCompatible) != GateRejected || g.Verdict(90, WasmIncompatible) != GateRejected {
		t.Fatal("gate verdicts")
	}
}
