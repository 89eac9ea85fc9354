package main

import (
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type workJSON struct {
	Need      int      `json:"need"`
	Reporters []string `json:"reporters"`
	Leases    []struct {
		Tester string `json:"tester"`
	} `json:"leases"`
}

type testsJSON struct {
	Reports []struct {
		Author  string `json:"author"`
		Trusted bool   `json:"trusted"`
	} `json:"reports"`
	Jobs []struct {
		ID     uint64 `json:"id"`
		State  string `json:"state"`
		Error  string `json:"error"`
		Events []struct {
			Stage string `json:"stage"`
		} `json:"events"`
	} `json:"jobs"`
}

// ranPipeline counts the jobs of one node that ran the pipeline to its
// end on a release: done, or failed for another reason than the lease.
func ranPipeline(t testsJSON) int {
	k := 0
	for _, j := range t.Jobs {
		if j.State == "done" || j.State == "failed" {
			k++
		}
	}
	return k
}

// Three real daemons with shared testing run a corpus of real crates
// published to one of them. A tester is SIGKILLed while it runs a
// release; its lease runs out and another node takes the release. In the
// end every release has exactly the reports it needs (one, or two when it
// is confirmed), no node ran a release that another ran except for
// confirmation, and the confirmed verdicts agree.
func TestThreeDaemonsShareACorpusRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the pipeline on several crates with cargo")
	}
	root := repoRoot(t)
	crates := []struct{ manifest, subject string }{
		{filepath.Join(root, "testdata", "crates", "wcr-fixture-add", "Cargo.toml"), "wcr-fixture-add@0.1.0"},
		{filepath.Join(root, "pipeline", "testdata", "crates", "pure", "Cargo.toml"), "wcr-fx-pure@0.1.0"},
		{filepath.Join(root, "pipeline", "testdata", "crates", "onefail", "Cargo.toml"), "wcr-fx-onefail@0.1.0"},
		{filepath.Join(root, "pipeline", "testdata", "crates", "getrandom", "Cargo.toml"), "wcr-fx-getrandom@0.1.0"},
	}
	shared := []string{"--shared-testing", "--lease", "15s", "--shared-scan", "2s", "--sync-interval", "5s"}
	a := startDaemon(t, filepath.Join(t.TempDir(), "a"), shared...)
	var ha, hb, hc healthJSON
	a.cliJSON(t, &ha, "health")
	b := startDaemon(t, filepath.Join(t.TempDir(), "b"), append(shared, "--peer", ha.Addrs[0])...)
	b.cliJSON(t, &hb, "health")
	c := startDaemon(t, filepath.Join(t.TempDir(), "c"), append(shared, "--peer", ha.Addrs[0], "--peer", hb.Addrs[0])...)
	c.cliJSON(t, &hc, "health")
	a.mustCLI(t, "peers", "add", hb.Addrs[0])
	a.mustCLI(t, "peers", "add", hc.Addrs[0])
	b.mustCLI(t, "peers", "add", hc.Addrs[0])
	nodes := map[string]*daemon{ha.PeerID: a, hb.PeerID: b, hc.PeerID: c}

	for _, cr := range crates {
		a.mustCLI(t, "submit", "--manifest", cr.manifest)
	}

	// SIGKILL whichever of B and C is first seen running a release under
	// its lease (the pipeline has reported progress).
	var killed *daemon
	var killedID, killedSubject string
	eventually(t, 5*time.Minute, "neither B nor C ran a release", func() bool {
		for _, d := range []*daemon{b, c} {
			for _, cr := range crates {
				var tj testsJSON
				if getJSON(d.url+"/tests/"+cr.subject, &tj) != nil {
					continue
				}
				for _, j := range tj.Jobs {
					if j.State == "running" && len(j.Events) > 0 {
						killed, killedSubject = d, cr.subject
						return true
					}
				}
			}
		}
		return false
	})
	for id, d := range nodes {
		if d == killed {
			killedID = id
			delete(nodes, id)
		}
	}
	killed.kill()
	t.Logf("killed %s while it ran %s", killedID, killedSubject)

	// The survivors finish the run: every release gets the reports it needs.
	work := map[string]workJSON{}
	eventually(t, 12*time.Minute, "the run did not complete on the surviving nodes", func() bool {
		for _, cr := range crates {
			var w workJSON
			if getJSON(a.url+"/tests/"+cr.subject+"/work", &w) != nil || w.Need == 0 || len(w.Reporters) < w.Need {
				return false
			}
			work[cr.subject] = w
		}
		return true
	})
	time.Sleep(6 * time.Second) // what the schedulers would still start, they start now

	confirmed := 0
	for _, cr := range crates {
		w := work[cr.subject]
		var tj testsJSON
		if err := getJSON(a.url+"/tests/"+cr.subject, &tj); err != nil {
			t.Fatal(err)
		}
		// Reports by the killed node count once each; the survivors' runs
		// are their done or failed jobs.
		runs, fromKilled := 0, 0
		for _, r := range tj.Reports {
			if r.Author == killedID && r.Trusted {
				fromKilled++
			}
		}
		for id, d := range nodes {
			var dj testsJSON
			if err := getJSON(d.url+"/tests/"+cr.subject, &dj); err != nil {
				t.Fatal(err)
			}
			n := ranPipeline(dj)
			if n > 1 {
				t.Errorf("%s: node %s ran it %d times", cr.subject, id, n)
			}
			runs += n
		}
		t.Logf("%s: need %d, reporters %d, runs on survivors %d, reports by the killed node %d", cr.subject, w.Need, len(w.Reporters), runs, fromKilled)
		if len(w.Reporters) != w.Need {
			t.Errorf("%s: %d reporters, want exactly %d", cr.subject, len(w.Reporters), w.Need)
		}
		if runs+fromKilled != w.Need {
			t.Errorf("%s: run %d times (+%d by the killed node), want %d", cr.subject, runs, fromKilled, w.Need)
		}
		if cr.subject == killedSubject && fromKilled != 0 {
			t.Errorf("%s: the killed node reported the release it was killed on", cr.subject)
		}
		if w.Need == 2 {
			confirmed++
			out := a.mustCLI(t, "corpus", "confirmation", cr.subject)
			if !strings.Contains(out, "confirmed by 2 nodes") {
				t.Errorf("%s is not confirmed:\n%s", cr.subject, out)
			}
		}
	}
	if confirmed == 0 {
		t.Error("no release was confirmed: a compatible crate's verdict enters the wasm-only index and needs two testers")
	}

	// The corpus report: one run, every release, per-target tallies, the
	// confirmations; the same on the CLI, in JSON and on the dashboard.
	var rep struct {
		Run struct {
			ID       string `json:"id"`
			Releases int    `json:"releases"`
		} `json:"run"`
		Targets []struct {
			Target string `json:"target"`
			Tested int    `json:"tested"`
		} `json:"targets"`
		Confirmed   int `json:"confirmed"`
		Disagreeing int `json:"disagreeing"`
	}
	if err := getJSON(a.url+"/corpus/report?run=latest", &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Run.Releases != len(crates) || rep.Confirmed != confirmed || rep.Disagreeing != 0 || len(rep.Targets) < 2 {
		t.Fatalf("corpus report: %+v (confirmed %d)", rep, confirmed)
	}
	out := a.mustCLI(t, "corpus", "report", "--crates")
	for _, want := range []string{rep.Run.ID, "wasm32-unknown-unknown", "BREAKING DEPENDENCY", "confirmed by 2 nodes", "wcr-fx-getrandom@0.1.0"} {
		if !strings.Contains(out, want) {
			t.Errorf("corpus report lacks %q:\n%s", want, out)
		}
	}
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"corpus", "runs"}, []string{rep.Run.ID, "rustc"}},
		{[]string{"corpus", "confirmations"}, []string{"confirmed by 2 nodes", "100.0%"}},
		{[]string{"corpus", "work", "wcr-fx-pure@0.1.0"}, []string{"reports needed", "(nobody)"}},
		{[]string{"corpus", "regressions", rep.Run.ID, rep.Run.ID}, []string{"0 regressed", "4 the same"}},
	} {
		out := a.mustCLI(t, c.args...)
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v lacks %q:\n%s", c.args, w, out)
			}
		}
	}
	if _, errOut, code := a.cli(t, "corpus", "regressions", rep.Run.ID); code == 0 || !strings.Contains(errOut, "two run IDs") {
		t.Errorf("regressions with one run: exit %d %q", code, errOut)
	}
	resp, err := http.Get(a.url + "/ui/corpus")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "confirmed by 2 nodes") || !strings.Contains(string(page), "</html>") {
		t.Fatalf("dashboard corpus page: %d\n%.2000s", resp.StatusCode, page)
	}
	t.Logf("corpus report:\n%s", out)
}
