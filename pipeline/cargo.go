package pipeline

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
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
	return b.String(), r.stderr.Truncated()
}

const maxKeptErrors = 4

var (
	buildScriptFailRE = regexp.MustCompile("failed to run custom build command for `([^`]+)`")
	couldNotCompileRE = regexp.MustCompile("could not compile `([^`]+)`")
)

// cargo runs cargo with args in ce under the sandbox.
func (p *Pipeline) cargo(ctx context.Context, ce *cargoEnv, timeout time.Duration, writablePkg bool, args ...string) (*cargoResult, error) {
	res := &cargoResult{stderr: &limitedBuffer{limit: 48 << 10}}
	var stdout bytes.Buffer
	stderrScan := &lineScanner{fn: func(line string) {
		if res.firstError != "" {
			return
		}
		if m := buildScriptFailRE.FindStringSubmatch(line); m != nil {
			res.firstError = m[1]
		}
	}}
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
		FileSize: p.cfg.Limits.Disk, DiskDir: ce.diskDir, DiskLimit: ce.diskLimit,
		Stdout: &stdout, Stderr: multiWriter{res.stderr, stderrScan},
	}
	run, err := p.sb.run(ctx, spec)
	stderrScan.flush()
	res.run = run
	if err != nil {
		return res, err
	}
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var m cargoMessage
		if json.Unmarshal(line, &m) != nil {
			continue
		}
		switch m.Reason {
		case "compiler-artifact":
			res.artifacts = append(res.artifacts, m)
		case "compiler-message":
			if m.Message != nil && m.Message.Level == "error" {
				if len(res.errors) < maxKeptErrors {
					res.errors = append(res.errors, m.Message.Rendered)
				}
				if res.firstError == "" {
					res.firstError = m.PackageID
				}
			}
		}
	}
	if res.firstError == "" {
		if m := couldNotCompileRE.FindStringSubmatch(res.stderr.String()); m != nil {
			res.firstError = m[1]
		}
	}
	return res, nil
}

// lineScanner calls fn for every complete line written to it.
type lineScanner struct {
	fn  func(string)
	buf []byte
}

func (l *lineScanner) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.fn(string(l.buf[:i]))
		l.buf = l.buf[i+1:]
	}
	if len(l.buf) > 1<<20 {
		l.buf = l.buf[:0]
	}
	return len(p), nil
}

func (l *lineScanner) flush() {
	if len(l.buf) > 0 {
		l.fn(string(l.buf))
		l.buf = nil
	}
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
