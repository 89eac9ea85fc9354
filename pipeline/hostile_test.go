package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// hostileLimits are small, so that the attacking tests end quickly: the
// memory limit lets the 512 MiB test pass and stops the 6 GiB one; the
// disk limit makes each tmpfs 64 MiB.
func hostileLimits() Limits {
	return Limits{
		BuildTime:  5 * time.Minute,
		TestTime:   3 * time.Second,
		TestsTime:  3 * time.Minute,
		CPUTime:    10 * time.Minute,
		Memory:     4 << 30,
		TestMemory: 1 << 30,
		Processes:  128,
		Disk:       1 << 30,
		MaxTests:   100,
	}
}

// hostileSecretDir holds a secret file on the host that no sandboxed code
// may read (the fixtures look for it at this path).
const hostileSecretDir = "/tmp/wcr-canary-sandbox"

// The hostile-crate suite: each fixture attacks the sandbox from a build
// script, a proc macro or its tests, and everything is checked from the
// host. See docs/PIPELINE.md, "Threat model".
func TestHostileCrates(t *testing.T) {
	if testing.Short() {
		t.Skip("builds four crates")
	}
	canary := randomHex(t)
	secret := randomHex(t)
	t.Setenv("WCR_NODE_CANARY", canary)
	if err := os.MkdirAll(hostileSecretDir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(hostileSecretDir) })
	if err := os.WriteFile(filepath.Join(hostileSecretDir, "secret"), []byte(secret), 0o644); err != nil {
		t.Fatal(err)
	}
	var connections atomic.Int32
	// Fixed ports below Linux's ephemeral range (32768–60999), so that no
	// connection of a test running at the same time holds them.
	for _, addr := range []string{"127.0.0.1:23392", "127.0.0.1:23393"} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("the suite needs %s free: %v", addr, err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				connections.Add(1)
				c.Close()
			}
		}()
	}

	base, err := os.MkdirTemp("", "wcr-hostile-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	p, err := New(Config{
		WorkDir: filepath.Join(base, "work"), CacheDir: filepath.Join(base, "cache"),
		DirectorySources: []string{DebianRegistry}, Limits: hostileLimits(),
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })

	reg := newMemRegistry()
	run := func(t *testing.T, name string) (*registry.ReportBody, []byte) {
		t.Helper()
		crate := packDir(t, fixtureDir(name))
		rec, rb := release(t, crate)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		var events []Event
		var mu sync.Mutex
		body, err := p.Run(ctx, Job{Release: rec, Body: rb, Crate: crate, Local: reg}, func(e Event) {
			mu.Lock()
			events = append(events, e)
			mu.Unlock()
		})
		if err != nil {
			t.Fatalf("Run(%s): %v", name, err)
		}
		j, _ := json.Marshal(body)
		ev, _ := json.Marshal(events)
		signed, err := registry.Sign(key(t), registry.KindReport, registry.ReleaseSubject(rb.Name, rb.Version), body, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		all := append(append(j, ev...), signed.Body...)
		for what, s := range map[string]string{"the node's environment canary": canary, "the host's secret file": secret} {
			if strings.Contains(string(all), s) {
				t.Errorf("%s: %s reached the report", name, what)
			}
		}
		if os.Getenv("WCR_PIPELINE_DUMP") != "" {
			t.Logf("report:\n%s", j)
		}
		return body, j
	}
	native := p.host

	t.Run("build script snoops", func(t *testing.T) {
		b, _ := run(t, "snoop-build")
		tr := targetOf(t, b, native)
		text := logsText(b)
		if !strings.Contains(text, "SNOOP-BEGIN") {
			t.Fatalf("the build script's findings are not in the log (outcome %s: %s):\n%s", tr.Outcome, tr.Message, tail(text, 3000))
		}
		checkSnoop(t, text, tr)
		if tr.Outcome != registry.OutcomeSandboxViolation {
			t.Errorf("outcome %s (%s), want %s", tr.Outcome, tr.Message, registry.OutcomeSandboxViolation)
		}
	})
	t.Run("proc macro snoops", func(t *testing.T) {
		b, _ := run(t, "snoop-macro")
		tr := targetOf(t, b, native)
		text := logsText(b)
		if !strings.Contains(text, "SNOOP-BEGIN") {
			t.Fatalf("the proc macro's findings are not in the log (outcome %s: %s):\n%s", tr.Outcome, tr.Message, tail(text, 3000))
		}
		checkSnoop(t, text, tr)
	})
	t.Run("silent build script and attacking tests", func(t *testing.T) {
		b, j := run(t, "hostile-tests")
		tr := targetOf(t, b, native)
		if tr.Build != buildOK {
			t.Fatalf("build %s: %s", tr.Build, tr.Message)
		}
		for _, want := range []registry.Refusal{
			{Action: refusalNetwork, Detail: "127.0.0.1:23392"},
			{Action: refusalNetwork, Detail: "127.0.0.1:23393"},
			{Action: refusalWrite, Detail: "/usr/local/wcr-fx-hostile-build"},
			{Action: refusalWrite, Detail: "/etc/wcr-fx-hostile-build"},
		} {
			if !hasRefusal(tr.Refusals, want.Action, want.Detail) {
				t.Errorf("%s %s is not in the report's refusals:\n%s", want.Action, want.Detail, refusalText(tr.Refusals))
			}
		}
		for _, r := range tr.Refusals {
			if r.Action == refusalWrite && !strings.HasPrefix(r.Detail, "/usr/") && !strings.HasPrefix(r.Detail, "/etc/") {
				t.Errorf("write evidence names an expected write: %s", r.Detail)
			}
		}
		if !strings.Contains(strings.Join(b.Notes, "\n"), "tried to reach the network (127.0.0.1:23392") {
			t.Errorf("the network attempt is not flagged in the notes: %q", b.Notes)
		}
		want := map[string]string{
			"a_first_passes":       registry.TestPassed,
			"z_last_passes":        registry.TestPassed,
			"never_ends":           registry.TestTimeout,
			"allocates_6_gib":      registry.TestOOM,
			"fill_tmp":             registry.TestFailed,
			"flood_stdout":         registry.TestPassed,
			"connects_to_the_host": registry.TestPassed,
		}
		for name, state := range want {
			if got := nativeState(t, b, "tests::"+name); got != state {
				t.Errorf("%s: %s, want %s", name, got, state)
			}
		}
		if got := nativeState(t, b, "tests::fork_bomb"); got == registry.TestPassed {
			t.Errorf("fork_bomb passed")
		}
		if len(j) > 1<<20 {
			t.Errorf("the report is %d bytes: the flood reached it", len(j))
		}
	})
	t.Run("peak memory", func(t *testing.T) {
		b, _ := run(t, "peak")
		tr := targetOf(t, b, native)
		const size = 512 << 20
		if tr.Tests == nil || tr.Tests.Passed != 1 {
			t.Fatalf("%s: %s", tr.Outcome, tr.Message)
		}
		if tr.PeakMemory < size || tr.PeakMemory > size*11/10 {
			t.Errorf("peak memory %d MiB, want 512 MiB within 10%%", tr.PeakMemory>>20)
		}
	})

	if n := connections.Load(); n != 0 {
		t.Errorf("the host's listeners saw %d connections from sandboxed code", n)
	}
	for _, p := range []string{"/usr/local/wcr-fx-snoop-write", "/etc/wcr-fx-snoop-write", "/usr/local/wcr-fx-hostile-build",
		"/etc/wcr-fx-hostile-build", filepath.Join(hostileSecretDir, "written")} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("sandboxed code wrote %s on the host", p)
		}
	}
	for _, s := range []string{canary, secret} {
		if strings.Contains(logs.String(), s) {
			t.Errorf("a secret reached the pipeline's log")
		}
	}
	if left := sandboxUserProcesses(t); len(left) > 0 {
		t.Errorf("processes of the sandbox user remain: %v", left)
	}
	if err := exec.Command("/bin/true").Run(); err != nil {
		t.Errorf("the host cannot start a process after the suite: %v", err)
	}
}

