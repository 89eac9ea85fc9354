package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
)

func refusalText(rs []registry.Refusal) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "%s %s ×%d\n", r.Action, r.Detail, r.Count)
	}
	return b.String()
}

func hasRefusal(rs []registry.Refusal, action, detail string) bool {
	for _, r := range rs {
		if r.Action == action && (detail == "" || r.Detail == detail) {
			return true
		}
	}
	return false
}

// The filter refuses new namespaces, tracing and mounting, and the
// supervisor reports each refusal.
func TestSupervisorRefusals(t *testing.T) {
	dir := writableDir(t)
	script := `
unshare -Ur id -u 2>&1 && echo NESTED-USERNS
unshare -n true 2>/dev/null && echo NESTED-NETNS
perl -e 'syscall(56, 0x10000000|17, 0, 0, 0, 0) == -1 or print "CLONE-NEWUSER\n"'
perl -e 'syscall(101, 0, 0, 0, 0) == -1 or print "PTRACE\n"; print "ptrace: $!\n"'
perl -e 'my ($s, $d, $f) = ("none", "/tmp", "tmpfs"); syscall(165, $s, $d, $f, 0, 0) == -1 or print "MOUNT\n"'
perl -e 'syscall(435, 0, 0) == -1 && $!{ENOSYS} or print "CLONE3-NOT-ENOSYS\n"'
perl -e 'syscall(298, 0, 0, -1, -1, 0) == -1 or print "PERF\n"'
sh -c 'echo child-ran'
echo done`
	res, out := runIn(t, runSpec{Args: []string{"/bin/sh", "-c", script}, Dir: dir, RW: []string{dir}})
	if !res.ok() {
		t.Fatalf("exit %d: %s", res.Exit, out)
	}
	for _, bad := range []string{"NESTED-USERNS", "NESTED-NETNS", "CLONE-NEWUSER", "PTRACE", "MOUNT", "CLONE3-NOT-ENOSYS", "PERF"} {
		if strings.Contains(out, bad) {
			t.Errorf("the sandbox allowed %s:\n%s", bad, out)
		}
	}
	if !strings.Contains(out, "ptrace: Operation not permitted") || !strings.Contains(out, "child-ran") || !strings.Contains(out, "done") {
		t.Errorf("output:\n%s", out)
	}
	for _, want := range []string{"unshare", "ptrace", "mount", "perf_event_open", "clone(CLONE_NEWUSER)"} {
		if !hasRefusal(res.Refusals, refusalSyscall, want) {
			t.Errorf("refusal of %s not reported; refusals:\n%s", want, refusalText(res.Refusals))
		}
	}
}

