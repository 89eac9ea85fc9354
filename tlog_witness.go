package registry

import (
	"fmt"
	"math"
	"slices"
	"sort"
)

// Witnessed time (DESIGN.md §2 "Authority and time").
//
// One author's checkpoint records are its log: each carries the entries
// [prev, size) and the root of the tree of size. The rules, applied to the
// checkpoints of one author taken in (size, time, ID) order:
//
//  1. A checkpoint whose prev is not the size of an accepted checkpoint
//     (prev 0 always is) is pending.
//  2. Its leaves must agree with the entries already accepted at the same
//     positions; otherwise it is a fork (same size) or inconsistent.
//  3. A checkpoint of the same size as the longest accepted one must carry
//     the same root (else: fork). One that extends the log must not repeat an
//     entry (else: repeated-leaf), its root must be the root of the extended
//     tree (else: inconsistent), and its time must not be earlier than any
//     accepted checkpoint of a smaller tree (else: backdated).
//  4. Otherwise it is accepted. An entry's witnessed time is the time of the
//     accepted checkpoint that first appended it, which is also the earliest
//     accepted checkpoint that includes it.
//  5. Each violation is kept as Evidence naming both checkpoints. From the
//     smallest Evidence.At on, the author's log witnesses nothing: entries
//     appended by checkpoints of size ≥ At have no witnessed time.
//
// The result depends only on the set of checkpoints, never on the order in
// which they arrive.

// Reasons for equivocation evidence. Never rename: they are shown to users.
const (
	ReasonFork         = "fork"          // two checkpoints of one size with different roots or leaves
	ReasonInconsistent = "inconsistent"  // the leaves or the root do not extend the earlier log
	ReasonBackdated    = "backdated"     // a larger tree carries an earlier time
	ReasonRepeat       = "repeated-leaf" // an entry appears twice in one log
)

// Witnessed is an entry of an author's log with its witnessed time.
type Witnessed struct {
	ID         ID     `json:"id"`
	Time       int64  `json:"time"`       // Unix ms: the time of Checkpoint
	Index      uint64 `json:"index"`      // the entry's position in the author's log
	Checkpoint ID     `json:"checkpoint"` // the checkpoint that first included it
}

// Evidence is proof that an author equivocated: two of its checkpoints
// (A accepted first, B contradicting it; A == B for a checkpoint that
// contradicts itself) that cannot both be honest.
type Evidence struct {
	Author PublicKey `json:"author"`
	A      ID        `json:"a"`
	B      ID        `json:"b"`
	Reason string    `json:"reason"`
	Detail string    `json:"detail"`
	// At is the equivocation point: checkpoints of this size or larger
	// witness nothing.
	At uint64 `json:"at"`
}

// Delta is what adding a checkpoint to a Chain changed.
type Delta struct {
	Witnessed   []Witnessed // entries newly witnessed (or witnessed differently)
	Unwitnessed []ID        // entries that lost their witnessed time (equivocation)
	Evidence    []Evidence  // new evidence
	// Withdrawn is evidence the chain no longer derives: a checkpoint that
	// arrived later changed which checkpoints are compared (the author
	// equivocated either way; the set of evidence follows the rules).
	Withdrawn []Evidence
}

// Empty reports whether nothing changed.
func (d Delta) Empty() bool {
	return len(d.Witnessed) == 0 && len(d.Unwitnessed) == 0 && len(d.Evidence) == 0 && len(d.Withdrawn) == 0
}

// ChainResult is the witnessed state of one author's log.
type ChainResult struct {
	Author   PublicKey
	Times    map[ID]Witnessed
	Evidence []Evidence
	// Halt is the smallest Evidence.At, or math.MaxUint64 without evidence.
	Halt uint64
	// Size is the size of the longest accepted checkpoint; Pending counts
	// checkpoints waiting for a missing predecessor.
	Size    uint64
	Pending int
}

