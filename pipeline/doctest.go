package pipeline

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// Documentation tests run natively only (rustdoc compiles and runs each
// one on the host), for the host target the comparisons use, inside the
// sandbox with the limits of a cargo step. They are counted apart from
// the tests (TargetReport.DocTests) and enter no verdict.
//
// Outcomes are facts, never what the crate prints: the doc-tests are
// listed, then run together; when that run exits 0, every listed
// doc-test that is not ignored passed. Otherwise each runs alone, judged
// by its run's exit status. rustdoc splits its test arguments at
// whitespace and every doc-test name holds spaces ("src/lib.rs - add
// (line 9)"), so a doc-test is selected by a word of its name and the
// other names that word matches are skipped by words of theirs; the
// selection is checked against libtest's matching rules on the listed
// names before the run, and a doc-test that cannot be selected alone is
// reported not run.

// docTestNameRE is the form rustdoc gives doc-test names: a source file,
// the documented item, the line of the code block and, for no_run and
// compile_fail blocks, a suffix.
var docTestNameRE = regexp.MustCompile(`^(\S+) - (.*)\(line (\d+)\)( - compile(?: fail)?)?$`)

// maxDocTestName bounds a doc-test name the pipeline accepts.
const maxDocTestName = 512

// maxDocSkips bounds the words skipped to select one doc-test alone.
const maxDocSkips = 64

// Bounds of a doc-test listing: names kept, the longest line read, and
// the bytes read.
const (
	maxDocListed    = 1 << 14
	maxDocListLine  = 4 << 10
	maxDocListBytes = 16 << 20
)

// docCompileAllowance is the least time, besides the per-test limit, a
// doc-test's run may take to compile it; docCompileEach is what the run
// of all of them may take per doc-test.
const (
	docCompileAllowance = 10 * time.Second
	docCompileEach      = 2 * time.Second
)

// docTest is one listed doc-test.
type docTest struct {
	name    string
	ignored bool
	count   int // doc-tests of that name
}

// wantDocTests reports whether ts's doc-tests run: the host target the
// comparisons use, built as a library, whose tests built.
func (r *jobRun) wantDocTests(ts *targetState) bool {
	return ts.status.Target == r.p.host && !ts.status.Extra && ts.status.Tested && ts.isLib && ts.rep.Build == buildOK
}

