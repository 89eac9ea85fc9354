package pipeline

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The supervisor's seccomp filter (x86_64 only). Refused system calls are
// sent to the supervisor as user notifications (SECCOMP_RET_USER_NOTIF),
// which records them and answers EPERM; connect(), exit_group() (for the
// process's own peak memory) and, when asked, write-intent path calls are
// sent too, recorded, and let through
// (SECCOMP_USER_NOTIF_FLAG_CONTINUE): the private network namespace and
// the read-only mounts refuse them, the supervisor only keeps the
// evidence. Everything else is allowed without leaving the kernel.

// deniedSyscalls are refused outright (x86_64 numbers).
var deniedSyscalls = map[uint32]string{
	101: "ptrace", 310: "process_vm_readv", 311: "process_vm_writev",
	165: "mount", 166: "umount2", 155: "pivot_root", 161: "chroot",
	428: "open_tree", 429: "move_mount", 430: "fsopen", 431: "fsconfig", 432: "fsmount", 433: "fspick", 442: "mount_setattr",
	246: "kexec_load", 320: "kexec_file_load",
	175: "init_module", 313: "finit_module", 176: "delete_module",
	321: "bpf", 248: "add_key", 249: "request_key", 250: "keyctl",
	298: "perf_event_open", 272: "unshare", 308: "setns",
	169: "reboot", 167: "swapon", 168: "swapoff", 163: "acct", 179: "quotactl", 443: "quotactl_fd",
	323: "userfaultfd", 304: "open_by_handle_at", 172: "iopl", 173: "ioperm",
	425: "io_uring_setup", 426: "io_uring_enter", 427: "io_uring_register",
}

const (
	sysOpen, sysOpenat, sysOpenat2, sysCreat        = 2, 257, 437, 85
	sysMkdir, sysMkdirat                            = 83, 258
	sysRename, sysRenameat, sysRenameat2            = 82, 264, 316
	sysUnlink, sysUnlinkat, sysRmdir                = 87, 263, 84
	sysSymlink, sysSymlinkat, sysLink, sysLinkat    = 88, 266, 86, 265
	sysTruncate                                     = 76
	sysClone, sysClone3, sysPersonality, sysConnect = 56, 435, 135, 42
	sysExitGroup                                    = 231

	// cloneNewMask is every CLONE_NEW* flag that clone(2) accepts
	// (CLONE_NEWTIME is only valid for clone3 and unshare; clone's low
	// byte is the exit signal).
	cloneNewMask = unix.CLONE_NEWNS | unix.CLONE_NEWCGROUP | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC |
		unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET
	openWriteMask = unix.O_WRONLY | unix.O_RDWR | unix.O_CREAT | unix.O_TRUNC
	x32SyscallBit = 0x40000000
)

// writeSyscalls are the path calls recorded as write intents when write
// recording is on (open and openat only with a write flag).
var writeSyscalls = map[uint32]string{
	sysCreat: "creat", sysMkdir: "mkdir", sysMkdirat: "mkdirat", sysRename: "rename", sysRenameat: "renameat",
	sysRenameat2: "renameat2", sysUnlink: "unlink", sysUnlinkat: "unlinkat", sysRmdir: "rmdir",
	sysSymlink: "symlink", sysSymlinkat: "symlinkat", sysLink: "link", sysLinkat: "linkat", sysTruncate: "truncate",
	sysOpenat2: "openat2",
}

// bpfProg is a tiny classic-BPF assembler with forward labels.
type bpfProg struct {
	ins    []unix.SockFilter
	jumps  map[int][2]string // instruction -> (true label, false label); "" is the next instruction
	labels map[string]int
}

func (p *bpfProg) stmt(code uint16, k uint32) {
	p.ins = append(p.ins, unix.SockFilter{Code: code, K: k})
}

func (p *bpfProg) jump(code uint16, k uint32, jt, jf string) {
	if p.jumps == nil {
		p.jumps = map[int][2]string{}
	}
	p.jumps[len(p.ins)] = [2]string{jt, jf}
	p.ins = append(p.ins, unix.SockFilter{Code: code, K: k})
}

func (p *bpfProg) label(name string) {
	if p.labels == nil {
		p.labels = map[string]int{}
	}
	p.labels[name] = len(p.ins)
}

