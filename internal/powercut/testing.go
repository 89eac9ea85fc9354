package powercut

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// MountT mounts a power-cut file system for a test: its backing directory
// is live (created if missing) and its mount point is mnt; it is unmounted
// when the test ends. Where the machine cannot mount FUSE (no /dev/fuse,
// or mounting is not permitted) the test is skipped with the
// "capability fuse:" marker, which fails `make test` unless allowed.
func MountT(t testing.TB, mnt, live string, opts Options) *Disk {
	t.Helper()
	const how = "load the fuse module (modprobe fuse) and run the tests as root, or in a container with --device /dev/fuse --cap-add SYS_ADMIN"
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("SKIPPING: capability fuse: the power-cut test mounts a FUSE file system and /dev/fuse is missing (%v); %s", err, how)
	}
	d, err := Mount(mnt, live, t.TempDir(), opts)
	if err != nil {
		t.Skipf("SKIPPING: capability fuse: the power-cut test cannot mount a FUSE file system at %s: %v; %s", filepath.Base(mnt), err, how)
	}
	t.Cleanup(func() {
		if d.mounted() {
			d.Cut()
			if err := d.Unmount(); err != nil {
				// Still in use (a failed test left a file open): abort
				// the connection, or the process could not exit.
				t.Errorf("unmounting %s: %v", mnt, err)
				if err := syscall.Unmount(mnt, syscall.MNT_FORCE|syscall.MNT_DETACH); err != nil {
					t.Errorf("forced unmount of %s: %v", mnt, err)
				}
			}
		}
	})
	return d
}
