package cargo

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/node"
)

// The test in this file mirrors an offline stand-in for crates.io, built by
// cmd/wcr-standin from Debian's crate sources and served by a real nginx,
// through the real daemon binary, and builds with a real cargo through it.

// standinCrates are the Debian packages the stand-in needs: a project
// depends on itoa and lock_api, which brings scopeguard and autocfg.
var standinCrates = []string{"itoa-1.0.1", "lock_api-0.4.9", "scopeguard-1.1.0", "autocfg-1.1.0"}

// requireNginx returns nginx, or skips with the capability marker.
func requireNginx(t *testing.T) string {
	t.Helper()
	p, err := lookNginx()
	if err != nil {
		t.Skipf("SKIPPING: capability nginx: the mirror's end-to-end test serves the crates.io stand-in with a real nginx (%v); apt-get install nginx-light", err)
	}
	return p
}

func lookNginx() (string, error) {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p, nil
	}
	for _, c := range []string{"/usr/sbin/nginx", "/sbin/nginx"} {
		if _, err := os.Stat(c); err == nil {
			return c, nil
		}
	}
	return "", fmt.Errorf("no nginx on PATH or in /usr/sbin")
}

// startNginxOn writes files under dir and serves dir with nginx, as a
// child of the test, on a free loopback port; it returns the base URL.
func startNginxOn(t testing.TB, nginx, dir string, files map[string]string) string {
	t.Helper()
	writeFiles(t, dir, files)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	conf := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx-error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path %[1]s/tmp;
    default_type text/plain;
    server { listen 127.0.0.1:%[2]d; root %[1]s; etag on; }
}
`, dir, port)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nginx, "-c", filepath.Join(dir, "nginx.conf"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	})
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	for deadline := time.Now().Add(20 * time.Second); ; {
		res, err := http.Get(url + "/nginx.conf")
		if err == nil {
			res.Body.Close()
			return url
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx does not answer at %s: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// standin is the stand-in's directory and the nginx serving it.
type standin struct {
	t     *testing.T
	nginx string
	dir   string
	port  int
	url   string
	cmd   *exec.Cmd
}

func buildStandin(t *testing.T, nginx string) *standin {
	t.Helper()
	for _, c := range standinCrates {
		if _, err := os.Stat(filepath.Join("/usr/share/cargo/registry", c)); err != nil {
			t.Fatalf("the stand-in needs Debian's %s (apt-get install librust-%s-dev, as make test does): %v",
				c, strings.ReplaceAll(strings.Split(c, "-")[0], "_", "-"), err)
		}
	}
	bin := filepath.Join(t.TempDir(), "wcr-standin")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/wcr-standin").CombinedOutput(); err != nil {
		t.Fatalf("building wcr-standin: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &standin{t: t, nginx: nginx, dir: filepath.Join(t.TempDir(), "standin"), port: port, url: fmt.Sprintf("http://127.0.0.1:%d", port)}
	out, err := exec.Command(bin, "-src", "/usr/share/cargo/registry", "-out", s.dir, "-url", s.url, "-nginx-port", fmt.Sprint(port)).CombinedOutput()
	if err != nil {
		t.Fatalf("wcr-standin: %v\n%s", err, out)
	}
	t.Cleanup(s.stop)
	return s
}

// start runs nginx as a child of the test and waits until it serves.
func (s *standin) start() {
	s.t.Helper()
	s.cmd = exec.Command(s.nginx, "-c", filepath.Join(s.dir, "nginx.conf"))
	s.cmd.Stderr = os.Stderr
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := http.Get(s.url + "/index/config.json")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(s.dir, "nginx-error.log"))
			s.t.Fatalf("nginx does not serve the stand-in at %s: %v\n%s", s.url, err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *standin) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGKILL)
	s.cmd.Wait()
	s.cmd = nil
}

// mirrorApp is a project that depends on two upstream crates through the
// node's registry "wcr".
func mirrorApp(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mirror-app")
	files := map[string]string{
		"Cargo.toml": `[package]
name = "mirror-app"
version = "0.1.0"
edition = "2021"

