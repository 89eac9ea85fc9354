package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// Scheme names this pipeline's report layout and scoring (report field 16).
const Scheme = "wcr-pipeline/1"

// Limits bound every sandboxed step. Zero fields take the defaults of
// DefaultLimits.
type Limits struct {
	BuildTime  time.Duration `json:"build_time"`  // wall time per cargo invocation
	TestTime   time.Duration `json:"test_time"`   // wall time (and native CPU time) per test
	TestsTime  time.Duration `json:"tests_time"`  // wall time for all tests of one target
	CPUTime    time.Duration `json:"cpu_time"`    // CPU time per process in build steps
	Memory     uint64        `json:"memory"`      // address space per process in build steps, bytes
	TestMemory uint64        `json:"test_memory"` // native: address space per test process; wasm: linear-memory limit (at most 4 GiB)
	Processes  uint64        `json:"processes"`   // processes and threads of the sandbox user
	Disk       uint64        `json:"disk"`        // bytes a job's work directory may hold (also the largest file)
	MaxTests   int           `json:"max_tests"`   // tests run individually per target; the rest are reported not-run
}

// DefaultLimits are the limits of a new node.
func DefaultLimits() Limits {
	return Limits{
		BuildTime:  15 * time.Minute,
		TestTime:   60 * time.Second,
		TestsTime:  15 * time.Minute,
		CPUTime:    30 * time.Minute,
		Memory:     4 << 30,
		TestMemory: 1 << 30,
		Processes:  512,
		Disk:       8 << 30,
		MaxTests:   2000,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.BuildTime <= 0 {
		l.BuildTime = d.BuildTime
	}
	if l.TestTime <= 0 {
		l.TestTime = d.TestTime
	}
	if l.TestsTime <= 0 {
		l.TestsTime = d.TestsTime
	}
	if l.CPUTime <= 0 {
		l.CPUTime = d.CPUTime
	}
	if l.Memory == 0 {
		l.Memory = d.Memory
	}
	if l.TestMemory == 0 {
		l.TestMemory = d.TestMemory
	}
	if l.Processes == 0 {
		l.Processes = d.Processes
	}
	if l.Disk == 0 {
		l.Disk = d.Disk
	}
	if l.MaxTests <= 0 {
		l.MaxTests = d.MaxTests
	}
	return l
}

// DebianRegistry is Debian's directory of packaged crate sources.
const DebianRegistry = "/usr/share/cargo/registry"

// Config configures a Pipeline.
type Config struct {
	// Dir is the pipeline's private directory: created 0700, and refused
	// when it exists owned by another user or open to others. WorkDir and
	// CacheDir default to Dir/work and Dir/cache.
	Dir string
	// WorkDir holds one fresh directory per run, removed when the run ends;
	// whatever it holds when the pipeline starts is removed (required
	// unless Dir is set).
	WorkDir string
	// CacheDir holds the wazero compilation cache and the node's own
	// releases unpacked for Cargo (default WorkDir/cache). It may be shared
	// by runs and survives them; both caches are verified against hashes
	// the pipeline keeps before they are used.
	CacheDir string
	// DirectorySources are Cargo directory sources (directories of unpacked
	// crates with .cargo-checksum.json). Nil means DebianRegistry when it
	// exists; an empty non-nil slice means none.
	DirectorySources []string
	// AllowNetwork lets dependency resolution fall back to crates.io when
	// the offline sources cannot satisfy a crate. Only cargo's download
	// step gets the network; untrusted code never does.
	AllowNetwork bool
	Limits       Limits
	// Gates decide curated, needs-review or rejected; the zero value means
	// registry.DefaultGates().
	Gates  registry.Gates
	Logger *slog.Logger
	// ToolchainDirs are searched for cargo/rustc pairs before PATH,
	// /usr/bin and the rustup toolchains.
	ToolchainDirs []string
	// ExtraTargets are built (not tested) besides the host and wasm
	// targets; those without an installed std are reported
	// toolchain-missing. Every other target whose std is installed is built
	// too.
	ExtraTargets []string
	// Bwrap is bubblewrap's path (default /usr/bin/bwrap).
	Bwrap string
	// MaxCrateSize bounds .crate archives (default registry.DefaultMaxCrateSize).
	MaxCrateSize int64
	// KeepWork leaves each run's work directory in place, for debugging.
	KeepWork bool
	// HelperExe is the executable the pipeline's sandboxed helpers run
	// from (default: this process's own executable, whose main must call
	// MaybeRunHelper first).
	HelperExe string
	// SandboxUIDs is the range of user IDs jobs run as when the pipeline
	// runs as root, one per running job (uids.go); zero values take the
	// defaults (DefaultUIDBase, DefaultUIDCount, DefaultUIDLockDir).
	SandboxUIDs UIDRange
}

// UIDRange is a range of user IDs and the directory of its slots' locks,
// shared by every process of the machine that uses the range.
type UIDRange struct {
	Base, Count int
	LockDir     string
}

// Pipeline tests releases: it builds them with cargo for the host and the
// wasm targets inside a sandbox, runs their tests natively and in wazero,
// analyses the results and returns a report body. A Pipeline is safe for
// concurrent Runs; each run has its own work directory.
type Pipeline struct {
	cfg        Config
	log        *slog.Logger
	sb         *sandbox
	uids       *uidPool // nil when not running as root: the sandbox keeps this user
	toolchains []Toolchain
	plan       []TargetStatus
	host       string
	wcache     *wasmCache
	compiled   sync.Map // sha256 of wasm test binaries compiled into wcache by this process
	wazeroV    string
	seq        atomic.Int64

	cratesMu sync.Mutex
	crates   map[string]bool // store crates whose unpacked tree was verified in this process

	controls controlCache // whether each toolchain builds a control crate for each target
}

// New detects the toolchains and checks the sandbox. It fails only when
// the configuration cannot work: no work directory, a private directory
// that is not private (EINVALID), or no working bubblewrap (EUNAVAILABLE),
// since untrusted code must never run outside it. Missing toolchains are
// not an error; Targets says what is missing.
func New(cfg Config) (*Pipeline, error) {
	const op = "pipeline.New"
	if cfg.Dir != "" {
		d, err := filepath.Abs(cfg.Dir)
		if err != nil {
			return nil, registry.E(op, registry.EINVALID, "pipeline directory", err)
		}
		if err := PrivateDir(d); err != nil {
			return nil, err
		}
		cfg.Dir = d
		if cfg.WorkDir == "" {
			cfg.WorkDir = filepath.Join(d, "work")
		}
		if cfg.CacheDir == "" {
			cfg.CacheDir = filepath.Join(d, "cache")
		}
	}
	if cfg.WorkDir == "" {
		return nil, registry.Errorf(op, registry.EINVALID, "the pipeline needs a work directory")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.CacheDir == "" {
		cfg.CacheDir = filepath.Join(cfg.WorkDir, "cache")
	}
	var err error
	if cfg.WorkDir, err = filepath.Abs(cfg.WorkDir); err != nil {
		return nil, registry.E(op, registry.EINVALID, "work directory", err)
	}
	if cfg.CacheDir, err = filepath.Abs(cfg.CacheDir); err != nil {
		return nil, registry.E(op, registry.EINVALID, "cache directory", err)
	}
	if cfg.DirectorySources == nil {
		if fi, err := os.Stat(DebianRegistry); err == nil && fi.IsDir() {
			cfg.DirectorySources = []string{DebianRegistry}
		}
	}
	for i, d := range cfg.DirectorySources {
		if cfg.DirectorySources[i], err = filepath.Abs(d); err != nil {
			return nil, registry.E(op, registry.EINVALID, "directory source", err)
		}
	}
	if cfg.Gates == (registry.Gates{}) {
		cfg.Gates = registry.DefaultGates()
	}
	if err := cfg.Gates.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxCrateSize <= 0 {
		cfg.MaxCrateSize = registry.DefaultMaxCrateSize
	}
	cfg.Limits = cfg.Limits.withDefaults()
	// The sandbox reaches the work and cache directories through binds of
	// the job's own directories and of the cache, so their parents may be
	// private; the cache itself is read by the sandbox user.
	if err := os.MkdirAll(cfg.WorkDir, 0o700); err != nil {
		return nil, registry.E(op, registry.EINVALID, "cannot create "+cfg.WorkDir, err)
	}
	for _, d := range []string{cfg.CacheDir, filepath.Join(cfg.CacheDir, "crates")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, registry.E(op, registry.EINVALID, "cannot create "+d, err)
		}
		if err := os.Chmod(d, 0o755); err != nil {
			return nil, registry.E(op, registry.EINVALID, "cannot use "+d, err)
		}
	}
	p := &Pipeline{cfg: cfg, log: cfg.Logger, crates: map[string]bool{}}
	p.sweep()
	ctx := context.Background()
	p.toolchains = DetectToolchains(ctx, cfg.ToolchainDirs)
	p.host = hostTriple(p.toolchains)
	p.plan = planTargets(p.toolchains, p.host, cfg.ExtraTargets)
	ro := []string{cfg.CacheDir}
	ro = append(ro, cfg.DirectorySources...)
	for _, tc := range p.toolchains {
		if tc.Usable && !strings.HasPrefix(tc.Sysroot, "/usr") {
			ro = append(ro, tc.Sysroot)
		}
		if d := filepath.Dir(tc.Cargo); !strings.HasPrefix(d, "/usr") && !strings.HasPrefix(d, tc.Sysroot) {
			ro = append(ro, d)
		}
	}
	if cfg.HelperExe == "" {
		if cfg.HelperExe, err = os.Executable(); err != nil {
			return nil, registry.E(op, registry.EINTERNAL, "cannot find this program's executable for the sandbox's helpers", err)
		}
	}
	if p.sb, err = newSandbox(ctx, cfg.Bwrap, cfg.HelperExe, ro, p.log); err != nil {
		return nil, err
	}
	if p.sb.setpriv != "" {
		if p.uids, err = newUIDPool(cfg.SandboxUIDs.LockDir, cfg.SandboxUIDs.Base, cfg.SandboxUIDs.Count); err != nil {
			return nil, err
		}
	}
	if p.wcache, err = openWasmCache(filepath.Join(cfg.CacheDir, "wazero"), filepath.Join(cfg.CacheDir, "wazero.manifest"), p.log); err != nil {
		return nil, err
	}
	p.wazeroV = wazeroVersion()
	for _, t := range p.plan {
		if t.Toolchain == "" {
			p.log.Warn("target has no toolchain", "target", t.Target, "install", t.Install)
		} else {
			p.log.Info("target", "target", t.Target, "triple", t.Triple, "toolchain", t.Toolchain)
		}
	}
	return p, nil
}

// Close releases the pipeline. Runs in progress are not waited for.
func (p *Pipeline) Close() error { return nil }

// sweep removes what earlier processes left in the work directory: the
// directories of jobs that a crash or a kill did not let finish.
func (p *Pipeline) sweep() {
	ents, err := os.ReadDir(p.cfg.WorkDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(p.cfg.WorkDir, e.Name())); err != nil {
			p.log.Warn("cannot remove a stale work directory", "dir", e.Name(), "err", err)
		}
	}
	if len(ents) > 0 {
		p.log.Info("stale work directories removed", "dir", p.cfg.WorkDir, "count", len(ents))
	}
}

func wazeroVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/tetratelabs/wazero" {
				if d.Replace != nil {
					return "wazero " + d.Replace.Version
				}
				return "wazero " + d.Version
			}
		}
	}
	return "wazero " + wazeroModuleVersion
}

// wazeroModuleVersion is the wazero version in go.mod, for binaries built
// without module information (tests check that it matches go.mod).
const wazeroModuleVersion = "v1.12.0"

// Toolchains lists every cargo/rustc pair found, best first.
func (p *Pipeline) Toolchains() []Toolchain { return slices.Clone(p.toolchains) }

// Targets says, for every target the pipeline reports on, which toolchain
// builds it or what is missing and how to install it.
func (p *Pipeline) Targets() []TargetStatus { return slices.Clone(p.plan) }

// WazeroVersion is the wazero version that runs wasm tests.
func (p *Pipeline) WazeroVersion() string { return p.wazeroV }

// DepKnowledge is what the registry knows of a dependency.
type DepKnowledge struct {
	Held bool   // the registry holds this release
	Wasm string // the registry's trusted verdict: compatible, partial, incompatible or untested
}

// LocalRegistry is the node's own store as the pipeline needs it: the
// releases it can offer Cargo as dependencies, their archives, and what it
// knows of a release.
type LocalRegistry interface {
	// Releases lists the releases to offer as dependencies (the node
	// decides, e.g. leaving yanked ones out).
	Releases(ctx context.Context) ([]*registry.ReleaseBody, error)
	// Blob returns a release's .crate archive by its multihash.
	Blob(ctx context.Context, id registry.ID) ([]byte, error)
	// Known says what the registry knows of name@version.
	Known(ctx context.Context, name, version string) DepKnowledge
}

