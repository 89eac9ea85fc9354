package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/internal/testkit"
)

// The end-to-end tests build the real daemon and CLI binaries and drive
// them as a user would: a daemon on a free loopback port with a temp data
// directory, and CLI commands against it. Run with -race, they build the
// binaries with -race and fail on any data race a daemon reports.

func TestMain(m *testing.M) {
	code := m.Run()
	testkit.RemoveBinaries()
	os.Exit(code)
}

// daemonBin and cliBin build the binaries once per test binary (with -race
// under the race detector) and return their paths.
func daemonBin(t testing.TB) string { return testkit.Binary(t, testkit.DaemonPkg) }
func cliBin(t testing.TB) string    { return testkit.Binary(t, testkit.CLIPkg) }

// daemon is a running wasm-crates-registry process (see testkit.Daemon),
// with the fields the tests of this package read.
type daemon struct {
	*testkit.Daemon
	t       *testing.T
	cmd     *exec.Cmd
	dataDir string
	url     string
	logs    *testkit.LockedBuffer
}

// startDaemon starts the daemon with a data dir and extra arguments and
// waits until it prints its API address; it is killed when the test ends.
func startDaemon(t *testing.T, dataDir string, args ...string) *daemon {
	t.Helper()
	return startDaemonUnder(t, nil, dataDir, args...)
}

// startDaemonUnder is startDaemon with the daemon's command line appended to
// wrapper (a tracer, say); d.cmd is then the wrapper's process.
func startDaemonUnder(t *testing.T, wrapper []string, dataDir string, args ...string) *daemon {
	t.Helper()
	td := testkit.StartDaemonUnder(t, wrapper, daemonBin(t), dataDir, args...)
	return &daemon{Daemon: td, t: t, cmd: td.Cmd, dataDir: td.DataDir, url: td.URL, logs: td.Logs}
}

func (d *daemon) kill() { d.Kill() }
func (d *daemon) stop() { d.Stop() }

// cli runs the CLI against d and returns stdout, stderr and the exit code.
func (d *daemon) cli(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(cliBin(t), append([]string{"--api", d.url, "--data-dir", d.dataDir}, args...)...)
	cmd.Env = append(os.Environ(), "REGISTRY_TOKEN=", "REGISTRY_URL=")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func (d *daemon) mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := d.cli(t, args...)
	if code != 0 {
		t.Fatalf("cli %v: exit %d\nstdout: %s\nstderr: %s", args, code, out, errOut)
	}
	return out
}

func (d *daemon) cliJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	out := d.mustCLI(t, append([]string{"--json"}, args...)...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("cli %v: not JSON: %v\n%s", args, err, out)
	}
}

func repoRoot(t *testing.T) string {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

type releaseJSON struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Version string `json:"version"`
	Subject string `json:"subject"`
	Cksum   string `json:"cksum"`
	Yanked  bool   `json:"yanked"`
}

