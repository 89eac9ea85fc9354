package pipeline

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// sandboxUID is the unprivileged identity of the sandbox's own checks and
// of commands outside a job when the pipeline runs as root ("nobody" on
// Debian); each job runs as a user of its own (uids.go).
const sandboxUID = 65534

// sandbox runs commands under bubblewrap: new PID, network, IPC and UTS
// namespaces; a root of read-only binds of /usr and a few files of /etc,
// the toolchains and sources; writable binds only where the caller says;
// /tmp and /var/tmp as size-capped tmpfs. When the pipeline runs as root the
// command runs as an unprivileged user (so that it cannot read root-only
// files and so that the process limit applies), under the supervisor
// (supervise.go): no_new_privs, a seccomp filter, the whole process tree
// waited for and measured, the refusals reported; resource limits are set
// by prlimit just before the command.
type sandbox struct {
	bwrap   string
	prlimit string
	setpriv string // empty when not running as root
	uid     int    // the user commands run as when setpriv is set
	ro      []string
	exe     string // the pipeline's own executable, bound at helperPath
	log     *slog.Logger
	// recordWrites makes the supervisor record write-intent path calls
	// outside the writable areas (one notification per such call).
	recordWrites bool
}

// ownerEnv names, in every sandboxed process's environment, the process
// that started it (ownerID, its PID): what a test reads to tell its own
// sandboxed processes from those of another process on the machine.
const ownerEnv = "WCR_SANDBOX_OWNER"

var ownerID = strconv.Itoa(os.Getpid())

// helperPath is where the sandbox sees the pipeline's own executable, the
// program its helpers (MaybeRunHelper) run from.
const helperPath = "/run/wcr/helper"

// runSpec is one sandboxed command. Paths are the same inside and outside.
type runSpec struct {
	Args    []string
	Env     []string
	Dir     string
	RW      []string // writable binds
	RO      []string // extra read-only binds
	Network bool     // share the host's network (only for fetching sources, never for untrusted code)

	Timeout  time.Duration
	Mem      uint64 // address-space limit per process, bytes (0: none)
	CPU      time.Duration
	Procs    uint64
	FileSize uint64
	// DiskDir is watched while the command runs (every diskPoll); when it
	// grows beyond DiskLimit bytes the command is killed. The kernel bounds
	// each file (FileSize) and the tmpfs (TmpSize); the poll bounds the
	// directory's total.
	DiskDir   string
	DiskLimit uint64
	// TmpSize is the size of each of the /tmp and /var/tmp tmpfs (0:
	// tmpSizeFor(FileSize)).
	TmpSize uint64
	// MaxOutput bounds the bytes passed to Stdout and to Stderr each (0:
	// defaultMaxOutput); the rest is read and dropped.
	MaxOutput uint64

	Stdout, Stderr io.Writer
}

// defaultMaxOutput is the most a sandboxed command may send to each of
// its output writers.
const defaultMaxOutput = 64 << 20

// tmpSizeFor is the size of each tmpfs of a command whose files may reach
// fileSize bytes: a sixteenth of it, between 16 MiB and 512 MiB (256 MiB
// when unbounded). The tmpfs live in memory.
func tmpSizeFor(fileSize uint64) uint64 {
	if fileSize == 0 {
		return 256 << 20
	}
	return min(max(fileSize/16, 16<<20), 512<<20)
}

const diskPoll = 250 * time.Millisecond

// runResult is how a sandboxed command ended. Exit is -1 when it was killed
// by a signal (Signal says which).
type runResult struct {
	Exit         int
	Signal       syscall.Signal
	TimedOut     bool
	DiskExceeded bool
	Canceled     bool
	Wall         time.Duration
	MaxRSS       uint64 // bytes, largest process of the tree (from the supervisor)
	// OutputTruncated is set when the command wrote more than MaxOutput to
	// stdout or stderr.
	OutputTruncated bool
	// Refusals are what the supervisor refused or saw attempted (bounded).
	Refusals []registry.Refusal
}

// networkAttempt reports whether the command tried to reach the network.
func (r runResult) networkAttempt() bool {
	return slices.ContainsFunc(r.Refusals, func(x registry.Refusal) bool { return x.Action == refusalNetwork })
}

func (r runResult) ok() bool { return r.Exit == 0 && !r.TimedOut && !r.DiskExceeded && !r.Canceled }

