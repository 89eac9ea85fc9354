package node

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/store"
)

// A corpus run (docs/PIPELINE.md, "Corpus runs") is every trusted report
// made with one toolchain: the reports of the authorized testers whose
// wasm targets were built by the same `rustc -V`, over the releases they
// cover (per release and tester the newest such report, superseded or
// not; the release's line is the oldest of those). A run therefore grows
// as the federation tests, and a toolchain change starts a new run, which
// regressions compare with the old. Its ID is the first 12 hex digits of sha256 of the toolchain
// string.

// RunInfo names a corpus run.
type RunInfo struct {
	ID        string `json:"id"`
	Toolchain string `json:"toolchain"`
	Releases  int    `json:"releases"`
	// Reports counts every trusted report in the run, confirmations
	// included.
	Reports int   `json:"reports"`
	First   int64 `json:"first"` // Unix ms of the earliest report
	Last    int64 `json:"last"`  // and of the newest
}

// runToolchain is the toolchain a report's wasm targets were built with:
// the rustc version string of the toolchain named by the first wasm
// target that is not Extra, else of the first toolchain, else "unknown".
func runToolchain(b *registry.ReportBody) string {
	byID := map[string]string{}
	for _, tc := range b.Toolchains {
		byID[tc.ID] = tc.Rustc
	}
	for _, t := range b.Targets {
		if !t.Extra && strings.HasPrefix(t.Target, "wasm32") {
			if s := byID[t.Toolchain]; s != "" {
				return s
			}
		}
	}
	if len(b.Toolchains) > 0 && b.Toolchains[0].Rustc != "" {
		return b.Toolchains[0].Rustc
	}
	return "unknown"
}

// RunID is the ID of the run of a toolchain string.
func RunID(toolchain string) string {
	h := sha256.Sum256([]byte(toolchain))
	return hex.EncodeToString(h[:6])
}

// corpusEntry is one release in one run.
type corpusEntry struct {
	subject string
	report  ConfirmedReport
	testers int
	conf    string
}

type corpusRun struct {
	info    RunInfo
	entries map[string]*corpusEntry // by subject
}

// corpus groups every trusted report by run.
func (n *Node) corpus(ctx context.Context) (map[string]*corpusRun, error) {
	trust := n.Trust()
	views, _, err := n.db.ListViews(store.ListQuery{Match: func(v *store.ReleaseView) bool { return !v.Unauthorized }})
	if err != nil {
		return nil, err
	}
	runs := map[string]*corpusRun{}
	for _, v := range views {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		byRun, err := n.reportsByRun(v, trust)
		if err != nil {
			return nil, err
		}
		for tc, reps := range byRun {
			id := RunID(tc)
			run := runs[id]
			if run == nil {
				run = &corpusRun{info: RunInfo{ID: id, Toolchain: tc, First: reps[0].Time, Last: reps[0].Time}, entries: map[string]*corpusEntry{}}
				runs[id] = run
			}
			run.info.Releases++
			for _, r := range reps {
				run.info.Reports++
				run.info.First = min(run.info.First, r.Time)
				run.info.Last = max(run.info.Last, r.Time)
			}
			conf := ConfirmSingle
			if len(reps) > 1 {
				conf = ConfirmConfirmed
				for _, r := range reps[1:] {
					if len(CompareReports(reps[0].Body, r.Body)) > 0 {
						conf = ConfirmDisagreement
					}
				}
			}
			run.entries[v.Subject()] = &corpusEntry{subject: v.Subject(), report: reps[0], testers: len(reps), conf: conf}
		}
	}
	return runs, nil
}

// reportsByRun returns every report on v's winning release by a tester
// trust accepts, superseded ones included (a tester that tests again with
// another toolchain replaces its live report, but its report stays in the
// earlier run), grouped by run toolchain: per run and tester the newest,
// oldest tester's report first.
func (n *Node) reportsByRun(v *store.ReleaseView, trust *TrustSet) (map[string][]ConfirmedReport, error) {
	recs, err := n.db.RecordsBySubject(v.Subject())
	if err != nil {
		return nil, err
	}
	may := trust.Tests(v.Name)
	type key struct{ run, author string }
	newest := map[key]ConfirmedReport{}
	for _, r := range recs {
		if r.Kind != registry.KindReport || !may(r.Author) {
			continue
		}
		b, err := r.DecodeBody()
		if err != nil {
			continue
		}
		body := b.(*registry.ReportBody)
		if body.ReleaseID() != v.Release {
			continue
		}
		k := key{runToolchain(body), string(r.Author)}
		if old, ok := newest[k]; ok && (old.Time > r.Time || old.Time == r.Time && old.Report.Compare(r.ID()) > 0) {
			continue
		}
		newest[k] = ConfirmedReport{Report: r.ID(), Tester: r.Author, Time: r.Time, Outcome: body.Outcome, Wasm: body.Wasm, Body: body}
	}
	out := map[string][]ConfirmedReport{}
	for k, r := range newest {
		out[k.run] = append(out[k.run], r)
	}
	for _, rs := range out {
		slices.SortFunc(rs, func(a, b ConfirmedReport) int {
			if c := cmp.Compare(a.Time, b.Time); c != 0 {
				return c
			}
			return a.Report.Compare(b.Report)
		})
	}
	return out, nil
}

