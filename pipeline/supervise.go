package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// The supervisor is the first program of every sandboxed command that
// runs as the sandbox user:
//
//	bwrap … -- setpriv … -- /run/wcr/helper __wcr-pipeline-helper supervise [opts] -- prlimit … -- cmd…
//
// It makes itself undumpable (so the command, which runs as the same
// user, can neither read nor write its memory or descriptors), becomes a
// child subreaper, installs the seccomp filter (seccomp_linux.go) on one
// locked OS thread and starts the command from that thread, so that the
// command and all its descendants are filtered and the supervisor's other
// threads are not. The resource limits are set by prlimit just before the
// command, so that the supervisor itself is not bound by them (a fork bomb
// must not stop it from creating the threads it needs). It answers the
// filter's notifications, waits for the whole process tree (killing what
// is left when the command ends), and sends a superviseReport as JSON on
// the descriptor the host passed (--report-fd). Its exit status is the
// command's (128+signal when the command was killed).

const superviseHelper = "supervise"

func init() { registerHelper(superviseHelper, superviseMain) }

// Refusal actions (registry.Refusal.Action).
const (
	refusalSyscall = "syscall"         // a refused system call, answered EPERM (Detail: its name)
	refusalNetwork = "network-attempt" // connect() to an internet address (Detail: address:port)
	refusalWrite   = "write-outside"   // a write-intent path call outside the writable areas (Detail: the path)
	refusalLost    = "supervisor-lost" // the supervisor sent no report (it was killed)
	refusalMore    = "more"            // Count more refusals were not kept
)

// superviseReport is what the supervisor tells the host. The host bounds
// and re-checks it: it comes from inside the sandbox.
type superviseReport struct {
	Exit     int                `json:"exit"`             // -1 when killed by a signal
	Signal   int                `json:"signal,omitempty"` // the signal that killed the command
	MaxRSS   uint64             `json:"max_rss"`          // bytes: the largest process of the tree
	Refusals []registry.Refusal `json:"refusals,omitempty"`
	Error    string             `json:"error,omitempty"` // the command could not start
}

// maxSupervisorReport bounds what the host reads from the report pipe.
const maxSupervisorReport = 64 << 10

// superviseOpts is the supervisor's command line.
type superviseOpts struct {
	reportFD     int
	writable     []string
	recordWrites bool
	args         []string
}

func parseSuperviseArgs(args []string) (superviseOpts, error) {
	o := superviseOpts{reportFD: -1}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch a {
		case "--":
			o.args = args[i+1:]
			if len(o.args) == 0 {
				return o, fmt.Errorf("no command after --")
			}
			return o, nil
		case "--record-writes":
			o.recordWrites = true
		case "--report-fd", "--rw":
			if i+1 >= len(args) {
				return o, fmt.Errorf("%s needs a value", a)
			}
			i++
			if a == "--rw" {
				if !filepath.IsAbs(args[i]) {
					return o, fmt.Errorf("--rw %q is not absolute", args[i])
				}
				o.writable = append(o.writable, filepath.Clean(args[i]))
				continue
			}
			fd, err := strconv.Atoi(args[i])
			if err != nil || fd < 3 {
				return o, fmt.Errorf("bad --report-fd %q", args[i])
			}
			o.reportFD = fd
		default:
			return o, fmt.Errorf("unknown option %q", a)
		}
	}
	return o, fmt.Errorf("no command (missing --)")
}

func superviseMain(args []string) int {
	o, err := parseSuperviseArgs(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, "supervise:", err)
		return 125
	}
	// No descriptor but stdin, stdout and stderr reaches the command,
	// whatever the node itself inherited.
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		fmt.Fprintln(os.Stderr, "supervise: close_range:", err)
		return 125
	}
	var report io.WriteCloser = nopWriteCloser{}
	if o.reportFD >= 0 {
		report = os.NewFile(uintptr(o.reportFD), "supervise-report")
	}
	rep, code := supervise(o)
	b, _ := json.Marshal(rep)
	_, _ = report.Write(b)
	_ = report.Close()
	return code
}

type nopWriteCloser struct{}

func (nopWriteCloser) Write(p []byte) (int, error) { return len(p), nil }
func (nopWriteCloser) Close() error                { return nil }