// Chain verifies one author's checkpoints incrementally. Checkpoints may be
// added in any order; after any sequence of Adds, Result equals
// Witness of the same set. Adding a checkpoint that sorts after every
// checkpoint held (the usual case: a node's next checkpoint) costs O(its
// leaves); any other arrival order re-derives the chain from all held
// checkpoints. A Chain is not safe for concurrent use.
type Chain struct {
	author PublicKey
	all    map[ID]*Checkpoint
	last   *Checkpoint

	leaves   []ID
	pos      map[ID]uint64
	sizes    []uint64 // accepted sizes, ascending
	bySize   map[uint64][]*Checkpoint
	frontier *Frontier // of the whole accepted log
	maxTime  int64
	maxCk    *Checkpoint
	below    int64 // max time of accepted checkpoints smaller than the tip
	belowCk  *Checkpoint
	exts     []ext // accepted checkpoints that appended entries, in order
	pending  int
	evidence []Evidence
	halt     uint64
	times    map[ID]Witnessed
}

type ext struct {
	ck    *Checkpoint
	start uint64
}

// NewChain returns an empty chain for author.
func NewChain(author PublicKey) *Chain {
	c := &Chain{author: author, all: map[ID]*Checkpoint{}}
	c.reset()
	return c
}

func (c *Chain) reset() {
	c.leaves, c.pos, c.sizes = nil, map[ID]uint64{}, nil
	c.bySize, c.frontier = map[uint64][]*Checkpoint{}, NewFrontier()
	c.maxTime, c.maxCk, c.below, c.belowCk = math.MinInt64, nil, math.MinInt64, nil
	c.exts, c.pending, c.evidence = nil, 0, nil
	c.halt, c.times = math.MaxUint64, map[ID]Witnessed{}
}

// compareCheckpoints orders checkpoints by (size, time, ID).
func compareCheckpoints(a, b *Checkpoint) int {
	switch {
	case a.Size != b.Size:
		return cmpU(a.Size, b.Size)
	case a.Time() != b.Time():
		return cmpU(uint64(a.Time()), uint64(b.Time()))
	}
	return a.ID().Compare(b.ID())
}

func cmpU(a, b uint64) int {
	if a < b {
		return -1
	}
	if a > b {
		return 1
	}
	return 0
}

// Len returns the number of checkpoints held.
func (c *Chain) Len() int { return len(c.all) }

// Size returns the size of the longest accepted checkpoint.
func (c *Chain) Size() uint64 { return uint64(len(c.leaves)) }

// Head returns the first accepted checkpoint of the longest accepted size,
// or nil when none is accepted.
func (c *Chain) Head() *Checkpoint {
	if len(c.sizes) == 0 {
		return nil
	}
	return c.bySize[c.sizes[len(c.sizes)-1]][0]
}

// Halted reports whether the author equivocated.
func (c *Chain) Halted() bool { return len(c.evidence) > 0 }

// Add adds a checkpoint of the chain's author and returns what changed. A
// checkpoint already held changes nothing. EINVALID when ck is by another
// author.
func (c *Chain) Add(ck *Checkpoint) (Delta, error) {
	if !ck.Author().Equal(c.author) {
		return Delta{}, Errorf("registry.Chain.Add", EINVALID, "checkpoint %s is by %s, not by %s", ck.ID(), ck.Author(), c.author)
	}
	if _, ok := c.all[ck.ID()]; ok {
		return Delta{}, nil
	}
	c.all[ck.ID()] = ck
	if c.last == nil || compareCheckpoints(ck, c.last) > 0 {
		c.last = ck
		return c.addLast(ck), nil
	}
	return c.rebuild(), nil
}

func (c *Chain) addLast(ck *Checkpoint) Delta {
	var d Delta
	nev, halt, tip := len(c.evidence), c.halt, uint64(len(c.leaves))
	c.process(ck)
	d.Evidence = slices.Clone(c.evidence[nev:])
	if c.halt != halt {
		old := c.times
		c.computeTimes()
		d.Witnessed, d.Unwitnessed = diffTimes(old, c.times)
		return d
	}
	if ck.Size < c.halt {
		for i := tip; i < uint64(len(c.leaves)); i++ {
			w := Witnessed{ID: c.leaves[i], Time: ck.Time(), Index: i, Checkpoint: ck.ID()}
			c.times[w.ID] = w
			d.Witnessed = append(d.Witnessed, w)
		}
	}
	return d
}

