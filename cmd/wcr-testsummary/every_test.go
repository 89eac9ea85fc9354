package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// splitModule is a module whose tests a Makefile might split between
// commands: internal and external test files, and functions that look like
// tests but are not.
var splitModule = map[string]string{
	"go.mod": "module example.com/split\n\ngo 1.22\n",
	"a.go":   "package split\n",
	"a_test.go": `package split

import (
	"testing"
	tt "testing"
)

func TestFast(t *testing.T)     {}
func TestSlowCargo(t *testing.T) {}
func Test(t *testing.T)         {}
func TestÄrger(t *testing.T)    {}
func Fuzz_Decoder(f *testing.F) { f.Fuzz(func(t *testing.T, b []byte) {}) }
func TestAliased(t *tt.T)       {}

// Not tests: go test runs none of these.
func TestMain(m *testing.M)            { m.Run() }
func Testlowercase()                {}
func BenchmarkFast(b *testing.B)       {}
func helperTest(t *testing.T)          {}
type s struct{}
func (s) TestMethod(t *testing.T)      {}
`,
	"ext_test.go": `package split_test

import "testing"

func TestExternal(t *testing.T) {}
`,
	"excluded_test.go": `//go:build neverbuilt

package split

import "testing"

func TestNeverBuilt(t *testing.T) {}
`,
	"sub/b.go":      "package sub\n",
	"sub/b_test.go": "package sub\n\nimport \"testing\"\n\nfunc TestSub(t *testing.T) {}\n",
}

func writeModule(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func chdir(t *testing.T, dir string) {
	t.Helper()
	wd, _ := os.Getwd()
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chdir(wd) })
}

// TestDeclaredTests finds exactly the functions go test runs.
func TestDeclaredTests(t *testing.T) {
	chdir(t, writeModule(t, splitModule))
	got, err := declaredTests("go", []string{"./..."})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for k := range got {
		names = append(names, strings.ReplaceAll(k, "\x00", " "))
	}
	sort.Strings(names)
	want := []string{
		"example.com/split Fuzz_Decoder",
		"example.com/split Test",
		"example.com/split TestAliased",
		"example.com/split TestExternal",
		"example.com/split TestFast",
		"example.com/split TestSlowCargo",
		"example.com/split TestÄrger",
		"example.com/split/sub TestSub",
	}
	if !slices.Equal(names, want) {
		t.Errorf("declared tests:\n%s\nwant:\n%s", strings.Join(names, "\n"), strings.Join(want, "\n"))
	}
}

// TestDeclaredTestsHostile: a package that does not exist or does not
// parse is an error, never an empty list that passes.
func TestDeclaredTestsHostile(t *testing.T) {
	chdir(t, writeModule(t, map[string]string{
		"go.mod":       "module example.com/bad\n\ngo 1.22\n",
		"a_test.go":    "package bad\n\nfunc TestBroken(t *testing.T) {\n",
		"ok/b_test.go": "package ok\n",
	}))
	for _, patterns := range [][]string{{"./..."}, {"./nonexistent"}, {"example.com/elsewhere"}} {
		if got, err := declaredTests("go", patterns); err == nil {
			t.Errorf("%q: no error, declared %v", patterns, got)
		}
	}
	if _, err := declaredTests("/nonexistent/go", []string{"./ok"}); err == nil {
		t.Error("a missing go command gave no error")
	}
}

func runSplit(t *testing.T, every string, cmds ...string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	s := newSummary(&out, nil)
	for _, c := range cmds {
		s.run(c)
	}
	declared, err := declaredTests("go", strings.Fields(every))
	if err != nil {
		t.Fatal(err)
	}
	s.checkEvery(declared)
	return out.String(), s.finish()
}

// TestEveryTestRunsSomewhere: commands that split the tests pass only when
// together they run every one.
func TestEveryTestRunsSomewhere(t *testing.T) {
	chdir(t, writeModule(t, splitModule))
	out, code := runSplit(t, "./...",
		"go test -json -count=1 -skip ^TestSlowCargo$ ./...",
		"go test -json -count=1 -race -run ^TestSlowCargo$ ./...")
	if code != 0 {
		t.Errorf("a complete split failed (exit %d):\n%s", code, out)
	}
	out, code = runSplit(t, "./...",
		"go test -json -count=1 -skip ^TestSlowCargo$ ./...",
		"go test -json -count=1 -race -run ^TestSlowCarg$ ./...")
	if code == 0 || !strings.Contains(out, "1 tests ran in none of the commands") || !strings.Contains(out, "\texample.com/split TestSlowCargo\n") {
		t.Errorf("a test no command ran passed (exit %d):\n%s", code, out)
	}
	out, code = runSplit(t, "./...", "go test -json -count=1 ./sub/")
	if code == 0 || !strings.Contains(out, "7 tests ran in none of the commands") {
		t.Errorf("a package left out passed (exit %d):\n%s", code, out)
	}
}
