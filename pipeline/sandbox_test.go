package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
)

func runIn(t *testing.T, spec runSpec) (runResult, string) {
	t.Helper()
	p := testPipeline(t)
	out := &limitedBuffer{limit: 64 << 10}
	spec.Stdout, spec.Stderr = out, out
	if spec.Timeout == 0 {
		spec.Timeout = 30 * time.Second
	}
	res, err := p.sb.run(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	return res, out.String()
}

func writableDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(testPipeline(t).cfg.WorkDir, "sandbox-"+strings.ReplaceAll(t.Name(), "/", "-"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := testPipeline(t).sb.prepareWritable(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// The sandbox shows untrusted code a read-only system, one writable
// directory, no network and no secrets, and runs it unprivileged.
func TestSandboxIsolation(t *testing.T) {
	dir := writableDir(t)
	secret := filepath.Join(testPipeline(t).cfg.WorkDir, "secret-outside")
	if err := os.WriteFile(secret, []byte("s"), 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(secret)
	script := `
id -u
touch ` + dir + `/inside && echo wrote-inside
touch /usr/escape 2>/dev/null && echo wrote-usr
touch /etc/escape 2>/dev/null && echo wrote-etc
cat /etc/shadow 2>/dev/null && echo read-shadow
cat ` + secret + ` 2>/dev/null && echo read-outside
ls /root/.ssh 2>/dev/null && echo saw-ssh
cat /proc/net/dev | grep -v -e '|' -e 'lo:' | grep . && echo has-network
echo done`
	res, out := runIn(t, runSpec{Args: []string{"/bin/sh", "-c", script}, Dir: dir, RW: []string{dir}})
	if !res.ok() {
		t.Fatalf("exit %d: %s", res.Exit, out)
	}
	for _, bad := range []string{"wrote-usr", "wrote-etc", "read-shadow", "read-outside", "saw-ssh", "has-network"} {
		if strings.Contains(out, bad) {
			t.Errorf("sandbox allowed %s:\n%s", bad, out)
		}
	}
	if !strings.Contains(out, "wrote-inside") || !strings.Contains(out, "done") {
		t.Errorf("the writable directory did not work:\n%s", out)
	}
	if os.Geteuid() == 0 && !strings.HasPrefix(out, "65534") {
		t.Errorf("ran as uid %q, want the unprivileged 65534", strings.SplitN(out, "\n", 2)[0])
	}
	if _, err := os.Stat(filepath.Join(dir, "inside")); err != nil {
		t.Errorf("the file written inside is not in the work directory: %v", err)
	}
}

func TestSandboxLimits(t *testing.T) {
	t.Run("wall time", func(t *testing.T) {
		start := time.Now()
		res, _ := runIn(t, runSpec{Args: []string{"/bin/sleep", "60"}, Timeout: 300 * time.Millisecond})
		if !res.TimedOut || res.ok() || time.Since(start) > 10*time.Second {
			t.Errorf("%+v after %s", res, time.Since(start))
		}
		if o, _ := classifyStep(res, 0); o != registry.OutcomeTimeout {
			t.Errorf("classified %s", o)
		}
	})
	t.Run("memory", func(t *testing.T) {
		res, out := runIn(t, runSpec{Args: []string{"/usr/bin/awk", `BEGIN { s = sprintf("%300000000s", "x"); print length(s) }`}, Mem: 64 << 20})
		if res.ok() || strings.Contains(out, "300000000") {
			t.Errorf("a 300 MB string under a 64 MiB limit: exit %d %q", res.Exit, out)
		}
	})
	t.Run("processes", func(t *testing.T) {
		res, out := runIn(t, runSpec{Args: []string{"/bin/sh", "-c", "n=0; while [ $n -lt 64 ]; do sleep 2 & n=$((n+1)); done; wait; echo all-started"}, Procs: 16})
		if strings.Contains(out, "all-started") && res.ok() {
			t.Errorf("64 processes started under a limit of 16:\n%s", out)
		}
	})
	t.Run("file size", func(t *testing.T) {
		dir := writableDir(t)
		res, _ := runIn(t, runSpec{Args: []string{"/bin/dd", "if=/dev/zero", "of=" + dir + "/big", "bs=1M", "count=32"}, RW: []string{dir}, FileSize: 4 << 20})
		if res.ok() || res.Signal != syscall.SIGXFSZ {
			t.Errorf("%+v", res)
		}
		if o, _ := classifyStep(res, 0); o != registry.OutcomeSandboxViolation {
			t.Errorf("classified %s", o)
		}
	})
	t.Run("disk", func(t *testing.T) {
		dir := writableDir(t)
		script := "for i in 1 2 3 4 5 6 7 8; do dd if=/dev/zero of=" + dir + "/f$i bs=1M count=2 2>/dev/null; done; sleep 30"
		res, _ := runIn(t, runSpec{Args: []string{"/bin/sh", "-c", script}, RW: []string{dir}, DiskDir: dir, DiskLimit: 8 << 20, Timeout: 20 * time.Second})
		if !res.DiskExceeded || res.TimedOut {
			t.Errorf("%+v", res)
		}
	})
}