func TestEndToEndWithRealBinaries(t *testing.T) {
	d := startDaemon(t, filepath.Join(t.TempDir(), "data"), "--registry-name", "e2e-registry", "--pipeline=false")

	var h struct {
		Name    string `json:"name"`
		PeerID  string `json:"peer_id"`
		Records int    `json:"records"`
	}
	d.cliJSON(t, &h, "health")
	if h.Name != "e2e-registry" || !strings.HasPrefix(h.PeerID, "12D3Koo") || h.Records != 0 {
		t.Fatalf("health: %+v", h)
	}
	human := d.mustCLI(t, "health")
	if !strings.Contains(human, "e2e-registry") || !strings.Contains(human, h.PeerID) {
		t.Fatalf("health table:\n%s", human)
	}
	// The admin token was written with mode 0600.
	st, err := os.Stat(filepath.Join(d.dataDir, "admin-token"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("admin-token: %v %v", err, st.Mode())
	}

	// Submit the fixture crate from its directory, then again (idempotent).
	fixture := filepath.Join(repoRoot(t), "testdata", "crates", "wcr-fixture-add", "Cargo.toml")
	out := d.mustCLI(t, "submit", "--manifest", fixture)
	if !strings.Contains(out, "published wcr-fixture-add@0.1.0") {
		t.Fatalf("submit output: %s", out)
	}
	out = d.mustCLI(t, "submit", "--manifest", fixture)
	if !strings.Contains(out, "already published") {
		t.Fatalf("second submit is not idempotent: %s", out)
	}
	// The packaged archive honours exclude.
	var fx releaseJSON
	d.cliJSON(t, &fx, "show", "wcr-fixture-add@0.1.0")
	resp, err := http.Get(d.url + "/crates/wcr-fixture-add@0.1.0/download")
	if err != nil {
		t.Fatal(err)
	}
	archive, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	files := tarNames(t, archive)
	if !contains(files, "wcr-fixture-add-0.1.0/src/lib.rs") || contains(files, "wcr-fixture-add-0.1.0/notes/excluded.txt") {
		t.Fatalf("packaged files: %v", files)
	}
	if registry.Sum(archive).Hex() != fx.Cksum {
		t.Fatal("download does not match cksum")
	}

	// A real crate nobody here wrote, from Debian's registry.
	debian := "/usr/share/cargo/registry/itoa-1.0.1/Cargo.toml"
	if _, err := os.Stat(debian); err != nil {
		t.Fatalf("%s is missing: install librust-itoa-dev (make test does)", debian)
	}
	out = d.mustCLI(t, "submit", "--manifest", debian)
	if !strings.Contains(out, "published itoa@1.0.1") {
		t.Fatalf("submit itoa: %s", out)
	}

	// A different archive for the same version is refused with the existing ID.
	changed := t.TempDir()
	copyDir(t, filepath.Dir(fixture), changed)
	os.WriteFile(filepath.Join(changed, "src", "extra.rs"), []byte("// more\n"), 0o644)
	_, errOut, code := d.cli(t, "submit", "--manifest", filepath.Join(changed, "Cargo.toml"))
	if code == 0 || !strings.Contains(errOut, "already exists as release "+fx.ID) || strings.Count(strings.TrimSpace(errOut), "\n") != 1 {
		t.Fatalf("conflicting submit: exit %d, stderr %q", code, errOut)
	}

	// list, search, show.
	var page struct {
		Crates []releaseJSON `json:"crates"`
	}
	d.cliJSON(t, &page, "list")
	if len(page.Crates) != 2 || page.Crates[0].Name != "itoa" || page.Crates[1].Name != "wcr-fixture-add" {
		t.Fatalf("list: %+v", page)
	}
	table := d.mustCLI(t, "list")
	if !strings.Contains(table, "NAME") || !strings.Contains(table, "itoa") || !strings.Contains(table, "untested") {
		t.Fatalf("list table:\n%s", table)
	}
	d.cliJSON(t, &page, "search", "integer")
	if len(page.Crates) != 1 || page.Crates[0].Name != "itoa" {
		t.Fatalf("search: %+v", page)
	}
	show := d.mustCLI(t, "show", "itoa@1.0.1")
	if !strings.Contains(show, "Fast integer primitive") || !strings.Contains(show, "MIT OR Apache-2.0") {
		t.Fatalf("show:\n%s", show)
	}

	// yank / unyank, by name@version and by record ID.
	if out := d.mustCLI(t, "yank", "--reason", "testing", "itoa@1.0.1"); !strings.Contains(out, "itoa@1.0.1 is yanked") {
		t.Fatalf("yank: %s", out)
	}
	d.cliJSON(t, &page, "list", "--yanked", "true")
	if len(page.Crates) != 1 || page.Crates[0].Name != "itoa" {
		t.Fatalf("yanked list: %+v", page)
	}
	var itoa releaseJSON
	d.cliJSON(t, &itoa, "show", "itoa@1.0.1")
	if out := d.mustCLI(t, "unyank", itoa.ID); !strings.Contains(out, "not yanked") {
		t.Fatalf("unyank: %s", out)
	}

	// config show / set.
	d.mustCLI(t, "config", "set", "gates.curated_min_score", "75")
	d.mustCLI(t, "config", "set", "name", "renamed")
	cfg := d.mustCLI(t, "config")
	if !strings.Contains(cfg, "renamed") || !strings.Contains(cfg, "75") {
		t.Fatalf("config:\n%s", cfg)
	}
	if _, errOut, code := d.cli(t, "config", "set", "gates.curated_min_score", "500"); code == 0 || !strings.Contains(errOut, "0 to 100") {
		t.Fatalf("invalid setting: exit %d %q", code, errOut)
	}
	if _, errOut, code := d.cli(t, "config", "set", "colour", "blue"); code != 2 || !strings.Contains(errOut, "not a setting") {
		t.Fatalf("unknown setting: exit %d %q", code, errOut)
	}

	// Failures: one line, non-zero exit.
	for _, args := range [][]string{{"show", "nope@1.0.0"}, {"show", "not a valid id"}, {"submit"}, {"yank"}} {
		_, errOut, code := d.cli(t, args...)
		if code == 0 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.HasPrefix(errOut, "error: ") {
			t.Errorf("cli %v: exit %d, stderr %q", args, code, errOut)
		}
	}
	// Writes without a token are refused.
	cmd := exec.Command(cliBin(t), "--api", d.url, "--data-dir", t.TempDir(), "yank", "itoa@1.0.1")
	cmd.Env = append(os.Environ(), "REGISTRY_TOKEN=")
	if b, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(b), "needs a token") {
		t.Fatalf("tokenless yank: %v %s", err, b)
	}

	// The daemon restarts on the same data: same identity, same records.
	var before struct {
		Digest  string `json:"digest"`
		Records int    `json:"records"`
	}
	d.cliJSON(t, &before, "state")
	d.stop()
	d2 := startDaemon(t, d.dataDir, "--pipeline=false")
	var after struct {
		Digest  string `json:"digest"`
		Records int    `json:"records"`
		PeerID  string `json:"peer_id"`
	}
	d2.cliJSON(t, &after, "state")
	var h2 struct {
		PeerID string `json:"peer_id"`
		Name   string `json:"name"`
	}
	d2.cliJSON(t, &h2, "health")
	if after.Digest != before.Digest || after.Records != before.Records || h2.PeerID != h.PeerID || h2.Name != "renamed" {
		t.Fatalf("after restart: %+v %+v, want %+v and peer %s", after, h2, before, h.PeerID)
	}
}