func (c *Chain) rebuild() Delta {
	oldTimes := c.times
	oldEv := map[[3]string]bool{}
	oldList := c.evidence
	for _, e := range c.evidence {
		oldEv[evKey(e)] = true
	}
	all := make([]*Checkpoint, 0, len(c.all))
	for _, ck := range c.all {
		all = append(all, ck)
	}
	slices.SortFunc(all, compareCheckpoints)
	c.reset()
	for _, ck := range all {
		c.process(ck)
	}
	c.computeTimes()
	var d Delta
	d.Witnessed, d.Unwitnessed = diffTimes(oldTimes, c.times)
	newEv := map[[3]string]bool{}
	for _, e := range c.evidence {
		newEv[evKey(e)] = true
		if !oldEv[evKey(e)] {
			d.Evidence = append(d.Evidence, e)
		}
	}
	for _, e := range oldList {
		if !newEv[evKey(e)] {
			d.Withdrawn = append(d.Withdrawn, e)
		}
	}
	return d
}

func evKey(e Evidence) [3]string { return [3]string{string(e.A[:]), string(e.B[:]), e.Reason} }

func diffTimes(old, cur map[ID]Witnessed) (added []Witnessed, removed []ID) {
	for id, w := range cur {
		if o, ok := old[id]; !ok || o != w {
			added = append(added, w)
		}
	}
	for id := range old {
		if _, ok := cur[id]; !ok {
			removed = append(removed, id)
		}
	}
	sort.Slice(added, func(i, j int) bool { return added[i].Index < added[j].Index })
	slices.SortFunc(removed, ID.Compare)
	return added, removed
}

func (c *Chain) computeTimes() {
	c.times = map[ID]Witnessed{}
	for _, e := range c.exts {
		if e.ck.Size >= c.halt {
			break
		}
		for i := e.start; i < e.ck.Size; i++ {
			c.times[c.leaves[i]] = Witnessed{ID: c.leaves[i], Time: e.ck.Time(), Index: i, Checkpoint: e.ck.ID()}
		}
	}
}

// coverer returns the accepted checkpoint that first included entry i.
func (c *Chain) coverer(i uint64) *Checkpoint {
	k := sort.Search(len(c.sizes), func(j int) bool { return c.sizes[j] > i })
	if k == len(c.sizes) {
		return nil
	}
	return c.bySize[c.sizes[k]][0]
}

func (c *Chain) equivocate(a, b *Checkpoint, reason string, at uint64, format string, args ...any) {
	if a == nil {
		a = b
	}
	c.evidence = append(c.evidence, Evidence{Author: c.author, A: a.ID(), B: b.ID(), Reason: reason, Detail: fmt.Sprintf(format, args...), At: at})
	c.halt = min(c.halt, at)
}