// docTests lists and runs ts's doc-tests and sets ts.rep.DocTests.
func (r *jobRun) docTests(ctx context.Context, ts *targetState) (string, error) {
	lim := r.p.cfg.Limits
	ce := ts.ce
	base := []string{"test", "--offline", "--doc", "--manifest-path", ce.manifest(), "--target", ts.status.Triple}
	list := func(args ...string) (*docListing, error) {
		l := &docListing{}
		sc := &lineScanner{max: maxDocListLine, maxTotal: maxDocListBytes, fn: l.line}
		d, err := r.docCargo(ctx, ce, lim.BuildTime, sc, append(append(slices.Clone(base), "--", "--list"), args...)...)
		sc.flush()
		l.run, l.overflow = d, l.overflow || sc.dropped > 0 || sc.overflow > 0
		return l, err
	}
	t0 := time.Now()
	all, err := list()
	if err != nil {
		return "", err
	}
	listWall := time.Since(t0)
	ign, err := list("--ignored")
	if err != nil {
		return "", err
	}
	for _, l := range []*docListing{all, ign} {
		if !l.run.run.ok() {
			r.notes = append(r.notes, "the doc-tests were not run: rustdoc cannot build or list them for "+ts.status.Target+": "+firstLineWith(l.run.err, "error"))
			r.addLog("doc-test", ts.status.Target, l.run.err, l.run.trunc)
			return "!the doc-tests cannot be built", nil
		}
	}
	tests, dropped := docTestList(all.names, ign.names, lim.MaxTests)
	c := &registry.TestCounts{NotRun: uint64(dropped)}
	ts.rep.DocTests = c
	var run []docTest
	toRun := 0
	for _, t := range tests {
		if t.ignored {
			c.Ignored += uint64(t.count)
		} else {
			run = append(run, t)
			toRun += t.count
		}
	}
	if len(run) == 0 {
		return fmt.Sprintf("%d doc-tests, none to run", len(tests)), nil
	}
	deadline := time.Now().Add(lim.TestsTime)
	perTest := lim.TestTime + max(docCompileAllowance, 2*listWall)
	// All together first: an exit status of 0 means none failed.
	batch, err := r.docCargo(ctx, ce, min(lim.TestsTime, perTest+time.Duration(toRun)*docCompileEach), nil, base...)
	if err != nil {
		return "", err
	}
	if batch.run.ok() {
		c.Passed = uint64(toRun)
		return docSummary(c), nil
	}
	if all.overflow {
		// Some names were not kept, so no selection can be checked.
		c.NotRun += uint64(toRun)
		r.notes = append(r.notes, fmt.Sprintf("the doc-tests did not all pass, and rustdoc listed more than the %d the pipeline reads, so none was run alone", maxDocListed))
		return docSummary(c), nil
	}
	names := all.names // everything libtest may match
	for _, t := range run {
		name, n := t.name, uint64(t.count)
		if time.Now().After(deadline) {
			c.NotRun += n
			continue
		}
		filter, skips, ok := isolateDocTest(name, names)
		if !ok {
			c.NotRun += n
			r.notes = append(r.notes, "the doc-test "+strconv.Quote(name)+" cannot be run alone (rustdoc selects doc-tests by words of their names), so it was not run")
			continue
		}
		args := append(append([]string{}, base...), "--", filter)
		for _, s := range skips {
			args = append(args, "--skip", s)
		}
		one, err := r.docCargo(ctx, ce, min(perTest, time.Until(deadline)+time.Second), nil, args...)
		if err != nil {
			return "", err
		}
		switch {
		case one.run.TimedOut:
			c.Timeout += n
			r.addLog("doc-test", ts.status.Target, name+" (timeout)", false)
		case one.run.ok():
			c.Passed += n
		default:
			c.Failed += n
			r.addLog("doc-test", ts.status.Target, name+" ("+registry.TestFailed+"):\n"+tail(one.out+"\n"+one.err, maxTestOutput), true)
		}
	}
	return docSummary(c), nil
}

func docSummary(c *registry.TestCounts) string {
	return fmt.Sprintf("%d passed, %d failed, %d ignored, %d timeout, %d not run", c.Passed, c.Failed, c.Ignored, c.Timeout, c.NotRun)
}

// docRun is one cargo invocation of the doc-test step.
type docRun struct {
	run   runResult
	out   string // stdout (rustdoc's libtest), bounded, unless it went elsewhere
	err   string // stderr (cargo and compiler), bounded
	trunc bool
}

// docListing is what a doc-test listing printed: the names, read line by
// line as they arrive, at most maxDocListed of them; overflow says that
// some were not kept (too many, a line too long, too much output).
type docListing struct {
	names    []string
	overflow bool
	run      docRun
}

func (l *docListing) line(s string) {
	name, ok := strings.CutSuffix(strings.TrimRight(s, "\r"), ": test")
	if !ok || name == "" {
		return
	}
	if len(l.names) >= maxDocListed {
		l.overflow = true
		return
	}
	l.names = append(l.names, name)
}

