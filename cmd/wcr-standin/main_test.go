package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/mirror"
)

func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, body := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// source is a small Cargo directory source, hostile parts included.
func source(t *testing.T) string {
	src := t.TempDir()
	writeTree(t, src, map[string]string{
		"alpha-1.0.0/Cargo.toml": `[package]
name = "alpha"
version = "1.0.0"
rust-version = "1.60"

[dependencies.beta]
version = "0.2"
optional = true

[features]
default = ["std"]
std = []
with-beta = ["dep:beta"]
`,
		"alpha-1.0.0/src/lib.rs":              "pub fn a() {}\n",
		"alpha-1.0.0/.cargo-checksum.json":    `{"files":{},"package":"x"}`,
		"beta-0.2.0/Cargo.toml":               "[package]\nname = \"beta\"\nversion = \"0.2.0\"\n",
		"beta-0.2.0/src/lib.rs":               "pub fn b() {}\n",
		"beta-0.1.0/Cargo.toml":               "[package]\nname = \"beta\"\nversion = \"0.1.0\"\n",
		"beta-0.1.0/src/lib.rs":               "pub fn b() {}\n",
		"gamma-1.0.0/Cargo.toml":              "[package\nname = ",
		"evil-1.0.0/Cargo.toml":               "[package]\nname = \"evil\"\nversion = \"1.0.0\"\n",
		"evil-1.0.0/src/lib.rs":               "pub fn e() {}\n",
		"renamed-dir/Cargo.toml":              "[package]\nname = \"Delta\"\nversion = \"0.3.0\"\n",
		"renamed-dir/src/lib.rs":              "pub fn d() {}\n",
		"alpha-1.0.0/src/nested/deep/file.rs": "// deep\n",
	})
	outside := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(outside, []byte("the machine's secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(src, "evil-1.0.0", "src", "secret.rs")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("lib.rs", filepath.Join(src, "beta-0.2.0", "src", "alias.rs")); err != nil {
		t.Fatal(err)
	}
	return src
}

func archivePaths(t *testing.T, b []byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	_, err := registry.WalkCrate(b, 0, func(e registry.CrateEntry, r io.Reader) error {
		c, err := io.ReadAll(r)
		out[e.Path] = string(c)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestBuildStandin(t *testing.T) {
	src := source(t)
	out := filepath.Join(t.TempDir(), "out")
	n, skipped, err := build(src, out, "http://127.0.0.1:9999", nil)
	if err != nil {
		t.Fatal(err)
	}
	if n != 5 || skipped != 1 {
		t.Fatalf("%d written, %d skipped; want 5 and gamma skipped", n, skipped)
	}
	var cfg map[string]string
	b, _ := os.ReadFile(filepath.Join(out, "index", "config.json"))
	if err := json.Unmarshal(b, &cfg); err != nil || cfg["dl"] != "http://127.0.0.1:9999/crates/{crate}/{crate}-{version}.crate" {
		t.Fatalf("config.json: %s", b)
	}
	for name, versions := range map[string][]string{"alpha": {"1.0.0"}, "beta": {"0.1.0", "0.2.0"}, "evil": {"1.0.0"}, "Delta": {"0.3.0"}} {
		lower := strings.ToLower(name)
		file, err := os.ReadFile(filepath.Join(out, "index", filepath.FromSlash(registry.IndexPath(lower))))
		if err != nil {
			t.Fatal(err)
		}
		// The mirror's strict parser accepts every file.
		lines, err := mirror.ParseIndexFile(lower, file)
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, file)
		}
		if len(lines) != len(versions) {
			t.Fatalf("%s: %d lines", name, len(lines))
		}
		for i, l := range lines {
			if l.Vers != versions[i] || l.Name != name {
				t.Fatalf("%s line %d: %s", name, i, l.Raw)
			}
			a, err := os.ReadFile(filepath.Join(out, "crates", name, name+"-"+l.Vers+".crate"))
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(a)
			if hex.EncodeToString(sum[:]) != l.Cksum {
				t.Fatalf("%s %s: the cksum is not the archive's sha256", name, l.Vers)
			}
			if _, err := registry.ParseCrate(a, 0); err != nil {
				t.Fatalf("%s %s: %v", name, l.Vers, err)
			}
		}
	}
	alpha, _ := os.ReadFile(filepath.Join(out, "index", "al", "ph", "alpha"))
	for _, want := range []string{`"name":"beta","req":"0.2"`, `"optional":true`, `"features2":{"with-beta":["dep:beta"]}`, `"v":2`, `"rust_version":"1.60"`, `"std":[]`} {
		if !strings.Contains(string(alpha), want) {
			t.Errorf("alpha's line lacks %s: %s", want, alpha)
		}
	}
	a, _ := os.ReadFile(filepath.Join(out, "crates", "alpha", "alpha-1.0.0.crate"))
	files := archivePaths(t, a)
	if _, ok := files[".cargo-checksum.json"]; ok {
		t.Error("the archive holds the directory source's .cargo-checksum.json")
	}
	if files["src/nested/deep/file.rs"] != "// deep\n" {
		t.Errorf("alpha's archive: %v", files)
	}
	evil, _ := os.ReadFile(filepath.Join(out, "crates", "evil", "evil-1.0.0.crate"))
	if f := archivePaths(t, evil); f["src/secret.rs"] != "" || bytes.Contains(evil, []byte("secret")) && len(f) != 2 {
		t.Fatalf("a link out of the source was followed: %v", f)
	}
	beta, _ := os.ReadFile(filepath.Join(out, "crates", "beta", "beta-0.2.0.crate"))
	if f := archivePaths(t, beta); f["src/alias.rs"] != "pub fn b() {}\n" {
		t.Fatalf("a link inside the crate was not followed: %v", f)
	}

	// The same source gives the same bytes.
	again := filepath.Join(t.TempDir(), "again")
	if _, _, err := build(src, again, "http://127.0.0.1:9999", map[string]bool{"alpha": true}); err != nil {
		t.Fatal(err)
	}
	a2, _ := os.ReadFile(filepath.Join(again, "crates", "alpha", "alpha-1.0.0.crate"))
	if !bytes.Equal(a, a2) {
		t.Fatal("building twice gave different archives")
	}
	if _, err := os.Stat(filepath.Join(again, "crates", "beta")); !os.IsNotExist(err) {
		t.Fatal("-only alpha wrote beta")
	}
}
