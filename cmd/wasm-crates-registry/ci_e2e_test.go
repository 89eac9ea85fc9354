package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// githubAction is the part of an action.yml the test runs.
type githubAction struct {
	Inputs map[string]struct {
		Default  string `yaml:"default"`
		Required bool   `yaml:"required"`
	} `yaml:"inputs"`
	Runs struct {
		Using string `yaml:"using"`
		Steps []struct {
			ID    string            `yaml:"id"`
			Name  string            `yaml:"name"`
			Shell string            `yaml:"shell"`
			Env   map[string]string `yaml:"env"`
			Run   string            `yaml:"run"`
		} `yaml:"steps"`
	} `yaml:"runs"`
}

var ghExpr = regexp.MustCompile(`\$\{\{\s*([^}]*?)\s*\}\}`)

// runGitHubAction runs the composite action's steps in bash as a runner
// would: each step's env with ${{ inputs.X }} and ${{ steps.ID.outputs.K }}
// substituted, GITHUB_OUTPUT read back after each step. It returns the
// exit status of the first failing step (0 when all pass) and the output.
func runGitHubAction(t *testing.T, file string, inputs map[string]string) (int, string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var a githubAction
	if err := yaml.Unmarshal(b, &a); err != nil {
		t.Fatalf("%s is not valid YAML: %v", file, err)
	}
	if a.Runs.Using != "composite" || len(a.Runs.Steps) == 0 {
		t.Fatalf("%s: not a composite action with steps", file)
	}
	in := map[string]string{}
	for k, v := range a.Inputs {
		in[k] = v.Default
		if v.Required && inputs[k] == "" {
			t.Fatalf("required input %s not given", k)
		}
	}
	for k, v := range inputs {
		if _, ok := a.Inputs[k]; !ok {
			t.Fatalf("the action has no input %q", k)
		}
		in[k] = v
	}
	outputs := map[string]map[string]string{}
	tmp := t.TempDir()
	var log strings.Builder
	for i, st := range a.Runs.Steps {
		if st.Shell != "bash" {
			t.Fatalf("step %q: shell %q, the test runs bash", st.Name, st.Shell)
		}
		if ghExpr.MatchString(st.Run) {
			t.Errorf("step %q expands an expression into its script (an injection risk); pass it through env", st.Name)
		}
		outFile := filepath.Join(tmp, "output-"+st.ID+"-"+string(rune('a'+i)))
		os.WriteFile(outFile, nil, 0o644)
		env := append(os.Environ(), "GITHUB_OUTPUT="+outFile, "RUNNER_TEMP="+tmp)
		for k, v := range st.Env {
			v = ghExpr.ReplaceAllStringFunc(v, func(m string) string {
				expr := ghExpr.FindStringSubmatch(m)[1]
				switch parts := strings.Split(expr, "."); {
				case len(parts) == 2 && parts[0] == "inputs":
					return in[parts[1]]
				case len(parts) == 4 && parts[0] == "steps" && parts[2] == "outputs":
					return outputs[parts[1]][parts[3]]
				}
				t.Fatalf("step %q: expression %q the test cannot evaluate", st.Name, expr)
				return ""
			})
			env = append(env, k+"="+v)
		}
		cmd := exec.Command("bash", "-e", "-c", st.Run)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		log.WriteString("== " + st.Name + "\n" + string(out))
		if err != nil {
			if ee, ok := err.(*exec.ExitError); ok {
				return ee.ExitCode(), log.String()
			}
			t.Fatal(err)
		}
		outputs[st.ID] = map[string]string{}
		f, _ := os.Open(outFile)
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), "="); ok {
				outputs[st.ID][k] = v
			}
		}
		f.Close()
	}
	return 0, log.String()
}

