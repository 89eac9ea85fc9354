package federation

import (
	"bytes"
	"cmp"
	"math"
	"slices"
	"sort"
	"sync"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// key is a record's place in the reconciliation order: (time, ID), compared
// lexicographically, the ID bytewise. Bounds of ranges are keys too; a bound
// need not be the key of a record.
type key struct {
	t  int64
	id registry.ID
}

// Extreme bounds. Records have times in [1, MaxInt64/2] (registry.Record), so
// minKey is below and infKey above every record.
var (
	minKey = key{}
	infKey = key{t: math.MaxInt64}
)

func keyOf(r *registry.Record) key { return key{t: r.Time, id: r.ID()} }

func (a key) compare(b key) int {
	if c := cmp.Compare(a.t, b.t); c != 0 {
		return c
	}
	return bytes.Compare(a.id[:], b.id[:])
}

func (a key) isInf() bool { return a.t == math.MaxInt64 }

// indexBlock bounds the size of one block of the index. Inserting into a block
// moves at most this many keys; a range fingerprint adds at most two partial
// blocks key by key and the rest block by block.
const indexBlock = 512

type block struct {
	keys []key // sorted, 1 ≤ len ≤ 2·indexBlock
	fp   registry.Fingerprint
}

// index is the in-memory set of (time, ID) keys that reconciliation works on,
// with a fingerprint per block so that the fingerprint of any range costs
// O(n/indexBlock + indexBlock). It holds about 48 bytes per record (plus
// slack of at most 2× in partly filled blocks). It is safe for concurrent use.
type index struct {
	mu     sync.RWMutex
	blocks []*block
	total  registry.Fingerprint
}

func newIndex() *index { return &index{} }

// add inserts k and reports whether it was new.
func (x *index) add(k key) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	if len(x.blocks) == 0 {
		b := &block{keys: make([]key, 0, indexBlock)}
		x.blocks = append(x.blocks, b)
	}
	bi := x.blockFor(k)
	b := x.blocks[bi]
	i, found := slices.BinarySearchFunc(b.keys, k, key.compare)
	if found {
		return false
	}
	b.keys = slices.Insert(b.keys, i, k)
	b.fp.Add(k.id)
	x.total.Add(k.id)
	if len(b.keys) > 2*indexBlock {
		x.split(bi)
	}
	return true
}

// blockFor returns the block k belongs in: the last block whose first key is
// ≤ k, or the first block.
// appendSorted adds k, which must sort after every key held, filling the
// last block to 2·indexBlock keys before starting the next: loading a
// store's keys in order this way keeps blocks full, where add would leave
// every block split half empty. A key out of order goes through add.
func (x *index) appendSorted(k key) {
	x.mu.Lock()
	n := len(x.blocks)
	if n > 0 {
		last := x.blocks[n-1]
		if k.compare(last.keys[len(last.keys)-1]) <= 0 {
			x.mu.Unlock()
			x.add(k)
			return
		}
	}
	if n == 0 || len(x.blocks[n-1].keys) == 2*indexBlock {
		x.blocks = append(x.blocks, &block{keys: make([]key, 0, 2*indexBlock)})
		n++
	}
	b := x.blocks[n-1]
	b.keys = append(b.keys, k)
	b.fp.Add(k.id)
	x.total.Add(k.id)
	x.mu.Unlock()
}

func (x *index) blockFor(k key) int {
	if len(x.blocks) == 1 {
		return 0
	}
	i := sort.Search(len(x.blocks), func(i int) bool { return x.blocks[i].keys[0].compare(k) > 0 })
	if i > 0 {
		i--
	}
	return i
}

func (x *index) split(bi int) {
	b := x.blocks[bi]
	half := len(b.keys) / 2
	left := &block{keys: make([]key, half, indexBlock*2)}
	right := &block{keys: make([]key, len(b.keys)-half, indexBlock*2)}
	copy(left.keys, b.keys[:half])
	copy(right.keys, b.keys[half:])
	for _, k := range left.keys {
		left.fp.Add(k.id)
	}
	right.fp = b.fp
	right.fp.Sub(left.fp)
	x.blocks = slices.Replace(x.blocks, bi, bi+1, left, right)
}

// has reports whether k is in the index.
func (x *index) has(k key) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if len(x.blocks) == 0 {
		return false
	}
	_, found := slices.BinarySearchFunc(x.blocks[x.blockFor(k)].keys, k, key.compare)
	return found
}

// fingerprint returns the fingerprint of the whole set.
func (x *index) fingerprint() registry.Fingerprint {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.total
}

// pos is a position in the index: block bi, key ki within it. The end is
// (len(blocks), 0).
type pos struct{ bi, ki int }