// process applies rules 1–4 to ck, which sorts after every checkpoint
// processed so far.
func (c *Chain) process(ck *Checkpoint) {
	if ck.Prev != 0 && len(c.bySize[ck.Prev]) == 0 {
		c.pending++
		return
	}
	tip := uint64(len(c.leaves))
	for i := ck.Prev; i < min(ck.Size, tip); i++ {
		if got := ck.Leaves[i-ck.Prev]; got != c.leaves[i] {
			p := c.coverer(i)
			reason := ReasonInconsistent
			if p.Size == ck.Size {
				reason = ReasonFork
			}
			c.equivocate(p, ck, reason, min(p.Size, ck.Size), "entry %d is %s in one and %s in the other", i, c.leaves[i], got)
			return
		}
	}
	if ck.Size <= tip { // then ck.Size == tip: sorted order
		head := c.Head()
		if ck.Root != c.frontier.Root() {
			c.equivocate(head, ck, ReasonFork, ck.Size, "two roots for the tree of size %d", ck.Size)
			return
		}
		if ck.Time() < c.below {
			c.equivocate(c.belowCk, ck, ReasonBackdated, ck.Size, "the tree of size %d is dated %d, before the smaller tree of size %d dated %d", ck.Size, ck.Time(), c.belowCk.Size, c.below)
			return
		}
		c.bySize[ck.Size] = append(c.bySize[ck.Size], ck)
		c.noteTime(ck)
		return
	}
	seen := map[ID]uint64{}
	for j := tip - ck.Prev; j < uint64(len(ck.Leaves)); j++ {
		id := ck.Leaves[j]
		if at, ok := c.pos[id]; ok {
			c.equivocate(c.coverer(at), ck, ReasonRepeat, ck.Size, "entry %s is at %d and again at %d", id, at, ck.Prev+j)
			return
		}
		if at, ok := seen[id]; ok {
			c.equivocate(ck, ck, ReasonRepeat, ck.Size, "entry %s is at %d and again at %d", id, at, ck.Prev+j)
			return
		}
		seen[id] = ck.Prev + j
	}
	f := c.frontier.Clone()
	for _, id := range ck.Leaves[tip-ck.Prev:] {
		f.Append(id, nil)
	}
	if f.Root() != ck.Root {
		c.equivocate(c.Head(), ck, ReasonInconsistent, ck.Size, "its root is not the root of its entries appended to the tree of size %d", tip)
		return
	}
	if ck.Time() < c.maxTime {
		c.equivocate(c.maxCk, ck, ReasonBackdated, ck.Size, "the tree of size %d is dated %d, before the smaller tree of size %d dated %d", ck.Size, ck.Time(), c.maxCk.Size, c.maxTime)
		return
	}
	c.below, c.belowCk = c.maxTime, c.maxCk
	for j := tip - ck.Prev; j < uint64(len(ck.Leaves)); j++ {
		c.pos[ck.Leaves[j]] = uint64(len(c.leaves))
		c.leaves = append(c.leaves, ck.Leaves[j])
	}
	c.frontier = f
	c.sizes = append(c.sizes, ck.Size)
	c.bySize[ck.Size] = []*Checkpoint{ck}
	c.exts = append(c.exts, ext{ck: ck, start: tip})
	c.noteTime(ck)
}

func (c *Chain) noteTime(ck *Checkpoint) {
	if ck.Time() > c.maxTime {
		c.maxTime, c.maxCk = ck.Time(), ck
	}
}

// Result returns the chain's witnessed state. The caller owns the result.
func (c *Chain) Result() *ChainResult {
	r := &ChainResult{Author: c.author, Times: make(map[ID]Witnessed, len(c.times)), Evidence: slices.Clone(c.evidence),
		Halt: c.halt, Size: uint64(len(c.leaves)), Pending: c.pending}
	for k, v := range c.times {
		r.Times[k] = v
	}
	return r
}

// Witness computes the witnessed state of every author's log from a set of
// records: checkpoints are grouped by author (other kinds and invalid
// checkpoints are ignored) and the rules above are applied. The result,
// keyed by the author's peer ID, is the same for any order of recs and any
// duplicates in it.
func Witness(recs []*Record) map[string]*ChainResult {
	byAuthor := map[string][]*Checkpoint{}
	for _, r := range recs {
		if r.Kind != KindCheckpoint {
			continue
		}
		ck, err := ParseCheckpoint(r)
		if err != nil {
			continue
		}
		p := r.Author.PeerID()
		byAuthor[p] = append(byAuthor[p], ck)
	}
	out := map[string]*ChainResult{}
	for p, cks := range byAuthor {
		slices.SortFunc(cks, compareCheckpoints)
		ch := NewChain(cks[0].Author())
		for _, ck := range cks {
			if _, err := ch.Add(ck); err != nil {
				panic(err) // grouped by author above
			}
		}
		out[p] = ch.Result()
	}
	return out
}

// SortCheckpoints sorts checkpoints into the order the rules apply them:
// by (size, time, ID). Adding them to a Chain in this order never
// re-derives the chain.
func SortCheckpoints(cks []*Checkpoint) { slices.SortFunc(cks, compareCheckpoints) }

