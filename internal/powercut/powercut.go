// Package powercut is a FUSE file system for tests that simulates losing
// power: it passes every operation through to a backing directory, keeps
// apart what has been made durable by a sync, and on Cut stops making
// anything durable, so that Restore can write out exactly what a disk
// would hold after the power came back.
//
// The durability model is the strict POSIX one, without the extra
// guarantees some Linux file systems give:
//   - a file's contents and size become durable only when the file is
//     synced (fsync, fdatasync, or msync(MS_SYNC) of a shared mapping, which
//     the kernel turns into writes and an fsync of the file);
//   - a directory's entries (files created, renamed in or out, removed)
//     become durable only when the directory itself is synced; a file whose
//     entry is durable but whose data never was comes back empty.
//
// With Options.JournaledMetadata any sync (of a file or a directory) also
// makes every earlier change to directory entries durable, as the journal of ext4 (data=ordered)
// or XFS does: a sync commits the journal, which holds all metadata changes
// made before it. Strict POSIX does not promise that.
//
// Regular files and directories are modelled; hard links, symlinks and
// special files are not (Restore refuses them). The package is for tests
// only: mounting needs /dev/fuse and root (or fusermount).
package powercut

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// entry is one durable directory entry.
type entry struct {
	key uint64 // the durable identity of the file or directory it names
	dir bool
}

// span is a byte range [off, end) written since the last sync.
type span struct{ off, end int64 }

// pending is what was written to a file since its last sync.
type pending struct {
	spans []span
	// minSize is the smallest size the file had since its last sync
	// (truncations); -1 when it was not truncated.
	minSize int64
}

// Disk is the state of a mounted power-cut file system. Its methods are
// safe for concurrent use.
type Disk struct {
	live    string // the backing directory: the current contents
	durable string // durable file contents, one file per key
	opts    Options
	server  *fuse.Server

	// mu serialises writes, syncs and Cut, so a sync is either wholly
	// before a cut or fails.
	mu        sync.Mutex
	cut       bool
	unmounted bool
	next      uint64
	byIno     map[uint64]uint64 // backing inode → key, for directory syncs
	dirty     map[uint64]*pending
	dirs      map[uint64]map[string]entry // durable directory entries by the directory's key
	rootKey   uint64
	syncs     int
}

// Options choose the durability model.
type Options struct {
	// JournaledMetadata: any sync also makes all earlier directory
	// changes durable (ext4, XFS); false is strict POSIX, where only a
	// directory's own sync does.
	JournaledMetadata bool
}

// Mount mounts a power-cut file system at mnt whose current contents live
// in the directory live (created if missing). Everything already in live
// is durable from the start. scratch is a directory Disk may use for its
// durable copy; it must not be inside live or mnt.
func Mount(mnt, live, scratch string, opts Options) (*Disk, error) {
	for _, d := range []string{mnt, live, scratch} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	durable, err := os.MkdirTemp(scratch, "durable-")
	if err != nil {
		return nil, err
	}
	d := &Disk{live: live, durable: durable, opts: opts,
		byIno: map[uint64]uint64{}, dirty: map[uint64]*pending{}, dirs: map[uint64]map[string]entry{}}
	if d.rootKey, err = d.scan(live); err != nil {
		return nil, fmt.Errorf("powercut: reading %s: %w", live, err)
	}

	var st syscall.Stat_t
	if err := syscall.Stat(live, &st); err != nil {
		return nil, err
	}
	lr := &fs.LoopbackRoot{Path: live, Dev: uint64(st.Dev)}
	lr.NewNode = func(r *fs.LoopbackRoot, _ *fs.Inode, _ string, st *syscall.Stat_t) fs.InodeEmbedder {
		return &node{LoopbackNode: fs.LoopbackNode{RootData: r}, d: d, key: d.keyFor(st.Ino)}
	}
	root := &node{LoopbackNode: fs.LoopbackNode{RootData: lr}, d: d, key: d.rootKey}
	lr.RootNode = root
	srv, err := fs.Mount(mnt, root, &fs.Options{MountOptions: fuse.MountOptions{
		DirectMountStrict: true, // as root, mount(2) itself: no fusermount needed
		FsName:            "powercut",
		Name:              "powercut",
	}})
	if err != nil {
		return nil, fmt.Errorf("powercut: mounting at %s: %w", mnt, err)
	}
	d.server = srv
	return d, nil
}