// docCargo runs cargo in ce like jobRun.cargo, with its standard output
// (the doc-test harness prints there, not JSON) going to stdout, or kept
// bounded in the result when stdout is nil.
func (r *jobRun) docCargo(ctx context.Context, ce *cargoEnv, timeout time.Duration, stdout io.Writer, args ...string) (docRun, error) {
	var d docRun
	if err := r.restoreHome(ce); err != nil {
		return d, err
	}
	lim := r.p.cfg.Limits
	out := &limitedBuffer{limit: 16 << 10}
	if stdout == nil {
		stdout = out
	}
	errb := &limitedBuffer{limit: 16 << 10}
	run, err := r.sb.run(ctx, runSpec{
		Args: append([]string{ce.tc.Cargo}, args...), Env: ce.env(), Dir: filepath.Dir(ce.pkg),
		RW: []string{ce.target, ce.home}, RO: append([]string{ce.pkg}, ce.extraRO...),
		Timeout: timeout, Mem: lim.Memory, CPU: lim.CPUTime, Procs: lim.Processes,
		FileSize: lim.Disk, DiskDir: ce.diskDir, DiskLimit: ce.diskLimit,
		Stdout: stdout, Stderr: errb,
	})
	if err != nil {
		return d, err
	}
	d.run, d.out, d.err, d.trunc = run, out.String(), errb.String(), out.Truncated() || errb.Truncated()
	return d, nil
}

// docTestList takes the names of the doc-test listings (all, and the
// ignored ones) and keeps those of rustdoc's form, at most limit of them
// (the number left out is returned). Two doc-tests can have one name (a
// README included with #![doc = include_str!(…)] is named after the file
// and line of the attribute): such doc-tests run together, and count
// together. rustdoc's standard output is also that of the crate's proc
// macros, which run while it collects the doc-tests, so a proc macro
// could add names of that form: the counts of doc-tests are
// information, never part of a verdict.
func docTestList(all, ignored []string, limit int) ([]docTest, int) {
	ign := map[string]bool{}
	for _, n := range ignored {
		ign[n] = true
	}
	var out []docTest
	idx := map[string]int{}
	dropped, kept := 0, 0
	for _, n := range all {
		if len(n) > maxDocTestName || !docTestNameRE.MatchString(n) {
			continue
		}
		if kept >= limit {
			dropped++
			continue
		}
		kept++
		if i, ok := idx[n]; ok {
			out[i].count++
			continue
		}
		idx[n] = len(out)
		out = append(out, docTest{name: n, ignored: ign[n], count: 1})
	}
	return out, dropped
}

// isolateDocTest finds test arguments that make libtest run name alone of
// all (every doc-test of that name): one word of name as the filter, and
// words of the other names it matches as --skip. libtest runs the tests
// whose name contains a filter and no skip; the choice is checked against
// that rule. Words that match fewer other names are tried first.
func isolateDocTest(name string, all []string) (filter string, skips []string, ok bool) {
	words := strings.Fields(name)
	matches := func(w string) int {
		n := 0
		for _, o := range all {
			if o != name && strings.Contains(o, w) {
				n++
			}
		}
		return n
	}
	slices.SortStableFunc(words, func(a, b string) int { return matches(a) - matches(b) })
	for _, w := range words {
		if skips, ok := skipOthers(name, w, all); ok {
			return w, skips, true
		}
	}
	return "", nil, false
}

// skipOthers finds words that skip every name but name that filter
// matches, checked against libtest's rule.
func skipOthers(name, filter string, all []string) ([]string, bool) {
	var skips []string
	for _, o := range all {
		if o == name || !strings.Contains(o, filter) || slices.ContainsFunc(skips, func(s string) bool { return strings.Contains(o, s) }) {
			continue
		}
		i := slices.IndexFunc(strings.Fields(o), func(w string) bool { return !strings.Contains(name, w) })
		if i < 0 || len(skips) >= maxDocSkips {
			return nil, false
		}
		skips = append(skips, strings.Fields(o)[i])
	}
	sel := libtestSelect(all, filter, skips)
	if len(sel) == 0 || slices.ContainsFunc(sel, func(s string) bool { return s != name }) {
		return nil, false
	}
	return skips, true
}

// libtestSelect is libtest's choice of tests for one filter and some
// skips, without --exact.
func libtestSelect(all []string, filter string, skips []string) []string {
	var out []string
	for _, n := range all {
		if !strings.Contains(n, filter) {
			continue
		}
		skip := false
		for _, s := range skips {
			if strings.Contains(n, s) {
				skip = true
			}
		}
		if !skip {
			out = append(out, n)
		}
	}
	return out
}