// runGitLabJob runs the script of a GitLab CI job in bash with the job's
// variables, overridden by vars.
func runGitLabJob(t *testing.T, file, job string, vars map[string]string) (int, string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var jobs map[string]struct {
		Variables map[string]string `yaml:"variables"`
		Script    []string          `yaml:"script"`
		Extends   string            `yaml:"extends"`
	}
	if err := yaml.Unmarshal(b, &jobs); err != nil {
		t.Fatalf("%s is not valid YAML: %v", file, err)
	}
	j, ok := jobs[job]
	if !ok || len(j.Script) == 0 {
		t.Fatalf("%s has no job %s with a script", file, job)
	}
	if ex, ok := jobs["wasm"]; !ok || ex.Extends != job {
		t.Errorf("the example job does not extend %s", job)
	}
	env := append(os.Environ(), "CI_PROJECT_DIR="+t.TempDir())
	for k, v := range j.Variables {
		if o, ok := vars[k]; ok {
			v = o
		}
		env = append(env, k+"="+v)
	}
	for k, v := range vars {
		if _, ok := j.Variables[k]; !ok {
			env = append(env, k+"="+v) // a CI/CD variable of the project, like WCR_TOKEN
		}
	}
	cmd := exec.Command("bash", "-e", "-c", strings.Join(j.Script, "\n"))
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		}
		t.Fatal(err)
	}
	return 0, string(out)
}

// TestCITemplatesAgainstARealNode runs the steps of both CI templates
// against a real daemon with its real pipeline: a crate that works in wasm
// passes (exit 0, the target matrix printed); a crate whose test fails in
// wasm misses --require curated (exit 3, the reason printed).
func TestCITemplatesAgainstARealNode(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the pipeline on two crates")
	}
	d := startDaemon(t, filepath.Join(t.TempDir(), "data"))
	tok, err := os.ReadFile(filepath.Join(d.dataDir, "admin-token"))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tok))
	cli := cliBin(t)
	root := repoRoot(t)
	pass := filepath.Join(root, "testdata", "crates", "wcr-fixture-add", "Cargo.toml")
	fail := filepath.Join(root, "pipeline", "testdata", "v-wasm-testfail", "Cargo.toml")

	code, out := runGitHubAction(t, filepath.Join(root, "docs", "ci", "github", "action.yml"), map[string]string{
		"node-url": d.url, "token": token, "manifest": pass, "cli": cli, "max-wait": "10m"})
	if code != 0 || !strings.Contains(out, "wasm32-unknown-unknown") || !strings.Contains(out, "meets --require curated") {
		t.Fatalf("GitHub action on a passing crate: exit %d\n%s\n%s", code, out, d.logs)
	}
	code, out = runGitHubAction(t, filepath.Join(root, "docs", "ci", "github", "action.yml"), map[string]string{
		"node-url": d.url, "token": token, "manifest": fail, "cli": cli, "max-wait": "10m"})
	if code != 3 || !strings.Contains(out, "misses --require curated: wasm partial") {
		t.Fatalf("GitHub action on a crate failing in wasm: exit %d, want 3 with the reason\n%s", code, out)
	}

	// GitLab: the same crates again (already published and tested: the
	// node answers from its reports).
	gl := filepath.Join(root, "docs", "ci", "gitlab", "wasm-crates-registry.yml")
	code, out = runGitLabJob(t, gl, ".wasm-crates-registry", map[string]string{
		"WCR_NODE_URL": d.url, "WCR_TOKEN": token, "WCR_MANIFEST": pass, "WCR_CLI": cli, "WCR_MAX_WAIT": "10m"})
	if code != 0 || !strings.Contains(out, "meets --require curated") {
		t.Fatalf("GitLab job on a passing crate: exit %d\n%s", code, out)
	}
	code, out = runGitLabJob(t, gl, ".wasm-crates-registry", map[string]string{
		"WCR_NODE_URL": d.url, "WCR_TOKEN": token, "WCR_MANIFEST": fail, "WCR_CLI": cli, "WCR_MAX_WAIT": "10m"})
	if code != 3 || !strings.Contains(out, "misses --require curated") {
		t.Fatalf("GitLab job on a crate failing in wasm: exit %d, want 3\n%s", code, out)
	}
	// Without a token the publish is refused: exit 1, not a gate miss.
	code, out = runGitLabJob(t, gl, ".wasm-crates-registry", map[string]string{
		"WCR_NODE_URL": d.url, "WCR_TOKEN": "", "WCR_MANIFEST": pass, "WCR_CLI": cli, "HOME": t.TempDir()})
	if code != 1 {
		t.Errorf("GitLab job without a token: exit %d, want 1\n%s", code, out)
	}
}