// newSandbox finds bubblewrap and its helpers and checks that a command can
// run inside.
func newSandbox(ctx context.Context, bwrap, exe string, ro []string, log *slog.Logger) (*sandbox, error) {
	const op = "pipeline.sandbox"
	if bwrap == "" {
		bwrap = "/usr/bin/bwrap"
	}
	if p, err := exec.LookPath(bwrap); err == nil {
		bwrap = p
	} else {
		return nil, registry.E(op, registry.EUNAVAILABLE, "bubblewrap is not installed; untrusted code cannot run without it (apt-get install bubblewrap)", err)
	}
	if exe == "" {
		return nil, registry.E(op, registry.EINVALID, "the sandbox needs the pipeline's own executable for its supervisor", nil)
	}
	sb := &sandbox{bwrap: bwrap, exe: exe, log: log, recordWrites: true, uid: sandboxUID}
	var err error
	if sb.prlimit, err = exec.LookPath("prlimit"); err != nil {
		return nil, registry.E(op, registry.EUNAVAILABLE, "prlimit (util-linux) is not installed", err)
	}
	if os.Geteuid() == 0 {
		if sb.setpriv, err = exec.LookPath("setpriv"); err != nil {
			return nil, registry.E(op, registry.EUNAVAILABLE, "setpriv (util-linux) is not installed; it is needed to drop root inside the sandbox", err)
		}
	}
	for _, p := range ro {
		if p != "" && !slices.Contains(sb.ro, p) {
			sb.ro = append(sb.ro, p)
		}
	}
	dir, err := os.MkdirTemp("", "wcr-sandbox-probe-")
	if err != nil {
		return nil, registry.E(op, registry.EINTERNAL, "cannot create a temporary directory", err)
	}
	defer os.RemoveAll(dir)
	if err := sb.prepareWritable(dir); err != nil {
		return nil, err
	}
	var out limitedBuffer
	out.limit = 4096
	res, err := sb.run(ctx, runSpec{
		Args: []string{"/bin/sh", "-c", "touch " + dir + "/ok"}, Dir: dir, RW: []string{dir},
		Timeout: 30 * time.Second, Stdout: &out, Stderr: &out,
	})
	if err != nil {
		return nil, err
	}
	if !res.ok() || res.supervisorLost() {
		return nil, registry.Errorf(op, registry.EUNAVAILABLE, "bubblewrap or the sandbox's supervisor does not work on this machine (exit %d): %s", res.Exit, out.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "ok")); err != nil {
		return nil, registry.Errorf(op, registry.EUNAVAILABLE, "bubblewrap ran but its writable directory did not work")
	}
	return sb, nil
}

// withUID is the sandbox running its commands as user uid (the user and
// group of that ID), for one job.
func (sb *sandbox) withUID(uid int) *sandbox {
	c := *sb
	c.uid = uid
	return &c
}

// prepareWritable makes dir (and everything under it) writable by the
// sandbox's user.
func (sb *sandbox) prepareWritable(dir string) error {
	if sb.setpriv == "" {
		return nil
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, sb.uid, sb.uid)
	})
	if err != nil {
		return registry.E("pipeline.sandbox", registry.EINTERNAL, "cannot hand the work directory to the sandbox user", err)
	}
	return nil
}

