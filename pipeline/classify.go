package pipeline

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// Failure classes come from facts only: how the sandboxed command ended
// (exit status, signal, deadline), the sandbox's own accounting (disk,
// peak memory, refused actions) and cargo's --message-format=json stream
// (compiler errors with their code and package, finished units, build
// scripts that ran), settled by control builds (judgeBuildFailure). Nothing a crate prints — in a build script, a proc
// macro or a test — can change a class.

// stepFacts is cargo's structured account of one invocation, taken from
// its JSON messages.
type stepFacts struct {
	// errorCodes are the codes of the compiler errors (E0658, …), at most
	// maxKeptErrors distinct ones.
	errorCodes []string
	// scripts are the packages whose build script was compiled, in order.
	scripts []string
	// ran are the packages whose build script ran to success.
	ran map[string]bool
}

func (f *stepFacts) add(m *cargoMessage) {
	switch m.Reason {
	case "compiler-artifact":
		if slices.Contains(m.Target.Kind, "custom-build") && !slices.Contains(f.scripts, m.PackageID) && len(f.scripts) < 4096 {
			f.scripts = append(f.scripts, m.PackageID)
		}
	case "build-script-executed":
		if f.ran == nil {
			f.ran = map[string]bool{}
		}
		if len(f.ran) < 4096 {
			f.ran[m.PackageID] = true
		}
	case "compiler-message":
		if m.Message != nil && m.Message.Level == "error" && m.Message.Code != nil && m.Message.Code.Code != "" &&
			!slices.Contains(f.errorCodes, m.Message.Code.Code) && len(f.errorCodes) < maxKeptErrors {
			f.errorCodes = append(f.errorCodes, m.Message.Code.Code)
		}
	}
}

// failedScript is the first package whose build script was compiled but
// did not run to success: in a failed invocation with no compiler error,
// the build script that failed.
func (f *stepFacts) failedScript() string {
	for _, id := range f.scripts {
		if !f.ran[id] {
			return id
		}
	}
	return ""
}

// oomShare is the share (in quarters) of a build step's address-space
// limit that the largest process's peak RSS must reach for a failure to
// count as running out of memory.
const oomShare = 3

// classifyStep names the outcome of a failed step in which crate code may
// have run, from facts only: its deadline, signals, the sandbox's disk and
// memory accounting against memLimit (the per-process address-space limit)
// and what the sandbox refused. Anything else is build-fail, which control
// builds (judgeBuildFailure) may still turn into the toolchain's fault.
func classifyStep(run runResult, memLimit uint64) (outcome, why string) {
	switch {
	case run.TimedOut:
		return registry.OutcomeTimeout, "the step passed its deadline"
	case run.DiskExceeded:
		return registry.OutcomeSandboxViolation, "the step wrote more than the disk limit"
	case run.Signal == syscall.SIGXFSZ:
		return registry.OutcomeSandboxViolation, "a process wrote a file larger than the disk limit"
	case run.Signal == syscall.SIGXCPU:
		return registry.OutcomeTimeout, "a process used up its CPU-time limit"
	case memLimit > 0 && run.MaxRSS >= memLimit/4*oomShare:
		return registry.OutcomeOOM, fmt.Sprintf("a process reached %s of memory, near the limit of %s", humanBytes(run.MaxRSS), humanBytes(memLimit))
	}
	if what := refusedActions(run.Refusals); what != "" {
		return registry.OutcomeSandboxViolation, "the step failed after the sandbox refused " + what
	}
	return registry.OutcomeBuildFail, ""
}

// refusedActions describes the refusals that show an attempt at what the
// sandbox forbids ("" when there is none).
func refusedActions(rs []registry.Refusal) string {
	var parts []string
	for _, x := range rs {
		if len(parts) == 3 {
			break
		}
		switch x.Action {
		case refusalNetwork:
			parts = append(parts, "a connection to "+x.Detail)
		case refusalWrite:
			parts = append(parts, "a write to "+x.Detail)
		case refusalSyscall:
			parts = append(parts, "the system call "+x.Detail)
		case refusalLost:
			parts = append(parts, "nothing more: a process killed the sandbox's supervisor")
		}
	}
	return strings.Join(parts, ", ")
}

