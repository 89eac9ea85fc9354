package pipeline

import (
	"regexp"
	"strconv"
	"strings"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// listedTest is one test a libtest binary lists.
type listedTest struct {
	Name    string
	Ignored bool
}

// parseTestList reads the output of `<test binary> --list`: lines of the form
// "name: test". Benchmarks and other lines are skipped.
func parseTestList(out string) []string {
	var names []string
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimRight(line, "\r")
		if name, ok := strings.CutSuffix(line, ": test"); ok && name != "" {
			names = append(names, name)
		}
	}
	return names
}

// mergeLists marks the tests of all that also appear in ignored.
func mergeLists(all, ignored []string) []listedTest {
	ig := map[string]bool{}
	for _, n := range ignored {
		ig[n] = true
	}
	out := make([]listedTest, 0, len(all))
	for _, n := range all {
		out = append(out, listedTest{Name: n, Ignored: ig[n]})
	}
	return out
}

var testResultRE = regexp.MustCompile(`test result: (?:ok|FAILED)\. (\d+) passed; (\d+) failed; (\d+) ignored`)

// singleTestState classifies the run of one test (`--exact name`) from its
// output and whether the process exited cleanly. oomText and shouldPanic are
// derived from the output as well.
func singleTestState(out string, exitedOK bool) (state string, shouldPanicIgnored bool) {
	if isOOMText(out) {
		return registry.TestOOM, false
	}
	m := testResultRE.FindAllStringSubmatch(out, -1)
	if m == nil {
		return registry.TestFailed, false
	}
	last := m[len(m)-1]
	passed, _ := strconv.Atoi(last[1])
	failed, _ := strconv.Atoi(last[2])
	ignored, _ := strconv.Atoi(last[3])
	switch {
	case failed > 0 || !exitedOK:
		return registry.TestFailed, false
	case passed > 0:
		return registry.TestPassed, false
	case ignored > 0:
		return registry.TestIgnored, strings.Contains(out, "- should panic ... ignored")
	}
	return registry.TestNotRun, false
}

// isOOMText reports whether output shows an allocation failure.
func isOOMText(out string) bool {
	return (strings.Contains(out, "memory allocation of ") && strings.Contains(out, " failed")) ||
		strings.Contains(out, "Cannot allocate memory (os error 12)") ||
		strings.Contains(out, "capacity overflow") && strings.Contains(out, "alloc")
}