// args builds bubblewrap's command line for spec.
func (sb *sandbox) args(spec runSpec) []string {
	a := []string{
		"--die-with-parent", "--new-session",
		"--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try",
		"--hostname", "sandbox",
		"--ro-bind", "/usr", "/usr",
	}
	if !spec.Network {
		a = append(a, "--unshare-net")
	}
	if sb.setpriv == "" {
		a = append(a, "--unshare-user")
	} else {
		a = append(a, "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID")
	}
	for _, d := range []string{"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"} {
		if t, err := os.Readlink(d); err == nil {
			a = append(a, "--symlink", t, d)
		} else if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			a = append(a, "--ro-bind", d, d)
		}
	}
	etc := []string{"/etc/alternatives", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d",
		"/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/hosts", "/etc/localtime"}
	if spec.Network {
		etc = append(etc, "/etc/resolv.conf", "/etc/ssl", "/etc/ca-certificates", "/etc/gai.conf")
	}
	a = append(a, "--perms", "0755", "--dir", "/etc")
	for _, e := range etc {
		a = append(a, "--ro-bind-try", e, e)
	}
	a = append(a, "--perms", "0755", "--dir", "/run", "--perms", "0755", "--dir", "/run/wcr", "--ro-bind", sb.exe, helperPath)
	tmp := strconv.FormatUint(spec.TmpSize, 10)
	a = append(a, "--dev", "/dev", "--proc", "/proc",
		"--perms", "1777", "--size", tmp, "--tmpfs", "/tmp", "--perms", "1777", "--size", tmp, "--tmpfs", "/var/tmp")
	// bubblewrap creates missing parents of a bind's destination as 0700
	// root directories, which the sandbox user could not traverse.
	binds := append(append(slices.Clone(sb.ro), spec.RO...), spec.RW...)
	made := map[string]bool{}
	for _, p := range binds {
		var parents []string
		for d := filepath.Dir(p); d != "/" && d != "." && !made[d]; d = filepath.Dir(d) {
			if d == "/usr" || strings.HasPrefix(d, "/usr/") || d == "/tmp" || d == "/var/tmp" || d == "/proc" || d == "/dev" {
				break
			}
			parents = append(parents, d)
		}
		for i := len(parents) - 1; i >= 0; i-- {
			made[parents[i]] = true
			a = append(a, "--perms", "0755", "--dir", parents[i])
		}
	}
	for _, p := range append(slices.Clone(sb.ro), spec.RO...) {
		a = append(a, "--ro-bind-try", p, p)
	}
	for _, p := range spec.RW {
		a = append(a, "--bind", p, p)
	}
	if spec.Dir != "" {
		a = append(a, "--chdir", spec.Dir)
	}
	a = append(a, "--clearenv", "--setenv", ownerEnv, ownerID)
	env := spec.Env
	if !slices.ContainsFunc(env, func(s string) bool { return len(s) > 5 && s[:5] == "PATH=" }) {
		env = append(env, "PATH=/usr/bin:/bin")
	}
	for _, kv := range env {
		k, v, ok := cut(kv, '=')
		if ok {
			a = append(a, "--setenv", k, v)
		}
	}
	a = append(a, "--")
	if sb.setpriv != "" {
		id := strconv.Itoa(sb.uid)
		a = append(a, sb.setpriv, "--reuid="+id, "--regid="+id, "--clear-groups",
			"--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--")
	}
	sup := []string{"--report-fd", strconv.Itoa(reportFD)}
	if sb.recordWrites {
		sup = append(sup, "--record-writes")
		for _, p := range spec.RW {
			sup = append(sup, "--rw", p)
		}
	}
	a = append(a, helperArgs(helperPath, superviseHelper, append(sup, "--")...)...)
	a = append(a, sb.prlimit, "--core=0")
	if spec.Mem > 0 {
		a = append(a, "--as="+strconv.FormatUint(spec.Mem, 10))
	}
	if spec.CPU > 0 {
		a = append(a, "--cpu="+strconv.FormatInt(int64(spec.CPU/time.Second)+1, 10))
	}
	if spec.Procs > 0 {
		a = append(a, "--nproc="+strconv.FormatUint(spec.Procs, 10))
	}
	if spec.FileSize > 0 {
		a = append(a, "--fsize="+strconv.FormatUint(spec.FileSize, 10))
	}
	a = append(a, "--")
	return append(a, spec.Args...)
}

// reportFD is the descriptor on which the supervisor writes its report
// (the first of cmd.ExtraFiles; bubblewrap and setpriv pass it through).
const reportFD = 3

func cut(s string, sep byte) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// run runs spec and waits for it. The error is non-nil only when the
// sandbox itself could not start; a command that fails is a result. When
// ctx carries a refusal set (withRefusals), the command's refusals are
// added to it as well as returned.
func (sb *sandbox) run(ctx context.Context, spec runSpec) (runResult, error) {
	const op = "pipeline.sandbox.run"
	var res runResult
	if spec.TmpSize == 0 {
		spec.TmpSize = tmpSizeFor(spec.FileSize)
	}
	if spec.MaxOutput == 0 {
		spec.MaxOutput = defaultMaxOutput
	}
	args := sb.args(spec)
	sb.log.Debug("sandbox", "args", args)
	cmd := exec.Command(sb.bwrap, args...)
	// One writer for both streams stays one (os/exec then never calls it
	// from two goroutines at once).
	stdout := &cappedWriter{w: spec.Stdout, left: spec.MaxOutput}
	stderr := stdout
	if !sameWriter(spec.Stdout, spec.Stderr) {
		stderr = &cappedWriter{w: spec.Stderr, left: spec.MaxOutput}
	}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	rpipe, wpipe, err := os.Pipe()
	if err != nil {
		return res, registry.E(op, registry.EINTERNAL, "cannot create the supervisor's report pipe", err)
	}
	defer rpipe.Close()
	cmd.ExtraFiles = []*os.File{wpipe} // reportFD
	start := time.Now()
	err = cmd.Start()
	wpipe.Close()
	if err != nil {
		return res, registry.E(op, registry.EINTERNAL, "cannot start bubblewrap", err)
	}
	reportc := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(rpipe, maxSupervisorReport+1))
		_, _ = io.Copy(io.Discard, rpipe)
		reportc <- b
	}()
	var killed atomic.Int32 // 1 timeout, 2 disk, 3 canceled
	kill := func(why int32) {
		if killed.CompareAndSwap(0, why) {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Process.Kill()
		}
	}
	done := make(chan struct{})
	go func() {
		var timeout <-chan time.Time
		if spec.Timeout > 0 {
			t := time.NewTimer(spec.Timeout)
			defer t.Stop()
			timeout = t.C
		}
		var tick <-chan time.Time
		if spec.DiskDir != "" && spec.DiskLimit > 0 {
			tk := time.NewTicker(diskPoll)
			defer tk.Stop()
			tick = tk.C
		}
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				kill(3)
				return
			case <-timeout:
				kill(1)
				return
			case <-tick:
				if dirSize(spec.DiskDir) > spec.DiskLimit {
					kill(2)
					return
				}
			}
		}
	}()
	err = cmd.Wait()
	close(done)
	res.Wall = time.Since(start)
	res.OutputTruncated = stdout.dropped > 0 || stderr.dropped > 0
	switch killed.Load() {
	case 1:
		res.TimedOut = true
	case 2:
		res.DiskExceeded = true
	case 3:
		res.Canceled = true
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return res, registry.E(op, registry.EINTERNAL, "bubblewrap failed", err)
	}
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	switch {
	case ws.Signaled():
		res.Exit, res.Signal = -1, ws.Signal()
	default:
		res.Exit = ws.ExitStatus()
		// A process killed inside the sandbox shows as 128+signal from
		// the supervisor and bubblewrap's init.
		if res.Exit > 128 && res.Exit < 128+65 {
			res.Signal = syscall.Signal(res.Exit - 128)
		}
	}
	if rep, ok := parseSuperviseReport(<-reportc); ok {
		res.MaxRSS = rep.MaxRSS
		res.Refusals = rep.Refusals
		if rep.Exit == -1 && rep.Signal > 0 {
			res.Exit, res.Signal = -1, syscall.Signal(rep.Signal)
		}
	} else if killed.Load() == 0 {
		// The supervisor died before reporting: something in the sandbox
		// killed it (it is undumpable, so nothing can have written to it).
		res.Refusals = []registry.Refusal{{Action: refusalLost, Count: 1}}
	}
	if set := refusalsFrom(ctx); set != nil {
		set.addAll(res.Refusals)
	}
	if res.Canceled {
		return res, registry.E(op, registry.ECANCELED, "the run was cancelled", ctx.Err())
	}
	return res, nil
}

