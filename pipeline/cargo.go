package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// cargoEnv is where one toolchain's cargo works for a job.
type cargoEnv struct {
	tc        Toolchain
	pkg       string // the package's directory (a copy per toolchain)
	target    string // CARGO_TARGET_DIR
	home      string // HOME and CARGO_HOME
	network   bool
	extraRO   []string
	diskDir   string
	diskLimit uint64
}

func (ce *cargoEnv) env() []string {
	bin := filepath.Dir(ce.tc.Cargo)
	env := []string{
		"PATH=" + bin + ":/usr/bin:/bin",
		"HOME=" + ce.home,
		"CARGO_HOME=" + ce.home,
		"RUSTC=" + ce.tc.Rustc,
		"CARGO_TARGET_DIR=" + ce.target,
		"CARGO_TERM_COLOR=never",
		"CARGO_INCREMENTAL=0",
		"TMPDIR=/tmp",
		"LANG=C.UTF-8",
	}
	env = append(env, lintEnv()...)
	if rd := filepath.Join(filepath.Dir(ce.tc.Rustc), "rustdoc"); isExecutable(rd) {
		env = append(env, "RUSTDOC="+rd)
	}
	if ce.network {
		env = append(env, "CARGO_NET_RETRY=1", "CARGO_HTTP_TIMEOUT=60")
	} else {
		env = append(env, "CARGO_NET_OFFLINE=true")
	}
	return env
}

// cargoMessage is the part of cargo's --message-format=json output the
// pipeline reads.
type cargoMessage struct {
	Reason       string `json:"reason"`
	PackageID    string `json:"package_id"`
	ManifestPath string `json:"manifest_path"`
	Target       struct {
		Kind       []string `json:"kind"`
		CrateTypes []string `json:"crate_types"`
		Name       string   `json:"name"`
	} `json:"target"`
	Profile struct {
		Test bool `json:"test"`
	} `json:"profile"`
	Filenames  []string `json:"filenames"`
	Executable *string  `json:"executable"`
	Message    *struct {
		Level    string `json:"level"`
		Rendered string `json:"rendered"`
	} `json:"message"`
	Success *bool `json:"success"`
}

// cargoResult is one cargo invocation's outcome.
type cargoResult struct {
	run       runResult
	stderr    *limitedBuffer
	artifacts []cargoMessage // compiler-artifact messages
	errors    []string       // rendered compiler errors, at most a few
	// firstError is the package ID of the first package with a compiler
	// error or a failed build script.
	firstError string
	notes      []string // where the output was truncated
}

func (r *cargoResult) ok() bool { return r.run.ok() }

// log is the step's output for a log excerpt: compiler errors first, then
// cargo's own output.
func (r *cargoResult) log() (string, bool) {
	var b strings.Builder
	for _, e := range r.errors {
		b.WriteString(e)
		if !strings.HasSuffix(e, "\n") {
			b.WriteByte('\n')
		}
	}
	b.WriteString(r.stderr.String())
	for _, n := range r.notes {
		b.WriteString("\n" + n)
	}
	return b.String(), r.stderr.Truncated() || len(r.notes) > 0
}

const maxKeptErrors = 4

var (
	buildScriptFailRE = regexp.MustCompile("failed to run custom build command for `([^`]+)`")
	couldNotCompileRE = regexp.MustCompile("could not compile `([^`]+)`")
)

// Bounds of cargo's output: its JSON message stream (stdout) is parsed
// line by line as it arrives; a line longer than maxCargoLine is skipped,
// and at most maxCargoOutput bytes are read from each stream.
const (
	maxCargoLine   = 4 << 20
	maxCargoOutput = 64 << 20
)

