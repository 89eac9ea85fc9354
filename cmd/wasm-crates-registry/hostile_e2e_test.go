package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasmrust/wasm-crates-registry/pipeline"
)

// sandboxProcesses lists the processes of the sandbox's users (65534, and
// the range jobs run as: pipeline.DefaultUIDBase and up)
// whose command line names dir (the data directory of one daemon: its
// pipeline's work directories are inside it), so that sandboxes of other
// tests running at the same time do not count.
func sandboxProcesses(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		for _, line := range strings.Split(string(st), "\n") {
			if f := strings.Fields(line); len(f) > 1 && f[0] == "Uid:" && isSandboxUID(f[1]) && strings.Contains(string(cmdline), dir) {
				out = append(out, e.Name()+" "+strings.ReplaceAll(string(cmdline), "\x00", " "))
			}
		}
	}
	return out
}

func isSandboxUID(s string) bool {
	uid, err := strconv.Atoi(s)
	return err == nil && (uid == 65534 || uid >= pipeline.DefaultUIDBase && uid < pipeline.DefaultUIDBase+pipeline.DefaultUIDCount)
}

// TestHostileCrateLeavesTheNodeResponsive runs the crate whose tests
// attack their sandbox (fork bomb, 10 GiB into /tmp, 100 MiB to stdout, a
// test that never ends, a 6 GiB allocation, a connection attempt) through
// the real daemon: /health answers throughout, the run ends in a report
// with the crate's other tests counted, and no process of the sandbox's
// user is left behind.
func TestHostileCrateLeavesTheNodeResponsive(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a hostile crate with cargo")
	}
	if os.Geteuid() != 0 {
		t.Skip("the sandbox drops to an unprivileged user only when the node runs as root")
	}
	d := startDaemon(t, filepath.Join(t.TempDir(), "data"), "--test-time", "5s")
	manifest := filepath.Join(repoRoot(t), "pipeline", "testdata", "crates", "hostile-tests", "Cargo.toml")
	d.mustCLI(t, "submit", "--manifest", manifest)

	var polls, slow atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		client := &http.Client{Timeout: 5 * time.Second}
		for {
			select {
			case <-stop:
				return
			case <-time.After(250 * time.Millisecond):
			}
			res, err := client.Get(d.url + "/health")
			polls.Add(1)
			if err != nil || res.StatusCode != 200 {
				slow.Add(1)
			}
			if res != nil {
				res.Body.Close()
			}
		}
	}()
	out, errOut, code := d.cli(t, "test", "--max-wait", "15m", "wcr-fx-hostile-tests@0.1.0")
	close(stop)
	wg.Wait()
	if code != 0 && !strings.Contains(out, "outcome") {
		t.Fatalf("test: exit %d\n%s\n%s", code, out, errOut)
	}
	t.Logf("report:\n%s", out)
	if polls.Load() < 4 || slow.Load() != 0 {
		t.Fatalf("/health failed %d of %d times while the hostile crate ran", slow.Load(), polls.Load())
	}
	for _, want := range []string{"outcome", "x86_64-unknown-linux-gnu"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	var report struct {
		Reports []struct {
			Outcome string `json:"outcome"`
		} `json:"reports"`
	}
	if err := getJSON(d.url+"/tests/wcr-fx-hostile-tests@0.1.0", &report); err != nil || len(report.Reports) != 1 {
		t.Fatalf("GET /tests: %+v %v", report, err)
	}
	eventually(t, 10*time.Second, "processes of the sandbox user are left behind", func() bool {
		return len(sandboxProcesses(t, d.dataDir)) == 0
	})
}
