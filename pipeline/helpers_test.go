package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/internal/testkit"
)

// packDir archives a crate directory as a .crate: a gzip'd tar whose
// entries live under "name-version/". Cargo's own metadata files from a
// directory source (.cargo-checksum.json) and VCS files are left out.
func packDir(t testing.TB, dir string) []byte {
	t.Helper()
	manifest, err := os.ReadFile(filepath.Join(dir, "Cargo.toml"))
	if err != nil {
		t.Fatal(err)
	}
	rel, err := registry.ParseManifest(manifest)
	if err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	files := map[string]string{}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() && (name == "target" || name == ".git" || name == "debian") && p != dir {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() && name != ".cargo-checksum.json" && name != "Cargo.lock" {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			r, _ := filepath.Rel(dir, p)
			files[filepath.ToSlash(r)] = string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return testkit.Crate(rel.Name, rel.Version, files)
}

// key is the fixed key the pipeline's tests sign with.
func key(t testing.TB) registry.PrivateKey { return testkit.Key(7) }

// release makes a signed release record for a .crate archive.
func release(t testing.TB, crate []byte) (*registry.Record, *registry.ReleaseBody) {
	t.Helper()
	rb, err := registry.ParseCrate(crate, 0)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := registry.Sign(key(t), registry.KindRelease, registry.ReleaseSubject(rb.Name, rb.Version), rb, time.Unix(1_700_000_000, 0))
	if err != nil {
		t.Fatal(err)
	}
	return rec, rb
}

// memRegistry is a LocalRegistry over releases held in memory: the same
// interface the node's store implements, without Badger.
type memRegistry struct {
	mu       sync.Mutex
	releases []*registry.ReleaseBody
	blobs    map[registry.ID][]byte
	verdicts map[string]string
	blobHits int
}

func newMemRegistry() *memRegistry {
	return &memRegistry{blobs: map[registry.ID][]byte{}, verdicts: map[string]string{}}
}

func (m *memRegistry) add(t testing.TB, crate []byte, verdict string) *registry.ReleaseBody {
	_, rb := release(t, crate)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.releases = append(m.releases, rb)
	m.blobs[rb.BlobID()] = crate
	if verdict != "" {
		m.verdicts[rb.Name+"@"+rb.Version] = verdict
	}
	return rb
}

func (m *memRegistry) Releases(context.Context) ([]*registry.ReleaseBody, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.releases), nil
}

func (m *memRegistry) Blob(_ context.Context, id registry.ID) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.blobs[id]
	if !ok {
		return nil, registry.Errorf("memRegistry.Blob", registry.ENOTFOUND, "no blob %s", id)
	}
	m.blobHits++
	return b, nil
}

func (m *memRegistry) Known(_ context.Context, name, version string) DepKnowledge {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, rb := range m.releases {
		if rb.Name == name && rb.Version == version {
			v := m.verdicts[name+"@"+version]
			if v == "" {
				v = registry.WasmUntested
			}
			return DepKnowledge{Held: true, Wasm: v}
		}
	}
	return DepKnowledge{Wasm: registry.WasmUntested}
}

var _ LocalRegistry = (*memRegistry)(nil)

// testLimits keep the fixtures fast: short per-test deadlines and small
// memory limits, so that the hanging and allocating fixtures end quickly.
func testLimits() Limits {
	return Limits{
		BuildTime:  5 * time.Minute,
		TestTime:   4 * time.Second,
		TestsTime:  3 * time.Minute,
		CPUTime:    10 * time.Minute,
		Memory:     4 << 30,
		TestMemory: 256 << 20,
		Processes:  256,
		Disk:       2 << 30,
		MaxTests:   500,
	}
}

// pipelineLog holds everything the shared pipeline logged, at every level,
// so that tests can check what never reaches a log.
var pipelineLog syncBuffer

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var (
	sharedOnce sync.Once
	sharedP    *Pipeline
	sharedErr  error
	sharedDir  string
)

// testPipeline is one Pipeline shared by the tests of this package, with
// its private directory (0700, as a node's) in a temporary directory
// removed by TestMain.
func testPipeline(t testing.TB) *Pipeline {
	t.Helper()
	sharedOnce.Do(func() {
		sharedDir, sharedErr = os.MkdirTemp("", "wcr-pipeline-test-")
		if sharedErr != nil {
			return
		}
		lvl := slog.LevelWarn
		if os.Getenv("WCR_PIPELINE_DEBUG") != "" {
			lvl = slog.LevelDebug
		}
		sharedP, sharedErr = New(Config{
			Dir:              filepath.Join(sharedDir, "pipeline"),
			DirectorySources: []string{DebianRegistry},
			Limits:           testLimits(),
			KeepWork:         os.Getenv("WCR_PIPELINE_KEEP") != "",
			Logger: slog.New(slog.NewMultiHandler(
				slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}),
				slog.NewTextHandler(&pipelineLog, &slog.HandlerOptions{Level: slog.LevelDebug}))),
		})
	})
	if sharedErr != nil {
		t.Fatalf("pipeline: %v", sharedErr)
	}
	for _, ts := range sharedP.Targets() {
		if (ts.Target == TargetWasip1 || ts.Target == TargetWasmUnknown) && ts.Toolchain == "" {
			t.Fatalf("no toolchain for %s on this machine: %s", ts.Target, ts.Install)
		}
	}
	return sharedP
}