// CorpusRuns lists the runs, newest first.
func (n *Node) CorpusRuns(ctx context.Context) ([]RunInfo, error) {
	runs, err := n.corpus(ctx)
	if err != nil {
		return nil, err
	}
	out := []RunInfo{}
	for _, r := range runs {
		out = append(out, r.info)
	}
	slices.SortFunc(out, func(a, b RunInfo) int {
		if c := cmp.Compare(b.Last, a.Last); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// TargetTally counts what one target did across a run.
type TargetTally struct {
	Target string `json:"target"`
	// Tested counts the releases whose report has the target; Built
	// those whose build succeeded; Passed those whose outcome is
	// test-pass. Outcomes counts every outcome.
	Tested   int            `json:"tested"`
	Built    int            `json:"built"`
	Passed   int            `json:"passed"`
	Outcomes map[string]int `json:"outcomes"`
}

// BreakingDep is a dependency that breaks wasm builds in a run.
type BreakingDep struct {
	Name string `json:"name"`
	// Crates counts the releases it breaks: it is the first package that
	// breaks their wasm build, or their sources could not supply it.
	Crates   int      `json:"crates"`
	Versions []string `json:"versions,omitempty"` // the versions seen breaking (from broken_by)
	Examples []string `json:"examples"`           // up to 5 of the releases it breaks
}

// CorpusCrate is one release's line in a corpus report.
type CorpusCrate struct {
	Subject      string             `json:"subject"`
	Wasm         string             `json:"wasm"`
	Outcome      string             `json:"outcome"`
	BrokenBy     string             `json:"broken_by,omitempty"`
	MissingDeps  []string           `json:"missing_deps,omitempty"`
	Tester       registry.PublicKey `json:"tester"`
	Report       registry.ID        `json:"report"`
	Testers      int                `json:"testers"`
	Confirmation string             `json:"confirmation"`
}

// CorpusReport is a crater-style report of one run.
type CorpusReport struct {
	Run          RunInfo        `json:"run"`
	Verdicts     map[string]int `json:"verdicts"`
	Outcomes     map[string]int `json:"outcomes"`
	Targets      []TargetTally  `json:"targets"`
	BreakingDeps []BreakingDep  `json:"breaking_deps"`
	Confirmed    int            `json:"confirmed"`
	Disagreeing  int            `json:"disagreeing"`
	Crates       []CorpusCrate  `json:"crates"`
}

// MaxBreakingDeps bounds the dependencies a corpus report lists.
const MaxBreakingDeps = 50

// depName is the package name in "name", "name@version" or
// "name@requirement".
func depName(s string) string {
	name, _, _ := strings.Cut(strings.TrimSpace(s), "@")
	name, _, _ = strings.Cut(name, " ")
	return name
}

// runByID finds a run by its ID or, when id is "" or "latest", the newest.
func (n *Node) runByID(ctx context.Context, id string) (*corpusRun, map[string]*corpusRun, error) {
	const op = "node.CorpusReport"
	runs, err := n.corpus(ctx)
	if err != nil {
		return nil, nil, err
	}
	id = strings.TrimSpace(id)
	if id == "" || id == "latest" {
		var best *corpusRun
		for _, r := range runs {
			if best == nil || r.info.Last > best.info.Last || r.info.Last == best.info.Last && r.info.ID < best.info.ID {
				best = r
			}
		}
		if best == nil {
			return nil, nil, registry.Errorf(op, registry.ENOTFOUND, "no corpus run yet: no authorized tester has reported on any release")
		}
		return best, runs, nil
	}
	r := runs[id]
	if r == nil {
		return nil, nil, registry.Errorf(op, registry.ENOTFOUND, "no corpus run %s; GET /corpus/runs lists them", truncate(id, 40))
	}
	return r, runs, nil
}

// CorpusReport reports on one run (by ID; "" or "latest": the newest).
func (n *Node) CorpusReport(ctx context.Context, id string) (*CorpusReport, error) {
	run, _, err := n.runByID(ctx, id)
	if err != nil {
		return nil, err
	}
	rep := &CorpusReport{Run: run.info, Verdicts: map[string]int{}, Outcomes: map[string]int{}, Targets: []TargetTally{}, BreakingDeps: []BreakingDep{}, Crates: []CorpusCrate{}}
	targets := map[string]*TargetTally{}
	deps := map[string]*BreakingDep{}
	for _, subject := range sortedKeys(run.entries) {
		e := run.entries[subject]
		b := e.report.Body
		rep.Verdicts[b.Wasm]++
		rep.Outcomes[b.Outcome]++
		switch e.conf {
		case ConfirmConfirmed:
			rep.Confirmed++
		case ConfirmDisagreement:
			rep.Disagreeing++
		}
		for _, t := range b.Targets {
			if t.Extra {
				continue
			}
			tt := targets[t.Target]
			if tt == nil {
				tt = &TargetTally{Target: t.Target, Outcomes: map[string]int{}}
				targets[t.Target] = tt
			}
			tt.Tested++
			if t.Build == "ok" {
				tt.Built++
			}
			if t.Outcome == registry.OutcomeTestPass {
				tt.Passed++
			}
			tt.Outcomes[t.Outcome]++
		}
		self, _, _ := strings.Cut(subject, "@")
		breaks := map[string]string{} // name → version, once per crate
		if d := depName(b.BrokenBy); d != "" && d != self {
			_, ver, _ := strings.Cut(b.BrokenBy, "@")
			breaks[d] = ver
		}
		for _, m := range b.MissingDeps {
			if d := depName(m); d != "" && d != self {
				if _, ok := breaks[d]; !ok {
					breaks[d] = ""
				}
			}
		}
		for d, ver := range breaks {
			bd := deps[d]
			if bd == nil {
				bd = &BreakingDep{Name: d, Examples: []string{}}
				deps[d] = bd
			}
			bd.Crates++
			if ver != "" && !slices.Contains(bd.Versions, ver) && len(bd.Versions) < 10 {
				bd.Versions = append(bd.Versions, ver)
			}
			if len(bd.Examples) < 5 {
				bd.Examples = append(bd.Examples, subject)
			}
		}
		rep.Crates = append(rep.Crates, CorpusCrate{Subject: subject, Wasm: b.Wasm, Outcome: b.Outcome, BrokenBy: b.BrokenBy,
			MissingDeps: b.MissingDeps, Tester: e.report.Tester, Report: e.report.Report, Testers: e.testers, Confirmation: e.conf})
	}
	for _, t := range sortedKeys(targets) {
		rep.Targets = append(rep.Targets, *targets[t])
	}
	for _, d := range deps {
		rep.BreakingDeps = append(rep.BreakingDeps, *d)
	}
	slices.SortFunc(rep.BreakingDeps, func(a, b BreakingDep) int {
		if c := cmp.Compare(b.Crates, a.Crates); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	if len(rep.BreakingDeps) > MaxBreakingDeps {
		rep.BreakingDeps = rep.BreakingDeps[:MaxBreakingDeps]
	}
	return rep, nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// wasmRank orders verdicts from worst to best for regressions.
func wasmRank(v string) int {
	switch v {
	case registry.WasmCompatible:
		return 3
	case registry.WasmPartial, registry.WasmBuilds:
		return 2
	case registry.WasmIncompatible:
		return 1
	}
	return 0
}

// VerdictChange is one release's result in two runs.
type VerdictChange struct {
	Subject     string `json:"subject"`
	FromWasm    string `json:"from_wasm"`
	FromOutcome string `json:"from_outcome"`
	ToWasm      string `json:"to_wasm"`
	ToOutcome   string `json:"to_outcome"`
}

// Regressions compares two runs over the releases both cover.
type Regressions struct {
	From RunInfo `json:"from"`
	To   RunInfo `json:"to"`
	// Regressed: a worse wasm verdict in To (compatible > partial, builds
	// > incompatible); Fixed: a better one; Changed: the same verdict
	// with another outcome.
	Regressed []VerdictChange `json:"regressed"`
	Fixed     []VerdictChange `json:"fixed"`
	Changed   []VerdictChange `json:"changed"`
	Same      int             `json:"same"`
	OnlyFrom  int             `json:"only_from"`
	OnlyTo    int             `json:"only_to"`
}

// CorpusRegressions compares run from with run to (IDs).
func (n *Node) CorpusRegressions(ctx context.Context, from, to string) (*Regressions, error) {
	const op = "node.CorpusRegressions"
	if strings.TrimSpace(from) == "" || strings.TrimSpace(to) == "" {
		return nil, registry.Errorf(op, registry.EINVALID, "name two runs to compare: from and to (GET /corpus/runs lists them)")
	}
	a, runs, err := n.runByID(ctx, from)
	if err != nil {
		return nil, err
	}
	b := runs[strings.TrimSpace(to)]
	if b == nil {
		return nil, registry.Errorf(op, registry.ENOTFOUND, "no corpus run %s; GET /corpus/runs lists them", truncate(to, 40))
	}
	out := &Regressions{From: a.info, To: b.info, Regressed: []VerdictChange{}, Fixed: []VerdictChange{}, Changed: []VerdictChange{}}
	for _, s := range sortedKeys(a.entries) {
		x := a.entries[s].report
		ye, ok := b.entries[s]
		if !ok {
			out.OnlyFrom++
			continue
		}
		y := ye.report
		ch := VerdictChange{Subject: s, FromWasm: x.Wasm, FromOutcome: x.Outcome, ToWasm: y.Wasm, ToOutcome: y.Outcome}
		switch rx, ry := wasmRank(x.Wasm), wasmRank(y.Wasm); {
		case ry < rx:
			out.Regressed = append(out.Regressed, ch)
		case ry > rx:
			out.Fixed = append(out.Fixed, ch)
		case x.Outcome != y.Outcome:
			out.Changed = append(out.Changed, ch)
		default:
			out.Same++
		}
	}
	for s := range b.entries {
		if _, ok := a.entries[s]; !ok {
			out.OnlyTo++
		}
	}
	return out, nil
}