// sameWriter reports whether a and b are the same comparable writer.
func sameWriter(a, b io.Writer) (same bool) {
	defer func() {
		if recover() != nil {
			same = false
		}
	}()
	return a == b
}

// supervisorLost reports whether the supervisor sent no report.
func (r runResult) supervisorLost() bool {
	return slices.ContainsFunc(r.Refusals, func(x registry.Refusal) bool { return x.Action == refusalLost })
}

// boundedWriter is a writer that holds a bounded amount of memory however
// much is written to it (limitedBuffer, lineScanner): it sees the whole
// stream, so that it can keep its end.
type boundedWriter interface {
	io.Writer
	boundedMemory()
}

func (*limitedBuffer) boundedMemory() {}
func (*lineScanner) boundedMemory()   {}

// cappedWriter passes at most left bytes to w (nil: none) and drops the
// rest, counting it; it never fails, so the command is never blocked on a
// full pipe. A boundedWriter gets everything.
type cappedWriter struct {
	w       io.Writer
	left    uint64
	dropped uint64
}

func (c *cappedWriter) Write(p []byte) (int, error) {
	n := len(p)
	if _, ok := c.w.(boundedWriter); ok {
		_, _ = c.w.Write(p)
		return n, nil
	}
	if uint64(n) > c.left {
		c.dropped += uint64(n) - c.left
		p = p[:c.left]
	}
	c.left -= uint64(len(p))
	if len(p) > 0 && c.w != nil {
		_, _ = c.w.Write(p)
	}
	return n, nil
}

// dirSize is the total size of the regular files under dir.
func dirSize(dir string) uint64 {
	var n uint64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += uint64(fi.Size())
			}
		}
		return nil
	})
	return n
}

// limitedBuffer keeps the first head bytes and the last limit bytes written
// to it, and counts what it dropped.
type limitedBuffer struct {
	limit   int
	head    []byte
	tail    []byte
	dropped int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	n := len(p)
	headCap := b.limit / 4
	if len(b.head) < headCap {
		k := min(headCap-len(b.head), len(p))
		b.head = append(b.head, p[:k]...)
		p = p[k:]
	}
	tailCap := b.limit - headCap
	b.tail = append(b.tail, p...)
	if over := len(b.tail) - tailCap; over > 0 {
		b.dropped += over
		b.tail = append(b.tail[:0], b.tail[over:]...)
	}
	return n, nil
}

// String returns the kept text, with a marker where bytes were dropped.
func (b *limitedBuffer) String() string {
	if b.dropped == 0 {
		return string(b.head) + string(b.tail)
	}
	return string(b.head) + "\n[… " + strconv.Itoa(b.dropped) + " bytes omitted …]\n" + string(b.tail)
}

// Truncated reports whether bytes were dropped.
func (b *limitedBuffer) Truncated() bool { return b.dropped > 0 }