// cargo runs cargo with args in ce under the sandbox.
func (p *Pipeline) cargo(ctx context.Context, ce *cargoEnv, timeout time.Duration, writablePkg bool, args ...string) (*cargoResult, error) {
	res := &cargoResult{stderr: &limitedBuffer{limit: 48 << 10}}
	// The two streams are scanned by two goroutines: each keeps its own
	// findings until the command has ended.
	var scriptFail string
	stderrScan := &lineScanner{max: 64 << 10, fn: func(line string) {
		if scriptFail != "" {
			return
		}
		if m := buildScriptFailRE.FindStringSubmatch(line); m != nil {
			scriptFail = m[1]
		}
	}}
	stdoutScan := &lineScanner{max: maxCargoLine, maxTotal: maxCargoOutput, fn: res.message}
	rw := []string{ce.target, ce.home}
	ro := append([]string{ce.pkg}, ce.extraRO...)
	if writablePkg {
		rw = append(rw, ce.pkg)
		ro = ce.extraRO
	}
	spec := runSpec{
		Args: append([]string{ce.tc.Cargo}, args...), Env: ce.env(), Dir: filepath.Dir(ce.pkg),
		RW: rw, RO: ro, Network: ce.network,
		Timeout: timeout, Mem: p.cfg.Limits.Memory, CPU: p.cfg.Limits.CPUTime, Procs: p.cfg.Limits.Processes,
		FileSize: p.cfg.Limits.Disk, DiskDir: ce.diskDir, DiskLimit: ce.diskLimit, MaxOutput: maxCargoOutput,
		Stdout: stdoutScan, Stderr: multiWriter{res.stderr, stderrScan},
	}
	run, err := p.sb.run(ctx, spec)
	stderrScan.flush()
	stdoutScan.flush()
	res.run = run
	if scriptFail != "" {
		res.firstError = scriptFail // a failed build script comes first
	}
	if err != nil {
		return res, err
	}
	if run.OutputTruncated || stdoutScan.overflow > 0 {
		res.notes = append(res.notes, fmt.Sprintf("[cargo's output passed the pipeline's bound of %d MiB per stream; the rest was dropped]", maxCargoOutput>>20))
	}
	if stdoutScan.dropped > 0 {
		res.notes = append(res.notes, fmt.Sprintf("[%d of cargo's JSON messages were longer than %d MiB and were skipped]", stdoutScan.dropped, maxCargoLine>>20))
	}
	if res.firstError == "" {
		if m := couldNotCompileRE.FindStringSubmatch(res.stderr.String()); m != nil {
			res.firstError = m[1]
		}
	}
	return res, nil
}

// message takes one line of cargo's --message-format=json output.
func (r *cargoResult) message(line string) {
	if len(line) == 0 || line[0] != '{' {
		return
	}
	var m cargoMessage
	if json.Unmarshal([]byte(line), &m) != nil {
		return
	}
	switch m.Reason {
	case "compiler-artifact":
		r.artifacts = append(r.artifacts, m)
	case "compiler-message":
		if m.Message != nil && m.Message.Level == "error" {
			if len(r.errors) < maxKeptErrors {
				r.errors = append(r.errors, m.Message.Rendered)
			}
			if r.firstError == "" {
				r.firstError = m.PackageID
			}
		}
	}
}

// lineScanner calls fn for every complete line written to it of at most
// max bytes (0: 1 MiB); longer lines are skipped and counted in dropped.
// With maxTotal > 0, bytes past the first maxTotal are not looked at
// (overflow counts them).
type lineScanner struct {
	fn       func(string)
	max      int
	maxTotal uint64
	total    uint64
	overflow uint64
	buf      []byte
	skipping bool
	dropped  int
}

func (l *lineScanner) limit() int {
	if l.max <= 0 {
		return 1 << 20
	}
	return l.max
}

func (l *lineScanner) Write(p []byte) (int, error) {
	n := len(p)
	if l.maxTotal > 0 {
		if l.total+uint64(len(p)) > l.maxTotal {
			keep := l.maxTotal - min(l.total, l.maxTotal)
			l.overflow += uint64(len(p)) - keep
			p = p[:keep]
		}
		l.total += uint64(len(p))
	}
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if !l.skipping {
				l.buf = append(l.buf, p...)
				if len(l.buf) > l.limit() {
					l.buf, l.skipping = l.buf[:0], true
					l.dropped++
				}
			}
			break
		}
		if l.skipping {
			l.skipping = false
		} else if len(l.buf)+i > l.limit() {
			l.dropped++
		} else {
			l.fn(string(append(l.buf, p[:i]...)))
		}
		l.buf = l.buf[:0]
		p = p[i+1:]
	}
	return n, nil
}