// Job is one release to test.
type Job struct {
	Release *registry.Record      // the release record (its ID goes into the report)
	Body    *registry.ReleaseBody // its decoded body
	Crate   []byte                // the .crate archive; must hash to Body.Cksum
	Local   LocalRegistry         // may be nil: no dependencies from the store
}

// Event states.
const (
	StateStart   = "start"
	StateDone    = "done"
	StateFailed  = "failed"
	StateSkipped = "skipped"
)

// Event reports progress. Stages, in order: unpack, resolve, build,
// test-build, test, analyse, control-build, config (then build, test-build,
// test, analyse and control-build again for the declared configuration),
// bench, deps, score; build and the stages after it name their Target.
// When a wasm build fails, control-toolchain (a crate with no dependencies,
// built for that target) and control-build (the crate built for the host
// with the wasm target's toolchain) may follow it.
type Event struct {
	Stage   string        `json:"stage"`
	Target  string        `json:"target,omitempty"`
	State   string        `json:"state"`
	Message string        `json:"message,omitempty"`
	Elapsed time.Duration `json:"elapsed,omitempty"` // for done and failed
}

func (j *Job) validate() error {
	const op = "pipeline.Run"
	if j.Release == nil || j.Body == nil {
		return registry.Errorf(op, registry.EINVALID, "a job needs the release record and its body")
	}
	if j.Release.Kind != registry.KindRelease || j.Release.Subject != registry.ReleaseSubject(j.Body.Name, j.Body.Version) {
		return registry.Errorf(op, registry.EINVALID, "the job's record is not the release %s@%s", j.Body.Name, j.Body.Version)
	}
	sum := sha256.Sum256(j.Crate)
	if hex.EncodeToString(sum[:]) != j.Body.Cksum {
		return registry.Errorf(op, registry.EINVALID, "the job's .crate archive does not match the release's checksum")
	}
	return nil
}

