// Command wcr-testsummary reads `go test -json` output and prints what a
// plain `go test` prints — a line per package, and the output of every test
// that failed — followed by a section that lists every skipped test with the
// reason it gave. It exits non-zero when a test or a build failed, when a go
// test command it ran failed, or when a test skipped a whole capability that
// the caller did not allow.
//
// A capability is named in a skip message by the marker
// "capability NAME:" (for example "capability cargo-protocol: needs cargo
// 1.74 or newer; ..."). Every skip that carries the marker counts: a
// capability is checked completely or reported as missing. Skips without the
// marker (a test that does not apply to this machine, say) are listed but do
// not fail the run.
//
// Usage:
//
//	go test -json ./... | wcr-testsummary [-allow cargo-protocol,fuse]
//	wcr-testsummary [-allow LIST] -cmd "go test -json ./..." [-cmd "go test -json -race ./store/..."]
//	wcr-testsummary -every ./... -cmd "go test -json -skip ^TestSlow$ ./..." -cmd "go test -json -run ^TestSlow$ ./..."
//
// With -every, the run also fails when a test or fuzz function declared in
// the packages the patterns match ran in none of the commands: commands may
// split the tests between them (-run, -skip), never drop one.
//
// With -cmd, the commands run one after the other (all of them, even after a
// failure) and their exit status counts too, so a go test that fails before
// it prints any event still fails the run; the arguments are split on
// spaces, without shell quoting. The allowed capabilities come from -allow,
// or from the environment variable WCR_ALLOW_SKIP when -allow is not given.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// maxLine bounds one line of input; a longer line is an error, not a crash.
const maxLine = 16 << 20

// maxKept bounds the output kept for one test or package until it ends.
const maxKept = 1 << 20

type cmdList []string

func (c *cmdList) String() string     { return strings.Join(*c, "; ") }
func (c *cmdList) Set(s string) error { *c = append(*c, s); return nil }

func main() {
	var cmds cmdList
	allow := flag.String("allow", os.Getenv("WCR_ALLOW_SKIP"), "comma-separated capabilities whose skips do not fail the run (default $WCR_ALLOW_SKIP)")
	flag.Var(&cmds, "cmd", "a go test -json command to run (repeatable); without it, events are read from standard input")
	every := flag.String("every", "", "space-separated go list patterns: fail unless each of their test and fuzz functions ran in at least one command")
	goCmd := flag.String("go", "go", "the go command -every lists packages with")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "wcr-testsummary: unexpected arguments %q; pass commands with -cmd\n", flag.Args())
		os.Exit(2)
	}
	s := newSummary(os.Stdout, parseAllow(*allow))
	if len(cmds) == 0 {
		if err := s.read(os.Stdin, ""); err != nil {
			s.failf("reading go test output: %v", err)
		}
	}
	for _, c := range cmds {
		s.run(c)
	}
	if *every != "" {
		declared, err := declaredTests(*goCmd, strings.Fields(*every))
		if err != nil {
			s.failf("listing the tests of %s: %v", *every, err)
		} else {
			s.checkEvery(declared)
		}
	}
	os.Exit(s.finish())
}

func parseAllow(v string) map[string]bool {
	m := map[string]bool{}
	for _, c := range strings.Split(v, ",") {
		if c = strings.TrimSpace(c); c != "" {
			m[c] = true
		}
	}
	return m
}

// event is one line of `go test -json` (cmd/test2json), with the build
// events of `go test -json` since Go 1.24.
type event struct {
	Action      string
	Package     string
	ImportPath  string
	Test        string
	Elapsed     float64
	Output      string
	FailedBuild string
}

// capabilityRE finds the capability marker in a skip message.
var capabilityRE = regexp.MustCompile(`\bcapability ([a-z0-9][a-z0-9-]*):`)

// locationRE is the file:line prefix of a test's log line; skips for the
// same reason from different lines are grouped.
var locationRE = regexp.MustCompile(`^[\w.-]+\.go:\d+: `)

type skip struct {
	pkg, test, reason, capability string
}

type summary struct {
	w     io.Writer
	allow map[string]bool

	label   string                      // the current run's suffix, e.g. " (race)"
	tests   map[string]*strings.Builder // output of running tests, by package + "\x00" + test
	pkgOut  map[string]*strings.Builder // package-level output, by package
	build   map[string]*strings.Builder // build output, by import path
	skips   []skip
	seen    map[skip]bool
	ran     map[string]bool // "package\x00Test" of every top-level test that started, in any run
	passed  int
	failed  []string       // "pkg TestName" of failed tests, packages and builds
	pkgFail map[string]int // failed tests by package, in the current run
	events  int
	nonJSON int
	errs    []string
}

