package pipeline

import (
	"sync"
	"syscall"

	"github.com/tetratelabs/wazero/experimental"
)

// instanceMemory backs the linear memories of one wasm test instance with
// anonymous mappings reserved at their maximum size, so that growing never
// copies (a test that allocates without bound reaches its limit in time
// proportional to what it touches, not quadratic in it) and the peak size
// is known exactly. Mappings are released by release, which the runner
// calls only after the instance has stopped running: wazero may close a
// module from another goroutine when its deadline passes, so Free must not
// unmap memory the guest could still touch.
type instanceMemory struct {
	mu   sync.Mutex
	maps [][]byte
	peak uint64
}

var _ experimental.MemoryAllocator = (*instanceMemory)(nil)

func (im *instanceMemory) Allocate(capacity, max uint64) experimental.LinearMemory {
	if max > 0 && max <= 1<<33 {
		b, err := syscall.Mmap(-1, 0, int(max), syscall.PROT_READ|syscall.PROT_WRITE,
			syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS|syscall.MAP_NORESERVE)
		if err == nil {
			im.mu.Lock()
			im.maps = append(im.maps, b)
			im.mu.Unlock()
			return &linearMemory{im: im, buf: b[:0], max: max}
		}
	}
	return &linearMemory{im: im, buf: make([]byte, 0, capacity), max: max, heap: true}
}

func (im *instanceMemory) note(size uint64) {
	im.mu.Lock()
	im.peak = max(im.peak, size)
	im.mu.Unlock()
}

// Peak is the largest size any of the instance's memories reached, bytes.
func (im *instanceMemory) Peak() uint64 {
	im.mu.Lock()
	defer im.mu.Unlock()
	return im.peak
}

func (im *instanceMemory) release() {
	im.mu.Lock()
	defer im.mu.Unlock()
	for _, b := range im.maps {
		_ = syscall.Munmap(b)
	}
	im.maps = nil
}

type linearMemory struct {
	im   *instanceMemory
	buf  []byte
	max  uint64
	heap bool
}

func (m *linearMemory) Reallocate(size uint64) []byte {
	if size > m.max {
		return nil
	}
	if size > uint64(cap(m.buf)) {
		if !m.heap {
			return nil
		}
		n := min(max(size, 2*uint64(cap(m.buf))), m.max)
		nb := make([]byte, size, n)
		copy(nb, m.buf)
		m.buf = nb
	} else {
		m.buf = m.buf[:size]
	}
	m.im.note(size)
	return m.buf
}

func (m *linearMemory) Free() {}
