package testkit

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

func TestMain(m *testing.M) {
	code := m.Run()
	RemoveBinaries()
	os.Exit(code)
}

// TestStartDaemonServesAndIsKilled: the daemon Binary builds starts, its
// REST API answers at the URL it printed, it wrote its admin token, and
// it is gone once the test that started it ends.
func TestStartDaemonServesAndIsKilled(t *testing.T) {
	bin := Binary(t, DaemonPkg)
	if again := Binary(t, DaemonPkg); again != bin {
		t.Fatalf("a second Binary call gave %s, not %s", again, bin)
	}
	var d *Daemon
	t.Run("run", func(t *testing.T) {
		d = StartDaemon(t, bin, filepath.Join(t.TempDir(), "data"), "--pipeline=false")
		res, err := http.Get(d.URL + "/health")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("/health: %s", res.Status)
		}
		if d.Token() == "" {
			t.Fatal("no admin token")
		}
	})
	if d == nil || d.Cmd.ProcessState == nil {
		t.Fatal("the daemon outlived the test that started it")
	}
}
