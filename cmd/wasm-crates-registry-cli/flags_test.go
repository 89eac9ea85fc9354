package main

import (
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
)

// pathRecorder answers every request with a JSON body naming the server and
// records the paths it was asked for.
type pathRecorder struct {
	*recorder
	mu    sync.Mutex
	paths []string
}

func newPathRecorder(t *testing.T, name string) *pathRecorder {
	pr := &pathRecorder{}
	pr.recorder = newRecorder(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) {
		pr.mu.Lock()
		pr.paths = append(pr.paths, r.URL.Path)
		pr.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"server":"` + name + `","subject":"serde@1.0.0","crates":[]}`))
	})
	return pr
}

func (pr *pathRecorder) got() []string {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return append([]string(nil), pr.paths...)
}

// TestGlobalFlagsAfterTheCommand: --json, --api and the rest work before
// the command, after it and after its arguments; the last one written wins,
// and the environment applies only when no flag is written.
func TestGlobalFlagsAfterTheCommand(t *testing.T) {
	a, b := newPathRecorder(t, "a"), newPathRecorder(t, "b")
	cases := []struct {
		name string
		env  string
		args []string
		want string // the server that must answer, by its JSON
		path string
	}{
		{"before", "", []string{"--api", a.srv.URL, "--json", "list"}, `"server":"a"`, "/crates"},
		{"after the command", "", []string{"list", "--json", "--api", a.srv.URL}, `"server":"a"`, "/crates"},
		{"after the argument", "", []string{"show", "serde@1.0.0", "--json", "--api", b.srv.URL}, `"server":"b"`, "/crates/serde@1.0.0"},
		{"later wins", "", []string{"--api", a.srv.URL, "list", "--api", b.srv.URL, "--json"}, `"server":"b"`, "/crates"},
		{"equals form", "", []string{"list", "--api=" + b.srv.URL, "--json"}, `"server":"b"`, "/crates"},
		{"environment", b.srv.URL, []string{"list", "--json"}, `"server":"b"`, "/crates"},
		{"flag over environment", b.srv.URL, []string{"list", "--json", "--api", a.srv.URL}, `"server":"a"`, "/crates"},
		{"subcommand", "", []string{"peers", "list", "--json", "--api", a.srv.URL}, `"server":"a"`, "/peers"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("REGISTRY_URL", c.env)
			before := len(a.got()) + len(b.got())
			code, out := runCLI(t, c.args...)
			if code != 0 {
				t.Fatalf("%v: exit %d, output %q", c.args, code, out)
			}
			if !strings.Contains(strings.ReplaceAll(out, " ", ""), c.want) {
				t.Errorf("%v printed %q, want the JSON of server %s (so --json and --api both applied)", c.args, out, c.want)
			}
			paths := append(a.got(), b.got()...)
			if len(paths) == before || !slices.Contains(paths, c.path) {
				t.Errorf("%v: requests %v, want %s", c.args, paths, c.path)
			}
		})
	}
}

// TestUnknownFlagAfterTheCommandIsAUsageError: a misspelt option after the
// command still exits 2 with the parser's sentence.
func TestUnknownFlagAfterTheCommandIsAUsageError(t *testing.T) {
	if code, _ := runCLI(t, "list", "--jsn"); code != exitUsage {
		t.Errorf("list --jsn: exit %d, want %d", code, exitUsage)
	}
}

// TestRequireIsCheckedBeforeAnyRequest: a --require the CLI does not know,
// or one that cannot be met with --no-wait, is a usage error (exit 2) and
// nothing is sent.
func TestRequireIsCheckedBeforeAnyRequest(t *testing.T) {
	rec := newPathRecorder(t, "a")
	for _, args := range [][]string{
		{"test", "x@1.0.0", "--require", "perfect"},
		{"test", "x@1.0.0", "--require", "curated", "--no-wait"},
		{"test", "x@1.0.0", "--require", "curated; rm -rf /"},
	} {
		if code, _ := runCLI(t, append(args, "--api", rec.srv.URL)...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
	if got := rec.got(); len(got) != 0 {
		t.Errorf("requests were sent: %v", got)
	}
}

func TestInterspersed(t *testing.T) {
	app := newApp()
	cases := []struct{ in, want string }{
		{"cli show serde --json", "cli show --json serde"},
		{"cli --api U show serde --api V", "cli --api U show --api V serde"},
		{"cli show serde --timeout 5s --json", "cli show --timeout 5s --json serde"},
		{"cli show -- --json", "cli show -- --json"},
		{"cli peers add /ip4/x --json", "cli peers add --json /ip4/x"},
		{"cli nosuch a --json", "cli --json nosuch a"},
	}
	for _, c := range cases {
		got := strings.Join(interspersed(app, strings.Fields(c.in)), " ")
		if got != c.want {
			t.Errorf("interspersed(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
