package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// summarise feeds input to a summary and returns what it printed and its
// exit status.
func summarise(t *testing.T, input string, allow string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	s := newSummary(&out, parseAllow(allow))
	if err := s.read(strings.NewReader(input), ""); err != nil {
		s.failf("reading go test output: %v", err)
	}
	code := s.finish()
	return out.String(), code
}

// A module whose tests pass, skip for an ordinary reason, skip a whole
// capability, and fail, run by the real go test.
const probeTests = `package probe

import "testing"

func TestPasses(t *testing.T) {}

func TestNotHere(t *testing.T) { t.Skip("needs a second network interface") }

func TestWidget(t *testing.T) {
	t.Skip("capability widget: no widget on this machine; install one with apt-get install widget")
}

func TestWidgetToo(t *testing.T) {
	t.Skip("capability widget: no widget on this machine; install one with apt-get install widget")
}

func TestBroken(t *testing.T) {
	if brokenOn() {
		t.Fatal("the probe is broken")
	}
}
`

func probeModule(t *testing.T, broken bool) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatalf("go is not on PATH: %v", err)
	}
	dir := t.TempDir()
	files := map[string]string{
		"go.mod":        "module example.com/probe\n\ngo 1.22\n",
		"probe_test.go": probeTests,
		"on.go":         "package probe\n\nfunc brokenOn() bool { return " + map[bool]string{true: "true", false: "false"}[broken] + " }\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func runProbe(t *testing.T, dir, allow string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	s := newSummary(&out, parseAllow(allow))
	wd, _ := os.Getwd()
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(wd)
	s.run("go test -json -count=1 ./...")
	code := s.finish()
	return out.String(), code
}

// TestRealGoTest runs the real go test on a probe module: a failure and a
// skipped capability each fail the run, the skip section names every
// skipped test with its reason, and only WCR_ALLOW_SKIP lets a capability
// go untested.
func TestRealGoTest(t *testing.T) {
	out, code := runProbe(t, probeModule(t, true), "")
	if code == 0 {
		t.Errorf("a failing test exited 0:\n%s", out)
	}
	for _, want := range []string{
		"the probe is broken",
		"FAIL\texample.com/probe",
		"FAILED\texample.com/probe TestBroken",
		"SKIP\texample.com/probe: TestNotHere\n\tneeds a second network interface",
		"SKIP\texample.com/probe: TestWidget, TestWidgetToo\n\tcapability widget: no widget on this machine; install one with apt-get install widget",
		"capability widget: 2 tests skipped: NOT CHECKED",
		"1 passed, 1 failed, 3 skipped",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	dir := probeModule(t, false)
	out, code = runProbe(t, dir, "")
	if code == 0 || !strings.Contains(out, "FAIL: whole capabilities were not tested: widget") {
		t.Errorf("a skipped capability passed (exit %d):\n%s", code, out)
	}
	if !strings.Contains(out, "ok  \texample.com/probe") {
		t.Errorf("no ok line for the passing package:\n%s", out)
	}
	out, code = runProbe(t, dir, "other, widget")
	if code != 0 || !strings.Contains(out, "capability widget: 2 tests skipped, allowed by WCR_ALLOW_SKIP") || !strings.HasSuffix(out, "PASS\n") {
		t.Errorf("an allowed capability failed the run (exit %d):\n%s", code, out)
	}
}

// TestCommandFailureCounts: a go test that fails without printing a
// failed test (a flag go refuses, a missing command) fails the run, even after
// another command's events were read.
func TestCommandFailureCounts(t *testing.T) {
	dir := probeModule(t, false)
	wd, _ := os.Getwd()
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(wd)
	for _, bad := range []string{"go test -json -count=abc ./...", "/nonexistent/go test"} {
		var out bytes.Buffer
		s := newSummary(&out, parseAllow("widget"))
		s.run("go test -json -count=1 ./...")
		s.run(bad)
		if code := s.finish(); code == 0 {
			t.Errorf("%s: exit %d:\n%.3000s", bad, code, out.String())
		}
	}
}

// TestHostileInput: whatever arrives on standard input, the summariser
// never passes a run it could not read.
func TestHostileInput(t *testing.T) {
	cases := []struct {
		name, input, want string
	}{
		{"empty", "", "no test events were read"},
		{"not json", "garbage\n{not json\n\x00\xff\n", "no test events were read"},
		{"line too long", `{"Action":"output","Output":"` + strings.Repeat("x", maxLine+10) + "\"}\n", "a line longer than"},
		{"test never ended", `{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestA","Output":"panic: boom\n"}
`, "--- UNFINISHED: p TestA"},
		{"build failed", `{"ImportPath":"p [p.test]","Action":"build-output","Output":"p/x.go:1: syntax error\n"}
{"ImportPath":"p [p.test]","Action":"build-fail"}
{"Action":"start","Package":"p"}
{"Action":"output","Package":"p","Output":"FAIL\tp [build failed]\n"}
{"Action":"fail","Package":"p","Elapsed":0,"FailedBuild":"p [p.test]"}
`, "p/x.go:1: syntax error"},
		{"package failed alone", `{"Action":"output","Package":"p","Output":"panic: in TestMain\n"}
{"Action":"fail","Package":"p","Elapsed":1}
`, "panic: in TestMain"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, code := summarise(t, c.input, "")
			if code == 0 {
				t.Errorf("exit 0:\n%.2000s", out)
			}
			if !strings.Contains(out, c.want) {
				t.Errorf("output lacks %q:\n%.2000s", c.want, out)
			}
		})
	}
	// A huge output from one test is kept bounded.
	var in strings.Builder
	line := `{"Action":"output","Package":"p","Test":"TestA","Output":"` + strings.Repeat("y", 60000) + `\n"}` + "\n"
	for i := 0; i < 100; i++ {
		in.WriteString(line)
	}
	in.WriteString(`{"Action":"fail","Package":"p","Test":"TestA"}` + "\n")
	out, code := summarise(t, in.String(), "")
	if code == 0 || len(out) > 2*maxKept || !strings.Contains(out, "[output truncated]") {
		t.Errorf("exit %d, %d bytes of output", code, len(out))
	}
}

// A capability marker is recognised anywhere in a skip message, and a skip
// without one does not fail the run.
func TestCapabilityMarker(t *testing.T) {
	in := `{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestA","Output":"    a_test.go:9: SKIPPING: capability cargo-protocol: needs cargo 1.74\n"}
{"Action":"skip","Package":"p","Test":"TestA"}
{"Action":"run","Package":"p","Test":"TestB"}
{"Action":"output","Package":"p","Test":"TestB","Output":"    b_test.go:3: no second address\n"}
{"Action":"skip","Package":"p","Test":"TestB"}
{"Action":"pass","Package":"p","Elapsed":1}
`
	out, code := summarise(t, in, "")
	if code == 0 || !strings.Contains(out, "capability cargo-protocol: 1 tests skipped: NOT CHECKED") {
		t.Errorf("exit %d:\n%s", code, out)
	}
	out, code = summarise(t, in, "cargo-protocol")
	if code != 0 || !strings.Contains(out, "SKIP\tp: TestB\n\tno second address") {
		t.Errorf("exit %d:\n%s", code, out)
	}
}
