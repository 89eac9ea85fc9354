package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// A pipeline directory that someone else could have filled is refused at
// start-up with a sentence saying why and what to do; a missing one is
// created private.
func TestPlantedPipelineDirRefused(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	plant := func(name string) string {
		d := filepath.Join(base, name)
		if err := os.MkdirAll(filepath.Join(d, "cache", "wazero"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "cache", "wazero", "planted"), []byte("native code"), 0o644); err != nil {
			t.Fatal(err)
		}
		return d
	}
	other := plant("other-owner")
	if err := os.Chmod(other, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(other, sandboxUID, sandboxUID); err != nil {
		t.Fatal(err)
	}
	open := plant("open-mode")
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	groupOpen := plant("group-open")
	if err := os.Chmod(groupOpen, 0o750); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(open, link); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		dir  string
		want []string
	}{
		{other, []string{"is owned by uid 65534", "not by this node's user", "remove it"}},
		{open, []string{"has mode 0777", "open to other users", "remove it"}},
		{groupOpen, []string{"has mode 0750", "remove it"}},
		{link, []string{"is not a directory", "remove it"}},
	} {
		_, err := New(Config{Dir: c.dir, DirectorySources: []string{}})
		if err == nil {
			t.Errorf("%s: the pipeline started", c.dir)
			continue
		}
		if registry.KindOf(err) != registry.EINVALID {
			t.Errorf("%s: kind %v", c.dir, registry.KindOf(err))
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not say %q", c.dir, err, w)
			}
		}
		if !strings.Contains(err.Error(), c.dir) {
			t.Errorf("%q does not name the directory", err)
		}
		if _, err := os.Stat(filepath.Join(c.dir, "cache", "wazero", "planted")); err != nil {
			t.Errorf("%s: the refused directory was changed: %v", c.dir, err)
		}
	}
	fresh := filepath.Join(base, "data", "pipeline")
	if err := PrivateDir(fresh); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(fresh)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("fresh pipeline directory: %v %v; want mode 0700", fi.Mode(), err)
	}
	if err := PrivateDir(fresh); err != nil {
		t.Errorf("the node's own private directory is refused: %v", err)
	}
}

// The shared pipeline's directories, after runs: private where the node
// keeps its own state, readable where the sandbox binds them, and no work
// directory left behind.
func TestPipelineDirectoryModes(t *testing.T) {
	p := testPipeline(t)
	runFixture(t, fixtureDir("pure"))
	for _, c := range []struct {
		path string
		mode os.FileMode
	}{
		{p.cfg.Dir, 0o700},
		{p.cfg.WorkDir, 0o700},
		{p.cfg.CacheDir, 0o755},
		{p.wcache.manifest, 0o600},
	} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != c.mode {
			t.Errorf("%s: mode %#o, want %#o", c.path, fi.Mode().Perm(), c.mode)
		}
	}
	if ents, _ := os.ReadDir(p.cfg.WorkDir); len(ents) > 0 {
		t.Errorf("work directory holds %d entries after the runs ended; want none", len(ents))
	}
	if len(p.wcache.files) == 0 {
		t.Error("the compilation cache's manifest lists nothing after a wasm run")
	}
}

// A .crate that ships .cargo/config and .cargo/config.toml (rustflags that
// break the build, a source replacement pointing nowhere), and whose build
// script rewrites CARGO_HOME/config.toml and plants .cargo/config.toml
// wherever it can, builds and tests as if none of it existed: the crate's
// configuration is removed on unpacking, cargo runs from outside the crate
// with --manifest-path, and the job's cargo home keeps the node's
// config.toml out of the sandbox user's reach.
func TestCrateCargoConfigNeverApplies(t *testing.T) {
	t.Parallel()
	b := runFixture(t, fixtureDir("cargoconfig")).body
	if b.Outcome != registry.OutcomeTestPass {
		t.Fatalf("outcome %s (%s)\n%s", b.Outcome, b.Message, logsText(b))
	}
	wantCounts(t, targetOf(t, b, testPipeline(t).host), 1, 0, 0, 0, 0)
	wantCounts(t, targetOf(t, b, TargetWasip1), 1, 0, 0, 0, 0)
	if d := depOf(b, "itoa"); d == nil {
		t.Errorf("the dependency on itoa was not resolved from the configured sources: %+v", b.Deps)
	}
}

// Work directories that a killed node left behind are removed when the
// pipeline starts.
func TestStaleWorkSwept(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "pipeline")
	if err := PrivateDir(dir); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, "work", "job-123", "tc0", "target")
	if err := os.MkdirAll(stale, 0o755); err != nil {
		t.Fatal(err)
	}
	p, err := New(Config{Dir: dir, DirectorySources: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := os.Stat(filepath.Join(dir, "work", "job-123")); err == nil {
		t.Error("a stale job directory survived the start")
	}
}

// A release in the store never shadows a configured directory source's
// copy of the same name@version: the directory's copy is the one Cargo
// sees, and the store only adds what the directories lack.
func TestDirectorySourcesWinOverStoreReleases(t *testing.T) {
	t.Parallel()
	p := testPipeline(t)
	dir := t.TempDir()
	fake := filepath.Join(dir, "fake-itoa")
	if err := os.MkdirAll(filepath.Join(fake, "src"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(fake, "Cargo.toml"), []byte("[package]\nname = \"itoa\"\nversion = \"1.0.1\"\nedition = \"2018\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(fake, "src", "lib.rs"), []byte("compile_error!(\"a shadowing release\");\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	reg := newMemRegistry()
	reg.add(t, packDir(t, fake), "")
	reg.add(t, packDir(t, fixtureDir("cdep-sys")), "")
	job := &Job{Body: &registry.ReleaseBody{Name: "x", Version: "0.0.0"}, Local: reg}
	idx, _, err := p.materialise(context.Background(), job, filepath.Join(dir, "vendor"), filepath.Join(dir, "home"), false)
	if err != nil {
		t.Fatal(err)
	}
	if idx["itoa@1.0.1"] != sourceDirectory {
		t.Errorf("itoa@1.0.1 comes from %q, want the directory source", idx["itoa@1.0.1"])
	}
	if target, err := os.Readlink(filepath.Join(dir, "vendor", "itoa-1.0.1")); err != nil || target != filepath.Join(DebianRegistry, "itoa-1.0.1") {
		t.Errorf("vendor/itoa-1.0.1 -> %q (%v), want Debian's copy", target, err)
	}
	if idx["wcr-fx-cdep-sys@0.1.0"] != sourceRegistry {
		t.Errorf("a release the directories lack is not offered from the store: %v", idx["wcr-fx-cdep-sys@0.1.0"])
	}
}
