package pipeline

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
)

func TestUIDPoolHandsOutDistinctUsers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "locks")
	u, err := newUIDPool(dir, 2_000_000_000, 3)
	if err != nil {
		t.Fatal(err)
	}
	a, relA, err := u.acquire()
	if err != nil {
		t.Fatal(err)
	}
	b, relB, err := u.acquire()
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatalf("two running jobs got the same user %d", a)
	}
	// A slot held by another process of the machine is skipped.
	holder := exec.Command("flock", "--exclusive", filepath.Join(dir, "2"), "sleep", "30")
	holder.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // flock and its sleep, which holds the lock too
	if err := holder.Start(); err != nil {
		t.Skipf("flock (util-linux) cannot run: %v", err)
	}
	kill := func() { syscall.Kill(-holder.Process.Pid, syscall.SIGKILL) }
	defer kill()
	deadline := time.Now().Add(10 * time.Second)
	for {
		f, err := os.OpenFile(filepath.Join(dir, "2"), os.O_RDWR, 0)
		if err == nil {
			locked := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil
			f.Close()
			if locked {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the other process never took its lock")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, _, err := u.acquire(); registry.KindOf(err) != registry.ETEMPORARY {
		t.Fatalf("with every slot held (two here, one by another process) acquire gave %v, want ETEMPORARY", err)
	}
	// A freed slot is handed out again; when the other process dies, so
	// is its slot.
	relA()
	if c, relC, err := u.acquire(); err != nil || c != a {
		t.Fatalf("after a release: %d, %v; want %d", c, err, a)
	} else {
		relC()
	}
	kill()
	holder.Wait()
	relB()
	seen := map[int]bool{}
	for range 3 {
		uid, _, err := u.acquire()
		if err != nil {
			t.Fatalf("a dead holder's slot stayed taken: %v", err)
		}
		seen[uid] = true
	}
	if len(seen) != 3 {
		t.Errorf("three acquisitions gave %v", seen)
	}
}

// TestUIDPoolRefusesALockDirectoryOthersControl: whoever could write the
// lock directory could hold every slot, or give a job's user to another.
func TestUIDPoolRefusesALockDirectoryOthersControl(t *testing.T) {
	base := t.TempDir()
	open := filepath.Join(base, "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(open, 0o777)
	link := filepath.Join(base, "link")
	private := filepath.Join(base, "private")
	os.Mkdir(private, 0o700)
	os.Symlink(private, link)
	for _, dir := range []string{open, link} {
		if _, err := newUIDPool(dir, 0, 0); registry.KindOf(err) != registry.EINVALID {
			t.Errorf("lock directory %s: %v, want EINVALID", dir, err)
		}
	}
	if _, err := newUIDPool(private, 1<<31-10, 20); registry.KindOf(err) != registry.EINVALID {
		t.Errorf("a range past the largest user ID: %v", err)
	}
}

// TestJobsRunAsTheirOwnUser: a job's sandbox runs its commands as the
// job's user, and hands it the directories it may write.
func TestJobsRunAsTheirOwnUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the sandbox changes user only when the pipeline runs as root")
	}
	p := testPipeline(t)
	uid, release, err := p.uids.acquire()
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	sb := p.sb.withUID(uid)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	work := filepath.Join(dir, "w")
	os.Mkdir(work, 0o700)
	if err := sb.prepareWritable(work); err != nil {
		t.Fatal(err)
	}
	var out limitedBuffer
	out.limit = 4096
	res, err := sb.run(context.Background(), runSpec{
		Args: []string{"/bin/sh", "-c", "grep '^Uid:' /proc/self/status; touch " + work + "/made"}, Dir: work, RW: []string{work},
		Timeout: 30 * time.Second, Stdout: &out, Stderr: &out,
	})
	if err != nil || !res.ok() {
		t.Fatalf("sandboxed command: %v %+v %s", err, res, out.String())
	}
	f := strings.Fields(out.String())
	if len(f) < 2 || f[1] != strconv.Itoa(uid) {
		t.Errorf("the job's command ran as %q, want uid %d", out.String(), uid)
	}
	fi, err := os.Stat(filepath.Join(work, "made"))
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != uid {
		t.Errorf("the job's file is owned by %d, want %d", st.Uid, uid)
	}
	if uid == sandboxUID || !isSandboxUID(strconv.Itoa(uid)) {
		t.Errorf("job user %d is outside the job range", uid)
	}
}