// scan records the tree under dir as durable: its entries, and a copy of
// every file's contents.
func (d *Disk) scan(dir string) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Lstat(dir, &st); err != nil {
		return 0, err
	}
	key := d.fresh(st.Ino)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	m := map[string]entry{}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		switch {
		case e.IsDir():
			k, err := d.scan(p)
			if err != nil {
				return 0, err
			}
			m[e.Name()] = entry{key: k, dir: true}
		case e.Type().IsRegular():
			if err := syscall.Lstat(p, &st); err != nil {
				return 0, err
			}
			k := d.fresh(st.Ino)
			if err := copyFile(p, d.contents(k)); err != nil {
				return 0, err
			}
			m[e.Name()] = entry{key: k}
		default:
			return 0, fmt.Errorf("%s: only regular files and directories are modelled", p)
		}
	}
	d.dirs[key] = m
	return key, nil
}

// Unmount unmounts the file system. Call Cut first to simulate a power
// cut; without it, Unmount is a clean shutdown only for what was synced.
func (d *Disk) Unmount() error {
	d.mu.Lock()
	d.unmounted = true
	d.mu.Unlock()
	return d.server.Unmount()
}

func (d *Disk) mounted() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return !d.unmounted
}

// Cut cuts the power: from now on nothing becomes durable, and writes and
// syncs fail with EIO. A sync that returned before Cut is durable.
func (d *Disk) Cut() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cut = true
}

// Syncs returns how many file and directory syncs made data durable.
func (d *Disk) Syncs() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.syncs
}

// Restore writes the durable state into dir, which must be empty or
// missing: what a disk would hold after a power cut at the moment of Cut
// (or now, without Cut).
func (d *Disk) Restore(dir string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if ents, err := os.ReadDir(dir); err != nil || len(ents) > 0 {
		return fmt.Errorf("powercut: restoring into %s: it must be an empty directory (%v)", dir, err)
	}
	return d.restore(dir, d.rootKey, map[uint64]bool{})
}

func (d *Disk) restore(dir string, key uint64, seen map[uint64]bool) error {
	for name, e := range d.dirs[key] {
		if seen[e.key] {
			return fmt.Errorf("powercut: %s: hard links are not modelled", filepath.Join(dir, name))
		}
		seen[e.key] = true
		p := filepath.Join(dir, name)
		if e.dir {
			if err := os.Mkdir(p, 0o755); err != nil {
				return err
			}
			if err := d.restore(p, e.key, seen); err != nil {
				return err
			}
			continue
		}
		if err := copyFile(d.contents(e.key), p); err != nil {
			return err
		}
	}
	return nil
}

// contents is the path of the durable contents of key.
func (d *Disk) contents(key uint64) string {
	return filepath.Join(d.durable, strconv.FormatUint(key, 10))
}

// fresh gives the backing inode ino a new durable identity: a new file.
func (d *Disk) fresh(ino uint64) uint64 {
	d.next++
	d.byIno[ino] = d.next
	return d.next
}

// keyFor is the durable identity of the backing inode ino.
func (d *Disk) keyFor(ino uint64) uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	if k, ok := d.byIno[ino]; ok {
		return k
	}
	return d.fresh(ino)
}

func (d *Disk) pendingFor(key uint64) *pending {
	p := d.dirty[key]
	if p == nil {
		p = &pending{minSize: -1}
		d.dirty[key] = p
	}
	return p
}

// truncated notes that the file key may have been cut to size.
func (d *Disk) truncated(key uint64, size int64) {
	p := d.pendingFor(key)
	if p.minSize < 0 || size < p.minSize {
		p.minSize = size
	}
}