func (p *bpfProg) assemble() ([]unix.SockFilter, error) {
	for i, j := range p.jumps {
		for n, l := range j {
			if l == "" {
				continue
			}
			to, ok := p.labels[l]
			if !ok || to <= i || to-i-1 > 255 {
				return nil, fmt.Errorf("seccomp: bad jump from %d to %q", i, l)
			}
			if n == 0 {
				p.ins[i].Jt = uint8(to - i - 1)
			} else {
				p.ins[i].Jf = uint8(to - i - 1)
			}
		}
	}
	return p.ins, nil
}

const (
	bpfLdW  = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
	bpfJeq  = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
	bpfJge  = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
	bpfJset = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
	bpfRet  = unix.BPF_RET | unix.BPF_K

	offNr   = 0
	offArch = 4
)

func offArg(i int) uint32 { return 16 + 8*uint32(i) } // low 32 bits (little endian)

// filterProgram builds the supervisor's filter. recordWrites adds the
// write-intent calls to what is sent to the supervisor.
func filterProgram(recordWrites bool) ([]unix.SockFilter, error) {
	var p bpfProg
	p.stmt(bpfLdW, offArch)
	p.jump(bpfJeq, unix.AUDIT_ARCH_X86_64, "", "kill")
	p.stmt(bpfLdW, offNr)
	p.jump(bpfJge, x32SyscallBit, "eperm", "")
	for _, nr := range slices.Sorted(maps.Keys(deniedSyscalls)) {
		p.jump(bpfJeq, nr, "notify", "")
	}
	p.jump(bpfJeq, sysClone3, "enosys", "")
	p.jump(bpfJeq, sysClone, "clone", "")
	p.jump(bpfJeq, sysPersonality, "personality", "")
	p.jump(bpfJeq, sysConnect, "notify", "")
	p.jump(bpfJeq, sysExitGroup, "notify", "")
	if recordWrites {
		p.jump(bpfJeq, sysOpen, "open", "")
		p.jump(bpfJeq, sysOpenat, "openat", "")
		for _, nr := range slices.Sorted(maps.Keys(writeSyscalls)) {
			p.jump(bpfJeq, nr, "notify", "")
		}
	}
	p.stmt(bpfRet, unix.SECCOMP_RET_ALLOW)

	p.label("clone")
	p.stmt(bpfLdW, offArg(0))
	p.jump(bpfJset, cloneNewMask, "notify", "")
	p.stmt(bpfRet, unix.SECCOMP_RET_ALLOW)

	// personality(0xffffffff) only queries; PER_LINUX (0) is the default.
	p.label("personality")
	p.stmt(bpfLdW, offArg(0))
	p.jump(bpfJeq, 0xffffffff, "allow", "")
	p.jump(bpfJeq, 0, "allow", "notify")

	if recordWrites {
		p.label("open")
		p.stmt(bpfLdW, offArg(1))
		p.jump(bpfJset, openWriteMask, "notify", "allow")
		p.label("openat")
		p.stmt(bpfLdW, offArg(2))
		p.jump(bpfJset, openWriteMask, "notify", "allow")
	}

	p.label("allow")
	p.stmt(bpfRet, unix.SECCOMP_RET_ALLOW)
	p.label("notify")
	p.stmt(bpfRet, unix.SECCOMP_RET_USER_NOTIF)
	p.label("enosys")
	p.stmt(bpfRet, unix.SECCOMP_RET_ERRNO|uint32(unix.ENOSYS))
	p.label("eperm")
	p.stmt(bpfRet, unix.SECCOMP_RET_ERRNO|uint32(unix.EPERM))
	p.label("kill")
	p.stmt(bpfRet, unix.SECCOMP_RET_KILL_PROCESS)
	return p.assemble()
}

// installFilter sets no_new_privs and installs the filter on the calling
// thread only (the caller must hold it with runtime.LockOSThread and never
// release it). It returns the notification listener.
func installFilter(recordWrites bool) (*os.File, error) {
	prog, err := filterProgram(recordWrites)
	if err != nil {
		return nil, err
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("PR_SET_NO_NEW_PRIVS: %w", err)
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	fd, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
		unix.SECCOMP_FILTER_FLAG_NEW_LISTENER, uintptr(unsafe.Pointer(&fprog)))
	if errno != 0 {
		return nil, fmt.Errorf("seccomp(SET_MODE_FILTER): %w", errno)
	}
	unix.CloseOnExec(int(fd))
	return os.NewFile(fd, "seccomp-listener"), nil
}

// seccompNotif and seccompNotifResp are the kernel's struct seccomp_notif
// and struct seccomp_notif_resp.
type seccompNotif struct {
	ID    uint64
	Pid   uint32
	Flags uint32
	Nr    int32
	Arch  uint32
	IP    uint64
	Args  [6]uint64
}

