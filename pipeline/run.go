package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// Build states in TargetReport.Build.
const (
	buildOK      = "ok"
	buildFailed  = "failed"
	buildSkipped = "skipped"
)

// resolution is whether one toolchain's copy of the crate resolved.
type resolution struct {
	ok          bool
	devStripped bool   // only the dev-dependencies were missing; they were removed to build the library
	outcome     string // when !ok, or the tests' outcome when devStripped
	why         string
	log         string
	missing     []string // packages the sources lack (see missingDeps)
}

// targetState is one target's progress through a run.
type targetState struct {
	status  TargetStatus
	tc      Toolchain
	ce      *cargoEnv
	rep     *registry.TargetReport
	build   *cargoResult
	bins    []*binaryRun
	modules []*wasmStat
	isLib   bool
	isProc  bool
	// testTried and testBuilt: the tests' build was attempted, and
	// succeeded. hostFails: a control build showed the same toolchain
	// fails for the host too.
	testTried, testBuilt, hostFails bool
}

type jobRun struct {
	p        *Pipeline
	sb       *sandbox // the job's own sandbox user
	job      *Job
	dir      string
	progress func(Event)
	started  time.Time
	log      *slog.Logger

	homeCfg  map[string][]byte // each cargo home's config.toml, as the node wrote it
	vendor   vendorIndex
	envs     map[string]*cargoEnv
	resolved map[string]*resolution
	targets  []*targetState
	stages   []registry.StageTime
	logs     []registry.LogExcerpt
	notes    []string
	logsCut  uint64

	configRun                 // the feature configurations and benchmarks (config.go, bench.go)
	controls  map[string]bool // host control builds of the crate, by toolchain (and "|test")
}

const (
	maxLogs       = 12
	maxLogBytes   = 6 << 10
	maxArtifacts  = 8
	maxModules    = 6
	maxTestOutput = 2 << 10
)

func (r *jobRun) stage(name, target string, fn func() (string, error)) error {
	r.progress(Event{Stage: name, Target: target, State: StateStart})
	t0 := time.Now()
	msg, err := fn()
	el := time.Since(t0)
	r.stages = append(r.stages, registry.StageTime{Stage: name, Target: target, US: uint64(el.Microseconds())})
	state := StateDone
	if err != nil {
		state, msg = StateFailed, registry.MessageOf(err)
	} else if strings.HasPrefix(msg, "!") {
		state, msg = StateFailed, msg[1:]
	} else if strings.HasPrefix(msg, "-") {
		state, msg = StateSkipped, msg[1:]
	}
	r.progress(Event{Stage: name, Target: target, State: state, Message: msg, Elapsed: el})
	r.log.Debug("stage", "stage", name, "target", target, "state", state, "elapsed", el, "message", msg)
	return err
}

func (r *jobRun) addLog(step, target, text string, truncated bool) {
	if len(r.logs) >= maxLogs {
		r.logsCut++
		return
	}
	text = strings.TrimSpace(text)
	if len(text) > maxLogBytes {
		head := maxLogBytes / 4
		text = text[:head] + "\n[…]\n" + text[len(text)-(maxLogBytes-head):]
		truncated = true
	}
	r.logs = append(r.logs, registry.LogExcerpt{Step: step, Target: target, Text: text, Truncated: truncated})
}