// ChainHead is the part of a Chain's state that suffices to verify the
// author's next checkpoint in the usual case, so that a store can persist
// it instead of the whole chain. Encoded as canonical CBOR with integer
// keys (never renumber).
type ChainHead struct {
	Size     uint64   `cbor:"1,keyasint"`           // the longest accepted tree
	Frontier [][]byte `cbor:"2,keyasint"`           // its compact range
	Head     []byte   `cbor:"3,keyasint,omitempty"` // ID of the first accepted checkpoint of Size
	MaxTime  int64    `cbor:"4,keyasint"`           // latest time of an accepted checkpoint
	Last     []byte   `cbor:"5,keyasint,omitempty"` // ID of the greatest checkpoint held, by (size, time, ID)
	LastSize uint64   `cbor:"6,keyasint"`
	LastTime int64    `cbor:"7,keyasint"`
	Halted   bool     `cbor:"8,keyasint,omitempty"` // the author equivocated
}

// NewChainHead is the head of a chain that holds no checkpoint.
func NewChainHead() *ChainHead { return &ChainHead{MaxTime: math.MinInt64} }

// Summary returns the chain's head.
func (c *Chain) Summary() *ChainHead {
	h := &ChainHead{Size: uint64(len(c.leaves)), MaxTime: c.maxTime, Halted: len(c.evidence) > 0}
	for _, x := range c.frontier.Hashes() {
		h.Frontier = append(h.Frontier, append([]byte(nil), x[:]...))
	}
	if hd := c.Head(); hd != nil {
		h.Head = hd.ID().Bytes()
	}
	if c.last != nil {
		h.Last, h.LastSize, h.LastTime = c.last.ID().Bytes(), c.last.Size, c.last.Time()
	}
	return h
}

// HeadID returns the ID of the head checkpoint; ok is false when none is
// accepted.
func (h *ChainHead) HeadID() (ID, bool) {
	id, err := IDFromBytes(h.Head)
	return id, err == nil
}

// Extend verifies ck against the head when ck is a clean extension: it
// sorts after every checkpoint held, its prev is the head's size, the
// author has not equivocated, and it passes every rule. has reports
// whether an entry is already in the author's log. Then it returns the new
// head and the entries ck witnesses, exactly as Chain.Add would. Otherwise
// ok is false and the caller must add ck to the whole Chain.
func (h *ChainHead) Extend(ck *Checkpoint, has func(ID) (bool, error)) (next *ChainHead, wit []Witnessed, ok bool, err error) {
	if h.Halted || ck.Prev != h.Size {
		return nil, nil, false, nil
	}
	if last, lok := IDFromBytes(h.Last); lok == nil {
		c := cmpU(ck.Size, h.LastSize)
		if c == 0 {
			c = cmpU(uint64(ck.Time()), uint64(h.LastTime))
		}
		if c == 0 {
			c = ck.ID().Compare(last)
		}
		if c <= 0 {
			return nil, nil, false, nil
		}
	}
	if ck.Time() < h.MaxTime {
		return nil, nil, false, nil
	}
	hs := make([]Hash, len(h.Frontier))
	for i, b := range h.Frontier {
		if len(b) != len(hs[i]) {
			return nil, nil, false, Errorf("registry.ChainHead", EINTERNAL, "corrupt chain head")
		}
		copy(hs[i][:], b)
	}
	f, err := FrontierFrom(h.Size, hs)
	if err != nil {
		return nil, nil, false, E("registry.ChainHead", EINTERNAL, "corrupt chain head", err)
	}
	seen := make(map[ID]bool, len(ck.Leaves))
	for _, id := range ck.Leaves {
		held, err := has(id)
		if err != nil {
			return nil, nil, false, err
		}
		if held || seen[id] {
			return nil, nil, false, nil
		}
		seen[id] = true
		f.Append(id, nil)
	}
	if f.Root() != ck.Root {
		return nil, nil, false, nil
	}
	next = &ChainHead{Size: ck.Size, Head: ck.ID().Bytes(), MaxTime: ck.Time(), Last: ck.ID().Bytes(), LastSize: ck.Size, LastTime: ck.Time()}
	for _, x := range f.Hashes() {
		next.Frontier = append(next.Frontier, append([]byte(nil), x[:]...))
	}
	wit = make([]Witnessed, len(ck.Leaves))
	for j, id := range ck.Leaves {
		wit[j] = Witnessed{ID: id, Time: ck.Time(), Index: ck.Prev + uint64(j), Checkpoint: ck.ID()}
	}
	return next, wit, true, nil
}