func TestMain(m *testing.M) {
	MaybeRunHelper()
	addFixtureReleases()
	code := m.Run()
	if sharedP != nil {
		_ = sharedP.Close()
	}
	if sharedDir != "" && os.Getenv("WCR_PIPELINE_KEEP") == "" {
		_ = os.RemoveAll(sharedDir)
	}
	os.Exit(code)
}

// fixtureResult is one pipeline run, computed once and shared by the tests
// that look at it.
type fixtureResult struct {
	once   sync.Once
	body   *registry.ReportBody
	events []Event
	err    error
	took   time.Duration
	rec    *registry.Record
}

var (
	fixturesMu sync.Mutex
	fixtures   = map[string]*fixtureResult{}
	fixtureReg = newMemRegistry()
)

func fixtureDir(name string) string { return filepath.Join("testdata", "crates", name) }

func debianDir(t testing.TB, nameVersion string) string {
	d := filepath.Join(DebianRegistry, nameVersion)
	if _, err := os.Stat(filepath.Join(d, "Cargo.toml")); err != nil {
		t.Fatalf("%s is not installed: apt-get install librust-%s-dev", d, strings.Split(nameVersion, "-")[0])
	}
	return d
}

// runFixture runs the pipeline on the crate in dir once per test binary.
func runFixture(t *testing.T, dir string) *fixtureResult {
	t.Helper()
	p := testPipeline(t)
	fixturesMu.Lock()
	fr := fixtures[dir]
	if fr == nil {
		fr = &fixtureResult{}
		fixtures[dir] = fr
	}
	fixturesMu.Unlock()
	fr.once.Do(func() {
		crate := packDir(t, dir)
		rec, rb := release(t, crate)
		fr.rec = rec
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		start := time.Now()
		var mu sync.Mutex
		fr.body, fr.err = p.Run(ctx, Job{Release: rec, Body: rb, Crate: crate, Local: fixtureReg}, func(e Event) {
			mu.Lock()
			fr.events = append(fr.events, e)
			mu.Unlock()
		})
		fr.took = time.Since(start)
		t.Logf("%s: %s in %s", rb.Name, outcomeOf(fr), fr.took.Round(time.Millisecond))
		if os.Getenv("WCR_PIPELINE_DUMP") != "" && fr.body != nil {
			j, _ := json.MarshalIndent(fr.body, "", "  ")
			t.Logf("report:\n%s", j)
		}
	})
	if fr.err != nil {
		t.Fatalf("Run(%s): %v", dir, fr.err)
	}
	return fr
}

func outcomeOf(fr *fixtureResult) string {
	if fr.body == nil {
		return "error"
	}
	return fr.body.Outcome + "/" + fr.body.Wasm + "/" + fr.body.Gate
}

func targetOf(t *testing.T, b *registry.ReportBody, name string) *registry.TargetReport {
	t.Helper()
	for i := range b.Targets {
		if b.Targets[i].Target == name && !b.Targets[i].Extra {
			return &b.Targets[i]
		}
	}
	t.Fatalf("report has no target %s", name)
	return nil
}

func testOf(t *testing.T, b *registry.ReportBody, name string) registry.TestComparison {
	t.Helper()
	for _, c := range b.Tests {
		if c.Name == name {
			return c
		}
	}
	var names []string
	for _, c := range b.Tests {
		names = append(names, c.Name)
	}
	t.Fatalf("report has no test %q; it has %v", name, names)
	return registry.TestComparison{}
}

func depOf(b *registry.ReportBody, name string) *registry.DepReport {
	for i := range b.Deps {
		if b.Deps[i].Name == name {
			return &b.Deps[i]
		}
	}
	return nil
}

func logsText(b *registry.ReportBody) string {
	var s strings.Builder
	for _, l := range b.Logs {
		s.WriteString(l.Step + " " + l.Target + "\n" + l.Text + "\n")
	}
	return s.String()
}

// wantCounts checks a target's test counts exactly.
func wantCounts(t *testing.T, tr *registry.TargetReport, passed, failed, ignored, timeout, oom uint64) {
	t.Helper()
	if tr.Tests == nil {
		t.Fatalf("%s: no test counts (outcome %s: %s)", tr.Target, tr.Outcome, tr.Message)
	}
	c := *tr.Tests
	if c.Passed != passed || c.Failed != failed || c.Ignored != ignored || c.Timeout != timeout || c.OOM != oom {
		t.Errorf("%s: counts passed=%d failed=%d ignored=%d timeout=%d oom=%d; want %d %d %d %d %d",
			tr.Target, c.Passed, c.Failed, c.Ignored, c.Timeout, c.OOM, passed, failed, ignored, timeout, oom)
	}
}

// addFixtureReleases fills the registry the fixtures resolve against. It
// runs from TestMain, after MaybeRunHelper: a helper process runs in the
// sandbox, where the package's testdata is not there to read.
func addFixtureReleases() {
	// The C-dependency fixture's -sys crate is offered by the registry, and
	// the registry already knows it is incompatible with wasm.
	fixtureReg.add(nopT{}, packDirMust(fixtureDir("cdep-sys")), registry.WasmIncompatible)
}

type nopT struct{ testing.TB }

func (nopT) Helper()                           {}
func (nopT) Fatal(args ...any)                 { panic(args) }
func (nopT) Fatalf(format string, args ...any) { panic(format) }

func packDirMust(dir string) []byte { return packDir(nopT{}, dir) }
