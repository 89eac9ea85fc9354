package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// reportBudget is the most a report body may encode to, leaving room in
// registry.MaxRecordSize for the envelope (kind, subject, author, time,
// signature).
const reportBudget = registry.MaxRecordSize - 8<<10

const maxDeps = 400

func (r *jobRun) target(name string) *targetState {
	for _, ts := range r.targets {
		if ts.status.Target == name && !ts.status.Extra {
			return ts
		}
	}
	return nil
}

// assemble turns the targets' results into the report body: it collects
// what needs I/O (the dependency tree from cargo metadata, the stages'
// timing and progress, the toolchains' reports), and leaves the judgement
// to assess.
func (r *jobRun) assemble(ctx context.Context) (*registry.ReportBody, error) {
	p := r.p
	body := &registry.ReportBody{
		Release:  r.job.Release.ID().Bytes(),
		Pipeline: Scheme,
		Wazero:   p.wazeroV,
		Started:  r.started.UnixMilli(),
	}
	deps, depsBroken := r.collectDeps(ctx)
	f := r.facts(deps, depsBroken)
	a := assess(f)
	a.apply(body)
	body.MissingDeps = r.missingDeps()
	body.Targets, body.Toolchains = r.targetReports()
	body.Logs = r.logs
	body.Stages = r.stages
	body.Notes = r.notes
	body.Configs, body.Config, body.Benches = r.configReports(), r.config.Name(), r.benches
	if r.logsCut > 0 {
		body.Omitted = &registry.Omitted{Logs: r.logsCut}
	}
	_ = r.stage("score", "", func() (string, error) {
		return fmt.Sprintf("score %d, %s, %s", body.Score, body.Wasm, body.Gate), nil
	})
	body.Finished = time.Now().UnixMilli()
	if err := fit(body); err != nil {
		return nil, err
	}
	return body, nil
}

// depTarget is the wasm target whose dependency tree the report shows:
// wasm32-wasip1 when it has a cargo environment, else
// wasm32-unknown-unknown (may be nil).
func (r *jobRun) depTarget() *targetState {
	if wasi := r.target(TargetWasip1); wasi != nil && wasi.ce != nil {
		return wasi
	}
	return r.target(TargetWasmUnknown)
}

// collectDeps runs the "deps" stage: the dependency tree for the wasm
// target, or broken when the dependencies did not resolve for it. A
// failure of cargo metadata itself leaves deps nil (with a note, or the
// stage's failure) and broken false.
func (r *jobRun) collectDeps(ctx context.Context) (deps []registry.DepReport, broken bool) {
	ts := r.depTarget()
	_ = r.stage("deps", "", func() (string, error) {
		if ts == nil || ts.ce == nil || !r.resolved[ts.status.Toolchain].ok {
			broken = true
			return "-dependencies did not resolve for the wasm target", nil
		}
		var err error
		deps, err = r.depTree(ctx, ts)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%d packages", len(deps)), nil
	})
	return deps, broken
}

// facts gathers the plain data assess decides from.
func (r *jobRun) facts(deps []registry.DepReport, depsBroken bool) assessFacts {
	f := assessFacts{
		Native:      targetFactsOf(r.target(r.p.host)),
		WasmUnknown: targetFactsOf(r.target(TargetWasmUnknown)),
		Wasip1:      targetFactsOf(r.target(TargetWasip1)),
		Deps:        deps,
		DepsBroken:  depsBroken,
		Gates:       r.p.cfg.Gates,
	}
	if wasi := r.target(TargetWasip1); wasi != nil {
		if res := r.resolved[wasi.status.Toolchain]; res != nil {
			f.Wasip1Resolution = &resolutionFacts{DevStripped: res.devStripped, Why: res.why}
		}
	}
	return f
}

// targetFactsOf is ts's facts; nil for nil.
func targetFactsOf(ts *targetState) *targetFacts {
	if ts == nil {
		return nil
	}
	t := &targetFacts{Report: ts.rep, Bins: ts.bins, Modules: ts.modules, HostFails: ts.hostFails, Rustc: ts.tc.Version}
	if ts.build != nil {
		t.FirstError = ts.build.firstError
	}
	return t
}