// Cargo's own resolver errors, read only in the resolve step: it runs
// cargo alone (generate-lockfile: no build script, no proc macro), so the
// text is cargo's, and it names the packages the sources lack. The crate's
// manifest can only place valid package names in it.
var (
	noMatchingRE   = regexp.MustCompile("no matching package (?:named|found)[^`]*`([A-Za-z0-9_-]{1,64})`")
	selectRE       = regexp.MustCompile("failed to select a version for the requirement `([A-Za-z0-9_-]{1,64}) = \"([^\"`]{1,64})\"")
	searchedNameRE = regexp.MustCompile("searched package name: `([A-Za-z0-9_-]{1,64})`")
)

// missingDeps names the dependencies of kinds the combined source cannot
// supply: those whose crate it does not hold at all, and those cargo's
// resolver error names. Entries are "name" or "name req", sorted, at most
// registry.MaxMissingDeps.
func missingDeps(deps []registry.Dep, kinds []string, vendor vendorIndex, resolverText string) []string {
	held := map[string]bool{}
	for k := range vendor {
		if i := strings.LastIndexByte(k, '@'); i > 0 {
			held[k[:i]] = true
		}
	}
	var out []string
	add := func(s string) {
		if len(s) > registry.MaxMissingDepLen {
			s = s[:registry.MaxMissingDepLen]
		}
		if !slices.Contains(out, s) && len(out) < registry.MaxMissingDeps {
			out = append(out, s)
		}
	}
	for _, d := range deps {
		if !slices.Contains(kinds, d.Kind) || d.Registry != "" {
			continue
		}
		if n := d.CrateName(); !held[n] {
			add(strings.TrimSpace(n + " " + d.Req))
		}
	}
	for _, m := range selectRE.FindAllStringSubmatch(resolverText, 8) {
		if !slices.ContainsFunc(out, func(s string) bool { return s == m[1] || strings.HasPrefix(s, m[1]+" ") }) {
			add(m[1] + " " + m[2])
		}
	}
	for _, re := range []*regexp.Regexp{noMatchingRE, searchedNameRE} {
		for _, m := range re.FindAllStringSubmatch(resolverText, 8) {
			if !slices.ContainsFunc(out, func(s string) bool { return s == m[1] || strings.HasPrefix(s, m[1]+" ") }) {
				add(m[1])
			}
		}
	}
	slices.Sort(out)
	return out
}

// controlCache keeps, per toolchain and target, whether a known-good
// control crate builds: once per process, since it says something about
// the toolchain, never about a crate.
type controlCache struct {
	mu sync.Mutex
	m  map[string]*controlEntry
}

type controlEntry struct {
	mu   sync.Mutex
	done bool
	ok   bool
	why  string
}

func (c *controlCache) entry(key string) *controlEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*controlEntry{}
	}
	e := c.m[key]
	if e == nil {
		e = &controlEntry{}
		c.m[key] = e
	}
	return e
}

// The control crate: no dependencies, a library and one test, valid on
// every edition-2015 toolchain.
const (
	controlManifest = "[package]\nname = \"wcr-control\"\nversion = \"0.0.0\"\nauthors = []\n\n[lib]\npath = \"lib.rs\"\n"
	controlLib      = "pub fn answer() -> u32 { 42 }\n\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn answer() { assert_eq!(super::answer(), 42); }\n}\n"
)

