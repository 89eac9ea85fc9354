package pipeline

import (
	"context"
	"os"
	"os/exec"
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

// canaries are files the sandboxed command must not read, each checked on
// the host first so that a refusal inside proves the sandbox and nothing
// else: hidden is world-readable in a world-traversable directory of the
// host's /tmp (the sandbox mounts a fresh /tmp), so only bubblewrap's view
// hides it; rootOnly (0600, root's) is bound into the sandbox, so only the
// unprivileged uid keeps it closed.
type canaries struct {
	hidden, rootOnly string
}

func newCanaries(t *testing.T) canaries {
	t.Helper()
	dir, err := os.MkdirTemp("", "wcr-canary-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c := canaries{hidden: filepath.Join(dir, "hidden"), rootOnly: filepath.Join(dir, "root-only")}
	if err := os.WriteFile(c.hidden, []byte("canary-hidden\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.rootOnly, []byte("canary-root-only\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

// asSandboxUser runs a command on the host, outside any sandbox, as the
// sandbox's uid, and returns its combined output.
func asSandboxUser(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: sandboxUID, Gid: sandboxUID}}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// The sandbox shows untrusted code a read-only system, one writable
// directory, no network and no secrets, and runs it unprivileged. Every
// refusal is paired with a control that shows the same access succeeds
// outside the sandbox, so the check fails when the sandbox is gone.
func TestSandboxIsolation(t *testing.T) {
	dir := writableDir(t)
	c := newCanaries(t)
	// Controls: what the sandbox must hide is there on the host, and the
	// sandbox's uid could read the hidden canary if it saw it.
	if _, err := os.Stat("/etc/shadow"); err != nil {
		t.Fatalf("the host has no /etc/shadow to hide: %v", err)
	}
	if os.Geteuid() == 0 {
		if out, err := asSandboxUser(t, "/bin/cat", c.hidden); err != nil || out != "canary-hidden\n" {
			t.Fatalf("uid %d cannot read the hidden canary on the host (%v: %q): the check would prove nothing", sandboxUID, err, out)
		}
	}
	script := `
id -u
touch ` + dir + `/inside && echo wrote-inside
touch /usr/escape 2>/dev/null && echo wrote-usr
touch /etc/escape 2>/dev/null && echo wrote-etc
test -e /etc/shadow && echo saw-shadow
cat ` + c.hidden + ` 2>/dev/null
test -e ` + c.rootOnly + ` && echo saw-root-only-bind
cat ` + c.rootOnly + ` 2>/dev/null
cat /proc/net/dev | grep -v -e '|' -e 'lo:' | grep . && echo has-network
echo done`
	res, out := runIn(t, runSpec{Args: []string{"/bin/sh", "-c", script}, Dir: dir, RW: []string{dir}, RO: []string{c.rootOnly}})
	if !res.ok() {
		t.Fatalf("exit %d: %s", res.Exit, out)
	}
	bad := []string{"wrote-usr", "wrote-etc", "saw-shadow", "canary-hidden", "has-network"}
	if os.Geteuid() == 0 {
		bad = append(bad, "canary-root-only")
	}
	for _, b := range bad {
		if strings.Contains(out, b) {
			t.Errorf("sandbox allowed %s:\n%s", b, out)
		}
	}
	if !strings.Contains(out, "saw-root-only-bind") {
		t.Errorf("the read-only bind of the root-only canary is missing, so its refusal proves nothing:\n%s", out)
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