func (r *jobRun) run(ctx context.Context) (*registry.ReportBody, error) {
	p := r.p
	var pkgSrc string
	if err := r.stage("unpack", "", func() (string, error) {
		top, err := unpackCrate(r.job.Crate, filepath.Join(r.dir, "src"), p.cfg.MaxCrateSize)
		if err != nil {
			return "", err
		}
		pkgSrc = filepath.Join(r.dir, "src")
		return top, nil
	}); err != nil {
		return nil, err
	}

	// Plan: every target, with its toolchain.
	byID := map[string]Toolchain{}
	for _, tc := range p.toolchains {
		byID[tc.ID] = tc
	}
	for _, st := range p.plan {
		ts := &targetState{status: st, rep: &registry.TargetReport{Target: st.Target, Extra: st.Extra}}
		if st.Toolchain != "" {
			ts.tc = byID[st.Toolchain]
			ts.rep.Toolchain = st.Toolchain
			if st.Triple != st.Target {
				ts.rep.Triple = st.Triple
			}
		}
		switch {
		case st.Target == p.host:
			ts.rep.Runner = "native"
		case st.Target == TargetWasip1:
			ts.rep.Runner = "wazero"
		}
		r.targets = append(r.targets, ts)
	}

	if err := r.stage("resolve", "", func() (string, error) { return r.resolve(ctx, pkgSrc) }); err != nil {
		return nil, err
	}
	for _, ts := range r.targets {
		if err := r.runTarget(ctx, ts); err != nil {
			return nil, err
		}
	}
	if err := r.runDeclared(ctx); err != nil {
		return nil, err
	}
	if err := r.runBenches(ctx); err != nil {
		return nil, err
	}

	// A wasm verdict needs a wasm target that could be tried: one that
	// built, or failed for the crate's own reasons. When none could (no
	// toolchain, a toolchain too old for the crate, a rust-version above
	// it, or dependencies this node's sources do not have), the node cannot
	// judge the crate and makes no report rather than blame it.
	if why, tried := r.wasmTried(); !tried {
		msg := strings.Join(why, "; ")
		if len(r.notes) > 0 {
			msg += "; " + strings.Join(r.notes, "; ")
		}
		return nil, registry.Errorf("pipeline.Run", registry.EUNAVAILABLE,
			"this node cannot build %s@%s for any wasm target, so it makes no report (%s)",
			r.job.Body.Name, r.job.Body.Version, msg)
	}
	return r.assemble(ctx)
}

// manifest is the crate's Cargo.toml. Cargo always runs with
// --manifest-path and its working directory outside the crate, so that
// Cargo's configuration search never reaches a directory the crate
// controls.
func (ce *cargoEnv) manifest() string { return filepath.Join(ce.pkg, "Cargo.toml") }

// cargo runs cargo for the job after restoring its cargo home's
// configuration: a build script of an earlier step may have added files
// to the home (Cargo reads config before config.toml), and none of them
// may apply to a later step.
func (r *jobRun) cargo(ctx context.Context, ce *cargoEnv, timeout time.Duration, writablePkg bool, args ...string) (*cargoResult, error) {
	if err := r.restoreHome(ce); err != nil {
		return nil, err
	}
	return r.p.cargo(ctx, ce, timeout, writablePkg, withFeatures(args, ce.features)...)
}

// restoreHome puts back the configuration the node wrote in ce's cargo
// home, removing any other Cargo configuration file there.
func (r *jobRun) restoreHome(ce *cargoEnv) error {
	cfg, ok := r.homeCfg[ce.home]
	if !ok {
		return nil
	}
	for _, f := range []string{"config", "config.toml"} {
		if err := os.RemoveAll(filepath.Join(ce.home, f)); err != nil {
			return registry.E("pipeline.cargo", registry.EINTERNAL, "cannot restore the job's cargo configuration", err)
		}
	}
	if err := os.WriteFile(filepath.Join(ce.home, "config.toml"), cfg, 0o644); err != nil {
		return registry.E("pipeline.cargo", registry.EINTERNAL, "cannot restore the job's cargo configuration", err)
	}
	return nil
}

// protectHome hands a job's CARGO_HOME to the sandbox user, who must write
// Cargo's caches there, while keeping the node's config.toml out of its
// reach: the directory stays the node's with the sticky bit (others may
// add files, not replace the node's) and config.toml stays the node's
// and read-only, so no build script can change the sources or flags of a
// later step.
func (r *jobRun) protectHome(home string) error {
	if err := r.sb.prepareWritable(home); err != nil {
		return err
	}
	if r.sb.setpriv == "" {
		return nil // the sandbox runs as this user; there is no other owner to keep
	}
	uid, gid := os.Geteuid(), os.Getegid()
	for _, f := range []string{home, filepath.Join(home, "config.toml")} {
		if err := os.Lchown(f, uid, gid); err != nil {
			return registry.E("pipeline.resolve", registry.EINTERNAL, "cannot protect the job's cargo home", err)
		}
	}
	if err := os.Chmod(home, 0o1777); err != nil {
		return registry.E("pipeline.resolve", registry.EINTERNAL, "cannot protect the job's cargo home", err)
	}
	return os.Chmod(filepath.Join(home, "config.toml"), 0o644)
}