// targetReports lists every target's report in plan order, and the
// toolchains that took part with the targets each built.
func (r *jobRun) targetReports() ([]registry.TargetReport, []registry.ToolchainReport) {
	var targets []registry.TargetReport
	var toolchains []registry.ToolchainReport
	used := map[string][]string{}
	var order []string
	for _, ts := range r.targets {
		targets = append(targets, *ts.rep)
		if id := ts.status.Toolchain; id != "" {
			if _, ok := used[id]; !ok {
				order = append(order, id)
			}
			used[id] = append(used[id], ts.status.Target)
		}
	}
	for _, id := range order {
		for _, tc := range r.p.toolchains {
			if tc.ID == id {
				toolchains = append(toolchains, tc.Report(used[id]))
			}
		}
	}
	return targets, toolchains
}

func nilIfMissing(ts *targetState) *registry.TargetReport {
	if ts == nil {
		return nil
	}
	return ts.rep
}

// compareTests joins the native and wasm results by test name.
func compareTests(native, wasi *targetState) ([]registry.TestComparison, *registry.TimingSummary) {
	idx := map[string]int{}
	var out []registry.TestComparison
	add := func(ts *targetState, isWasm bool) {
		if ts == nil {
			return
		}
		for _, br := range ts.bins {
			for _, t := range br.Tests {
				i, ok := idx[t.Name]
				if !ok {
					i = len(out)
					idx[t.Name] = i
					out = append(out, registry.TestComparison{Name: t.Name})
				}
				c := &out[i]
				if isWasm {
					c.Wasm, c.WasmUS = t.State, t.US
					if t.ShouldPanic {
						c.Note = "#[should_panic]: wasm has no unwinding, so libtest reports it ignored; not compared"
					}
				} else {
					c.Native, c.NativeUS = t.State, t.US
				}
			}
		}
	}
	add(native, false)
	add(wasi, true)
	retimed := map[string]bool{}
	if wasi != nil {
		for _, br := range wasi.bins {
			for _, t := range br.Tests {
				retimed[t.Name] = t.Retimed
			}
		}
	}
	var sum registry.TimingSummary
	for i := range out {
		c := &out[i]
		if c.Native == registry.TestPassed && c.Wasm == registry.TestPassed {
			sum.Compared++
			if c.NativeUS < registry.MinTimedUS || c.WasmUS < registry.MinTimedUS {
				if c.Note == "" {
					c.Note = "too short to time: below the start-up noise of a test run"
				}
				continue
			}
			sum.Timed++
			if retimed[c.Name] {
				sum.Retimed++
			}
			sum.NativeUS += c.NativeUS
			sum.WasmUS += c.WasmUS
			c.Ratio = c.WasmUS * 1000 / c.NativeUS
		}
	}
	if sum.NativeUS > 0 {
		sum.Ratio = sum.WasmUS * 1000 / sum.NativeUS
	}
	if len(out) == 0 && sum.Compared == 0 {
		return nil, nil
	}
	return out, &sum
}

// cargoMetadata is the part of `cargo metadata` the pipeline reads.
type cargoMetadata struct {
	Packages []struct {
		ID      string  `json:"id"`
		Name    string  `json:"name"`
		Version string  `json:"version"`
		Source  *string `json:"source"`
	} `json:"packages"`
	Resolve *struct {
		Root  *string `json:"root"`
		Nodes []struct {
			ID   string `json:"id"`
			Deps []struct {
				Pkg      string `json:"pkg"`
				DepKinds []struct {
					Kind *string `json:"kind"`
				} `json:"dep_kinds"`
			} `json:"deps"`
		} `json:"nodes"`
	} `json:"resolve"`
}