func newSummary(w io.Writer, allow map[string]bool) *summary {
	return &summary{w: w, allow: allow, seen: map[skip]bool{}, ran: map[string]bool{}}
}

func (s *summary) failf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.errs = append(s.errs, msg)
	fmt.Fprintf(s.w, "FAIL: %s\n", msg)
}

// run runs one go test command, reads its standard output as events and
// passes its standard error through.
func (s *summary) run(command string) {
	args := strings.Fields(command)
	if len(args) == 0 {
		s.failf("empty -cmd")
		return
	}
	label := ""
	if slices.Contains(args, "-race") {
		label = " (race)"
	}
	c := exec.Command(args[0], args[1:]...)
	c.Stderr = os.Stderr
	out, err := c.StdoutPipe()
	if err != nil {
		s.failf("%s: %v", command, err)
		return
	}
	if err := c.Start(); err != nil {
		s.failf("%s: %v", command, err)
		return
	}
	before := len(s.failed)
	rerr := s.read(out, label)
	if rerr != nil {
		io.Copy(io.Discard, out)
	}
	werr := c.Wait()
	if rerr != nil {
		s.failf("reading the output of %s: %v", command, rerr)
	}
	if werr != nil && len(s.failed) == before {
		s.failf("%s: %v, and no failed test explains it", command, werr)
	}
}

// read consumes events until r ends. Lines that are not events are printed
// as they are.
func (s *summary) read(r io.Reader, label string) error {
	s.label = label
	s.tests = map[string]*strings.Builder{}
	s.pkgOut = map[string]*strings.Builder{}
	s.build = map[string]*strings.Builder{}
	s.pkgFail = map[string]int{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil || e.Action == "" {
			s.nonJSON++
			fmt.Fprintf(s.w, "%s\n", line)
			continue
		}
		s.events++
		s.handle(e)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("a line longer than %d bytes", maxLine)
		}
		return err
	}
	// Tests that never ended: their package's binary died under them.
	var open []string
	for k := range s.tests {
		open = append(open, k)
	}
	sort.Strings(open)
	for _, k := range open {
		pkg, test, _ := strings.Cut(k, "\x00")
		fmt.Fprintf(s.w, "--- UNFINISHED: %s %s%s\n%s", pkg, test, s.label, s.tests[k].String())
		s.failed = append(s.failed, pkg+" "+test+s.label+" (never finished)")
	}
	return nil
}

func appendKept(m map[string]*strings.Builder, key, text string) {
	b := m[key]
	if b == nil {
		b = &strings.Builder{}
		m[key] = b
	}
	if b.Len() < maxKept {
		b.WriteString(text)
		if b.Len() >= maxKept {
			b.WriteString("\n[output truncated]\n")
		}
	}
}

func (s *summary) handle(e event) {
	switch e.Action {
	case "build-output":
		appendKept(s.build, e.ImportPath, e.Output)
		return
	case "build-fail":
		fmt.Fprintf(s.w, "%s", s.build[e.ImportPath].String())
		fmt.Fprintf(s.w, "FAIL\t%s [build failed]%s\n", e.ImportPath, s.label)
		s.failed = append(s.failed, e.ImportPath+" [build failed]"+s.label)
		delete(s.build, e.ImportPath)
		return
	}
	if e.Test == "" {
		s.handlePackage(e)
		return
	}
	key := e.Package + "\x00" + e.Test
	switch e.Action {
	case "run":
		if !strings.Contains(e.Test, "/") {
			s.ran[key] = true
		}
	case "output":
		appendKept(s.tests, key, e.Output)
	case "pass":
		s.passed++
		delete(s.tests, key)
	case "fail":
		fmt.Fprintf(s.w, "%s", s.tests[key].String())
		s.failed = append(s.failed, e.Package+" "+e.Test+s.label)
		s.pkgFail[e.Package]++
		delete(s.tests, key)
	case "skip":
		s.addSkip(e.Package, e.Test, s.tests[key].String())
		delete(s.tests, key)
	}
}