// syncFile makes the current contents of the open backing file fd durable
// as key.
func (d *Disk) syncFile(key uint64, wfd int) syscall.Errno {
	// The handle may be write-only: read through a second, read-only
	// descriptor of the same (possibly already unlinked) file.
	fd, err := syscall.Open("/proc/self/fd/"+strconv.Itoa(wfd), syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return fs.ToErrno(err)
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return fs.ToErrno(err)
	}
	out, err := os.OpenFile(d.contents(key), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fs.ToErrno(err)
	}
	defer out.Close()
	p := d.pendingFor(key)
	if p.minSize >= 0 {
		if err := out.Truncate(p.minSize); err != nil {
			return fs.ToErrno(err)
		}
	}
	sort.Slice(p.spans, func(i, j int) bool { return p.spans[i].off < p.spans[j].off })
	buf := make([]byte, 1<<16)
	for _, s := range merge(p.spans) {
		if s.end > st.Size {
			s.end = st.Size
		}
		for off := s.off; off < s.end; {
			n := min(int64(len(buf)), s.end-off)
			got, err := syscall.Pread(fd, buf[:n], off)
			if err != nil {
				return fs.ToErrno(err)
			}
			if got == 0 {
				break
			}
			if _, err := out.WriteAt(buf[:got], off); err != nil {
				return fs.ToErrno(err)
			}
			off += int64(got)
		}
	}
	if err := out.Truncate(st.Size); err != nil {
		return fs.ToErrno(err)
	}
	delete(d.dirty, key)
	d.syncs++
	if d.opts.JournaledMetadata {
		return d.syncTree(d.rootKey, d.live)
	}
	return 0
}

// syncTree makes the entries of every directory under path durable.
func (d *Disk) syncTree(key uint64, path string) syscall.Errno {
	if errno := d.syncDir(key, path); errno != 0 {
		return errno
	}
	for name, e := range d.dirs[key] {
		if e.dir {
			if errno := d.syncTree(e.key, filepath.Join(path, name)); errno != 0 {
				return errno
			}
		}
	}
	return 0
}

// merge joins sorted, overlapping or touching spans.
func merge(spans []span) []span {
	var out []span
	for _, s := range spans {
		if n := len(out); n > 0 && s.off <= out[n-1].end {
			out[n-1].end = max(out[n-1].end, s.end)
			continue
		}
		out = append(out, s)
	}
	return out
}

// syncDir makes the current entries of the backing directory path durable
// as the entries of key.
func (d *Disk) syncDir(key uint64, path string) syscall.Errno {
	ents, err := os.ReadDir(path)
	if err != nil {
		return fs.ToErrno(err)
	}
	m := map[string]entry{}
	for _, e := range ents {
		var st syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(path, e.Name()), &st); err != nil {
			return fs.ToErrno(err)
		}
		k, ok := d.byIno[st.Ino]
		if !ok {
			k = d.fresh(st.Ino)
		}
		m[e.Name()] = entry{key: k, dir: e.IsDir()}
		if e.IsDir() && d.dirs[k] == nil {
			d.dirs[k] = map[string]entry{} // a new directory's own entries are not durable yet
		}
	}
	d.dirs[key] = m
	return 0
}

// node is a loopback node whose syncs and writes the Disk follows.
type node struct {
	fs.LoopbackNode
	d   *Disk
	key uint64
}

var (
	_ fs.NodeCreater        = (*node)(nil)
	_ fs.NodeOpener         = (*node)(nil)
	_ fs.NodeMkdirer        = (*node)(nil)
	_ fs.NodeMknoder        = (*node)(nil)
	_ fs.NodeSetattrer      = (*node)(nil)
	_ fs.NodeOpendirHandler = (*node)(nil)
	_ fs.NodeFsyncer        = (*node)(nil)
)

func (n *node) livePath() string {
	return filepath.Join(n.RootData.Path, n.Path(n.Root()))
}

// renew gives a newly created child a new durable identity, even if the
// backing file system reused an inode number.
func (n *node) renew(ch *fs.Inode, ino uint64) {
	if c, ok := ch.Operations().(*node); ok {
		n.d.mu.Lock()
		c.key = n.d.fresh(ino)
		n.d.mu.Unlock()
	}
}

func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	ch, fh, ff, errno := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	if errno != 0 {
		return ch, fh, ff, errno
	}
	n.renew(ch, out.Ino)
	c := ch.Operations().(*node)
	return ch, &file{LoopbackFile: fh.(*fs.LoopbackFile), n: c}, ff, 0
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	ch, errno := n.LoopbackNode.Mkdir(ctx, name, mode, out)
	if errno == 0 {
		n.renew(ch, out.Ino)
	}
	return ch, errno
}