// keepHome protects a cargo home that materialise wrote and remembers its
// configuration for r.cargo to restore.
func (r *jobRun) keepHome(home string) error {
	cfg, err := os.ReadFile(filepath.Join(home, "config.toml"))
	if err != nil {
		return registry.E("pipeline.resolve", registry.EINTERNAL, "", err)
	}
	if r.homeCfg == nil {
		r.homeCfg = map[string][]byte{}
	}
	r.homeCfg[home] = cfg
	return r.protectHome(home)
}

func isWasm(target string) bool {
	return strings.HasPrefix(target, "wasm32-") || strings.HasPrefix(target, "wasm64-")
}

// resolve materialises the sources and resolves the crate's dependencies
// once per toolchain, each in its own copy of the crate.
func (r *jobRun) resolve(ctx context.Context, pkgSrc string) (string, error) {
	p := r.p
	home := filepath.Join(r.dir, "home")
	vendor := filepath.Join(r.dir, "vendor")
	var notes []string
	var err error
	if r.vendor, notes, err = p.materialise(ctx, r.job, vendor, home, false); err != nil {
		return "", err
	}
	r.notes = append(r.notes, notes...)
	if err := r.keepHome(home); err != nil {
		return "", err
	}
	r.envs = map[string]*cargoEnv{}
	r.resolved = map[string]*resolution{}
	var msgs []string
	for _, ts := range r.targets {
		id := ts.status.Toolchain
		if id == "" || r.envs[id] != nil {
			if id != "" {
				ts.ce = r.envs[id]
			}
			continue
		}
		n := len(r.envs)
		base := filepath.Join(r.dir, "tc"+strconv.Itoa(n))
		ce := &cargoEnv{sb: r.sb, tc: ts.tc, pkg: filepath.Join(base, "pkg"), target: filepath.Join(base, "target"), home: home,
			extraRO: []string{vendor}, diskDir: r.dir, diskLimit: p.cfg.Limits.Disk}
		if err := copyTree(pkgSrc, ce.pkg); err != nil {
			return "", registry.E("pipeline.resolve", registry.EINTERNAL, "cannot copy the crate", err)
		}
		// A shipped lock file may name versions the offline sources do not
		// have, or use a format an older cargo cannot read.
		_ = os.Remove(filepath.Join(ce.pkg, "Cargo.lock"))
		if err := os.MkdirAll(ce.target, 0o755); err != nil {
			return "", registry.E("pipeline.resolve", registry.EINTERNAL, "", err)
		}
		if err := r.sb.prepareWritable(base); err != nil {
			return "", err
		}
		r.envs[id] = ce
		ts.ce = ce
		res := r.resolveOne(ctx, ce)
		if !res.ok && res.outcome == registry.OutcomeBrokenDeps && p.cfg.AllowNetwork {
			res = r.resolveOnline(ctx, ce, pkgSrc, res)
		}
		r.resolved[id] = res
		switch {
		case res.ok && res.devStripped:
			msgs = append(msgs, id+": library resolved; tests: "+res.why)
		case res.ok:
			msgs = append(msgs, id+": resolved")
		default:
			msgs = append(msgs, id+": "+res.outcome+": "+res.why)
		}
		if ctx.Err() != nil {
			return "", registry.E("pipeline.resolve", registry.ECANCELED, "", ctx.Err())
		}
	}
	r.resolveAge()
	return strings.Join(msgs, "; "), nil
}

