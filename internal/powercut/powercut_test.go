package powercut

import (
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
)

func write(t *testing.T, path, data string, sync bool) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(data); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func syncDir(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	got := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if e.IsDir() {
			got[rel+"/"] = ""
			return nil
		}
		b, err := os.ReadFile(p)
		got[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func keys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// TestPowerCutKeepsOnlyWhatWasSynced checks the file system's model: after
// a cut, file contents are those of their last sync, and directory entries
// those of their directory's last sync.
func TestPowerCutKeepsOnlyWhatWasSynced(t *testing.T) {
	base := t.TempDir()
	live := filepath.Join(base, "live")
	if err := os.MkdirAll(live, 0o755); err != nil {
		t.Fatal(err)
	}
	// Already there at mount time: durable.
	if err := os.WriteFile(filepath.Join(live, "old"), []byte("old contents"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(live, "gone"), []byte("removed without a directory sync"), 0o644); err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(base, "mnt")
	d := MountT(t, mnt, live, Options{})
	p := func(name string) string { return filepath.Join(mnt, name) }

	write(t, p("synced"), "synced data", true)            // data and entry synced below
	write(t, p("entry-only"), "never synced data", false) // entry synced below, data never
	if err := os.Mkdir(p("sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, p("rewritten"), "first", true)
	write(t, p("renamed-before"), "moved", true)
	syncDir(t, mnt)

	// After the directory sync: nothing below reaches the disk except the
	// synced data of "rewritten" and "appended".
	write(t, p("rewritten"), "second, longer, unsynced", false)
	write(t, p("unsynced-entry"), "data synced, entry not", true)
	write(t, p("sub/inner"), "inner data synced, sub not", true)
	if err := os.Rename(p("renamed-before"), p("renamed-after")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p("gone")); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p("old"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(" and an unsynced tail")
	f.Close()
	f, err = os.OpenFile(p("synced"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("SYNCED"), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil { // a synced overwrite in place: kept
		t.Fatal(err)
	}
	if err := f.Truncate(3); err != nil { // an unsynced truncation: lost
		t.Fatal(err)
	}
	f.Close()

	// Live, everything is there.
	if got := tree(t, mnt)["rewritten"]; got != "second, longer, unsynced" {
		t.Fatalf("live contents of rewritten: %q", got)
	}
	syncs := d.Syncs()
	d.Cut()
	if err := os.WriteFile(p("after-cut"), []byte("x"), 0o644); err == nil {
		t.Error("a write after the cut succeeded")
	}
	f, err = os.OpenFile(p("synced"), os.O_WRONLY, 0)
	if err == nil {
		f.WriteAt([]byte("after"), 0)
		if err := f.Sync(); err == nil {
			t.Error("a sync after the cut succeeded")
		}
		f.Close()
	}
	if d.Syncs() != syncs {
		t.Errorf("syncs after the cut made data durable: %d, then %d", syncs, d.Syncs())
	}
	if err := d.Unmount(); err != nil {
		t.Fatal(err)
	}
	after := filepath.Join(base, "after")
	if err := d.Restore(after); err != nil {
		t.Fatal(err)
	}
	got := tree(t, after)
	want := map[string]string{
		"old":            "old contents",
		"gone":           "removed without a directory sync",
		"synced":         "SYNCED data",
		"entry-only":     "",
		"sub/":           "",
		"rewritten":      "first",
		"renamed-before": "moved",
	}
	if !slices.Equal(keys(got), keys(want)) {
		t.Fatalf("after the cut the tree holds %q, want %q", keys(got), keys(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("after the cut %s holds %q, want %q", k, got[k], v)
		}
	}

	// The restored tree mounts again, and its data is durable from the start.
	mnt2 := filepath.Join(base, "mnt2")
	d2 := MountT(t, mnt2, after, Options{})
	if got := tree(t, mnt2); got["synced"] != "SYNCED data" || got["rewritten"] != "first" {
		t.Errorf("remounted tree: %q", got)
	}
	d2.Cut()
}

// TestSyncedSubdirectoryNeedsItsParent checks that a directory's entries
// become durable with its own sync, and the directory itself with its
// parent's.
func TestSyncedSubdirectoryNeedsItsParent(t *testing.T) {
	base := t.TempDir()
	mnt := filepath.Join(base, "mnt")
	d := MountT(t, mnt, filepath.Join(base, "live"), Options{})
	if err := os.Mkdir(filepath.Join(mnt, "a"), 0o755); err != nil {
		t.Fatal(err)
	}
	syncDir(t, mnt)
	write(t, filepath.Join(mnt, "a", "f"), "f", true)
	syncDir(t, filepath.Join(mnt, "a"))
	if err := os.Mkdir(filepath.Join(mnt, "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(mnt, "b", "g"), "g", true)
	syncDir(t, filepath.Join(mnt, "b")) // b's entries, but b itself is not in the root yet
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(mnt, "b", "g"), &st); err != nil {
		t.Fatal(err)
	}
	d.Cut()
	if err := d.Unmount(); err != nil {
		t.Fatal(err)
	}
	after := filepath.Join(base, "after")
	if err := d.Restore(after); err != nil {
		t.Fatal(err)
	}
	got := tree(t, after)
	if want := []string{"a/", "a/f"}; !slices.Equal(keys(got), want) || got["a/f"] != "f" {
		t.Errorf("after the cut: %q, want %q with a/f = \"f\"", got, want)
	}
}

// TestJournaledMetadata checks the ext4-like model: a file's sync makes
// the entries created before it durable, without a directory sync; data
// still needs its own sync.
func TestJournaledMetadata(t *testing.T) {
	base := t.TempDir()
	mnt := filepath.Join(base, "mnt")
	d := MountT(t, mnt, filepath.Join(base, "live"), Options{JournaledMetadata: true})
	if err := os.MkdirAll(filepath.Join(mnt, "data", "deep"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(mnt, "data", "deep", "unsynced"), "lost", false)
	write(t, filepath.Join(mnt, "data", "synced"), "kept", true)
	write(t, filepath.Join(mnt, "data", "later"), "created after the last sync", false)
	d.Cut()
	if err := d.Unmount(); err != nil {
		t.Fatal(err)
	}
	after := filepath.Join(base, "after")
	if err := d.Restore(after); err != nil {
		t.Fatal(err)
	}
	got := tree(t, after)
	want := map[string]string{"data/": "", "data/deep/": "", "data/deep/unsynced": "", "data/synced": "kept"}
	if !slices.Equal(keys(got), keys(want)) {
		t.Fatalf("after the cut: %q, want %q", keys(got), keys(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("after the cut %s holds %q, want %q", k, got[k], v)
		}
	}
}

// TestRenameOverAndTruncation: a rename over an existing file is durable
// with its directory's sync and not before (Badger rewrites its MANIFEST
// so); a synced truncation followed by a write past the end leaves zeros,
// not the old bytes, in between.
func TestRenameOverAndTruncation(t *testing.T) {
	for _, dirSynced := range []bool{false, true} {
		base := t.TempDir()
		mnt := filepath.Join(base, "mnt")
		d := MountT(t, mnt, filepath.Join(base, "live"), Options{})
		p := func(name string) string { return filepath.Join(mnt, name) }
		write(t, p("MANIFEST"), "old manifest", true)
		write(t, p("shrunk"), "long contents", true)
		syncDir(t, mnt)

		write(t, p("MANIFEST-REWRITE"), "new manifest", true)
		if err := os.Rename(p("MANIFEST-REWRITE"), p("MANIFEST")); err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(p("shrunk"), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(4); err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte("XY"), 10); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if dirSynced {
			syncDir(t, mnt)
		}
		d.Cut()
		if err := d.Unmount(); err != nil {
			t.Fatal(err)
		}
		after := filepath.Join(base, "after")
		if err := d.Restore(after); err != nil {
			t.Fatal(err)
		}
		got := tree(t, after)
		want := map[string]string{"MANIFEST": "old manifest", "shrunk": "long\x00\x00\x00\x00\x00\x00XY"}
		if dirSynced {
			want["MANIFEST"] = "new manifest"
		}
		if !slices.Equal(keys(got), keys(want)) {
			t.Fatalf("directory synced %v: after the cut %q, want %q", dirSynced, keys(got), keys(want))
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("directory synced %v: after the cut %s holds %q, want %q", dirSynced, k, got[k], v)
			}
		}
	}
}
