package main

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// TestReindexVerifiesAndCLIReports: with the real binaries, a bit flipped
// on disk in one stored record while the daemon is stopped is found by the
// next start with --reindex, reported by `verify --last` as exactly that
// record and quarantined, so a fresh `verify` finds nothing; bad quota
// flags are refused with an explanation.
func TestReindexVerifiesAndCLIReports(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	d := startDaemon(t, dataDir, "--pipeline=false", "--p2p=false")
	fixture := filepath.Join(repoRoot(t), "testdata", "crates", "wcr-fixture-add", "Cargo.toml")
	d.mustCLI(t, "submit", "--manifest", fixture)
	var rel releaseJSON
	d.cliJSON(t, &rel, "show", "wcr-fixture-add@0.1.0")
	id := mustID(t, rel.ID)
	var clean struct {
		Records int64 `json:"records_checked"`
		Damaged []any `json:"damaged"`
	}
	d.cliJSON(t, &clean, "verify")
	if clean.Records == 0 || len(clean.Damaged) != 0 {
		t.Fatalf("verify of an intact store: %+v", clean)
	}
	d.stop()

	bdb, err := badger.Open(badger.DefaultOptions(dataDir).WithLogger(nil).WithSyncWrites(true))
	if err != nil {
		t.Fatal(err)
	}
	k := append([]byte{'r'}, id[:]...)
	err = bdb.Update(func(txn *badger.Txn) error {
		it, err := txn.Get(k)
		if err != nil {
			return err
		}
		v, err := it.ValueCopy(nil)
		if err != nil {
			return err
		}
		v[len(v)/3] ^= 0x01
		return txn.Set(k, v)
	})
	if cerr := bdb.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}

	d = startDaemon(t, dataDir, "--pipeline=false", "--p2p=false", "--reindex")
	var last struct {
		Trigger string `json:"trigger"`
		Damaged []struct {
			Kind string `json:"kind"`
			ID   string `json:"id"`
		} `json:"damaged"`
	}
	out, errOut, code := d.cli(t, "--json", "verify", "--last")
	if code == 0 {
		t.Errorf("verify --last --json with damage exited 0\n%s", errOut)
	}
	if err := json.Unmarshal([]byte(out), &last); err != nil {
		t.Fatalf("verify --last --json: %v\n%s", err, out)
	}
	if last.Trigger != "reindex" || len(last.Damaged) != 1 || last.Damaged[0].Kind != "record" || last.Damaged[0].ID != id.String() {
		t.Fatalf("verify --last after --reindex: %+v, want exactly record %s", last, id)
	}
	if !strings.Contains(d.logs.String(), "damaged") {
		t.Errorf("the daemon did not log the damage:\n%s", d.logs)
	}
	if out, errOut, code := d.cli(t, "verify", "--last"); code == 0 || !strings.Contains(out, id.String()) || !strings.Contains(errOut, "quarantined") {
		t.Fatalf("verify --last with damage: exit %d\n%s\n%s", code, out, errOut)
	}
	d.cliJSON(t, &clean, "verify")
	if len(clean.Damaged) != 0 {
		t.Fatalf("verify after the quarantine: %+v", clean)
	}
	d.stop()

	for _, bad := range []string{"10", "x,1MiB", "10,lots", "-1,1MiB", "10,0"} {
		cmd := exec.Command(daemonBin(t), "--database-url", t.TempDir(), "--port", "0", "--quota-author", bad)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "--quota-author") {
			t.Errorf("--quota-author %q: %v %q", bad, err, out)
		}
	}
}
