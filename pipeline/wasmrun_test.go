package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	registry "github.com/wasmrust/wasm-crates-registry"
)

// canary is a host secret and a fake node data directory at fixed paths,
// which the hostile fixtures name: /tmp/wcr-canary/secret and
// /tmp/wcr-canary/data/{node.key,admin-token}, each with random content.
type canary struct {
	dir     string
	secrets []string
	files   []string // relative paths, sorted
}

var (
	canaryOnce sync.Once
	theCanary  *canary
	canaryErr  error
)

// plantCanary plants the canary once per test process.
func plantCanary(t *testing.T) *canary {
	t.Helper()
	canaryOnce.Do(func() { theCanary, canaryErr = newCanary() })
	if canaryErr != nil {
		t.Fatal(canaryErr)
	}
	return theCanary
}

func newCanary() (*canary, error) {
	c := &canary{dir: "/tmp/wcr-canary"}
	if err := os.RemoveAll(c.dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(c.dir, "data"), 0o755); err != nil {
		return nil, err
	}
	for _, rel := range []string{"data/admin-token", "data/node.key", "secret"} {
		b := make([]byte, 24)
		_, _ = rand.Read(b)
		s := "wcr-canary-" + hex.EncodeToString(b)
		// Readable by everyone: only the runner's confinement and the
		// sandbox keep them from the tests.
		if err := os.WriteFile(filepath.Join(c.dir, rel), []byte(s), 0o644); err != nil {
			return nil, err
		}
		c.secrets = append(c.secrets, s)
		c.files = append(c.files, rel)
	}
	return c, nil
}

// check fails when text holds a secret.
func (c *canary) check(t *testing.T, what, text string) {
	t.Helper()
	for _, s := range c.secrets {
		if strings.Contains(text, s) {
			t.Errorf("a canary secret appears in the %s", what)
		}
	}
}

// unchanged fails when anything was added to or removed from the canary
// directory.
func (c *canary) unchanged(t *testing.T) {
	t.Helper()
	var got []string
	_ = filepath.WalkDir(c.dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(c.dir, p)
			got = append(got, rel)
		}
		return nil
	})
	slices.Sort(got)
	if !slices.Equal(got, c.files) {
		t.Errorf("the canary directory holds %v; want only %v (something was written outside the test's directory)", got, c.files)
	}
}

// A wasm test that plants relative and absolute links, walks up with "..",
// opens absolute paths and writes through links reads nothing of the host
// and writes nothing outside its own fresh directory: every attempt fails
// inside the guest (each hostile test passes), no secret reaches the
// report, the signed record or the log, and the host's files are as they
// were.
func TestWasmTestsCannotLeaveTheirDirectory(t *testing.T) {
	t.Parallel()
	c := plantCanary(t)
	fr := runFixture(t, fixtureDir("wasmescape"))
	b := fr.body
	wasm := targetOf(t, b, TargetWasip1)
	wantCounts(t, wasm, 6, 0, 0, 0, 0)
	for _, name := range []string{"relative_links_out", "absolute_links_out", "dotdot_and_absolute_paths", "writes_stay_inside", "own_directory_is_fresh_and_works"} {
		if tc := testOf(t, b, "lib::escape::"+name); tc.Wasm != registry.TestPassed {
			t.Errorf("%s: %+v", name, tc)
		}
	}
	report, _ := json.Marshal(b)
	if strings.Contains(string(report), "ESCAPED") || strings.Contains(string(report), "root:x:0:0") {
		t.Errorf("a guest read outside its directory:\n%s", logsText(b))
	}
	c.check(t, "report", string(report))
	rec, err := registry.Sign(key(t), registry.KindReport, "wcr-fx-wasmescape@0.1.0", b, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c.check(t, "signed record", string(rec.Bytes()))
	c.check(t, "pipeline's log", pipelineLog.String())
	c.unchanged(t)
}

// The guest filesystem itself, without cargo: links cannot be made, ".."
// and absolute paths stay inside the root, and a link that exists in the
// root anyway is not followed by an open.
func TestConfinedFS(t *testing.T) {
	t.Parallel()
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("outside"), 0o644); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(outside, "a", "b", "root")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	cfs := newConfinedFS(root)
	if e := cfs.Symlink("../../../secret", "l"); e != experimentalsys.EPERM {
		t.Errorf("Symlink: %v, want EPERM", e)
	}
	if _, err := os.Lstat(filepath.Join(root, "l")); err == nil {
		t.Error("a link was created")
	}
	for _, p := range []string{"../../../secret", "/../../../secret", "a/../../../../secret", filepath.Join(outside, "secret"), "..\x00/secret"} {
		if f, e := cfs.OpenFile(p, experimentalsys.O_RDONLY, 0); e == 0 {
			f.Close()
			t.Errorf("OpenFile(%q) opened a file outside the root", p)
		}
	}
	if e := cfs.Mkdir("../../escaped", 0o755); e != 0 {
		t.Fatalf("Mkdir: %v", e)
	}
	if _, err := os.Stat(filepath.Join(root, "escaped")); err != nil {
		t.Errorf("Mkdir(../../escaped) did not stay inside the root: %v", err)
	}
	if _, err := os.Stat(filepath.Join(outside, "a", "escaped")); err == nil {
		t.Error("Mkdir(../../escaped) created a directory outside the root")
	}
	if e := cfs.Rename("escaped", "../../../moved"); e != 0 {
		t.Fatalf("Rename: %v", e)
	}
	if _, err := os.Stat(filepath.Join(root, "moved")); err != nil {
		t.Errorf("Rename did not stay inside the root: %v", err)
	}
	// A link planted from outside is not followed when opened.
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(root, "planted")); err != nil {
		t.Fatal(err)
	}
	if f, e := cfs.OpenFile("planted", experimentalsys.O_RDONLY, 0); e == 0 {
		f.Close()
		t.Error("an open followed a link out of the root")
	}
}