[dependencies]
itoa = { version = "1", registry = "wcr" }
lock_api = { version = "0.4", registry = "wcr" }
`,
		"src/main.rs": `fn main() {
    let mut b = itoa::Buffer::new();
    println!("mirrored itoa says {}", b.format(4096u32));
}
`,
	}
	writeFiles(t, dir, files)
	return dir
}

func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for p, body := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	return res.StatusCode
}

func getBody(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(b)
}

// TestDaemonMirrorsUpstream: a node mirrors the nginx-served stand-in;
// cargo builds through it; with nginx stopped the cached archives are
// served again; a second node that trusts the first serves the same lines
// and gets the archives over the federation; a changed archive upstream
// for a published version is detected and shown, and the first is still
// served.
func TestDaemonMirrorsUpstream(t *testing.T) {
	cargo, bin := requireCargoDaemon(t, "--upstream", "--upstream-refresh", "--peer")
	s := buildStandin(t, requireNginx(t))
	s.start()

	a := startDaemon(t, bin, "--upstream", s.url+"/index/", "--upstream-refresh", "0")
	env := newCargoEnv(t, cargo, "sparse+"+a.url+"/index/", "")
	app := mirrorApp(t)
	if got := strings.TrimSpace(env.mustRun(app, "run", "--quiet")); got != "mirrored itoa says 4096" {
		t.Fatalf("mirror-app printed %q", got)
	}
	lock, _ := os.ReadFile(filepath.Join(app, "Cargo.lock"))
	for _, c := range []string{"itoa", "lock_api", "scopeguard", "autocfg"} {
		if !strings.Contains(string(lock), `name = "`+c+`"`) {
			t.Fatalf("Cargo.lock lacks %s, which the mirror should have resolved:\n%s", c, lock)
		}
	}
	// cargo publish of a name the upstream has is refused, in Cargo's words.
	pub := newCargoEnv(t, cargo, "sparse+"+a.url+"/index/", a.token)
	shadow := filepath.Join(t.TempDir(), "itoa")
	writeFiles(t, shadow, map[string]string{
		"Cargo.toml": "[package]\nname = \"itoa\"\nversion = \"9.9.9\"\nedition = \"2021\"\nlicense = \"MIT\"\ndescription = \"shadow\"\n",
		"src/lib.rs": "pub fn shadow() {}\n",
	})
	if out, ok := pub.run(shadow, "publish", "--registry", "wcr", "--allow-dirty", "--no-verify"); ok || !strings.Contains(out, "belongs to upstream") {
		t.Fatalf("cargo publish of an upstream name must be refused with the reason:\n%s", out)
	}

	itoaArchive, err := os.ReadFile(filepath.Join(s.dir, "crates", "itoa", "itoa-1.0.1.crate"))
	if err != nil {
		t.Fatal(err)
	}

	// nginx stopped: a fresh cargo gets everything from the node's cache.
	s.stop()
	fresh := newCargoEnv(t, cargo, "sparse+"+a.url+"/index/", "")
	fresh.mustRun(mirrorApp(t), "fetch")

	// Node B joins A with trust and has no upstream of its own.
	var health struct {
		Addrs []string `json:"addrs"`
	}
	getJSON(t, a.url+"/health", &health)
	if len(health.Addrs) == 0 {
		t.Fatal("daemon A shows no p2p address in /health")
	}
	b := startDaemon(t, bin, "--peer", health.Addrs[0])
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, body := getBody(t, b.url+"/index/"+registry.IndexPath("scopeguard"))
		_, want := getBody(t, a.url+"/index/"+registry.IndexPath("scopeguard"))
		if st == 200 && body == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node B does not serve A's mirrored lines 60s after joining: %d %s\nB:\n%s", st, body, b.logs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	viaB := newCargoEnv(t, cargo, "sparse+"+b.url+"/index/", "")
	viaB.mustRun(mirrorApp(t), "fetch")
	st, got := getBody(t, b.url+"/api/v1/crates/itoa/1.0.1/download")
	if st != 200 || got != string(itoaArchive) {
		t.Fatalf("B's itoa archive: %d, %d bytes; want the stand-in's %d", st, len(got), len(itoaArchive))
	}

	// The upstream changes the archive of a published version.
	changed := append([]byte(nil), itoaArchive...)
	changed = append(changed, 0) // other bytes, other checksum
	if err := os.WriteFile(filepath.Join(s.dir, "crates", "itoa", "itoa-1.0.1.crate"), changed, 0o644); err != nil {
		t.Fatal(err)
	}
	indexFile := filepath.Join(s.dir, "index", filepath.FromSlash(registry.IndexPath("itoa")))
	old, _ := os.ReadFile(indexFile)
	newSum := fmt.Sprintf("%x", sha256.Sum256(changed))
	oldSum := fmt.Sprintf("%x", sha256.Sum256(itoaArchive))
	if err := os.WriteFile(indexFile, []byte(strings.Replace(string(old), oldSum, newSum, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	s.start()
	if st, body := getBody(t, a.url+"/index/"+registry.IndexPath("itoa")); st != 200 || body != string(old) {
		t.Fatalf("after the change A must serve the first line: %d %s", st, body)
	}
	var status node.UpstreamStatus
	getJSON(t, a.url+"/upstream", &status)
	if len(status.Changed) != 1 || status.Changed[0].Name != "itoa" || status.Changed[0].Served.Cksum != oldSum ||
		len(status.Changed[0].Changed) != 1 || status.Changed[0].Changed[0].Cksum != newSum {
		t.Fatalf("GET /upstream does not show the change: %+v", status)
	}
	if !strings.Contains(a.logs.String(), "changed a published version") {
		t.Fatalf("A's log does not report the change:\n%s", a.logs)
	}
	if st, got := getBody(t, a.url+"/api/v1/crates/itoa/1.0.1/download"); st != 200 || got != string(itoaArchive) {
		t.Fatalf("after the change A must serve the first archive: %d", st)
	}
}
