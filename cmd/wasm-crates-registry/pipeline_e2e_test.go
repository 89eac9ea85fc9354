package main

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
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

type jobJSON struct {
	ID       uint64 `json:"id"`
	State    string `json:"state"`
	Attempts int    `json:"attempts"`
	Report   string `json:"report"`
	Outcome  string `json:"outcome"`
	Events   []struct {
		State string `json:"state"`
	} `json:"events"`
}

// TestPipelineJobSurvivesKillAndCanBeCanceled kills the daemon with
// SIGKILL while a test run is in progress, restarts it and checks that the
// job runs again to a report; then cancels a queued job.
func TestPipelineJobSurvivesKillAndCanBeCanceled(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a crate with cargo")
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	d := startDaemon(t, dataDir)
	fixture := filepath.Join(repoRoot(t), "testdata", "crates", "wcr-fixture-add", "Cargo.toml")
	d.mustCLI(t, "submit", "--manifest", fixture)

	var j jobJSON
	eventually(t, 60*time.Second, "the queued job never started running", func() bool {
		if err := getJSON(d.url+"/jobs/1", &j); err != nil {
			return false
		}
		return j.State == "running" && len(j.Events) > 0
	})
	d.kill()

	d2 := startDaemon(t, dataDir)
	eventually(t, 5*time.Minute, "the interrupted job did not run again to the end", func() bool {
		if err := getJSON(d2.url+"/jobs/1", &j); err != nil {
			return false
		}
		return j.State == "done" || j.State == "failed"
	})
	if j.State != "done" || j.Attempts != 2 || j.Report == "" || j.Outcome != "test-pass" {
		t.Fatalf("job after restart: %+v", j)
	}
	var rel struct {
		Wasm string `json:"wasm"`
	}
	if err := getJSON(d2.url+"/crates/wcr-fixture-add@0.1.0", &rel); err != nil || rel.Wasm != "compatible" {
		t.Fatalf("release after the rerun: %+v %v", rel, err)
	}

	// Queue two runs on one worker; cancel the second while it waits.
	d2.mustCLI(t, "submit", "--manifest", "/usr/share/cargo/registry/itoa-1.0.1/Cargo.toml")
	var q jobJSON
	d2.cliJSON(t, &q, "test", "--no-wait", "wcr-fixture-add@0.1.0")
	out := d2.mustCLI(t, "job", "--cancel", strconv.FormatUint(q.ID, 10))
	if !strings.Contains(out, "canceled") && !strings.Contains(out, "running") {
		t.Fatalf("cancel: %s", out)
	}
	eventually(t, 5*time.Minute, "the canceled job did not end canceled", func() bool {
		return getJSON(d2.url+"/jobs/"+strconv.FormatUint(q.ID, 10), &q) == nil && q.State == "canceled"
	})
	if _, errOut, code := d2.cli(t, "job", "--cancel", strconv.FormatUint(q.ID, 10)); code == 0 || !strings.Contains(errOut, "already ended") {
		t.Fatalf("second cancel: exit %d %q", code, errOut)
	}
}
