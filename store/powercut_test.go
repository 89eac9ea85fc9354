package store

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/internal/powercut"
)

// powerCutAcks is how many acknowledged writes a power-cut run waits for
// at least before it cuts the power at a random instant.
const powerCutAcks = 1000

// TestPowerCutLosesNothingAcknowledged keeps the store's data directory on
// a file system that drops everything not synced when the power is cut
// (internal/powercut). A child process writes records and blobs and
// acknowledges each once the store returned; after at least 1,000
// acknowledgements the power is cut at a random instant and the child
// killed. The disk's synced state is then mounted again, and a second
// child opens the store and must find every acknowledged write and no
// damage. A process crash alone cannot show a missing sync (the page cache
// survives it); this can.
func TestPowerCutLosesNothingAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the power-cut run writes over a thousand synced transactions")
	}
	base := t.TempDir()
	mnt := filepath.Join(base, "mnt")
	// Journaled metadata, as on ext4 or XFS: Badger syncs a new value log
	// file but not the directory that names it (see docs/TESTING.md).
	disk := powercut.MountT(t, mnt, filepath.Join(base, "live"), powercut.Options{JournaledMetadata: true})

	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("WCR_POWERCUT_SEED"); s != "" { // replay a logged run
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("WCR_POWERCUT_SEED=%q: %v", s, err)
		}
		seed = n
	}
	rng := rand.New(rand.NewPCG(seed, seed>>7))
	cutAfter := powerCutAcks + rng.IntN(500)
	cutDelay := time.Duration(rng.IntN(3000)) * time.Microsecond
	t.Logf("seed %d: the power goes off %v after acknowledgement %d", seed, cutDelay, cutAfter)

	child := exec.Command(os.Args[0], "-test.run=^TestPowerCutChild$", "-test.v")
	child.Env = append(os.Environ(), "WCR_POWERCUT_ROLE=write", "WCR_POWERCUT_DIR="+filepath.Join(mnt, "data"))
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	child.Stderr = &stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Process.Kill()

	var (
		acks    []string
		other   strings.Builder
		mu      sync.Mutex
		reached = make(chan struct{})
		done    = make(chan struct{})
	)
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			ack, ok := strings.CutPrefix(line, "ACK ")
			mu.Lock()
			if ok {
				acks = append(acks, ack)
				if len(acks) == cutAfter {
					close(reached)
				}
			} else {
				fmt.Fprintln(&other, line)
			}
			mu.Unlock()
		}
	}()
	select {
	case <-reached:
	case <-done:
		t.Fatalf("the writer ended before %d acknowledgements:\n%s%s", cutAfter, other.String(), stderr.String())
	case <-time.After(10 * time.Minute):
		t.Fatalf("no %d acknowledgements within 10 minutes", cutAfter)
	}
	time.Sleep(cutDelay)
	disk.Cut()
	child.Process.Kill()
	<-done // acknowledgements written before the kill count too
	child.Wait()
	mu.Lock()
	acked := append([]string(nil), acks...)
	mu.Unlock()
	syncs := disk.Syncs()
	if err := disk.Unmount(); err != nil {
		t.Fatal(err)
	}
	after := filepath.Join(base, "after")
	if err := disk.Restore(after); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d writes acknowledged, %d syncs reached the disk before the cut", len(acked), syncs)

	mnt2 := filepath.Join(base, "mnt2")
	powercut.MountT(t, mnt2, after, powercut.Options{JournaledMetadata: true})
	list := filepath.Join(base, "acked")
	if err := os.WriteFile(list, []byte(strings.Join(acked, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	check := exec.Command(os.Args[0], "-test.run=^TestPowerCutChild$", "-test.v")
	check.Env = append(os.Environ(), "WCR_POWERCUT_ROLE=check", "WCR_POWERCUT_DIR="+filepath.Join(mnt2, "data"), "WCR_POWERCUT_ACKED="+list)
	out, err := check.CombinedOutput()
	if err != nil {
		t.Fatalf("after the power cut the store lost acknowledged writes or does not open clean: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), fmt.Sprintf("all %d acknowledged writes are there", len(acked))) {
		t.Fatalf("the check did not confirm the writes:\n%s", out)
	}
}

// TestPowerCutChild is the child half of TestPowerCutLosesNothingAcknowledged;
// run by itself it does nothing.
func TestPowerCutChild(t *testing.T) {
	dir := os.Getenv("WCR_POWERCUT_DIR")
	switch os.Getenv("WCR_POWERCUT_ROLE") {
	case "write":
		powerCutWriter(t, dir)
	case "check":
		powerCutCheck(t, dir, os.Getenv("WCR_POWERCUT_ACKED"))
	}
}

// powerCutWriter writes until it is killed: a blob and a release record
// about it per round, printing "ACK rec|blob ID" once the store returned.
func powerCutWriter(t *testing.T, dir string) {
	db, err := Open(dir, Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.SetAuthority(registry.TrustEveryone()); err != nil {
		t.Fatal(err)
	}
	k := key(t, 7)
	for i := 0; ; i++ {
		size := 200 + i%700
		if i%97 == 0 {
			size = 3 << 20 // beyond Badger's value threshold: the value log
		}
		blob := make([]byte, size)
		for j := range blob {
			blob[j] = byte(i*31 + j*7)
		}
		copy(blob, fmt.Sprintf("blob %d", i))
		id, err := db.PutBlob(blob)
		if err != nil {
			t.Fatalf("blob %d: %v", i, err)
		}
		fmt.Fprintf(os.Stdout, "ACK blob %s\n", id)
		r := release(t, k, fmt.Sprintf("powercut-%d", i), "1.0.0", t0.Add(time.Duration(i)*time.Second), blob)
		if _, err := db.PutRecords([]*registry.Record{r}); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		fmt.Fprintf(os.Stdout, "ACK rec %s\n", r.ID())
	}
}

// powerCutCheck opens the store and checks every acknowledged write and
// the store's integrity.
func powerCutCheck(t *testing.T, dir, list string) {
	b, err := os.ReadFile(list)
	if err != nil {
		t.Fatal(err)
	}
	db, err := Open(dir, Options{GCInterval: -1})
	if err != nil {
		t.Fatalf("the store does not open after the power cut: %v", err)
	}
	defer db.Close()
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	missing := 0
	for _, l := range lines {
		kind, s, _ := strings.Cut(l, " ")
		id, err := registry.ParseID(s)
		if err != nil {
			t.Fatalf("acknowledgement %q: %v", l, err)
		}
		switch kind {
		case "blob":
			if _, err := db.GetBlob(id); err != nil {
				missing++
				t.Errorf("acknowledged blob %s: %v", id, err)
			}
		case "rec":
			if _, err := db.GetRecord(id); err != nil {
				missing++
				t.Errorf("acknowledged record %s: %v", id, err)
			}
			if _, err := db.LogIndex(id); err != nil {
				t.Errorf("acknowledged record %s is not in the transparency log: %v", id, err)
			}
		default:
			t.Fatalf("acknowledgement %q", l)
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged writes are missing after the power cut", missing, len(lines))
	}
	rep, err := db.Scrub(context.Background(), ScrubOptions{})
	if err != nil || !rep.Complete || len(rep.Damaged) > 0 {
		t.Fatalf("scrub after the power cut: %v, complete %v, damaged %v", err, rep.Complete, rep.Damaged)
	}
	if t.Failed() {
		return
	}
	fmt.Printf("all %d acknowledged writes are there; scrub checked %d records and %d blobs\n", len(lines), rep.Records, rep.Blobs)
}