// lowerBound returns the position of the first key ≥ k.
func (x *index) lowerBound(k key) pos {
	if len(x.blocks) == 0 {
		return pos{}
	}
	bi := x.blockFor(k)
	ki, _ := slices.BinarySearchFunc(x.blocks[bi].keys, k, key.compare)
	if ki == len(x.blocks[bi].keys) {
		return pos{bi + 1, 0}
	}
	return pos{bi, ki}
}

// rangeFP returns the fingerprint and size of [lo, hi).
func (x *index) rangeFP(lo, hi key) registry.Fingerprint {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.fpBetween(x.lowerBound(lo), x.lowerBound(hi))
}

func (x *index) fpBetween(a, b pos) registry.Fingerprint {
	var fp registry.Fingerprint
	if a.bi == b.bi {
		if a.bi < len(x.blocks) {
			for _, k := range x.blocks[a.bi].keys[a.ki:b.ki] {
				fp.Add(k.id)
			}
		}
		return fp
	}
	for _, k := range x.blocks[a.bi].keys[a.ki:] {
		fp.Add(k.id)
	}
	for bi := a.bi + 1; bi < b.bi; bi++ {
		fp.Merge(x.blocks[bi].fp)
	}
	if b.bi < len(x.blocks) {
		for _, k := range x.blocks[b.bi].keys[:b.ki] {
			fp.Add(k.id)
		}
	}
	return fp
}

// keys returns the keys in [lo, hi), at most limit of them (limit < 0: all).
func (x *index) keys(lo, hi key, limit int) []key {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var out []key
	p := x.lowerBound(lo)
	for bi := p.bi; bi < len(x.blocks); bi++ {
		ks := x.blocks[bi].keys
		if bi == p.bi {
			ks = ks[p.ki:]
		}
		for _, k := range ks {
			if k.compare(hi) >= 0 || (limit >= 0 && len(out) >= limit) {
				return out
			}
			out = append(out, k)
		}
	}
	return out
}

// splitRange divides [lo, hi), which holds n > parts keys, into parts
// sub-ranges of nearly equal size and returns their upper bounds (the last
// is hi) with their fingerprints. Each inner bound is the shortest bound that
// separates the keys on either side of it (see minimalBound).
func (x *index) splitRange(lo, hi key, n, parts int) ([]key, []registry.Fingerprint) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	bounds := make([]key, 0, parts)
	fps := make([]registry.Fingerprint, 0, parts)
	p := x.lowerBound(lo)
	end := x.lowerBound(hi)
	var prev key
	var fp registry.Fingerprint
	taken, next := 0, 1
	for p != end && p.bi < len(x.blocks) {
		k := x.blocks[p.bi].keys[p.ki]
		if next < parts && taken == n*next/parts && taken > 0 {
			bounds = append(bounds, minimalBound(prev, k))
			fps = append(fps, fp)
			fp = registry.Fingerprint{}
			next++
		}
		fp.Add(k.id)
		prev = k
		taken++
		p.ki++
		if p.ki == len(x.blocks[p.bi].keys) {
			p = pos{p.bi + 1, 0}
		}
	}
	bounds = append(bounds, hi)
	fps = append(fps, fp)
	return bounds, fps
}

// minimalBound returns the bound b with prev < b ≤ next that has the shortest
// encoding: next's time with no ID bytes when the times differ, otherwise
// next's time and the shortest prefix of next's ID that exceeds prev's.
// It requires prev < next.
func minimalBound(prev, next key) key {
	if prev.t != next.t {
		return key{t: next.t}
	}
	b := key{t: next.t}
	for i := range next.id {
		b.id[i] = next.id[i]
		if prev.id[i] != next.id[i] {
			break
		}
	}
	return b
}

// boundPrefixLen is the number of ID bytes a bound needs on the wire: the
// bytes up to its last non-zero one.
func boundPrefixLen(b key) int {
	n := len(b.id)
	for n > 0 && b.id[n-1] == 0 {
		n--
	}
	return n
}

// count returns the size of the whole set.
func (x *index) count() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return int(x.total.Count)
}

// remove deletes k and reports whether it was held.
func (x *index) remove(k key) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	if len(x.blocks) == 0 {
		return false
	}
	bi := x.blockFor(k)
	b := x.blocks[bi]
	i, found := slices.BinarySearchFunc(b.keys, k, key.compare)
	if !found {
		return false
	}
	b.keys = slices.Delete(b.keys, i, i+1)
	var one registry.Fingerprint
	one.Add(k.id)
	b.fp.Sub(one)
	x.total.Sub(one)
	if len(b.keys) == 0 && len(x.blocks) > 1 {
		x.blocks = slices.Delete(x.blocks, bi, bi+1)
	}
	return true
}