// A connection attempt is recorded with its destination and never reaches
// the host; writes outside the writable areas are recorded, the others
// are not.
func TestSupervisorRecordsNetworkAndWrites(t *testing.T) {
	dir := writableDir(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- struct{}{}
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	script := `
bash -c 'exec 3<>/dev/tcp/127.0.0.1/` + strconv.Itoa(port) + `' 2>/dev/null && echo CONNECTED
touch /usr/wcr-write-probe 2>/dev/null && echo WROTE-USR
mkdir /etc/wcr-dir-probe 2>/dev/null && echo WROTE-ETC
touch ` + dir + `/inside /tmp/t /var/tmp/v
exec 7>/dev/null; echo x >/dev/fd/7; echo x >/dev/stderr
echo done`
	res, out := runIn(t, runSpec{Args: []string{"/bin/sh", "-c", script}, Dir: dir, RW: []string{dir}})
	if !res.ok() || strings.Contains(out, "CONNECTED") || strings.Contains(out, "WROTE") || !strings.Contains(out, "done") {
		t.Fatalf("exit %d: %s", res.Exit, out)
	}
	select {
	case <-accepted:
		t.Error("the host's listener saw a connection from the sandbox")
	case <-time.After(200 * time.Millisecond):
	}
	if !hasRefusal(res.Refusals, refusalNetwork, "127.0.0.1:"+strconv.Itoa(port)) || !res.networkAttempt() {
		t.Errorf("the connection attempt is not reported; refusals:\n%s", refusalText(res.Refusals))
	}
	for _, p := range []string{"/usr/wcr-write-probe", "/etc/wcr-dir-probe"} {
		if !hasRefusal(res.Refusals, refusalWrite, p) {
			t.Errorf("write to %s not reported; refusals:\n%s", p, refusalText(res.Refusals))
		}
	}
	for _, r := range res.Refusals {
		if r.Action == refusalWrite && (strings.HasPrefix(r.Detail, dir) || strings.HasPrefix(r.Detail, "/tmp/") || strings.HasPrefix(r.Detail, "/var/tmp/") || strings.HasPrefix(r.Detail, "/dev/")) {
			t.Errorf("a write inside the writable areas was reported: %s", r.Detail)
		}
	}
}

// Peak memory is the command's own, measured by the supervisor: not the
// node's, and not lost in a wrapper.
func TestSupervisorPeakMemory(t *testing.T) {
	const size = 512 << 20
	prog := `b = b"\x01" * ` + strconv.Itoa(size) + `; print(len(b))`
	res, out := runIn(t, runSpec{Args: []string{"/usr/bin/python3", "-c", prog}, Mem: 2 << 30})
	if !res.ok() || !strings.Contains(out, strconv.Itoa(size)) {
		t.Fatalf("exit %d: %s", res.Exit, out)
	}
	if res.MaxRSS < size || res.MaxRSS > size*11/10 {
		t.Errorf("peak RSS %d MiB, want %d MiB within 10%%", res.MaxRSS>>20, size>>20)
	}
	// The node's own memory must not count: hold 256 MiB here while a
	// small command runs.
	ballast := make([]byte, 256<<20)
	for i := 0; i < len(ballast); i += 4096 {
		ballast[i] = 1
	}
	small, _ := runIn(t, runSpec{Args: []string{"/bin/true"}})
	if small.MaxRSS == 0 || small.MaxRSS > 64<<20 {
		t.Errorf("peak RSS of /bin/true after a 512 MiB command, with the node holding 256 MiB: %d MiB", small.MaxRSS>>20)
	}
	runtime.KeepAlive(ballast)
}

// Output, /tmp and /var/tmp are bounded; processes left behind are
// killed when the command ends.
func TestSupervisorBounds(t *testing.T) {
	t.Run("output", func(t *testing.T) {
		var out bytes.Buffer
		res, err := testPipeline(t).sb.run(context.Background(), runSpec{
			Args: []string{"/bin/sh", "-c", "head -c 100000000 /dev/zero; echo end >&2"}, Timeout: 30 * time.Second,
			MaxOutput: 1 << 20, Stdout: &out, Stderr: &out,
		})
		if err != nil {
			t.Fatal(err)
		}
		if !res.ok() || !res.OutputTruncated || out.Len() > 2<<20 {
			t.Errorf("%+v, kept %d bytes", res, out.Len())
		}
	})
	t.Run("tmpfs", func(t *testing.T) {
		for _, d := range []string{"/tmp", "/var/tmp"} {
			res, out := runIn(t, runSpec{Args: []string{"/bin/sh", "-c", "dd if=/dev/zero of=" + d + "/big bs=1M count=64 2>&1; du -k " + d + "/big"}, TmpSize: 16 << 20})
			if !res.ok() || !strings.Contains(out, "No space left") || !strings.Contains(out, "16384\t") {
				t.Errorf("%s: 64 MiB into a 16 MiB tmpfs: exit %d\n%s", d, res.Exit, out)
			}
		}
	})
	t.Run("leftovers", func(t *testing.T) {
		start := time.Now()
		res, out := runIn(t, runSpec{Args: []string{"/bin/sh", "-c", "(setsid sleep 300 &) ; sleep 300 & echo started"}, Timeout: 60 * time.Second})
		if !res.ok() || res.TimedOut || time.Since(start) > 30*time.Second {
			t.Errorf("%+v after %s: %s", res, time.Since(start), out)
		}
		if n := sandboxUserProcesses(t); len(n) > 0 {
			t.Errorf("processes of the sandbox user remain: %v", n)
		}
	})
}

// The command runs as the supervisor's user but can neither read the
// supervisor nor forge its report; killing it is reported.
func TestSupervisorIntegrity(t *testing.T) {
	script := `
cat /proc/$PPID/environ 2>/dev/null && echo READ-ENVIRON
cat /proc/$PPID/fd/3 </dev/null 2>/dev/null; echo '{"exit":0,"max_rss":1}' 2>/dev/null >/proc/$PPID/fd/3 && echo WROTE-REPORT
ls /proc/$PPID/fd 2>/dev/null | grep . && echo LISTED-FDS
ls -l /proc/self/fd/
kill -9 $PPID`
	res, out := runIn(t, runSpec{Args: []string{"/bin/sh", "-c", script}})
	for _, bad := range []string{"READ-ENVIRON", "WROTE-REPORT", "LISTED-FDS"} {
		if strings.Contains(out, bad) {
			t.Errorf("%s:\n%s", bad, out)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[len(f)-2] != "->" {
			continue
		}
		// ls's own directory descriptor is 3; anything else past stderr
		// leaked from the supervisor or the node.
		if fd := f[len(f)-3]; fd != "0" && fd != "1" && fd != "2" && !(fd == "3" && strings.HasPrefix(f[len(f)-1], "/proc/")) {
			t.Errorf("the command inherited descriptor %s -> %s", fd, f[len(f)-1])
		}
	}
	if !res.supervisorLost() {
		t.Errorf("killing the supervisor is not reported: %+v", res)
	}
}

// isSandboxUID reports whether a uid (as /proc prints it) is one the
// sandbox runs commands as: its own checks' user or a job's (uids.go).
func isSandboxUID(s string) bool {
	uid, err := strconv.Atoi(s)
	return err == nil && (uid == sandboxUID || uid >= DefaultUIDBase && uid < DefaultUIDBase+DefaultUIDCount)
}

// sandboxUserProcesses lists the processes of the sandbox users on the
// host.
func sandboxUserProcesses(t *testing.T) []string {
	t.Helper()
	if os.Geteuid() != 0 {
		return nil
	}
	var left []string
	for range 20 {
		left = left[:0]
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			if _, err := strconv.Atoi(e.Name()); err != nil {
				continue
			}
			st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
			if err != nil {
				continue
			}
			// Only this test process's sandboxes: other processes (another
			// package's tests, a node) may run sandboxes at the same time.
			env, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
			if !slices.Contains(strings.Split(string(env), "\x00"), ownerEnv+"="+ownerID) {
				continue
			}
			for _, line := range strings.Split(string(st), "\n") {
				if f := strings.Fields(line); len(f) >= 2 && f[0] == "Uid:" && isSandboxUID(f[1]) {
					cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
					left = append(left, e.Name()+":"+strings.ReplaceAll(string(cmd), "\x00", " "))
				}
			}
		}
		if len(left) == 0 {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return left
}

// The host reads the supervisor's report as hostile input.
func TestSuperviseReportHostile(t *testing.T) {
	for _, in := range [][]byte{nil, []byte("{"), []byte(`"x"`), bytes.Repeat([]byte(" "), maxSupervisorReport+1)} {
		if _, ok := parseSuperviseReport(in); ok {
			t.Errorf("accepted %.40q", in)
		}
	}
	var many []registry.Refusal
	for i := range 1000 {
		many = append(many, registry.Refusal{Action: refusalWrite, Detail: strconv.Itoa(i) + strings.Repeat("\x00é", 300), Count: 1})
	}
	b, _ := json.Marshal(superviseReport{Exit: -1, Signal: 99, Refusals: many})
	if len(b) > maxSupervisorReport {
		b = b[:0]
		many = many[:20]
		b, _ = json.Marshal(superviseReport{Exit: -1, Signal: 99, Refusals: many})
	}
	rep, ok := parseSuperviseReport(b)
	if !ok {
		t.Fatal("rejected a well-formed report")
	}
	if rep.Signal != 0 || len(rep.Refusals) > maxRefusals+1 {
		t.Errorf("signal %d, %d refusals", rep.Signal, len(rep.Refusals))
	}
	total := 0
	for _, r := range rep.Refusals {
		total += len(r.Detail)
		if strings.ContainsRune(r.Detail, 0) || len(r.Detail) > maxRefusalDetail+4 {
			t.Errorf("detail not cleaned: %q", r.Detail)
		}
	}
	last := rep.Refusals[len(rep.Refusals)-1]
	if total > maxRefusalBytes+200 || last.Action != refusalMore || last.Count == 0 {
		t.Errorf("%d bytes, last %+v", total, last)
	}
}

func TestSuperviseArgsHostile(t *testing.T) {
	for _, a := range [][]string{nil, {"--"}, {"--rw"}, {"--rw", "rel", "--", "x"}, {"--report-fd", "1", "--", "x"}, {"--report-fd", "x", "--", "x"}, {"--bogus", "--", "x"}, {"x"}} {
		if _, err := parseSuperviseArgs(a); err == nil {
			t.Errorf("accepted %q", a)
		}
	}
	o, err := parseSuperviseArgs([]string{"--report-fd", "3", "--rw", "/w/../x", "--record-writes", "--", "cmd", "--rw"})
	if err != nil || o.reportFD != 3 || o.writable[0] != "/x" || !o.recordWrites || len(o.args) != 2 {
		t.Errorf("%+v %v", o, err)
	}
}

// FuzzSuperviseReport: whatever the supervisor's pipe carries, the host's
// reading of it is bounded and never fails.
func FuzzSuperviseReport(f *testing.F) {
	f.Add([]byte(`{"exit":0,"max_rss":1024,"refusals":[{"action":"syscall","detail":"ptrace","count":1}]}`))
	f.Add([]byte(`{"exit":-1,"signal":9}`))
	f.Add([]byte(`{"refusals":[{"action":"more","count":18446744073709551615}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, ok := parseSuperviseReport(b)
		if !ok {
			return
		}
		if len(rep.Refusals) > maxRefusals+1 || rep.Signal < 0 || rep.Signal > 64 {
			t.Fatalf("%+v", rep)
		}
		n := 0
		for _, r := range rep.Refusals {
			n += len(r.Action) + len(r.Detail)
		}
		if n > maxRefusalBytes+64 {
			t.Fatalf("%d bytes of refusals", n)
		}
	})
}

// FuzzLineScanner: lines passed on are never longer than the bound, and
// the scanner's buffer stays bounded.
func FuzzLineScanner(f *testing.F) {
	f.Add([]byte("a\nbb\nccc"), 2)
	f.Fuzz(func(t *testing.T, b []byte, max int) {
		max = 1 + (max&0xff)%64
		l := &lineScanner{max: max, fn: func(s string) {
			if len(s) > max {
				t.Fatalf("line of %d bytes passed a bound of %d", len(s), max)
			}
		}}
		for len(b) > 0 {
			k := min(len(b), 5)
			_, _ = l.Write(b[:k])
			b = b[k:]
			if len(l.buf) > max {
				t.Fatalf("buffer %d > %d", len(l.buf), max)
			}
		}
		l.flush()
	})
}

// A command that tries many refused things leaves a bounded list with a
// count of the rest.
func TestSupervisorRefusalsBounded(t *testing.T) {
	res, out := runIn(t, runSpec{Args: []string{"/bin/sh", "-c", "i=0; while [ $i -lt 100 ]; do touch /usr/wcr-many-$i 2>/dev/null; i=$((i+1)); done; echo done"}})
	if !res.ok() || !strings.Contains(out, "done") {
		t.Fatalf("exit %d: %s", res.Exit, out)
	}
	if len(res.Refusals) != maxRefusals+1 {
		t.Fatalf("%d entries:\n%s", len(res.Refusals), refusalText(res.Refusals))
	}
	last := res.Refusals[len(res.Refusals)-1]
	if last.Action != refusalMore || last.Count != 100-maxRefusals || last.Detail != "+68 more" {
		t.Errorf("last entry %+v", last)
	}
}