func init() {
	// probe-node tries, from inside the sandbox as the runner does, to
	// read the node's files and the pipeline's private ones, and to write
	// the compilation cache. It prints what worked.
	registerHelper("test-probe-node", func(args []string) int {
		var probes []string
		if !helperRequest(args, &probes) {
			return 2
		}
		got := []string{}
		for _, p := range probes {
			if strings.HasPrefix(p, "w:") {
				if err := os.WriteFile(p[2:], []byte("x"), 0o644); err == nil {
					got = append(got, p)
				}
				continue
			}
			if b, err := os.ReadFile(p); err == nil {
				got = append(got, p+"="+string(b))
			} else if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrPermission) && !errors.Is(err, syscall.EROFS) {
				got = append(got, p+": "+err.Error())
			}
		}
		return helperReply(got)
	})
}

// Defence in depth: what the wasm runner's sandbox sees. Even code that
// left the guest's directory finds no node data directory (the pipeline's
// private directory sits in it, as <data-dir>/pipeline does), cannot read
// the cache manifest and cannot write the compilation cache.
func TestRunnerSandboxSeesNothingOfTheNode(t *testing.T) {
	t.Parallel()
	p := testPipeline(t)
	c := plantCanary(t)
	data := filepath.Dir(p.cfg.Dir)
	// A data directory open to everyone: only the sandbox's view keeps
	// its files from the runner.
	if err := os.Chmod(data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"node.key", "admin-token"} {
		if err := os.WriteFile(filepath.Join(data, f), []byte(c.secrets[0]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	scratch := filepath.Join(p.cfg.WorkDir, "probe-"+t.Name())
	if err := os.Mkdir(scratch, 0o700); err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(scratch)
	if err := p.sb.prepareWritable(scratch); err != nil {
		t.Fatal(err)
	}
	probes := []string{
		filepath.Join(data, "node.key"), filepath.Join(data, "admin-token"),
		filepath.Join(c.dir, "secret"), filepath.Join(c.dir, "data", "node.key"),
		p.wcache.manifest,
		"w:" + filepath.Join(p.wcache.dir, "planted"),
		"w:" + filepath.Join(p.cfg.CacheDir, "crates", "planted"),
		"w:" + filepath.Join(c.dir, "planted"),
	}
	var got []string
	run, stderr, err := p.helper(context.Background(), p.sb, "test-probe-node", probes, nil, []string{scratch}, time.Minute, scratch, &got)
	if err != nil {
		t.Fatal(err)
	}
	if !run.ok() {
		t.Fatalf("probe: %s", runnerEnd(run, stderr))
	}
	if len(got) > 0 {
		t.Errorf("the runner's sandbox reached: %q", got)
	}
	c.unchanged(t)
}

// A wasm test that never ends is stopped at the per-test deadline inside
// the runner and counted as a timeout; the binary's other tests are still
// run and counted, and no runner process outlives the run.
func TestWasmTestNeverEndsLeavesNoProcess(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("waits for the per-test deadline twice")
	}
	b := runFixture(t, fixtureDir("hang")).body
	wantCounts(t, targetOf(t, b, TargetWasip1), 3, 0, 0, 1, 0)
	if c := testOf(t, b, "lib::tests::b_spins_forever"); c.Wasm != registry.TestTimeout {
		t.Errorf("spinning test: %+v", c)
	}
	if left := processesMentioning("wcr_fx_hang"); len(left) > 0 {
		t.Errorf("processes left behind: %q", left)
	}
}

// processesMentioning lists the command lines of this machine's processes
// that contain s.
func processesMentioning(s string) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), s) {
			out = append(out, e.Name()+": "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return out
}

// A runner's reply is bounded and checked like any input from guest code:
// unknown states fail, names stay under the binary's label, outputs are
// cut, and no more tests count as run than the budget allowed.
func TestRunnerReplySanitized(t *testing.T) {
	long := strings.Repeat("x", 100<<10)
	in := binaryRun{Label: "forged", ListError: long, Tests: []testRun{
		{Name: "lib::a", State: registry.TestPassed, Output: long},
		{Name: "other::b", State: "excellent"},
		{Name: "lib::c", State: registry.TestPassed},
		{Name: "lib::d", State: registry.TestIgnored},
		{Name: "lib::e", State: registry.TestFailed},
	}}
	out := sanitizeRun(in, "lib", 2)
	if out.Label != "lib" || len(out.ListError) > maxRunnerOutput+8 {
		t.Errorf("label %q, list error %d bytes", out.Label, len(out.ListError))
	}
	want := []struct{ name, state string }{
		{"lib::a", registry.TestPassed},
		{"lib::other::b", registry.TestFailed},
		{"lib::c", registry.TestPassed},
		{"lib::d", registry.TestIgnored},
		{"lib::e", registry.TestNotRun},
	}
	for i, w := range want {
		if out.Tests[i].Name != w.name || out.Tests[i].State != w.state {
			t.Errorf("test %d: %s %s; want %s %s", i, out.Tests[i].Name, out.Tests[i].State, w.name, w.state)
		}
		if len(out.Tests[i].Output) > maxRunnerOutput+8 {
			t.Errorf("test %d keeps %d bytes of output", i, len(out.Tests[i].Output))
		}
	}
	many := binaryRun{Tests: make([]testRun, maxRunnerTests+5)}
	for i := range many.Tests {
		many.Tests[i].State = registry.TestIgnored
	}
	if n := len(sanitizeRun(many, "lib", 10).Tests); n != maxRunnerTests {
		t.Errorf("%d tests kept, want %d", n, maxRunnerTests)
	}
}
