package testkit

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Module is the import path of the module the binaries are built from.
const Module = "github.com/wasmrust/wasm-crates-registry"

// The binaries of this repository, by import path.
const (
	DaemonPkg = Module + "/cmd/wasm-crates-registry"
	CLIPkg    = Module + "/cmd/wasm-crates-registry-cli"
)

var built struct {
	mu   sync.Mutex
	dir  string
	done map[string]error // by package, with the build's output in the error
}

// Binary builds the main package pkg (an import path in this module) once
// per test binary, with -race when RaceEnabled, and returns the path of
// the executable. A build that failed fails every test that asks for it,
// with the compiler's output. Call RemoveBinaries from TestMain when the
// tests are done.
func Binary(t testing.TB, pkg string) string {
	t.Helper()
	built.mu.Lock()
	defer built.mu.Unlock()
	if built.dir == "" {
		dir, err := os.MkdirTemp("", "wcr-test-bin-")
		if err != nil {
			t.Fatal(err)
		}
		built.dir, built.done = dir, map[string]error{}
	}
	bin := filepath.Join(built.dir, path.Base(pkg))
	err, ok := built.done[pkg]
	if !ok {
		args := []string{"build", "-o", bin}
		if RaceEnabled {
			args = append(args, "-race")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		out, berr := exec.CommandContext(ctx, "go", append(args, pkg)...).CombinedOutput()
		cancel()
		if berr != nil {
			err = fmt.Errorf("go build %s: %v\n%s", pkg, berr, out)
		}
		built.done[pkg] = err
	}
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// RemoveBinaries removes what Binary built. Call it from TestMain after
// m.Run; Binary must not be called afterwards.
func RemoveBinaries() {
	built.mu.Lock()
	defer built.mu.Unlock()
	if built.dir != "" {
		os.RemoveAll(built.dir)
		built.dir, built.done = "", nil
	}
}

// LockedBuffer collects a process's output while a test reads it; it is
// safe for concurrent use.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Daemon is a running daemon process, killed when its test ends.
type Daemon struct {
	T       *testing.T
	Cmd     *exec.Cmd // the daemon's process, or the wrapper's
	DataDir string
	URL     string        // the REST API's base URL, as the daemon printed it
	Logs    *LockedBuffer // its standard error
}

var apiLine = regexp.MustCompile(`REST API\s+(https?://\S+)`)

// StartDaemon starts the daemon binary bin on a free loopback port (REST
// API and libp2p) with dataDir as its database and args after the
// defaults, and waits up to 30 seconds for the "REST API <url>" line on its
// standard output. When the test ends, the daemon is killed and, under the
// race detector, any data race it reported fails the test.
func StartDaemon(t *testing.T, bin, dataDir string, args ...string) *Daemon {
	t.Helper()
	return StartDaemonUnder(t, nil, bin, dataDir, args...)
}

// StartDaemonUnder is StartDaemon with the daemon's command line appended
// to wrapper (a tracer, say); Cmd is then the wrapper's process.
func StartDaemonUnder(t *testing.T, wrapper []string, bin, dataDir string, args ...string) *Daemon {
	t.Helper()
	args = append([]string{"--database-url", dataDir, "--port", "0", "--log-level", "warn", "--p2p-listen", "/ip4/127.0.0.1/tcp/0"}, args...)
	argv := append(append(append([]string(nil), wrapper...), bin), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "HOST=127.0.0.1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d := &Daemon{T: t, Cmd: cmd, DataDir: dataDir, Logs: &LockedBuffer{}}
	cmd.Stderr = d.Logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.Kill()
		d.CheckRaces()
	})
	found := make(chan string, 1)
	out := &LockedBuffer{}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			out.Write([]byte(sc.Text() + "\n"))
			if m := apiLine.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case d.URL = <-found:
	case <-time.After(30 * time.Second):
		t.Fatalf("the daemon did not print its API address within 30s:\n%s\n%s", out, d.Logs)
	}
	return d
}

// Token returns the admin token the daemon wrote to its data directory.
func (d *Daemon) Token() string {
	d.T.Helper()
	tok, err := os.ReadFile(filepath.Join(d.DataDir, "admin-token"))
	if err != nil {
		d.T.Fatal(err)
	}
	return strings.TrimSpace(string(tok))
}

// Kill kills the daemon with SIGKILL and waits for it, unless it has
// already been waited for.
func (d *Daemon) Kill() {
	if d.Cmd.ProcessState == nil {
		d.Cmd.Process.Signal(syscall.SIGKILL)
		d.Cmd.Wait()
	}
}

// Stop sends SIGTERM and fails the test if the daemon has not exited 20
// seconds later.
func (d *Daemon) Stop() {
	d.Cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { d.Cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		d.T.Fatal("the daemon did not stop on SIGTERM")
	}
}

// RaceReport is how the race detector starts each report it prints.
const RaceReport = "WARNING: DATA RACE"

// CheckRaces fails the test when the daemon, built with -race, reported a
// data race on its standard error. The daemon must have exited.
func (d *Daemon) CheckRaces() {
	if !RaceEnabled {
		return
	}
	if logs := d.Logs.String(); strings.Contains(logs, RaceReport) {
		i := strings.Index(logs, RaceReport)
		d.T.Errorf("the daemon reported a data race:\n%.8000s", logs[i:])
	}
}