// checkSnoop checks what a snooping build step found and what the
// sandbox reported about it.
func checkSnoop(t *testing.T, text string, tr *registry.TargetReport) {
	t.Helper()
	for _, bad := range []string{"ptrace: 0 ", "mount: 0 ", "unshare -Ur: exit status: 0", "-snoop-write: ok"} {
		if strings.Contains(text, bad) {
			t.Errorf("the sandbox allowed %q:\n%s", bad, tail(text, 3000))
		}
	}
	for _, want := range []string{"ptrace", "mount", "unshare"} {
		if !hasRefusal(tr.Refusals, refusalSyscall, want) {
			t.Errorf("refusal of %s not in the report:\n%s", want, refusalText(tr.Refusals))
		}
	}
	for _, p := range []string{"/usr/local/wcr-fx-snoop-write", "/etc/wcr-fx-snoop-write"} {
		if !hasRefusal(tr.Refusals, refusalWrite, p) {
			t.Errorf("write to %s not in the report:\n%s", p, refusalText(tr.Refusals))
		}
	}
}

// nativeState is the native state of the test whose name ends in suffix.
func nativeState(t *testing.T, b *registry.ReportBody, suffix string) string {
	t.Helper()
	for _, c := range b.Tests {
		if strings.HasSuffix(c.Name, "::"+suffix) {
			return c.Native
		}
	}
	t.Errorf("no test %s in the report", suffix)
	return ""
}

func randomHex(t *testing.T) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "wcr" + hex.EncodeToString(b)
}

// syncBuffer is a log sink safe for concurrent writes.