func (r *jobRun) resolveOne(ctx context.Context, ce *cargoEnv) *resolution {
	lim := r.p.cfg.Limits
	if rv := r.job.Body.RustVersion; rv != "" {
		need, ok1 := parseVersion(rv)
		have, ok2 := parseVersion(ce.tc.Version)
		if ok1 && ok2 && have.less(need) {
			return &resolution{outcome: registry.OutcomeRustVersion,
				why: fmt.Sprintf("the crate declares rust-version %s; this toolchain is rustc %s", rv, ce.tc.Version)}
		}
	}
	res, err := r.cargo(ctx, ce, lim.BuildTime, true, "generate-lockfile", "--offline", "--manifest-path", ce.manifest())
	if err != nil {
		return &resolution{outcome: registry.OutcomeError, why: registry.MessageOf(err)}
	}
	if res.ok() {
		return &resolution{ok: true}
	}
	text, _ := res.log()
	// Resolution runs cargo alone, no crate code: a failure that is not
	// the sandbox's (deadline, limits) is the sources' (broken-deps), or the
	// toolchain's age when another toolchain resolves the crate (resolve).
	if outcome, why := classifyStep(res.run, lim.Memory); outcome != registry.OutcomeBuildFail {
		r.addLog("resolve", ce.tc.ID, text, res.stderr.Truncated())
		return &resolution{outcome: outcome, why: why, log: text}
	}
	outcome := registry.OutcomeBrokenDeps
	why := "dependencies cannot be resolved from the configured sources: " + firstLineWith(text, "error")
	missing := missingDeps(r.job.Body.Deps, []string{registry.DepNormal, registry.DepBuild, registry.DepDev}, r.vendor, text)
	// Are only the tests' dependencies, or optional dependencies the
	// default features do not need, missing? Try without them, in that
	// order of preference.
	mf := filepath.Join(ce.pkg, "Cargo.toml")
	orig, err := os.ReadFile(mf)
	if err != nil {
		return &resolution{outcome: registry.OutcomeError, why: err.Error()}
	}
	r.addLog("resolve", ce.tc.ID, text, res.stderr.Truncated())
	noOpt, optNames, errOpt := stripOptional(orig)
	noDev, devNames, errDev := stripDevDeps(orig)
	hadDev := len(devNames) > 0
	var noBoth []byte
	if errOpt == nil && hadDev {
		noBoth, _, errDev = stripDevDeps(noOpt)
	}
	type attempt struct {
		manifest []byte
		dev      bool
		optional bool
	}
	var attempts []attempt
	if errOpt == nil && len(optNames) > 0 {
		attempts = append(attempts, attempt{noOpt, false, true})
	}
	if errDev == nil && hadDev {
		attempts = append(attempts, attempt{noDev, true, false})
		if len(optNames) > 0 && noBoth != nil {
			attempts = append(attempts, attempt{noBoth, true, true})
		}
	}
	for _, a := range attempts {
		if err := os.WriteFile(mf, a.manifest, 0o644); err != nil {
			return &resolution{outcome: registry.OutcomeError, why: err.Error()}
		}
		res2, err := r.cargo(ctx, ce, lim.BuildTime, true, "generate-lockfile", "--offline", "--manifest-path", ce.manifest())
		if err != nil {
			return &resolution{outcome: registry.OutcomeError, why: registry.MessageOf(err)}
		}
		if !res2.ok() {
			continue
		}
		out := &resolution{ok: true}
		if a.optional {
			r.notes = append(r.notes, ce.tc.ID+": optional dependencies that the default features do not enable are not available from the configured sources, so they and the features needing them were left out: "+strings.Join(optNames, ", "))
		}
		if a.dev {
			out.devStripped, out.outcome = true, registry.OutcomeBrokenDeps
			out.missing = missingDeps(r.job.Body.Deps, []string{registry.DepDev}, r.vendor, text)
			names := out.missing
			if len(names) == 0 {
				names = devNames
			}
			out.why = "the tests' dev-dependencies (" + strings.Join(names, ", ") + ") cannot all be resolved from this node's sources or its registry's releases"
		}
		return out
	}
	_ = os.WriteFile(mf, orig, 0o644)
	if len(missing) > 0 {
		why = "dependencies this node's sources and its registry's releases lack: " + strings.Join(missing, ", ")
	}
	return &resolution{outcome: outcome, why: why, log: text, missing: missing}
}

