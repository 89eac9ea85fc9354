package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestPipelineEndToEnd publishes the fixture crate on a daemon with the
// testing pipeline on, follows the automatically queued run with the CLI's
// `test` command and checks the signed report it prints, the list filters
// and `show`.
func TestPipelineEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a crate with cargo for three targets")
	}
	d := startDaemon(t, filepath.Join(t.TempDir(), "data"))
	fixture := filepath.Join(repoRoot(t), "testdata", "crates", "wcr-fixture-add", "Cargo.toml")
	d.mustCLI(t, "submit", "--manifest", fixture)

	// The submission queued a run; `test` joins it and follows it.
	out, errOut, code := d.cli(t, "test", "--max-wait", "10m", "wcr-fixture-add@0.1.0")
	if code != 0 {
		t.Fatalf("test: exit %d\n%s\n%s\n%s", code, out, errOut, d.logs)
	}
	for _, want := range []string{"outcome", "test-pass", "compatible", "wasm32-wasi", "wasm32-unknown-unknown", "x86_64-unknown-linux-gnu", "3/0/0", "GC readiness"} {
		if !strings.Contains(out, want) {
			t.Errorf("test output lacks %q:\n%s", want, out)
		}
	}
	for _, want := range []string{"job ", "build", "test", "done"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("progress lacks %q:\n%s", want, errOut)
		}
	}

	// The verdict is this node's: the list filters see it.
	var page struct {
		Crates []struct {
			Name    string  `json:"name"`
			Wasm    string  `json:"wasm"`
			Score   *uint64 `json:"score"`
			Dual    bool    `json:"dual"`
			GCReady bool    `json:"gc_ready"`
		} `json:"crates"`
	}
	d.cliJSON(t, &page, "list", "--wasm", "compatible")
	if len(page.Crates) != 1 || page.Crates[0].Name != "wcr-fixture-add" || page.Crates[0].Score == nil || !page.Crates[0].Dual {
		t.Fatalf("list --wasm compatible: %+v", page)
	}
	d.cliJSON(t, &page, "list", "--wasm", "incompatible")
	if len(page.Crates) != 0 {
		t.Fatalf("list --wasm incompatible: %+v", page)
	}
	show := d.mustCLI(t, "show", "wcr-fixture-add@0.1.0")
	if !strings.Contains(show, "TARGET") || !strings.Contains(show, "wasm32-wasi") || !strings.Contains(show, "trusted") {
		t.Fatalf("show lacks the target matrix:\n%s", show)
	}
	// GET /tests lists the report with its author and trust.
	var tests struct {
		Reports []struct {
			Author  string `json:"author"`
			Trusted bool   `json:"trusted"`
			Outcome string `json:"outcome"`
		} `json:"reports"`
		Jobs []struct {
			State string `json:"state"`
		} `json:"jobs"`
	}
	d.cliJSON(t, &tests, "test", "--no-wait", "wcr-fixture-add@0.1.0")
	var h struct {
		PeerID string `json:"peer_id"`
	}
	d.cliJSON(t, &h, "health")
	if err := getJSON(d.url+"/tests/wcr-fixture-add@0.1.0", &tests); err != nil {
		t.Fatal(err)
	}
	if len(tests.Reports) != 1 || tests.Reports[0].Author != h.PeerID || !tests.Reports[0].Trusted || tests.Reports[0].Outcome != "test-pass" {
		t.Fatalf("GET /tests: %+v", tests)
	}
}