// depTree resolves the dependency tree for ts's target with cargo metadata
// and marks each package with its origin and what the registry knows.
func (r *jobRun) depTree(ctx context.Context, ts *targetState) ([]registry.DepReport, error) {
	var out strings.Builder
	errb := &limitedBuffer{limit: 8 << 10}
	if err := r.restoreHome(ts.ce); err != nil {
		return nil, err
	}
	run, err := r.sb.run(ctx, runSpec{
		Args: append([]string{ts.ce.tc.Cargo}, withFeatures([]string{"metadata", "--offline", "--manifest-path", ts.ce.manifest(), "--format-version", "1", "--filter-platform", ts.status.Triple}, ts.ce.features)...),
		Env:  ts.ce.env(), Dir: filepath.Dir(ts.ce.pkg), RW: []string{ts.ce.home}, RO: append([]string{ts.ce.pkg, ts.ce.target}, ts.ce.extraRO...),
		Timeout: r.p.cfg.Limits.BuildTime, Mem: r.p.cfg.Limits.Memory, Procs: r.p.cfg.Limits.Processes,
		Stdout: &out, Stderr: errb,
	})
	if err != nil {
		return nil, err
	}
	if !run.ok() {
		r.notes = append(r.notes, "cargo metadata failed, so the dependency tree is missing: "+firstLineWith(errb.String(), "error"))
		return nil, nil
	}
	var md cargoMetadata
	if err := json.Unmarshal([]byte(out.String()), &md); err != nil || md.Resolve == nil || md.Resolve.Root == nil {
		r.notes = append(r.notes, "cargo metadata printed something the pipeline cannot read; the dependency tree is missing")
		return nil, nil
	}
	type pkg struct {
		name, version string
		local         bool
	}
	pkgs := map[string]pkg{}
	for _, p := range md.Packages {
		pkgs[p.ID] = pkg{p.Name, p.Version, p.Source == nil}
	}
	nodes := map[string]int{}
	for i, n := range md.Resolve.Nodes {
		nodes[n.ID] = i
	}
	root := *md.Resolve.Root
	type item struct {
		id, kind, parent string
		depth            uint64
	}
	queue := []item{{id: root}}
	seen := map[string]bool{root: true}
	var deps []registry.DepReport
	for len(queue) > 0 {
		it := queue[0]
		queue = queue[1:]
		pk := pkgs[it.id]
		d := registry.DepReport{Name: pk.name, Version: pk.version, Depth: it.depth, Kind: it.kind, Parent: it.parent}
		if it.depth > 0 {
			key := pk.name + "@" + pk.version
			switch {
			case pk.local:
				d.Source = "path"
			case r.vendor[key] != "":
				d.Source = r.vendor[key]
			default:
				d.Source = sourceCratesIO
			}
			if r.job.Local != nil {
				k := r.job.Local.Known(ctx, pk.name, pk.version)
				d.Held, d.Wasm = k.Held, k.Wasm
			}
			if d.Wasm == "" {
				d.Wasm = registry.WasmUntested
			}
		}
		deps = append(deps, d)
		ni, ok := nodes[it.id]
		if !ok {
			continue
		}
		for _, dep := range md.Resolve.Nodes[ni].Deps {
			if seen[dep.Pkg] {
				continue
			}
			kind := registry.DepNormal
			for _, k := range dep.DepKinds {
				if k.Kind != nil && *k.Kind == registry.DepBuild {
					kind = registry.DepBuild
				}
				if k.Kind != nil && *k.Kind == registry.DepDev && it.depth == 0 {
					kind = registry.DepDev
				}
				if k.Kind == nil {
					kind = registry.DepNormal
					break
				}
			}
			if kind == registry.DepDev && it.depth > 0 {
				continue
			}
			seen[dep.Pkg] = true
			queue = append(queue, item{id: dep.Pkg, kind: kind, parent: pk.name + "@" + pk.version, depth: it.depth + 1})
		}
	}
	if d := deps; len(d) > 0 && d[0].Depth == 0 {
		d[0].Source = ""
	}
	return deps, nil
}

// fit shrinks the report until it encodes within reportBudget: first the
// per-test list (keeping failures), then the dependency list, then the
// logs, recording what was left out.
func fit(b *registry.ReportBody) error {
	for range 64 {
		enc, err := registry.Marshal(b)
		if err != nil {
			return err
		}
		if len(enc) <= reportBudget {
			return nil
		}
		if b.Omitted == nil {
			b.Omitted = &registry.Omitted{}
		}
		switch {
		case len(b.Tests) > 16:
			keep := len(b.Tests) / 2
			slices.SortStableFunc(b.Tests, func(x, y registry.TestComparison) int {
				return boolRank(interesting(x)) - boolRank(interesting(y))
			})
			b.Omitted.Tests += uint64(len(b.Tests) - keep)
			b.Tests = b.Tests[:keep]
		case len(b.Deps) > 16:
			keep := len(b.Deps) / 2
			b.Omitted.Deps += uint64(len(b.Deps) - keep)
			b.Deps = b.Deps[:keep]
		case len(b.Logs) > 0:
			b.Omitted.Logs++
			b.Logs = b.Logs[:len(b.Logs)-1]
		case len(b.Notes) > 0:
			b.Notes = b.Notes[:len(b.Notes)/2]
		default:
			return registry.Errorf("pipeline.fit", registry.EINTERNAL, "the report does not fit in a record (%d bytes)", len(enc))
		}
	}
	return registry.Errorf("pipeline.fit", registry.EINTERNAL, "the report does not fit in a record")
}

func interesting(c registry.TestComparison) bool {
	return c.Native != registry.TestPassed || (c.Wasm != registry.TestPassed && c.Wasm != registry.TestIgnored)
}

func boolRank(b bool) int {
	if b {
		return 0
	}
	return 1
}
