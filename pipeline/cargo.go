package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// cargoEnv is where one toolchain's cargo works for a job.
type cargoEnv struct {
	sb        *sandbox // the job's sandbox; nil means the pipeline's own
	tc        Toolchain
	pkg       string // the package's directory (a copy per toolchain)
	target    string // CARGO_TARGET_DIR
	home      string // HOME and CARGO_HOME
	network   bool
	extraRO   []string
	diskDir   string
	diskLimit uint64
	features  []string // the tested configuration's cargo flags (config.go), for the commands that build
}

// sandbox is where ce's commands run.
func (ce *cargoEnv) sandbox(p *Pipeline) *sandbox {
	if ce.sb != nil {
		return ce.sb
	}
	return p.sb
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
		Code     *struct {
			Code string `json:"code"`
		} `json:"code"`
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
	// error or, failing that, with a failed build script.
	firstError string
	facts      stepFacts
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
		Stdout: stdoutScan, Stderr: res.stderr,
	}
	run, err := ce.sandbox(p).run(ctx, spec)
	stdoutScan.flush()
	res.run = run
	if err != nil {
		return res, err
	}
	if run.OutputTruncated || stdoutScan.overflow > 0 {
		res.notes = append(res.notes, fmt.Sprintf("[cargo's output passed the pipeline's bound of %d MiB per stream; the rest was dropped]", maxCargoOutput>>20))
	}
	if stdoutScan.dropped > 0 {
		res.notes = append(res.notes, fmt.Sprintf("[%d of cargo's JSON messages were longer than %d MiB and were skipped]", stdoutScan.dropped, maxCargoLine>>20))
	}
	if res.firstError == "" && !run.ok() {
		res.firstError = res.facts.failedScript()
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
	r.facts.add(&m)
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
