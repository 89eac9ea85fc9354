package registry

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/transparency-dev/merkle/testonly"
	"golang.org/x/mod/sumdb/tlog"
)

func randIDs(rng *rand.Rand, n int) []ID {
	out := make([]ID, n)
	for i := range out {
		out[i] = Sum([]byte(fmt.Sprintf("leaf %d %d", i, rng.Uint64())))
	}
	return out
}

// sumdbTree is the second, independent implementation: the Go checksum
// database's tlog package, fed with the same leaf bytes.
type sumdbTree struct{ hashes []tlog.Hash }

func newSumdbTree(t testing.TB, ids []ID) *sumdbTree {
	s := &sumdbTree{}
	for i, id := range ids {
		hs, err := tlog.StoredHashes(int64(i), id[:], s)
		if err != nil {
			t.Fatal(err)
		}
		s.hashes = append(s.hashes, hs...)
	}
	return s
}

func (s *sumdbTree) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = s.hashes[x]
	}
	return out, nil
}

// memTree keeps every perfect subtree root a Frontier reports, as a store
// does, and builds proofs from ProofPlans.
type memTree struct {
	f     *Frontier
	nodes map[TreeNode]Hash
}

func newMemTree(ids []ID) *memTree {
	m := &memTree{f: NewFrontier(), nodes: map[TreeNode]Hash{}}
	for _, id := range ids {
		m.f.Append(id, func(n TreeNode, h Hash) { m.nodes[n] = h })
	}
	return m
}

