package testkit

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"testing"

	registry "github.com/wasmrust/wasm-crates-registry"
)

func entries(t *testing.T, b []byte) []*tar.Header {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var hs []*tar.Header
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return hs
		}
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
}

// TestCrateIsDeterministicAndParses: the same arguments give the same
// bytes; entries are sorted under name-version/ with the epoch as mtime;
// the default manifest carries the extra lines and the registry parses it.
func TestCrateIsDeterministicAndParses(t *testing.T) {
	files := map[string]string{"src/lib.rs": "pub fn f() {}\n", "README.md": "hi\n", "a/b.rs": ""}
	a := Crate("kitcrate", "1.2.3", files, Description("a kit crate"), ManifestLines(`license = "MIT"`))
	b := Crate("kitcrate", "1.2.3", files, Description("a kit crate"), ManifestLines(`license = "MIT"`))
	if !bytes.Equal(a, b) {
		t.Fatal("two builds of the same crate differ")
	}
	var names []string
	for _, h := range entries(t, a) {
		names = append(names, h.Name)
		if !h.ModTime.Equal(epoch) || h.Typeflag != tar.TypeReg || h.Mode != 0o644 {
			t.Errorf("%s: mtime %v type %c mode %o", h.Name, h.ModTime, h.Typeflag, h.Mode)
		}
	}
	want := []string{"kitcrate-1.2.3/Cargo.toml", "kitcrate-1.2.3/README.md", "kitcrate-1.2.3/a/b.rs", "kitcrate-1.2.3/src/lib.rs"}
	if len(names) != len(want) {
		t.Fatalf("entries %q, want %q", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("entries %q, want %q", names, want)
		}
	}
	body, err := registry.ParseCrate(a, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if body.Name != "kitcrate" || body.Version != "1.2.3" || body.Description != "a kit crate" || body.License != "MIT" {
		t.Fatalf("parsed %+v", body)
	}
}

// TestCrateKeepsAGivenManifest: a Cargo.toml in files is written as given
// and the manifest options are ignored.
func TestCrateKeepsAGivenManifest(t *testing.T) {
	m := "[package]\nname = \"given\"\nversion = \"0.1.0\"\ndescription = \"given\"\n"
	body, err := registry.ParseCrate(Crate("given", "0.1.0", map[string]string{"Cargo.toml": m}, Description("option")), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if body.Description != "given" {
		t.Fatalf("description %q, want the given manifest's", body.Description)
	}
}

// TestKeyIsFixed: a seed always gives the same key, and different seeds
// different keys.
func TestKeyIsFixed(t *testing.T) {
	if !Key(1).Public().Equal(Key(1).Public()) {
		t.Fatal("Key(1) changed between calls")
	}
	if Key(1).Public().Equal(Key(2).Public()) {
		t.Fatal("Key(1) and Key(2) are the same key")
	}
}
