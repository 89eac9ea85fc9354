package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBashCompletion loads the printed bash script into a real bash with
// the real binary on PATH and asks it to complete partial command lines.
func TestBashCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not installed")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "wasm-crates-registry-cli")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cases := []struct {
		words []string // the line so far; the last word is being completed
		want  string
	}{
		{[]string{"wasm-crates-registry-cli", "pe"}, "peers"},
		{[]string{"wasm-crates-registry-cli", "peers", "a"}, "add"},
		{[]string{"wasm-crates-registry-cli", "list", "--js"}, "--json"},
		{[]string{"wasm-crates-registry-cli", "completion", "b"}, "bash"},
	}
	for _, c := range cases {
		script := `source <(wasm-crates-registry-cli completion bash)
COMP_WORDS=(` + strings.Join(c.words, " ") + `)
COMP_CWORD=` + itoa(uint64(len(c.words)-1)) + `
_wasm_crates_registry_cli
echo "${COMPREPLY[*]}"`
		cmd := exec.Command(bash, "-c", script)
		cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("bash: %v\n%s", err, out)
		}
		if got := strings.TrimSpace(string(out)); got != c.want {
			t.Errorf("completing %q: got %q, want %q", c.words, got, c.want)
		}
	}
	for _, sh := range []string{"zsh", "fish"} {
		if code, out := runCLI(t, "completion", sh); code != 0 || !strings.Contains(out, "wasm-crates-registry-cli") {
			t.Errorf("completion %s: exit %d, %q", sh, code, out)
		}
	}
	if code, _ := runCLI(t, "completion", "powershell"); code != exitUsage {
		t.Errorf("completion for an unknown shell: exit %d, want %d", code, exitUsage)
	}
}
