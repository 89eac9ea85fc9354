package pipeline

import (
	"context"
	"log/slog"
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

// An unpacked store crate is reused only while it matches the digest taken
// when it was unpacked: one changed behind the node's back is unpacked
// again from the verified archive.
func TestTamperedStoreCrateUnpackedAgain(t *testing.T) {
	p := testPipeline(t)
	src := t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, "src"), 0o755); err != nil {
		t.Fatal(err)
	}
	lib := "pub fn honest() -> u32 { 1 }\n"
	_ = os.WriteFile(filepath.Join(src, "Cargo.toml"), []byte("[package]\nname = \"wcr-fx-tamper\"\nversion = \"0.1.0\"\n"), 0o644)
	_ = os.WriteFile(filepath.Join(src, "src", "lib.rs"), []byte(lib), 0o644)
	reg := newMemRegistry()
	rb := reg.add(t, packDir(t, src), "")
	job := &Job{Body: &registry.ReleaseBody{Name: "x", Version: "0.0.0"}, Local: reg}
	cached := filepath.Join(p.cfg.CacheDir, "crates", rb.Cksum, "src", "lib.rs")
	materialise := func() {
		t.Helper()
		dir := t.TempDir()
		if _, _, err := p.materialise(context.Background(), job, filepath.Join(dir, "vendor"), filepath.Join(dir, "home"), false); err != nil {
			t.Fatal(err)
		}
	}
	materialise()
	if err := os.WriteFile(cached, []byte("pub fn honest() -> u32 { 666 }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A new process has verified nothing yet.
	p.cratesMu.Lock()
	delete(p.crates, rb.Cksum)
	p.cratesMu.Unlock()
	materialise()
	if b, _ := os.ReadFile(cached); string(b) != lib {
		t.Errorf("the tampered copy was used: %q", b)
	}
	if reg.blobHits != 2 {
		t.Errorf("blob fetched %d times, want twice (once more after the tampering)", reg.blobHits)
	}
}

// The compilation cache keeps only what the node hashed: a file planted in
// it, or an entry changed after it was adopted, is removed before a runner
// mounts the cache, and again when the node starts.
func TestCompilationCacheVerified(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	c, err := openWasmCache(filepath.Join(dir, "wazero"), filepath.Join(dir, "wazero.manifest"), log)
	if err != nil {
		t.Fatal(err)
	}
	stage := filepath.Join(dir, "stage")
	if err := c.stage(stage); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(stage, "wazero-v1-amd64-linux")
	_ = os.MkdirAll(sub, 0o755)
	for _, f := range []string{"aaaa", "bbbb", "cccc"} {
		if err := os.WriteFile(filepath.Join(sub, f), []byte("compiled "+f), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_ = os.WriteFile(filepath.Join(sub, "dddd.123.tmp"), []byte("partial"), 0o600)
	_ = os.Symlink("/etc/passwd", filepath.Join(sub, "eeee"))
	if err := c.adopt(stage); err != nil {
		t.Fatal(err)
	}
	shared := filepath.Join(c.dir, "wazero-v1-amd64-linux")
	ents, _ := os.ReadDir(shared)
	if len(ents) != 3 {
		t.Fatalf("adopted %d entries, want the 3 regular files", len(ents))
	}
	if fi, _ := os.Stat(filepath.Join(shared, "aaaa")); fi.Mode().Perm() != 0o644 {
		t.Errorf("adopted entry mode %v", fi.Mode())
	}
	if fi, _ := os.Stat(c.manifest); fi.Mode().Perm() != 0o600 {
		t.Errorf("manifest mode %v", fi.Mode())
	}
	// A second staging area links to what is cached.
	stage2 := filepath.Join(dir, "stage2")
	if err := c.stage(stage2); err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(filepath.Join(stage2, "wazero-v1-amd64-linux", "aaaa")); err != nil || target != filepath.Join(shared, "aaaa") {
		t.Errorf("staged link %q %v", target, err)
	}
	// Tamper: change one entry (same size), plant another, replace one by a link.
	if err := os.WriteFile(filepath.Join(shared, "aaaa"), []byte("evilledd aaaa"), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(shared, "ffff"), []byte("planted"), 0o644)
	_ = os.Remove(filepath.Join(shared, "bbbb"))
	_ = os.Symlink("/etc/passwd", filepath.Join(shared, "bbbb"))
	if err := c.verify(); err != nil {
		t.Fatal(err)
	}
	ents, _ = os.ReadDir(shared)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != "cccc" {
		t.Errorf("after verify the cache holds %v; want only the untouched cccc", names)
	}
	// On start-up the manifest is checked again, file by file.
	_ = os.WriteFile(filepath.Join(shared, "cccc"), []byte("changed cccc"), 0o644)
	_ = os.WriteFile(filepath.Join(shared, "gggg"), []byte("planted"), 0o644)
	c2, err := openWasmCache(c.dir, c.manifest, log)
	if err != nil {
		t.Fatal(err)
	}
	if ents, _ = os.ReadDir(shared); len(ents) != 0 || len(c2.files) != 0 {
		t.Errorf("after a restart the cache holds %d files, the manifest %d; want none", len(ents), len(c2.files))
	}
}