// toolchainWorks reports whether ts's toolchain builds the control crate
// (library and tests, for a tested target) for ts's target, building it
// the first time this process asks. A false answer says why.
func (r *jobRun) toolchainWorks(ctx context.Context, ts *targetState) (bool, string, error) {
	key := ts.tc.ID + "|" + ts.status.Triple
	e := r.p.controls.entry(key)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.done {
		return e.ok, e.why, nil
	}
	// Nothing of the job's is shared with the control build: its own
	// package, target directory, cargo home and disk budget, so that a
	// crate cannot make the control fail and have its answer cached.
	base := filepath.Join(r.dir, "control-"+strings.NewReplacer("/", "_", "@", "_").Replace(key))
	ce := &cargoEnv{sb: r.sb, tc: ts.tc, pkg: filepath.Join(base, "pkg"), target: filepath.Join(base, "target"), home: filepath.Join(base, "home"),
		diskDir: base, diskLimit: r.p.cfg.Limits.Disk}
	for _, d := range []string{ce.pkg, ce.target, ce.home} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return false, "", registry.E("pipeline.control", registry.EINTERNAL, "", err)
		}
	}
	for f, s := range map[string]string{
		filepath.Join(ce.pkg, "Cargo.toml"):   controlManifest,
		filepath.Join(ce.pkg, "lib.rs"):       controlLib,
		filepath.Join(ce.home, "config.toml"): "[net]\noffline = true\n\n[term]\ncolor = \"never\"\nprogress.when = \"never\"\n",
	} {
		if err := os.WriteFile(f, []byte(s), 0o644); err != nil {
			return false, "", registry.E("pipeline.control", registry.EINTERNAL, "", err)
		}
	}
	if err := r.sb.prepareWritable(base); err != nil {
		return false, "", err
	}
	args := []string{"build"}
	if ts.status.Tested {
		args = []string{"test", "--no-run"}
	}
	args = append(args, "--offline", "--manifest-path", ce.manifest(), "--target", ts.status.Triple, "--message-format", "json")
	var ok, answered bool
	err := r.stage("control-toolchain", ts.status.Target, func() (string, error) {
		cr, err := r.p.cargo(ctx, ce, r.p.cfg.Limits.BuildTime, true, args...)
		if err != nil {
			return "", err
		}
		if ok = cr.ok(); ok {
			answered = true
			return "rustc " + ts.tc.Version + " builds a crate with no dependencies for " + ts.status.Target, nil
		}
		// Only a plain failure says the toolchain is broken; a deadline or
		// a limit says nothing about it.
		outcome, why := classifyStep(cr.run, r.p.cfg.Limits.Memory)
		if answered = outcome == registry.OutcomeBuildFail; !answered {
			return "!the control build was cut short (" + outcome + ": " + why + "); the toolchain is not judged", nil
		}
		return "!rustc " + ts.tc.Version + " cannot build even a crate with no dependencies for " + ts.status.Target, nil
	})
	if err != nil || ctx.Err() != nil || !answered {
		return true, "", err // not cached: the question was not answered, so the toolchain is not blamed
	}
	e.done, e.ok = true, ok
	if !ok {
		e.why = fmt.Sprintf("rustc %s (%s) cannot build even a crate with no dependencies for %s: its standard library for that target is broken or incomplete", ts.tc.Version, ts.tc.ID, ts.status.Target)
	}
	return e.ok, e.why, nil
}

// hostControl reports whether ts's toolchain builds the crate (test: its
// tests) for the host. When the host target is built by that same
// toolchain, its own result is the answer; otherwise a control build runs
// once per toolchain and kind for the job.
func (r *jobRun) hostControl(ctx context.Context, ts *targetState, test bool) (ok, known bool, err error) {
	if native := r.target(r.p.host); native != nil && native.status.Toolchain == ts.status.Toolchain {
		// Only a success or a plain failure answers; a deadline or a limit
		// says nothing about the toolchain.
		plainFail := native.rep.Outcome == registry.OutcomeBuildFail
		if test {
			return native.testBuilt, native.testTried && (native.testBuilt || plainFail), nil
		}
		return native.rep.Build == buildOK, native.rep.Build == buildOK || (native.rep.Build == buildFailed && plainFail), nil
	}
	hostTriple := ts.tc.tripleFor(r.p.host)
	if hostTriple == "" {
		return false, false, nil
	}
	key := ts.status.Toolchain
	if test {
		key += "|test"
	}
	if v, seen := r.controls[key]; seen {
		return v, true, nil
	}
	args := []string{"build"}
	what := "the crate"
	if test {
		args, what = []string{"test", "--no-run"}, "the crate's tests"
	}
	args = append(args, "--offline", "--manifest-path", ts.ce.manifest(), "--target", hostTriple, "--message-format", "json")
	answered := false
	err = r.stage("control-build", r.p.host, func() (string, error) {
		cr, err := r.cargo(ctx, ts.ce, r.p.cfg.Limits.BuildTime, false, args...)
		if err != nil {
			return "", err
		}
		if ok = cr.ok(); ok {
			answered = true
			return "rustc " + ts.tc.Version + " builds " + what + " for the host", nil
		}
		outcome, why := classifyStep(cr.run, r.p.cfg.Limits.Memory)
		if answered = outcome == registry.OutcomeBuildFail; !answered {
			return "!the control build was cut short (" + outcome + ": " + why + "); it decides nothing", nil
		}
		return "!rustc " + ts.tc.Version + " cannot build " + what + " for the host either", nil
	})
	if err != nil || ctx.Err() != nil || !answered {
		return false, false, err
	}
	if r.controls == nil {
		r.controls = map[string]bool{}
	}
	r.controls[key] = ok
	return ok, true, nil
}