func (l *lineScanner) flush() {
	if len(l.buf) > 0 && !l.skipping {
		l.fn(string(l.buf))
	}
	l.buf, l.skipping = nil, false
}

type multiWriter []interface{ Write([]byte) (int, error) }

func (m multiWriter) Write(p []byte) (int, error) {
	for _, w := range m {
		_, _ = w.Write(p)
	}
	return len(p), nil
}

// Failure signatures in a failed step's output.
var (
	sandboxSignatures = []string{
		"Read-only file system (os error 30)",
		"Network is unreachable (os error 101)",
		"Temporary failure in name resolution",
		"failed to lookup address information",
		"Connection refused (os error 111)", // nothing listens inside the sandbox's own network namespace
		"Resource temporarily unavailable (os error 11)",
		"Permission denied (os error 13)",
		"File too large (os error 27)",
	}
	brokenDepSignatures = []string{
		"no matching package named",
		"failed to select a version for",
		"failed to load source for dependency",
		"failed to get `",
		"checksum for `",
		"no matching package found",
		"which is depended on by",
		"failed to download",
		"attempting to make an HTTP request, but --offline was specified",
	}
	toolchainSignatures = []string{
		"is required\n", // "feature `edition2021` is required"
		"because it requires rustc",
		"requires a nightly version of Cargo",
		"is older than the",
		"lock file version",
		"unknown variant `20",
		"failed to parse the `edition` key",
		"supported edition values are",
		"requires the `-Z` flag",
	}
)

// classifyFailure names the outcome of a failed build step from how it
// ended and what it printed.
func classifyFailure(run runResult, text string, cpuLimited bool) (outcome, why string) {
	switch {
	case run.TimedOut:
		return registry.OutcomeTimeout, "the step passed its deadline"
	case run.DiskExceeded:
		return registry.OutcomeSandboxViolation, "the step wrote more than the disk limit"
	case run.Signal == syscall.SIGXFSZ:
		return registry.OutcomeSandboxViolation, "a process wrote a file larger than the disk limit"
	case run.Signal == syscall.SIGXCPU || (cpuLimited && run.Signal == syscall.SIGKILL):
		return registry.OutcomeTimeout, "a process used up its CPU-time limit"
	case isOOMText(text) || strings.Contains(text, "out of memory"):
		return registry.OutcomeOOM, "a process ran out of its memory limit"
	}
	for _, s := range toolchainSignatures {
		if strings.Contains(text, s) {
			return registry.OutcomeToolchainMissing, "the crate needs a newer toolchain than this one: " + firstLineWith(text, strings.TrimSpace(s))
		}
	}
	for _, s := range brokenDepSignatures {
		if strings.Contains(text, s) {
			return registry.OutcomeBrokenDeps, "dependencies cannot be resolved from the configured sources: " + firstLineWith(text, s)
		}
	}
	for _, s := range sandboxSignatures {
		if strings.Contains(text, s) {
			return registry.OutcomeSandboxViolation, "a build step tried what the sandbox forbids: " + firstLineWith(text, s)
		}
	}
	return registry.OutcomeBuildFail, ""
}

// firstLineWith returns the first line of text containing s, trimmed.
func firstLineWith(text, s string) string {
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, s) {
			line = strings.TrimSpace(line)
			if len(line) > 300 {
				line = line[:300] + "…"
			}
			return line
		}
	}
	return strings.TrimSpace(s)
}

// packageName turns a cargo package ID or "name vX.Y.Z (...)" into
// "name@X.Y.Z".
func packageName(id string) string {
	id = strings.TrimSpace(id)
	if id == "" {
		return ""
	}
	// cargo ≥1.77: "registry+https://…#name@1.2.3" or "path+file:///…#name@1.2.3" or "…#1.2.3"
	if i := strings.LastIndexByte(id, '#'); i >= 0 && !strings.Contains(id[i:], " ") {
		frag := id[i+1:]
		if strings.Contains(frag, "@") {
			return frag
		}
		base := strings.TrimSuffix(id[:i], "/")
		return base[strings.LastIndexByte(base, '/')+1:] + "@" + frag
	}
	f := strings.Fields(id)
	if len(f) >= 2 {
		return f[0] + "@" + strings.TrimPrefix(f[1], "v")
	}
	return id
}