func (n *node) Mknod(ctx context.Context, name string, mode, rdev uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	ch, errno := n.LoopbackNode.Mknod(ctx, name, mode, rdev, out)
	if errno == 0 {
		n.renew(ch, out.Ino)
	}
	return ch, errno
}

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, ff, errno := n.LoopbackNode.Open(ctx, flags)
	if errno != 0 {
		return fh, ff, errno
	}
	if flags&syscall.O_TRUNC != 0 {
		n.d.mu.Lock()
		n.d.truncated(n.key, 0)
		n.d.mu.Unlock()
	}
	return &file{LoopbackFile: fh.(*fs.LoopbackFile), n: n}, ff, 0
}

func (n *node) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if w, ok := f.(*file); ok {
		f = w.LoopbackFile
	}
	sz, resize := in.GetSize()
	if resize {
		n.d.mu.Lock()
		defer n.d.mu.Unlock()
		if n.d.cut {
			return syscall.EIO
		}
		n.d.truncated(n.key, int64(sz))
	}
	return n.LoopbackNode.Setattr(ctx, f, in, out)
}

// OpendirHandle hides the loopback directory handle's own Fsyncdir, so that
// a directory sync reaches Fsync below.
func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, ff, errno := n.LoopbackNode.OpendirHandle(ctx, flags)
	if errno != 0 {
		return fh, ff, errno
	}
	return dirHandle{fh.(loopbackDir)}, ff, 0
}

// Fsync syncs a directory (FUSE_FSYNCDIR) or, with no file handle of ours,
// a file by its path.
func (n *node) Fsync(ctx context.Context, f fs.FileHandle, flags uint32) syscall.Errno {
	if w, ok := f.(*file); ok {
		return w.Fsync(ctx, flags)
	}
	n.d.mu.Lock()
	defer n.d.mu.Unlock()
	if n.d.cut {
		return syscall.EIO
	}
	if n.IsDir() {
		n.d.syncs++
		if n.d.opts.JournaledMetadata {
			return n.d.syncTree(n.d.rootKey, n.d.live)
		}
		return n.d.syncDir(n.key, n.livePath())
	}
	fd, err := syscall.Open(n.livePath(), syscall.O_RDONLY, 0)
	if err != nil {
		return fs.ToErrno(err)
	}
	defer syscall.Close(fd)
	return n.d.syncFile(n.key, fd)
}

type loopbackDir interface {
	fs.DirStream
	fs.FileReleasedirer
	fs.FileSeekdirer
	fs.FileReaddirenter
}

// dirHandle is a loopback directory handle without Fsyncdir.
type dirHandle struct{ loopbackDir }

// file is a loopback file handle whose writes and syncs the Disk follows.
// It never offers its descriptor for FUSE passthrough, which would let the
// kernel write to the backing file behind the Disk's back.
type file struct {
	*fs.LoopbackFile
	n *node
}

// PassthroughFd refuses passthrough.
func (f *file) PassthroughFd() (int, bool) { return -1, false }

func (f *file) fd() int {
	fd, _ := f.LoopbackFile.PassthroughFd()
	return fd
}

func (f *file) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	d := f.n.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cut {
		return 0, syscall.EIO
	}
	w, errno := f.LoopbackFile.Write(ctx, data, off)
	if w > 0 {
		p := d.pendingFor(f.n.key)
		p.spans = append(p.spans, span{off, off + int64(w)})
	}
	return w, errno
}

func (f *file) Writev(ctx context.Context, data [][]byte, off int64) (uint32, syscall.Errno) {
	var all []byte
	for _, b := range data {
		all = append(all, b...)
	}
	return f.Write(ctx, all, off)
}

func (f *file) Allocate(ctx context.Context, off, size uint64, mode uint32) syscall.Errno {
	d := f.n.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cut {
		return syscall.EIO
	}
	p := d.pendingFor(f.n.key)
	p.spans = append(p.spans, span{int64(off), int64(off + size)})
	return f.LoopbackFile.Allocate(ctx, off, size, mode)
}

func (f *file) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	d := f.n.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cut {
		return syscall.EIO
	}
	return d.syncFile(f.n.key, f.fd())
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if errors.Is(err, os.ErrNotExist) {
		in, err = os.Open(os.DevNull) // never synced: comes back empty
	}
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