// newerBuilt names a toolchain other than ts's that built the crate (test:
// and its tests) for the host, or "".
func (r *jobRun) newerBuilt(ts *targetState, test bool) string {
	for _, o := range r.targets {
		if o.status.Target != r.p.host || o.status.Toolchain == "" || o.status.Toolchain == ts.status.Toolchain || o.rep.Build != buildOK {
			continue
		}
		if test && !o.testBuilt {
			continue
		}
		return o.tc.Version
	}
	return ""
}

// judgeBuildFailure settles a wasm target's build-fail (test: a failure to
// build its tests) with control builds: a toolchain that cannot build a
// crate with no dependencies for the target is broken (toolchain-missing);
// a crate the same toolchain cannot build for the host either, while
// another toolchain can, fails for the toolchain's age (toolchain-age).
// Otherwise the failure stays the crate's: build-fail. The class depends
// on nothing the crate printed.
func (r *jobRun) judgeBuildFailure(ctx context.Context, ts *targetState, test bool) (outcome, why string, err error) {
	works, brokenWhy, err := r.toolchainWorks(ctx, ts)
	if err != nil {
		return "", "", err
	}
	if !works && brokenWhy != "" {
		return registry.OutcomeToolchainMissing, brokenWhy, nil
	}
	hostOK, known, err := r.hostControl(ctx, ts, test)
	if err != nil {
		return "", "", err
	}
	what, needs := "the crate", "it needs"
	if test {
		what, needs = "the crate's tests", "they need"
	}
	if !known || hostOK {
		return registry.OutcomeBuildFail, "", nil
	}
	ts.hostFails = true
	if v := r.newerBuilt(ts, test); v != "" {
		return registry.OutcomeToolchainAge, fmt.Sprintf("rustc %s cannot build %s even for the host, while rustc %s can: %s a newer toolchain than this node has for %s; the failure says nothing about wasm",
			ts.tc.Version, what, v, needs, ts.status.Target), nil
	}
	return registry.OutcomeBuildFail, "", nil
}

// settleWasmFailure applies judgeBuildFailure to a wasm target whose build
// (test: whose tests' build) failed with build-fail, and records the
// settled outcome on its report.
func (r *jobRun) settleWasmFailure(ctx context.Context, ts *targetState, test bool) error {
	if !isWasm(ts.status.Target) || ts.rep.Outcome != registry.OutcomeBuildFail || ctx.Err() != nil {
		return nil
	}
	outcome, why, err := r.judgeBuildFailure(ctx, ts, test)
	if err != nil || outcome == registry.OutcomeBuildFail {
		return err
	}
	ts.rep.Outcome, ts.rep.Message = outcome, why
	ts.rep.Install = upgradeHint(ts.status.Target)
	return nil
}

// nodeOutcome reports whether an outcome is the node's limitation rather
// than the crate's: a missing, broken or too old toolchain, a declared
// rust-version above it, dependencies its sources lack, or the pipeline's
// own failure.
func nodeOutcome(outcome string) bool {
	switch outcome {
	case registry.OutcomeToolchainMissing, registry.OutcomeToolchainAge, registry.OutcomeRustVersion,
		registry.OutcomeBrokenDeps, registry.OutcomeError:
		return true
	}
	return false
}

// resolveAge settles the resolutions after every toolchain tried: a
// toolchain whose cargo cannot resolve the crate from the same sources
// another toolchain's cargo resolves fails for its age (an older cargo
// that cannot read the manifest or a dependency's), not for the sources.
func (r *jobRun) resolveAge() {
	newer := ""
	for _, ts := range r.targets {
		if res := r.resolved[ts.status.Toolchain]; res != nil && res.ok && newer == "" {
			newer = ts.tc.Version
		}
	}
	if newer == "" {
		return
	}
	for _, ts := range r.targets {
		res := r.resolved[ts.status.Toolchain]
		if res == nil || res.ok || res.outcome != registry.OutcomeBrokenDeps {
			continue
		}
		res.outcome = registry.OutcomeToolchainAge
		res.why = fmt.Sprintf("cargo %s cannot resolve the crate from the sources that the cargo of rustc %s resolves it from: the toolchain is too old for the crate's manifest or its dependencies'", ts.tc.CargoV, newer)
		res.missing = nil
	}
}