func TestBadDatabaseURLsAreExplained(t *testing.T) {
	for _, u := range []string{"sqlite:registry.db", "postgres://user@localhost/db", "badger://"} {
		cmd := exec.Command(daemonBin(t), "--port", "0")
		cmd.Env = append(os.Environ(), "DATABASE_URL="+u)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "badger://PATH") || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 {
			t.Errorf("DATABASE_URL=%s: %v %q", u, err, out)
		}
	}
	out, err := exec.Command(daemonBin(t), "--help").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	for _, env := range []string{"DATABASE_URL", "HOST", "PORT", "REGISTRY_NAME", "MAX_CRATE_SIZE"} {
		if !strings.Contains(string(out), env) {
			t.Errorf("--help does not document %s", env)
		}
	}
}

// TestKillDashNineLosesNothingAcknowledged submits a burst of crates
// concurrently, kills the daemon with SIGKILL in the middle, restarts it and
// checks that every submission that was acknowledged (201) is there, intact
// and verifiable.
func TestKillDashNineLosesNothingAcknowledged(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	d := startDaemon(t, dataDir, "--pipeline=false")
	tok, err := os.ReadFile(filepath.Join(dataDir, "admin-token"))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tok))

	type ack struct {
		subject string
		cksum   string
		id      string
	}
	var mu sync.Mutex
	var acked []ack
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("burst-%d-%d", w, i)
				body := makeCrate(t, name, "1.0.0", strings.Repeat(fmt.Sprintf("// %s\n", name), 50))
				req, _ := http.NewRequest("POST", d.url+"/crates", bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+token)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return // the daemon is gone
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 201 {
					continue
				}
				var res struct {
					Release releaseJSON `json:"release"`
				}
				if json.Unmarshal(b, &res) != nil {
					continue
				}
				mu.Lock()
				acked = append(acked, ack{res.Release.Subject, registry.Sum(body).Hex(), res.Release.ID})
				mu.Unlock()
			}
		}(w)
	}
	// Let the burst run, then kill the daemon in the middle of it.
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 40 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.cmd.Process.Signal(syscall.SIGKILL)
	d.cmd.Wait()
	close(stop)
	wg.Wait()
	if len(acked) < 10 {
		t.Fatalf("only %d submissions acknowledged before the kill", len(acked))
	}

	d2 := startDaemon(t, dataDir, "--pipeline=false")
	for _, a := range acked {
		resp, err := http.Get(d2.url + "/crates/" + a.subject)
		if err != nil {
			t.Fatal(err)
		}
		var rel releaseJSON
		json.NewDecoder(resp.Body).Decode(&rel)
		resp.Body.Close()
		if resp.StatusCode != 200 || rel.ID != a.id || rel.Cksum != a.cksum {
			t.Fatalf("acknowledged %s lost or changed after kill -9: %d %+v", a.subject, resp.StatusCode, rel)
		}
		resp, err = http.Get(d2.url + "/crates/" + a.subject + "/download")
		if err != nil {
			t.Fatal(err)
		}
		blob, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if registry.Sum(blob).Hex() != a.cksum {
			t.Fatalf("blob of %s is damaged after kill -9", a.subject)
		}
		resp, err = http.Get(d2.url + "/records/" + a.id)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if _, err := registry.DecodeRecordWithID(raw, mustID(t, a.id)); err != nil {
			t.Fatalf("record of %s does not verify after kill -9: %v", a.subject, err)
		}
	}
	// Each acknowledged submission has exactly one audit entry, written
	// with it, and the chain is whole.
	audited := map[string]int{}
	for _, e := range auditEntries(t, d2) {
		if e.Action == "submit" {
			audited[e.Record]++
		}
	}
	for _, a := range acked {
		if audited[a.id] != 1 {
			t.Errorf("acknowledged %s has %d audit entries after kill -9", a.subject, audited[a.id])
		}
	}
	if out := d2.mustCLI(t, "audit", "verify"); !strings.Contains(out, "intact") {
		t.Fatalf("audit verify after kill -9: %s", out)
	}
	t.Logf("%d acknowledged submissions survived kill -9", len(acked))
}

func mustID(t *testing.T, s string) registry.ID {
	id, err := registry.ParseID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func makeCrate(t *testing.T, name, version, src string) []byte {
	return testkit.Crate(name, version, map[string]string{"src/lib.rs": src})
}

func tarNames(t *testing.T, b []byte) []string {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var out []string
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		out = append(out, h.Name)
	}
	return out
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

func copyDir(t *testing.T, from, to string) {
	err := filepath.Walk(from, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if info.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