// resolveOnline retries a failed offline resolution against crates.io:
// cargo alone (no build script, no proc macro) resolves and downloads the
// dependencies in a sandbox that shares the host's network, into a
// separate cargo home; every later step runs offline from that home.
func (r *jobRun) resolveOnline(ctx context.Context, ce *cargoEnv, pkgSrc string, offline *resolution) *resolution {
	home := filepath.Join(r.dir, "home-online")
	if _, _, err := r.p.materialise(ctx, r.job, filepath.Join(r.dir, "vendor"), home, true); err != nil {
		return offline
	}
	if err := r.keepHome(home); err != nil {
		return offline
	}
	_ = os.RemoveAll(ce.pkg)
	if err := copyTree(pkgSrc, ce.pkg); err != nil || r.sb.prepareWritable(ce.pkg) != nil {
		return offline
	}
	_ = os.Remove(filepath.Join(ce.pkg, "Cargo.lock"))
	online := *ce
	online.home, online.network = home, true
	for _, args := range [][]string{{"generate-lockfile", "--manifest-path", ce.manifest()}, {"fetch", "--manifest-path", ce.manifest()}} {
		res, err := r.cargo(ctx, &online, r.p.cfg.Limits.BuildTime, true, args...)
		if err != nil || !res.ok() {
			text := ""
			if res != nil {
				text, _ = res.log()
			}
			r.notes = append(r.notes, ce.tc.ID+": crates.io was tried as well and did not resolve the dependencies: "+firstLineWith(text, "error"))
			return offline
		}
	}
	ce.home = home
	r.notes = append(r.notes, ce.tc.ID+": dependencies were resolved from crates.io, since the offline sources lack some")
	return &resolution{ok: true}
}

// runTarget builds one target and, for the host and wasm32-wasip1, builds
// and runs its tests.
func (r *jobRun) runTarget(ctx context.Context, ts *targetState) error {
	refused := newRefusalSet()
	defer func() { r.addRefusals(ts, refused.list()) }()
	ctx = withRefusals(ctx, refused)
	target := stageTarget(ts)
	res := r.tryable(ts, target)
	if res == nil {
		return nil
	}
	built, err := r.buildTarget(ctx, ts, target)
	if err == nil && !built {
		err = r.settleWasmFailure(ctx, ts, false)
	}
	if err != nil || !built {
		return err
	}
	if err := r.analyseTarget(ctx, ts, target); err != nil {
		return err
	}
	if !ts.status.Tested {
		ts.rep.Outcome, ts.rep.Message = registry.OutcomeTestSkipped, untestedMessage(target)
		return nil
	}
	if res.devStripped {
		ts.rep.Outcome, ts.rep.Message = res.outcome, res.why
		r.progress(Event{Stage: "test-build", Target: target, State: StateSkipped, Message: res.why})
		return nil
	}
	ts.testTried = true
	bins, testBuilt, err := r.buildTests(ctx, ts, target)
	if err == nil && !testBuilt {
		err = r.settleWasmFailure(ctx, ts, true)
	}
	if err != nil || !testBuilt {
		return err
	}
	if err := r.stage("test", target, func() (string, error) { return r.runTests(ctx, ts, bins) }); err != nil || !r.wantDocTests(ts) {
		return err
	}
	return r.stage("doc-test", target, func() (string, error) { return r.docTests(ctx, ts) })
}

// tryable returns the resolution of ts's toolchain when ts can be built;
// otherwise it records in ts's report why the node could not try it (no
// toolchain, or dependencies that did not resolve) and returns nil.
func (r *jobRun) tryable(ts *targetState, target string) *resolution {
	rep := ts.rep
	if ts.status.Toolchain == "" {
		rep.Outcome, rep.Build = registry.OutcomeToolchainMissing, registry.OutcomeToolchainMissing
		rep.Message, rep.Install = ts.status.Missing, ts.status.Install
		r.progress(Event{Stage: "build", Target: target, State: StateSkipped, Message: rep.Message})
		return nil
	}
	res := r.resolved[ts.status.Toolchain]
	if !res.ok {
		rep.Outcome, rep.Build, rep.Message = res.outcome, res.outcome, res.why
		if nodeOutcome(res.outcome) && res.outcome != registry.OutcomeBrokenDeps {
			rep.Install = upgradeHint(target)
		}
		r.progress(Event{Stage: "build", Target: target, State: StateSkipped, Message: rep.Message})
		return nil
	}
	return res
}