type seccompNotifResp struct {
	ID    uint64
	Val   int64
	Error int32
	Flags uint32
}

// notifier answers the filter's notifications and records what it saw.
type notifier struct {
	fd       int
	listener *os.File // keeps fd open
	writable []string // areas where writes are expected (absolute, cleaned)
	record   func(action, detail string)
	// exitPeak, when set, keeps the largest peak resident set (VmHWM)
	// of a process seen ending with exit_group.
	exitPeak *atomic.Uint64
}

// serve answers notifications until the listener fails. It never returns
// while a filtered process may still be waiting on it.
func (n *notifier) serve() {
	for {
		var req seccompNotif
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(n.fd), unix.SECCOMP_IOCTL_NOTIF_RECV, uintptr(unsafe.Pointer(&req)))
		switch errno {
		case 0:
		case unix.EINTR, unix.ENOENT:
			continue
		default:
			return
		}
		n.answer(&req)
	}
}

func (n *notifier) answer(req *seccompNotif) {
	resp := seccompNotifResp{ID: req.ID}
	nr := uint32(req.Nr)
	switch {
	case nr == sysConnect:
		if dest, ok := n.sockaddr(req); ok {
			n.record(refusalNetwork, dest)
		}
		resp.Flags = unix.SECCOMP_USER_NOTIF_FLAG_CONTINUE
	case nr == sysExitGroup:
		// The process waits in exit_group until answered: its memory is
		// still there to read.
		if hwm, ok := vmHWM(strconv.FormatUint(uint64(req.Pid), 10)); ok && n.exitPeak != nil && n.valid(req.ID) {
			atomicMax(n.exitPeak, hwm)
		}
		resp.Flags = unix.SECCOMP_USER_NOTIF_FLAG_CONTINUE
	case nr == sysClone:
		n.record(refusalSyscall, "clone("+cloneFlagNames(req.Args[0])+")")
		resp.Error = -int32(unix.EPERM)
	case nr == sysPersonality:
		n.record(refusalSyscall, "personality(0x"+strconv.FormatUint(req.Args[0]&0xffffffff, 16)+")")
		resp.Error = -int32(unix.EPERM)
	case deniedSyscalls[nr] != "":
		n.record(refusalSyscall, deniedSyscalls[nr])
		resp.Error = -int32(unix.EPERM)
	default:
		for _, p := range n.writePaths(req) {
			if p != "" && !n.isWritable(p) {
				n.record(refusalWrite, p)
			}
		}
		resp.Flags = unix.SECCOMP_USER_NOTIF_FLAG_CONTINUE
	}
	_, _, _ = unix.Syscall(unix.SYS_IOCTL, uintptr(n.fd), unix.SECCOMP_IOCTL_NOTIF_SEND, uintptr(unsafe.Pointer(&resp)))
}

func cloneFlagNames(flags uint64) string {
	var names []string
	for _, f := range []struct {
		bit  uint64
		name string
	}{{unix.CLONE_NEWUSER, "CLONE_NEWUSER"}, {unix.CLONE_NEWNS, "CLONE_NEWNS"}, {unix.CLONE_NEWPID, "CLONE_NEWPID"},
		{unix.CLONE_NEWNET, "CLONE_NEWNET"}, {unix.CLONE_NEWIPC, "CLONE_NEWIPC"}, {unix.CLONE_NEWUTS, "CLONE_NEWUTS"},
		{unix.CLONE_NEWCGROUP, "CLONE_NEWCGROUP"}} {
		if flags&f.bit != 0 {
			names = append(names, f.name)
		}
	}
	return strings.Join(names, "|")
}

// valid reports whether the notification is still pending: the process
// may have died and its pid been reused, so what was read from its
// memory is kept only when the request is still alive.
func (n *notifier) valid(id uint64) bool {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(n.fd), unix.SECCOMP_IOCTL_NOTIF_ID_VALID, uintptr(unsafe.Pointer(&id)))
	return errno == 0
}

func (n *notifier) readMem(pid uint32, addr uint64, size int) ([]byte, error) {
	f, err := os.Open("/proc/" + strconv.FormatUint(uint64(pid), 10) + "/mem")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, size)
	k, err := f.ReadAt(buf, int64(addr))
	if k == 0 && err != nil {
		return nil, err
	}
	return buf[:k], nil
}

