package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	registry "github.com/wasmrust/wasm-crates-registry"
)

func writeTree(t *testing.T, files map[string]string) string {
	dir := t.TempDir()
	for p, body := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func archiveFiles(t *testing.T, b []byte) []string {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var out []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, h.Name)
	}
	return out
}

func TestPackHonoursExcludeAndSkipsBuildOutput(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"Cargo.toml":          "[package]\nname = \"p\"\nversion = \"0.1.0\"\nexclude = [\"*.png\", \"/docs\", \"benches/**/big.bin\"]\n",
		"src/lib.rs":          "",
		"src/img.png":         "x",
		"docs/guide.md":       "x",
		"benches/a/big.bin":   "x",
		"benches/a/small.rs":  "x",
		"target/debug/out":    "x",
		".git/HEAD":           "x",
		"sub/Cargo.toml":      "[package]\nname = \"sub\"\nversion = \"0.1.0\"\n",
		"sub/src/lib.rs":      "",
		"nested/docs/keep.md": "x",
		"README.md":           "x",
	})
	b, rel, err := packCrate(filepath.Join(dir, "Cargo.toml"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"p-0.1.0/Cargo.toml", "p-0.1.0/README.md", "p-0.1.0/benches/a/small.rs", "p-0.1.0/nested/docs/keep.md", "p-0.1.0/src/lib.rs"}
	if got := archiveFiles(t, b); !slices.Equal(got, want) {
		t.Fatalf("files %v, want %v", got, want)
	}
	if rel.Name != "p" || rel.Cksum != registry.Sum(b).Hex() {
		t.Fatalf("release: %+v", rel)
	}
	// Packing is deterministic, so re-submitting an unchanged crate is idempotent.
	again, _, err := packCrate(filepath.Join(dir, "Cargo.toml"), 1<<20)
	if err != nil || !bytes.Equal(again, b) {
		t.Fatal("packing the same directory twice gave different bytes")
	}
}

func TestPackHonoursInclude(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"Cargo.toml":  "[package]\nname = \"p\"\nversion = \"0.1.0\"\ninclude = [\"src/**/*.rs\", \"LICENSE\"]\n",
		"src/lib.rs":  "",
		"src/a/b.rs":  "",
		"src/a/b.txt": "",
		"LICENSE":     "",
		"README.md":   "",
	})
	b, _, err := packCrate(filepath.Join(dir, "Cargo.toml"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"p-0.1.0/Cargo.toml", "p-0.1.0/LICENSE", "p-0.1.0/src/a/b.rs", "p-0.1.0/src/lib.rs"}
	if got := archiveFiles(t, b); !slices.Equal(got, want) {
		t.Fatalf("files %v, want %v", got, want)
	}
}

func TestPackRefusesInvalidManifests(t *testing.T) {
	for name, manifest := range map[string]string{
		"workspace-version": "[package]\nname = \"p\"\nversion.workspace = true\n",
		"bad-version":       "[package]\nname = \"p\"\nversion = \"1\"\n",
		"path-dependency":   "[package]\nname = \"p\"\nversion = \"1.0.0\"\n[dependencies]\nq = { path = \"../q\" }\n",
	} {
		dir := writeTree(t, map[string]string{"Cargo.toml": manifest, "src/lib.rs": ""})
		if _, _, err := packCrate(filepath.Join(dir, "Cargo.toml"), 1<<20); err == nil {
			t.Errorf("%s: packed", name)
		}
	}
}

func TestCLIUsageErrorsExitTwo(t *testing.T) {
	for _, args := range [][]string{
		{"wcr", "nosuchflag-cmd", "--bogus"},
		{"wcr", "list", "--limit", "0"},
		{"wcr", "show"},
		{"wcr", "--api", "ftp://x", "health"},
	} {
		if code := runApp(args); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
	if code := runApp([]string{"wcr", "--api", "http://127.0.0.1:1", "--timeout", "2s", "health"}); code != exitFailure {
		t.Errorf("unreachable node: exit %d, want %d", code, exitFailure)
	}
}

// A failing `cargo package` is reported in one line, with cargo's error.
func TestCargoPackageFailureIsOneLine(t *testing.T) {
	if _, err := exec.LookPath("cargo"); err != nil {
		t.Skip("SKIPPING: no cargo on PATH")
	}
	dir := writeTree(t, map[string]string{
		"Cargo.toml": "[package]\nname = \"p\"\nversion = \"0.1.0\"\n[dependencies]\nnot-a-packaged-crate-anywhere = \"1\"\n",
		"src/lib.rs": "",
	})
	t.Setenv("CARGO_NET_OFFLINE", "true")
	t.Setenv("CARGO_HOME", t.TempDir())
	_, err := cargoPackage(filepath.Join(dir, "Cargo.toml"))
	if err == nil {
		t.Fatal("cargo package of a crate with an unresolvable dependency succeeded")
	}
	if msg := err.Error(); strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "cargo package failed: ") || !strings.Contains(msg, "not-a-packaged-crate-anywhere") {
		t.Fatalf("error %q is not one line with cargo's reason", msg)
	}
}