func (m *memTree) build(t testing.TB, p ProofPlan) []Hash {
	var hs []Hash
	for _, n := range p.Nodes() {
		h, ok := m.nodes[n]
		if !ok {
			t.Fatalf("plan needs node %+v, which is not a complete subtree", n)
		}
		hs = append(hs, h)
	}
	out, err := p.Build(hs)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (m *memTree) root(t testing.TB, size uint64) Hash {
	var hs []Hash
	for _, n := range FrontierNodes(size) {
		hs = append(hs, m.nodes[n])
	}
	f, err := FrontierFrom(size, hs)
	if err != nil {
		t.Fatal(err)
	}
	return f.Root()
}

// RFC 6962 §2.1: the empty tree hashes to SHA-256("") and the CT test
// vectors' empty root agrees.
func TestEmptyRoot(t *testing.T) {
	if got := hex.EncodeToString(testonly.EmptyRootHash()); got != EmptyRoot().String() {
		t.Fatalf("empty root %s, CT vectors say %s", EmptyRoot(), got)
	}
	if TreeRoot(nil) != EmptyRoot() {
		t.Fatal("TreeRoot(nil) is not the empty root")
	}
}

// Roots and proofs agree with golang.org/x/mod/sumdb/tlog on random trees
// (RFC 9162 §2.1.1–§2.1.4).
func TestTreeMatchesSumdb(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 33, 100, 257} {
		ids := randIDs(rng, n)
		sd := newSumdbTree(t, ids)
		mt := newMemTree(ids)
		for size := 1; size <= n; size++ {
			want, err := tlog.TreeHash(int64(size), sd)
			if err != nil {
				t.Fatal(err)
			}
			got := mt.root(t, uint64(size))
			if got != Hash(want) || TreeRoot(ids[:size]) != Hash(want) {
				t.Fatalf("n=%d size=%d: root %s, sumdb %s", n, size, got, Hash(want))
			}
		}
		for k := 0; k < 20; k++ {
			size := 1 + rng.IntN(n)
			idx := rng.IntN(size)
			root := mt.root(t, uint64(size))
			plan, err := InclusionPlan(uint64(idx), uint64(size))
			if err != nil {
				t.Fatal(err)
			}
			p := mt.build(t, plan)
			want, err := tlog.ProveRecord(int64(size), int64(idx), sd)
			if err != nil {
				t.Fatal(err)
			}
			if len(p) != len(want) {
				t.Fatalf("inclusion %d/%d: %d hashes, sumdb %d", idx, size, len(p), len(want))
			}
			for i := range p {
				if p[i] != Hash(want[i]) {
					t.Fatalf("inclusion %d/%d differs from sumdb at %d", idx, size, i)
				}
			}
			if err := VerifyInclusion(ids[idx], uint64(idx), uint64(size), p, root); err != nil {
				t.Fatal(err)
			}
			if err := tlog.CheckRecord(want, int64(size), tlog.Hash(root), int64(idx), tlog.RecordHash(ids[idx][:])); err != nil {
				t.Fatal(err)
			}
			// Consistency between two random sizes.
			a := 1 + rng.IntN(size)
			ra := mt.root(t, uint64(a))
			cplan, err := ConsistencyPlan(uint64(a), uint64(size))
			if err != nil {
				t.Fatal(err)
			}
			cp := mt.build(t, cplan)
			cw, err := tlog.ProveTree(int64(size), int64(a), sd)
			if err != nil {
				t.Fatal(err)
			}
			if len(cp) != len(cw) {
				t.Fatalf("consistency %d→%d: %d hashes, sumdb %d", a, size, len(cp), len(cw))
			}
			for i := range cp {
				if cp[i] != Hash(cw[i]) {
					t.Fatalf("consistency %d→%d differs from sumdb at %d", a, size, i)
				}
			}
			if err := VerifyConsistency(uint64(a), uint64(size), cp, ra, root); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// Tampered proofs, leaves, indexes and roots never verify.
func TestProofsRejectTampering(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	ids := randIDs(rng, 37)
	mt := newMemTree(ids)
	root := mt.root(t, 37)
	plan, _ := InclusionPlan(11, 37)
	p := mt.build(t, plan)
	if err := VerifyInclusion(ids[11], 11, 37, p, root); err != nil {
		t.Fatal(err)
	}
	bad := append([]Hash(nil), p...)
	bad[2][5] ^= 1
	for name, err := range map[string]error{
		"flipped proof":   VerifyInclusion(ids[11], 11, 37, bad, root),
		"other leaf":      VerifyInclusion(ids[12], 11, 37, p, root),
		"other index":     VerifyInclusion(ids[11], 12, 37, p, root),
		"short proof":     VerifyInclusion(ids[11], 11, 37, p[:len(p)-1], root),
		"long proof":      VerifyInclusion(ids[11], 11, 37, append(p, p[0]), root),
		"index past size": VerifyInclusion(ids[11], 37, 37, p, root),
	} {
		if KindOf(err) != EINVALID {
			t.Errorf("%s: got %v, want an invalid-proof error", name, err)
		}
	}
	cplan, _ := ConsistencyPlan(20, 37)
	cp := mt.build(t, cplan)
	r20 := mt.root(t, 20)
	if err := VerifyConsistency(20, 37, cp, r20, root); err != nil {
		t.Fatal(err)
	}
	cbad := append([]Hash(nil), cp...)
	cbad[0][0] ^= 1
	other := r20
	other[0] ^= 1
	for name, err := range map[string]error{
		"flipped proof": VerifyConsistency(20, 37, cbad, r20, root),
		"other root1":   VerifyConsistency(20, 37, cp, other, root),
		"sizes swapped": VerifyConsistency(37, 20, cp, root, r20),
		"empty proof":   VerifyConsistency(20, 37, nil, r20, root),
		"bad empty":     VerifyConsistency(0, 37, nil, other, root),
	} {
		if KindOf(err) != EINVALID {
			t.Errorf("%s: got %v, want an invalid-proof error", name, err)
		}
	}
	if _, err := InclusionPlan(5, 5); KindOf(err) != EINVALID {
		t.Fatal("inclusion plan past the end accepted")
	}
	if _, err := ConsistencyPlan(6, 5); KindOf(err) != EINVALID {
		t.Fatal("consistency plan backwards accepted")
	}
	if _, err := FrontierFrom(5, nil); KindOf(err) != EINVALID {
		t.Fatal("frontier with missing hashes accepted")
	}
}
