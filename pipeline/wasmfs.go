package pipeline

import (
	"io/fs"
	"path"
	"strings"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/sys"
)

// confinedFS is a wasm test's filesystem: a host directory that the guest
// cannot leave. wazero's host directory filesystem passes the guest's
// paths to the host as they are and lets the host follow symbolic links,
// so a guest could name "../.." or plant a link to "/" and open through
// it. Here every path is cleaned as if the directory were the root ("/.."
// is "/"), symbolic links cannot be created (EPERM), and the last
// component of an open is never followed. With no link inside, nothing
// resolves outside the directory. The directory starts empty, so there is
// nothing to find there either.
type confinedFS struct {
	experimentalsys.UnimplementedFS
	fs experimentalsys.FS
}

var _ experimentalsys.FS = (*confinedFS)(nil)

func newConfinedFS(dir string) *confinedFS {
	return &confinedFS{fs: sysfs.DirFS(dir)}
}

// clean maps a guest path to one inside the root, relative to it.
func confine(p string) (string, experimentalsys.Errno) {
	if strings.IndexByte(p, 0) >= 0 {
		return "", experimentalsys.EINVAL
	}
	c := path.Clean("/" + p)
	if c == "/" {
		return ".", 0
	}
	return c[1:], 0
}

func (c *confinedFS) OpenFile(p string, flag experimentalsys.Oflag, perm fs.FileMode) (experimentalsys.File, experimentalsys.Errno) {
	p, e := confine(p)
	if e != 0 {
		return nil, e
	}
	return c.fs.OpenFile(p, flag|experimentalsys.O_NOFOLLOW, perm)
}

func (c *confinedFS) Lstat(p string) (sys.Stat_t, experimentalsys.Errno) {
	p, e := confine(p)
	if e != 0 {
		return sys.Stat_t{}, e
	}
	return c.fs.Lstat(p)
}

func (c *confinedFS) Stat(p string) (sys.Stat_t, experimentalsys.Errno) {
	p, e := confine(p)
	if e != 0 {
		return sys.Stat_t{}, e
	}
	return c.fs.Stat(p)
}

func (c *confinedFS) Mkdir(p string, perm fs.FileMode) experimentalsys.Errno {
	p, e := confine(p)
	if e != 0 {
		return e
	}
	return c.fs.Mkdir(p, perm)
}

func (c *confinedFS) Chmod(p string, perm fs.FileMode) experimentalsys.Errno {
	p, e := confine(p)
	if e != 0 {
		return e
	}
	return c.fs.Chmod(p, perm)
}

func (c *confinedFS) Rename(from, to string) experimentalsys.Errno {
	from, e := confine(from)
	if e != 0 {
		return e
	}
	to, e = confine(to)
	if e != 0 {
		return e
	}
	return c.fs.Rename(from, to)
}

func (c *confinedFS) Rmdir(p string) experimentalsys.Errno {
	p, e := confine(p)
	if e != 0 {
		return e
	}
	return c.fs.Rmdir(p)
}

func (c *confinedFS) Unlink(p string) experimentalsys.Errno {
	p, e := confine(p)
	if e != 0 {
		return e
	}
	return c.fs.Unlink(p)
}

func (c *confinedFS) Link(oldPath, newPath string) experimentalsys.Errno {
	oldPath, e := confine(oldPath)
	if e != 0 {
		return e
	}
	newPath, e = confine(newPath)
	if e != 0 {
		return e
	}
	return c.fs.Link(oldPath, newPath)
}

// Symlink is refused: a link is the one thing whose target the host
// resolves outside the guest's root.
func (c *confinedFS) Symlink(string, string) experimentalsys.Errno {
	return experimentalsys.EPERM
}

func (c *confinedFS) Readlink(p string) (string, experimentalsys.Errno) {
	p, e := confine(p)
	if e != 0 {
		return "", e
	}
	return c.fs.Readlink(p)
}

func (c *confinedFS) Utimens(p string, atim, mtim int64) experimentalsys.Errno {
	p, e := confine(p)
	if e != 0 {
		return e
	}
	return c.fs.Utimens(p, atim, mtim)
}