// buildTarget runs the "build" stage: cargo build for ts's target. built
// reports success; a failed build is recorded in ts's report with its log
// excerpt, and err is only for the node's own failures.
func (r *jobRun) buildTarget(ctx context.Context, ts *targetState, target string) (built bool, err error) {
	rep, lim := ts.rep, r.p.cfg.Limits
	err = r.stage("build", target, func() (string, error) {
		cr, err := r.cargo(ctx, ts.ce, lim.BuildTime, false, "build", "--offline", "--manifest-path", ts.ce.manifest(), "--target", ts.status.Triple, "--message-format", "json")
		if err != nil {
			return "", err
		}
		ts.build = cr
		rep.BuildUS = uint64(cr.run.Wall.Microseconds())
		ts.isLib, ts.isProc = r.libKind(ts.ce, cr.artifacts)
		rep.Artifacts = r.artifacts(ts.ce, cr.artifacts, false)
		if cr.ok() {
			rep.Build, built = buildOK, true
			return builtMessage(cr.run.Wall), nil
		}
		text, trunc := cr.log()
		outcome, why := classifyStep(cr.run, lim.Memory)
		if why == "" {
			why = buildFailure(target, r.failingDependency(cr))
		}
		rep.Build, rep.Outcome, rep.Message = buildFailed, outcome, why
		r.addLog("build", target, text, trunc)
		return "!" + why, nil
	})
	return built, err
}

// analyseTarget records the wasm modules a built wasm target produced:
// the library's cdylib for wasm32-unknown-unknown (the "analyse" stage),
// the crate's own binaries for the other wasm targets.
func (r *jobRun) analyseTarget(ctx context.Context, ts *targetState, target string) error {
	if target == TargetWasmUnknown {
		return r.stage("analyse", target, func() (string, error) { return r.cdylib(ctx, ts) })
	}
	if !isWasm(target) {
		return nil
	}
	for _, a := range ts.build.artifacts {
		for _, f := range a.Filenames {
			if strings.HasSuffix(f, ".wasm") && r.isRootArtifact(ts.ce, a) {
				r.addModule(ts, f, "bin:"+a.Target.Name)
			}
		}
	}
	return nil
}

// buildTests runs the "test-build" stage: cargo test --no-run for ts's
// target. built reports success, with the test binaries; a failure is
// recorded in ts's report with its log excerpt, and err is only for the
// node's own failures.
func (r *jobRun) buildTests(ctx context.Context, ts *targetState, target string) (bins []testBinary, built bool, err error) {
	rep, lim := ts.rep, r.p.cfg.Limits
	err = r.stage("test-build", target, func() (string, error) {
		cr, err := r.cargo(ctx, ts.ce, lim.BuildTime, false, "test", "--offline", "--no-run", "--manifest-path", ts.ce.manifest(), "--target", ts.status.Triple, "--message-format", "json")
		if err != nil {
			return "", err
		}
		rep.TestBuildUS = uint64(cr.run.Wall.Microseconds())
		if !cr.ok() {
			text, trunc := cr.log()
			outcome, why := classifyStep(cr.run, lim.Memory)
			if why == "" {
				why = testBuildFailure(target, r.failingDependency(cr))
			}
			rep.Outcome, rep.Message = outcome, why
			r.addLog("test-build", target, text, trunc)
			return "!" + why, nil
		}
		bins = testBinaries(cr.artifacts)
		built = true
		ts.testBuilt = true
		return fmt.Sprintf("%d test binaries", len(bins)), nil
	})
	return bins, built, err
}

// failingDependency is the name@version of the first package that failed
// cr's build when it is a dependency, "" when it is the crate itself or
// unknown.
func (r *jobRun) failingDependency(cr *cargoResult) string {
	if fe := packageName(cr.firstError); fe != "" && !r.isRoot(fe) {
		return fe
	}
	return ""
}

// addRefusals records what the sandbox refused while ts was built and
// tested, and flags a network attempt in the notes, whatever the crate
// printed about it.
func (r *jobRun) addRefusals(ts *targetState, rs []registry.Refusal) {
	ts.rep.Refusals = rs
	var dests []string
	for _, x := range rs {
		if x.Action == refusalNetwork {
			dests = append(dests, x.Detail)
		}
	}
	if len(dests) > 0 {
		r.notes = append(r.notes, ts.status.Target+": code of the crate or of a dependency (a build script, a proc macro or a test) tried to reach the network ("+strings.Join(dests, ", ")+"); the sandbox refused it")
	}
}