// sockaddr reads connect()'s destination. Only internet addresses are
// network attempts; local (unix) sockets are not reported.
func (n *notifier) sockaddr(req *seccompNotif) (string, bool) {
	size := int(min(req.Args[2], 128))
	if size < 2 {
		return "", false
	}
	b, err := n.readMem(req.Pid, req.Args[1], size)
	if err != nil || len(b) < 2 || !n.valid(req.ID) {
		return "", false
	}
	switch binary.LittleEndian.Uint16(b) {
	case unix.AF_INET:
		if len(b) < 8 {
			return "", false
		}
		ip := netip.AddrFrom4([4]byte(b[4:8]))
		return netip.AddrPortFrom(ip, binary.BigEndian.Uint16(b[2:4])).String(), true
	case unix.AF_INET6:
		if len(b) < 24 {
			return "", false
		}
		ip := netip.AddrFrom16([16]byte(b[8:24]))
		return netip.AddrPortFrom(ip, binary.BigEndian.Uint16(b[2:4])).String(), true
	}
	return "", false
}

// writePaths resolves the paths a write-intent call names, against the
// process's working directory or directory descriptor. Resolution is
// lexical: a symbolic link is not followed.
func (n *notifier) writePaths(req *seccompNotif) []string {
	a := req.Args
	type ref struct {
		dirfd int32
		ptr   uint64
	}
	cwd := int32(unix.AT_FDCWD)
	var refs []ref
	switch uint32(req.Nr) {
	case sysOpen, sysCreat, sysMkdir, sysUnlink, sysRmdir, sysTruncate:
		refs = []ref{{cwd, a[0]}}
	case sysOpenat, sysMkdirat, sysUnlinkat, sysOpenat2:
		refs = []ref{{int32(a[0]), a[1]}}
	case sysRename:
		refs = []ref{{cwd, a[0]}, {cwd, a[1]}}
	case sysRenameat, sysRenameat2:
		refs = []ref{{int32(a[0]), a[1]}, {int32(a[2]), a[3]}}
	case sysSymlink, sysLink:
		refs = []ref{{cwd, a[1]}}
	case sysSymlinkat:
		refs = []ref{{int32(a[1]), a[2]}}
	case sysLinkat:
		refs = []ref{{int32(a[2]), a[3]}}
	}
	if uint32(req.Nr) == sysOpenat2 {
		// struct open_how starts with the 64-bit flags.
		b, err := n.readMem(req.Pid, a[2], 8)
		if err != nil || len(b) < 8 || binary.LittleEndian.Uint64(b)&openWriteMask == 0 {
			return nil
		}
	}
	var out []string
	for _, r := range refs {
		p, err := n.readString(req.Pid, r.ptr)
		if err != nil || p == "" {
			continue
		}
		if !filepath.IsAbs(p) {
			base := "/proc/" + strconv.FormatUint(uint64(req.Pid), 10)
			if r.dirfd == cwd {
				base += "/cwd"
			} else {
				base += "/fd/" + strconv.Itoa(int(r.dirfd))
			}
			dir, err := os.Readlink(base)
			if err != nil {
				continue
			}
			p = filepath.Join(dir, p)
		}
		out = append(out, filepath.Clean(p))
	}
	if !n.valid(req.ID) {
		return nil
	}
	return out
}

// readString reads a NUL-terminated path (at most PATH_MAX bytes) without
// crossing into an unmapped page.
func (n *notifier) readString(pid uint32, addr uint64) (string, error) {
	var out []byte
	for len(out) < unix.PathMax {
		chunk := 4096 - int(addr%4096)
		b, err := n.readMem(pid, addr, chunk)
		if err != nil {
			return "", err
		}
		if i := indexByte(b, 0); i >= 0 {
			return string(append(out, b[:i]...)), nil
		}
		out = append(out, b...)
		addr += uint64(len(b))
	}
	return "", errors.New("path too long")
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// isWritable reports whether p lies in an area where the sandbox expects
// writes (its writable binds, its tmpfs and the harmless devices).
func (n *notifier) isWritable(p string) bool {
	for _, w := range n.writable {
		if p == w || strings.HasPrefix(p, w+"/") || w == "/" {
			return true
		}
	}
	return false
}

// writableAlways are the areas every sandboxed command may write.
// (Descriptors reopened through /dev/fd or /proc/self/fd were opened
// before, where the kernel already checked them.)
var writableAlways = []string{"/tmp", "/var/tmp", "/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom",
	"/dev/tty", "/dev/stdin", "/dev/stdout", "/dev/stderr", "/dev/fd", "/dev/pts", "/dev/shm", "/proc/self/fd", "/proc/thread-self"}
