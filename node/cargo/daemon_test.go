package cargo

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/internal/testkit"
)

// The tests in this file run cargo against the real daemon binary, built
// from cmd/wasm-crates-registry, as a user would.

func TestMain(m *testing.M) {
	code := m.Run()
	testkit.RemoveBinaries()
	os.Exit(code)
}

var (
	helpOnce   sync.Once
	daemonHelp string
)

// buildDaemon builds the daemon once per test binary (or takes the binary
// named by $WCR_TEST_DAEMON) and returns its path and its --help text.
func buildDaemon(t *testing.T) (string, string) {
	t.Helper()
	bin := os.Getenv("WCR_TEST_DAEMON")
	if bin == "" {
		bin = testkit.Binary(t, testkit.DaemonPkg)
	}
	helpOnce.Do(func() {
		help, _ := exec.Command(bin, "--help").CombinedOutput()
		daemonHelp = string(help)
	})
	return bin, daemonHelp
}

// daemonProc is a running daemon (see testkit.Daemon), with the fields the
// tests of this package read.
type daemonProc struct {
	*testkit.Daemon
	url     string
	dataDir string
	token   string
	logs    *testkit.LockedBuffer
}

// startDaemon starts the daemon on a free loopback port with a fresh data
// directory and the pipeline off, and waits for it to print its API
// address; it is killed when the test ends.
func startDaemon(t *testing.T, bin string, args ...string) *daemonProc {
	t.Helper()
	td := testkit.StartDaemon(t, bin, filepath.Join(t.TempDir(), "data"), append([]string{"--host", "127.0.0.1", "--pipeline=false"}, args...)...)
	return &daemonProc{Daemon: td, url: td.URL, dataDir: td.DataDir, token: td.Token(), logs: td.Logs}
}

// requireCargoDaemon returns cargo and the daemon binary; it skips loudly
// without cargo and fails when the daemon lacks a flag the test needs.
func requireCargoDaemon(t *testing.T, flags ...string) (string, string) {
	t.Helper()
	cargo := requireCargo(t)
	bin, help := buildDaemon(t)
	for _, f := range flags {
		if !strings.Contains(help, f) {
			t.Fatalf("the daemon has no %s flag, which this test needs (see its --help)", f)
		}
	}
	return cargo, bin
}

// TestDaemonServesCargo publishes with cargo to the real daemon, searches,
// builds a dependent from a fresh CARGO_HOME and yanks.
func TestDaemonServesCargo(t *testing.T) {
	cargo, bin := requireCargoDaemon(t, "--wasm-index-gates")
	d := startDaemon(t, bin)
	index := "sparse+" + d.url + "/index/"
	pub := newCargoEnv(t, cargo, index, d.token)
	for _, v := range []string{"0.1.0", "0.1.1"} {
		pub.mustRun(fixture(t, "wcr-leaf", v), "publish", "--registry", "wcr", "--allow-dirty", "--no-verify")
	}
	if out := pub.mustRun(t.TempDir(), "search", "--registry", "wcr", "wcr-leaf"); !strings.Contains(out, `wcr-leaf = "0.1.1"`) {
		t.Fatalf("cargo search:\n%s", out)
	}
	build := func() string {
		t.Helper()
		env := newCargoEnv(t, cargo, index, "")
		return strings.TrimSpace(env.mustRun(fixture(t, "wcr-app", ""), "run", "--quiet"))
	}
	if got := build(); got != "wcr-leaf 0.1.1 says 2 + 3 = 5" {
		t.Fatalf("wcr-app printed %q", got)
	}
	pub.mustRun(t.TempDir(), "yank", "--registry", "wcr", "wcr-leaf@0.1.1")
	if got := build(); got != "wcr-leaf 0.1.0 says 2 + 3 = 5" {
		t.Fatalf("after the yank, wcr-app printed %q", got)
	}
}

// TestDaemonFederationCargo publishes with cargo on daemon A and builds
// through daemon B, which joined A, once B's index shows the crate.
func TestDaemonFederationCargo(t *testing.T) {
	cargo, bin := requireCargoDaemon(t, "--wasm-index-gates", "--p2p-listen", "--peer")
	a := startDaemon(t, bin)
	var health struct {
		Addrs []string `json:"addrs"`
	}
	res, err := http.Get(a.url + "/health")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(res.Body).Decode(&health)
	res.Body.Close()
	if len(health.Addrs) == 0 {
		t.Fatalf("daemon A shows no p2p address in /health")
	}
	b := startDaemon(t, bin, "--peer", health.Addrs[0])

	pub := newCargoEnv(t, cargo, "sparse+"+a.url+"/index/", a.token)
	pub.mustRun(fixture(t, "wcr-leaf", "0.1.0"), "publish", "--registry", "wcr", "--allow-dirty", "--no-verify")

	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := http.Get(b.url + "/index/" + registry.IndexPath("wcr-leaf"))
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("node B's index does not show wcr-leaf 60s after it was published on node A\nA:\n%s\nB:\n%s", a.logs, b.logs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	env := newCargoEnv(t, cargo, "sparse+"+b.url+"/index/", "")
	dir := fixture(t, "wcr-app", "")
	if got := strings.TrimSpace(env.mustRun(dir, "run", "--quiet")); got != "wcr-leaf 0.1.0 says 2 + 3 = 5" {
		t.Fatalf("through node B, wcr-app printed %q", got)
	}
	lock, _ := os.ReadFile(filepath.Join(dir, "Cargo.lock"))
	if strings.Contains(string(lock), a.url) || !strings.Contains(string(lock), b.url) {
		t.Fatalf("Cargo.lock should name only node B:\n%s", lock)
	}
}