// upgradeHint says how to get a toolchain new enough for a crate.
func upgradeHint(target string) string {
	if isWasm(target) {
		return "install a newer Rust toolchain with the standard library for " + target + " (rustup toolchain install stable && rustup target add " + target + "), or a newer Debian rustc with libstd-rust-dev-wasm32"
	}
	return "install a newer Rust toolchain (rustup toolchain install stable)"
}

// libKind reports whether the crate has a library and whether it is a
// proc-macro crate.
func (r *jobRun) libKind(ce *cargoEnv, arts []cargoMessage) (lib, proc bool) {
	for _, a := range arts {
		if !r.isRootArtifact(ce, a) {
			continue
		}
		for _, k := range a.Target.Kind {
			switch k {
			case "lib", "rlib", "dylib", "cdylib", "staticlib":
				lib = true
			case "proc-macro":
				lib, proc = true, true
			}
		}
	}
	return lib, proc
}

func (r *jobRun) isRootArtifact(ce *cargoEnv, a cargoMessage) bool {
	return a.ManifestPath == filepath.Join(ce.pkg, "Cargo.toml")
}

func (r *jobRun) isRoot(nameAtVersion string) bool {
	return nameAtVersion == r.job.Body.Name+"@"+r.job.Body.Version
}

// artifacts lists the crate's own build outputs with their sizes.
func (r *jobRun) artifacts(ce *cargoEnv, arts []cargoMessage, test bool) []registry.Artifact {
	var out []registry.Artifact
	for _, a := range arts {
		if !r.isRootArtifact(ce, a) || a.Profile.Test != test {
			continue
		}
		kind := "lib"
		if len(a.Target.CrateTypes) > 0 {
			kind = a.Target.CrateTypes[0]
		}
		if slices.Contains(a.Target.Kind, "custom-build") {
			continue
		}
		for _, f := range a.Filenames {
			if strings.HasSuffix(f, ".rmeta") || strings.HasSuffix(f, ".d") {
				continue
			}
			if len(out) >= maxArtifacts {
				break
			}
			fi, err := os.Stat(f)
			if err != nil || !fi.Mode().IsRegular() {
				continue
			}
			art := registry.Artifact{Name: filepath.Base(f), Kind: kind, Size: uint64(fi.Size())}
			if fi.Size() <= 16<<20 {
				if b, err := os.ReadFile(f); err == nil {
					art.Gzip = gzipSize(b)
				}
			}
			out = append(out, art)
		}
	}
	return out
}

// addModule analyses a wasm module and records it on the target.
func (r *jobRun) addModule(ts *targetState, path, name string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	st, err := analyzeWasm(b)
	if err != nil {
		r.notes = append(r.notes, name+" ("+ts.status.Target+") is not a wasm module the analyser can read: "+err.Error())
		return
	}
	ts.modules = append(ts.modules, st)
	if len(ts.rep.Modules) < maxModules {
		ts.rep.Modules = append(ts.rep.Modules, st.moduleReport(name, b, !strings.HasPrefix(name, "test:")))
	}
}

// cdylib builds the library as an optimised cdylib for
// wasm32-unknown-unknown: the module a web or embedded host would load,
// whose size and interface the report shows.
func (r *jobRun) cdylib(ctx context.Context, ts *targetState) (string, error) {
	if !ts.isLib {
		return "-the crate has no library to build as a wasm module", nil
	}
	if ts.isProc {
		return "-a proc-macro crate runs on the host at compile time; it has no wasm module", nil
	}
	cr, err := r.cargo(ctx, ts.ce, r.p.cfg.Limits.BuildTime, false, "rustc", "--offline", "--manifest-path", ts.ce.manifest(), "--lib", "--release",
		"--target", ts.status.Triple, "--crate-type", "cdylib", "--message-format", "json")
	if err != nil {
		return "", err
	}
	if !cr.ok() {
		text, _ := cr.log()
		r.notes = append(r.notes, "the library builds for wasm32-unknown-unknown but not as a cdylib, so its module was not analysed: "+firstLineWith(text, "error"))
		return "!the library does not build as a cdylib", nil
	}
	n := 0
	for _, a := range cr.artifacts {
		if !r.isRootArtifact(ts.ce, a) {
			continue
		}
		for _, f := range a.Filenames {
			if strings.HasSuffix(f, ".wasm") {
				r.addModule(ts, f, "cdylib:"+a.Target.Name)
				if fi, err := os.Stat(f); err == nil && len(ts.rep.Artifacts) < maxArtifacts {
					b, _ := os.ReadFile(f)
					ts.rep.Artifacts = append(ts.rep.Artifacts, registry.Artifact{Name: filepath.Base(f), Kind: "cdylib", Size: uint64(fi.Size()), Gzip: gzipSize(b)})
				}
				n++
			}
		}
	}
	return fmt.Sprintf("%d module(s)", n), nil
}