func supervise(o superviseOpts) (superviseReport, int) {
	var rep superviseReport
	fail := func(format string, a ...any) (superviseReport, int) {
		rep.Exit, rep.Error = 127, fmt.Sprintf(format, a...)
		fmt.Fprintln(os.Stderr, "supervise:", rep.Error)
		return rep, 127
	}
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fail("PR_SET_DUMPABLE: %v", err)
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fail("PR_SET_CHILD_SUBREAPER: %v", err)
	}
	argv0 := o.args[0]
	if !strings.Contains(argv0, "/") {
		p, err := exec.LookPath(argv0)
		if err != nil {
			return fail("%v", err)
		}
		argv0 = p
	}
	refused := newRefusalSet()
	var exitPeak atomic.Uint64
	type started struct {
		pid int
		err error
	}
	ch := make(chan started, 1)
	go func() {
		// This thread is filtered for good: it is never unlocked, so it
		// ends with this goroutine.
		runtime.LockOSThread()
		lis, err := installFilter(o.recordWrites)
		if err != nil {
			ch <- started{err: err}
			return
		}
		n := &notifier{fd: int(lis.Fd()), listener: lis, writable: append(o.writable, writableAlways...),
			record: func(action, detail string) { refused.add(action, detail, 1) }, exitPeak: &exitPeak}
		go n.serve()
		pid, err := syscall.ForkExec(argv0, o.args, &syscall.ProcAttr{Env: os.Environ(), Files: []uintptr{0, 1, 2}})
		ch <- started{pid, err}
	}()
	st := <-ch
	if st.err != nil {
		return fail("cannot start %s: %v", o.args[0], st.err)
	}
	var mainWS syscall.WaitStatus
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, 0, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			break // ECHILD: the whole tree is gone
		}
		if pid == st.pid {
			mainWS = ws
			// What the command left behind dies with it; the subreaper
			// collects it, so its memory is counted too.
			_ = syscall.Kill(-1, syscall.SIGKILL)
		}
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru) == nil {
		own, _ := vmHWM("self")
		rep.MaxRSS = ownPeak(uint64(ru.Maxrss)*1024, exitPeak.Load(), own)
	}
	rep.Refusals = refused.list()
	code := mainWS.ExitStatus()
	if mainWS.Signaled() {
		rep.Exit, rep.Signal = -1, int(mainWS.Signal())
		code = 128 + int(mainWS.Signal())
	} else {
		rep.Exit = code
	}
	return rep, code
}

// Bounds of a refusal list: distinct entries, bytes of details, and the
// length of one detail.
const (
	maxRefusals       = 32
	maxRefusalBytes   = 4 << 10
	maxRefusalDetail  = 200
	maxRefusalActions = 32
)

// refusalSet collects refusals, merging repeats and keeping at most
// maxRefusals entries and maxRefusalBytes of text; what it cannot keep it
// counts. It is safe for concurrent use.
type refusalSet struct {
	mu      sync.Mutex
	items   []registry.Refusal
	index   map[[2]string]int
	bytes   int
	omitted uint64
}

func newRefusalSet() *refusalSet { return &refusalSet{index: map[[2]string]int{}} }

func (s *refusalSet) add(action, detail string, count uint64) {
	if count == 0 {
		return
	}
	action, detail = cleanText(action, maxRefusalActions), cleanText(detail, maxRefusalDetail)
	s.mu.Lock()
	defer s.mu.Unlock()
	if action == refusalMore {
		s.omitted += count
		return
	}
	k := [2]string{action, detail}
	if i, ok := s.index[k]; ok {
		s.items[i].Count += count
		return
	}
	if len(s.items) >= maxRefusals || s.bytes+len(action)+len(detail) > maxRefusalBytes {
		s.omitted += count
		return
	}
	s.index[k] = len(s.items)
	s.items = append(s.items, registry.Refusal{Action: action, Detail: detail, Count: count})
	s.bytes += len(action) + len(detail)
}

// addAll merges a list (possibly with its own "more" entry).
func (s *refusalSet) addAll(rs []registry.Refusal) {
	for _, r := range rs {
		s.add(r.Action, r.Detail, max(r.Count, 1))
	}
}

// list returns the entries in the order first seen, with a final "more"
// entry counting what was not kept.
func (s *refusalSet) list() []registry.Refusal {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]registry.Refusal, len(s.items), len(s.items)+1)
	copy(out, s.items)
	if s.omitted > 0 {
		out = append(out, registry.Refusal{Action: refusalMore, Detail: "+" + strconv.FormatUint(s.omitted, 10) + " more", Count: s.omitted})
	}
	return out
}

// cleanText makes s valid UTF-8 without control characters and at most n
// bytes long.
func cleanText(s string, n int) string {
	s = strings.ToValidUTF8(s, "�")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// refusalsKey carries a *refusalSet in a context: every sandboxed command
// run with that context adds its refusals to it.
type refusalsKey struct{}

// withRefusals returns a context whose sandboxed commands record their
// refusals in set.
func withRefusals(ctx context.Context, set *refusalSet) context.Context {
	return context.WithValue(ctx, refusalsKey{}, set)
}

func refusalsFrom(ctx context.Context) *refusalSet {
	s, _ := ctx.Value(refusalsKey{}).(*refusalSet)
	return s
}

// parseSuperviseReport decodes the supervisor's report, which the host
// treats as untrusted input: at most maxSupervisorReport bytes, and its
// refusals re-bounded.
func parseSuperviseReport(b []byte) (superviseReport, bool) {
	var rep superviseReport
	if len(b) == 0 || len(b) > maxSupervisorReport || json.Unmarshal(b, &rep) != nil {
		return superviseReport{}, false
	}
	if rep.Signal < 0 || rep.Signal > 64 {
		rep.Signal = 0
	}
	set := newRefusalSet()
	set.addAll(rep.Refusals)
	rep.Refusals = set.list()
	rep.Error = cleanText(rep.Error, 300)
	return rep, true
}