func (s *summary) handlePackage(e event) {
	switch e.Action {
	case "output":
		appendKept(s.pkgOut, e.Package, e.Output)
	case "pass":
		fmt.Fprintf(s.w, "ok  \t%s\t%.1fs%s\n", e.Package, e.Elapsed, s.label)
		delete(s.pkgOut, e.Package)
	case "skip":
		fmt.Fprintf(s.w, "?   \t%s\t[no test files]%s\n", e.Package, s.label)
		delete(s.pkgOut, e.Package)
	case "fail":
		// The package's own output: a panic, a timeout, a TestMain that
		// failed, and go test's closing lines.
		out := s.pkgOut[e.Package].String()
		var keep []string
		for _, l := range strings.SplitAfter(out, "\n") {
			if t := strings.TrimSpace(l); t == "" || t == "PASS" || t == "FAIL" || strings.HasPrefix(t, "FAIL\t") || strings.HasPrefix(t, "ok  \t") {
				continue
			}
			keep = append(keep, l)
		}
		fmt.Fprintf(s.w, "%s", strings.Join(keep, ""))
		why := ""
		if e.FailedBuild != "" {
			why = " [build failed]"
		}
		fmt.Fprintf(s.w, "FAIL\t%s\t%.1fs%s%s\n", e.Package, e.Elapsed, why, s.label)
		if s.pkgFail[e.Package] == 0 {
			s.failed = append(s.failed, e.Package+why+s.label)
		}
		delete(s.pkgOut, e.Package)
	}
}

// addSkip records a skipped test with the reason it printed: its output
// without the framing lines test2json adds.
func (s *summary) addSkip(pkg, test, out string) {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		lines = append(lines, locationRE.ReplaceAllString(t, ""))
	}
	reason := strings.Join(lines, " ")
	if reason == "" {
		reason = "(no reason given)"
	}
	sk := skip{pkg: pkg, test: test, reason: reason}
	if m := capabilityRE.FindStringSubmatch(reason); m != nil {
		sk.capability = m[1]
	}
	if s.seen[sk] {
		return
	}
	s.seen[sk] = true
	s.skips = append(s.skips, sk)
}

// finish prints the skipped section and the verdict, and returns the exit
// status.
func (s *summary) finish() int {
	if s.events == 0 && len(s.errs) == 0 {
		s.failf("no test events were read: was the input `go test -json`?")
	}
	fmt.Fprintf(s.w, "\n== skipped tests: %d\n", len(s.skips))
	// Group tests that skipped for the same reason in one package.
	type group struct {
		pkg, reason, capability string
		tests                   []string
	}
	var groups []*group
	index := map[[2]string]*group{}
	for _, sk := range s.skips {
		k := [2]string{sk.pkg, sk.reason}
		g := index[k]
		if g == nil {
			g = &group{pkg: sk.pkg, reason: sk.reason, capability: sk.capability}
			index[k] = g
			groups = append(groups, g)
		}
		g.tests = append(g.tests, sk.test)
	}
	for _, g := range groups {
		fmt.Fprintf(s.w, "SKIP\t%s: %s\n\t%s\n", g.pkg, strings.Join(g.tests, ", "), g.reason)
	}

	caps := map[string]int{}
	for _, sk := range s.skips {
		if sk.capability != "" {
			caps[sk.capability]++
		}
	}
	var names []string
	for c := range caps {
		names = append(names, c)
	}
	sort.Strings(names)
	var refused []string
	for _, c := range names {
		if s.allow[c] {
			fmt.Fprintf(s.w, "capability %s: %d tests skipped, allowed by WCR_ALLOW_SKIP\n", c, caps[c])
			continue
		}
		fmt.Fprintf(s.w, "capability %s: %d tests skipped: NOT CHECKED (fix the cause above, or set WCR_ALLOW_SKIP=%s to accept the gap)\n", c, caps[c], c)
		refused = append(refused, c)
	}

	fmt.Fprintf(s.w, "\n== %d passed, %d failed, %d skipped\n", s.passed, len(s.failed), len(s.skips))
	for _, f := range s.failed {
		fmt.Fprintf(s.w, "FAILED\t%s\n", f)
	}
	switch {
	case len(s.failed) > 0 || len(s.errs) > 0:
		fmt.Fprintf(s.w, "FAIL\n")
		return 1
	case len(refused) > 0:
		fmt.Fprintf(s.w, "FAIL: whole capabilities were not tested: %s\n", strings.Join(refused, ", "))
		return 1
	}
	fmt.Fprintf(s.w, "PASS\n")
	return 0
}
