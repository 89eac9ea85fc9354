package pipeline

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// Each job's untrusted code runs as a user of its own. The kernel counts
// the process limit (RLIMIT_NPROC: processes and threads) per user, so jobs
// that shared one user would share one budget: a crate whose tests start
// many threads, or simply another job at the same time — of this node or
// of another node on the machine — could make a third job's fork or thread
// spawn fail, and its tests would be blamed for it. With a user per job, a
// job's limit is its own.
//
// The users are numeric IDs from a reserved range with no /etc/passwd
// entry; a slot of the range is taken with an exclusive flock on a file in
// a lock directory shared by every process of the machine, so two nodes on
// one machine never hand out the same user, and a slot whose holder died
// is free again (the kernel drops the lock with the process).
const (
	// DefaultUIDBase is the first user ID of the sandbox range: far above
	// the ranges Debian gives to people (1000–59999), to system users and
	// to subordinate IDs of containers (100000 upwards, 65536 each).
	DefaultUIDBase = 1_900_000_000
	// DefaultUIDCount is the size of the range: the most jobs that run at
	// once on the machine.
	DefaultUIDCount = 256
	// DefaultUIDLockDir holds one lock file per slot.
	DefaultUIDLockDir = "/run/lock/wcr-sandbox-uids"
)

// uidPool hands out the sandbox users.
type uidPool struct {
	dir         string
	base, count int
}

// newUIDPool checks the lock directory: it is created 0700 and must be a
// directory owned by this user, closed to others, since whoever could
// write there could hold every slot or share one with a job.
func newUIDPool(dir string, base, count int) (*uidPool, error) {
	const op = "pipeline.uids"
	if dir == "" {
		dir = DefaultUIDLockDir
	}
	if base <= 0 {
		base = DefaultUIDBase
	}
	if count <= 0 {
		count = DefaultUIDCount
	}
	if base+count > 1<<31 {
		return nil, registry.Errorf(op, registry.EINVALID, "sandbox user IDs %d to %d leave the range of user IDs", base, base+count-1)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, registry.E(op, registry.EINVALID, "cannot create the sandbox users' lock directory "+dir, err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return nil, registry.E(op, registry.EINVALID, "cannot use the sandbox users' lock directory "+dir, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != os.Geteuid() || fi.Mode().Perm()&0o077 != 0 {
		return nil, registry.Errorf(op, registry.EINVALID, "the sandbox users' lock directory %s must be a directory owned by this user with mode 0700", dir)
	}
	return &uidPool{dir: dir, base: base, count: count}, nil
}

// acquire takes a free slot and returns its user ID and the function that
// frees it. With every slot taken it fails with ETEMPORARY: the job waits
// and runs again, and is not blamed.
func (u *uidPool) acquire() (int, func(), error) {
	const op = "pipeline.uids"
	for i := range u.count {
		f, err := os.OpenFile(filepath.Join(u.dir, strconv.Itoa(i)), os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
		if err != nil {
			return 0, nil, registry.E(op, registry.EINTERNAL, "cannot open a sandbox user's lock", err)
		}
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return u.base + i, func() { f.Close() }, nil
		}
		f.Close()
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return 0, nil, registry.E(op, registry.EINTERNAL, "cannot lock a sandbox user", err)
		}
	}
	return 0, nil, registry.Errorf(op, registry.ETEMPORARY, "all %d sandbox users (%d–%d) are in use by running jobs on this machine", u.count, u.base, u.base+u.count-1)
}