// Run tests one release and returns the report body. Every outcome of the
// crate (build-fail, test-fail, timeout, …) is a report. Run returns an
// error only when the registry failed: the job is malformed (EINVALID), the
// pipeline broke (EINTERNAL), ctx ended (ECANCELED), or this node cannot
// build the crate for any wasm target (EUNAVAILABLE: no wasm toolchain,
// only toolchains too old for this crate, or dependencies its sources do
// not have), so that no report ever blames the crate for the node's
// limits. progress, if not nil, is called from Run's
// goroutine.
func (p *Pipeline) Run(ctx context.Context, job Job, progress func(Event)) (*registry.ReportBody, error) {
	const op = "pipeline.Run"
	if err := job.validate(); err != nil {
		return nil, err
	}
	if progress == nil {
		progress = func(Event) {}
	}
	dir, err := os.MkdirTemp(p.cfg.WorkDir, "job-")
	if err != nil {
		return nil, registry.E(op, registry.EINTERNAL, "cannot create a work directory", err)
	}
	if !p.cfg.KeepWork {
		defer os.RemoveAll(dir)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, registry.E(op, registry.EINTERNAL, "", err)
	}
	r := &jobRun{p: p, job: &job, dir: dir, progress: progress, started: time.Now(), sb: p.sb,
		log: p.log.With("crate", registry.ReleaseSubject(job.Body.Name, job.Body.Version))}
	if p.uids != nil {
		uid, release, err := p.uids.acquire()
		if err != nil {
			return nil, err
		}
		defer release()
		r.sb = p.sb.withUID(uid)
	}
	body, err := r.run(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, registry.E(op, registry.ECANCELED, "the run was cancelled", ctx.Err())
		}
		return nil, err
	}
	return body, nil
}

// PrivateDir makes dir the pipeline's private directory: it is created
// with mode 0700 when missing; when it exists it must be a directory (not
// a link) owned by this process's user and closed to group and others.
// Anything else is refused (EINVALID) with a sentence saying what is wrong
// and what to do, since whoever else controls the directory could plant
// sources, caches or compiled code that the pipeline would use.
func PrivateDir(dir string) error {
	const op = "pipeline.PrivateDir"
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return registry.E(op, registry.EINVALID, "cannot create the parent of the pipeline directory "+dir, err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return registry.E(op, registry.EINVALID, "cannot create the pipeline directory "+dir, err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return registry.E(op, registry.EINVALID, "cannot use the pipeline directory "+dir, err)
	}
	if !fi.IsDir() {
		return registry.Errorf(op, registry.EINVALID,
			"the pipeline directory %s is not a directory (it is a %s); remove it, or choose another pipeline directory", dir, fi.Mode().Type())
	}
	me := os.Geteuid()
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != me {
		return registry.Errorf(op, registry.EINVALID,
			"the pipeline directory %s is owned by uid %d, not by this node's user (uid %d), so someone else may have planted what it holds; remove it (rm -rf %s) or choose another pipeline directory, and the node creates a fresh private one",
			dir, st.Uid, me, dir)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return registry.Errorf(op, registry.EINVALID,
			"the pipeline directory %s has mode %#o, open to other users who could plant sources or caches in it; remove it (rm -rf %s) or choose another pipeline directory, and the node creates a fresh one with mode 0700",
			dir, perm, dir)
	}
	return nil
}