// runTests runs every test binary of a tested target.
func (r *jobRun) runTests(ctx context.Context, ts *targetState, bins []testBinary) (string, error) {
	lim := r.p.cfg.Limits
	budget := &testBudget{deadline: time.Now().Add(lim.TestsTime), left: lim.MaxTests}
	wasm := isWasm(ts.status.Target)
	for _, b := range bins {
		var br *binaryRun
		var err error
		if wasm {
			if !isWasmFile(b.Path) {
				r.notes = append(r.notes, b.Label+" was built for the host, not for "+ts.status.Target+" (a proc-macro crate's own tests run on the host); it is not run under wazero")
				continue
			}
			r.addModule(ts, b.Path, "test:"+b.Label)
			if br, err = r.p.wasmTests(ctx, r.sb, b, r.dir, budget); err == nil {
				err = r.retimeWasm(ctx, b, br, budget)
			}
		} else {
			br, err = r.p.nativeTests(ctx, b, ts.ce, budget)
		}
		if err != nil {
			return "", err
		}
		if br.ListError != "" {
			br.Tests = append(br.Tests, testRun{Name: b.Label + "::(binary)", State: registry.TestFailed, Output: br.ListError})
		}
		ts.bins = append(ts.bins, br)
	}
	c := &registry.TestCounts{Binaries: uint64(len(ts.bins))}
	var total, peak uint64
	for _, br := range ts.bins {
		for _, t := range br.Tests {
			switch t.State {
			case registry.TestPassed:
				c.Passed++
			case registry.TestFailed:
				c.Failed++
			case registry.TestIgnored:
				c.Ignored++
			case registry.TestTimeout:
				c.Timeout++
			case registry.TestOOM:
				c.OOM++
			case registry.TestNotRun:
				c.NotRun++
			}
			total += t.US
			peak = max(peak, t.Peak)
			if t.State != registry.TestPassed && t.State != registry.TestIgnored && t.State != registry.TestNotRun {
				r.addLog("test", stageTarget(ts), t.Name+" ("+t.State+"):\n"+tail(t.Output, maxTestOutput), len(t.Output) > maxTestOutput)
			}
		}
	}
	rep := ts.rep
	rep.Tests, rep.TestUS, rep.PeakMemory = c, total, peak
	switch {
	case c.OOM > 0:
		rep.Outcome = registry.OutcomeOOM
		rep.Message = fmt.Sprintf("%d test(s) ran out of memory", c.OOM)
	case c.Timeout > 0:
		rep.Outcome = registry.OutcomeTimeout
		rep.Message = fmt.Sprintf("%d test(s) passed the per-test deadline of %s", c.Timeout, lim.TestTime)
	case c.Failed > 0:
		rep.Outcome = registry.OutcomeTestFail
		rep.Message = fmt.Sprintf("%d of %d tests failed", c.Failed, c.Passed+c.Failed)
	default:
		rep.Outcome = registry.OutcomeTestPass
		rep.Message = fmt.Sprintf("%d tests passed", c.Passed)
	}
	if c.NotRun > 0 {
		rep.Message += fmt.Sprintf("; %d not run (caps)", c.NotRun)
	}
	return fmt.Sprintf("%d passed, %d failed, %d ignored, %d timeout, %d oom", c.Passed, c.Failed, c.Ignored, c.Timeout, c.OOM), nil
}

func isWasmFile(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	var b [4]byte
	_, err = f.Read(b[:])
	return err == nil && string(b[:]) == "\x00asm"
}
