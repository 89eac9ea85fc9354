package registry

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// Transparency log trees (DESIGN.md §2 "Authority and time").
//
// A node's log is an append-only sequence of record IDs hashed into an
// RFC 9162 (RFC 6962) Merkle tree: the leaf bytes of a record are its ID's
// multihash bytes (34 bytes), leaf hash = SHA-256(0x00 ‖ leaf), node hash =
// SHA-256(0x01 ‖ left ‖ right), and the root of the empty tree is
// SHA-256(""). Never change any of these: roots are signed in checkpoints.

// Hash is a Merkle tree hash (SHA-256).
type Hash [sha256Size]byte

// MarshalText renders a hash as lowercase hex.
func (h Hash) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h[:])), nil }

// UnmarshalText parses 64 hex digits.
func (h *Hash) UnmarshalText(b []byte) error {
	v, err := ParseHash(string(b))
	if err != nil {
		return err
	}
	*h = v
	return nil
}

// String returns the hex form.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// ParseHash parses a hash written as 64 hex digits.
func ParseHash(s string) (Hash, error) {
	var h Hash
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(h) {
		return h, Errorf("registry.ParseHash", EINVALID, "%s is not a tree hash (64 hex digits)", quoteShort(s))
	}
	copy(h[:], b)
	return h, nil
}

func hashOf(b []byte) Hash {
	var h Hash
	copy(h[:], b)
	return h
}

var (
	treeHasher   = rfc6962.DefaultHasher
	rangeFactory = &compact.RangeFactory{Hash: treeHasher.HashChildren}
)

// LeafHash returns the tree hash of a record ID as a log leaf.
func LeafHash(id ID) Hash { return hashOf(treeHasher.HashLeaf(id[:])) }

// NodeHash returns the hash of an interior node from its children.
func NodeHash(left, right Hash) Hash { return hashOf(treeHasher.HashChildren(left[:], right[:])) }

// EmptyRoot is the root hash of the tree of size 0.
func EmptyRoot() Hash { return sha256.Sum256(nil) }

// TreeRoot returns the root hash of the tree whose leaves are ids, in order.
func TreeRoot(ids []ID) Hash {
	f := NewFrontier()
	for _, id := range ids {
		f.Append(id, nil)
	}
	return f.Root()
}

// TreeNode names a perfect subtree: the node at Level (0 = leaves) whose
// leaves are [Index·2^Level, (Index+1)·2^Level).
type TreeNode struct {
	Level uint8
	Index uint64
}

// Frontier is the compact range of a tree's prefix [0, Size): the roots of
// the perfect subtrees that cover it, left to right (at most 64). It is
// enough to append leaves and compute the root without the leaves
// themselves. The zero value is not usable; use NewFrontier or
// FrontierFrom.
type Frontier struct{ r *compact.Range }

// NewFrontier returns the frontier of the empty tree.
func NewFrontier() *Frontier { return &Frontier{r: rangeFactory.NewEmptyRange(0)} }

// FrontierFrom rebuilds the frontier of a tree of size from its perfect
// subtree roots, as Hashes returned them.
func FrontierFrom(size uint64, hashes []Hash) (*Frontier, error) {
	hs := make([][]byte, len(hashes))
	for i := range hashes {
		hs[i] = append([]byte(nil), hashes[i][:]...)
	}
	r, err := rangeFactory.NewRange(0, size, hs)
	if err != nil {
		return nil, E("registry.FrontierFrom", EINVALID, "not the compact range of a tree", err)
	}
	return &Frontier{r: r}, nil
}

// FrontierNodes lists the perfect subtrees whose roots make the frontier of
// a tree of size, left to right.
func FrontierNodes(size uint64) []TreeNode {
	return toTreeNodes(compact.RangeNodes(0, size, nil))
}

// Size returns the number of leaves.
func (f *Frontier) Size() uint64 { return f.r.End() }

// Hashes returns the roots of the covering perfect subtrees, left to right.
func (f *Frontier) Hashes() []Hash {
	out := make([]Hash, len(f.r.Hashes()))
	for i, h := range f.r.Hashes() {
		out[i] = hashOf(h)
	}
	return out
}

// Clone returns an independent copy.
func (f *Frontier) Clone() *Frontier {
	g, _ := FrontierFrom(f.Size(), f.Hashes())
	return g
}

// Append adds a leaf. visit, when not nil, is called for every perfect
// subtree root the append completes (the leaf itself first), which is what
// a store keeps to serve proofs.
func (f *Frontier) Append(id ID, visit func(n TreeNode, h Hash)) {
	var v compact.VisitFn
	if visit != nil {
		v = func(n compact.NodeID, h []byte) { visit(TreeNode{Level: uint8(n.Level), Index: n.Index}, hashOf(h)) }
	}
	// Append fails only for ranges of other factories.
	if err := f.r.Append(treeHasher.HashLeaf(id[:]), v); err != nil {
		panic(err)
	}
}

// Root returns the root hash of the tree.
func (f *Frontier) Root() Hash {
	h, err := f.r.GetRootHash(nil)
	if err != nil || h == nil {
		return EmptyRoot()
	}
	return hashOf(h)
}

func toTreeNodes(ids []compact.NodeID) []TreeNode {
	out := make([]TreeNode, len(ids))
	for i, n := range ids {
		out[i] = TreeNode{Level: uint8(n.Level), Index: n.Index}
	}
	return out
}

// ProofPlan says which perfect subtree roots make a proof and how to
// combine them (RFC 9162 §2.1.3, §2.1.4). A store fetches the hashes of
// Nodes, in order, and passes them to Build.
type ProofPlan struct{ n proof.Nodes }

// InclusionPlan plans the inclusion proof of leaf index in the tree of
// size; EINVALID unless index < size.
func InclusionPlan(index, size uint64) (ProofPlan, error) {
	n, err := proof.Inclusion(index, size)
	if err != nil {
		return ProofPlan{}, E("registry.InclusionPlan", EINVALID, "", err)
	}
	return ProofPlan{n}, nil
}

// ConsistencyPlan plans the consistency proof from the tree of size1 to the
// tree of size2; EINVALID unless size1 ≤ size2.
func ConsistencyPlan(size1, size2 uint64) (ProofPlan, error) {
	n, err := proof.Consistency(size1, size2)
	if err != nil {
		return ProofPlan{}, E("registry.ConsistencyPlan", EINVALID, "", err)
	}
	return ProofPlan{n}, nil
}

// Nodes lists the subtree roots the proof is built from.
func (p ProofPlan) Nodes() []TreeNode { return toTreeNodes(p.n.IDs) }

// Build turns the hashes of Nodes (same order) into the proof.
func (p ProofPlan) Build(hashes []Hash) ([]Hash, error) {
	hs := make([][]byte, len(hashes))
	for i := range hashes {
		hs[i] = append([]byte(nil), hashes[i][:]...)
	}
	out, err := p.n.Rehash(hs, treeHasher.HashChildren)
	if err != nil {
		return nil, E("registry.ProofPlan.Build", EINTERNAL, "", err)
	}
	res := make([]Hash, len(out))
	for i, h := range out {
		res[i] = hashOf(h)
	}
	return res, nil
}

func hashSlices(p []Hash) [][]byte {
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = p[i][:]
	}
	return out
}

// VerifyInclusion checks that id is leaf index of the tree of size whose
// root is root (RFC 9162 §2.1.3.2). A failed check is EINVALID with a
// sentence that says so.
func VerifyInclusion(id ID, index, size uint64, p []Hash, root Hash) error {
	return VerifyInclusionHash(LeafHash(id), index, size, p, root)
}

// VerifyInclusionHash is VerifyInclusion for a leaf given by its hash.
func VerifyInclusionHash(leaf Hash, index, size uint64, p []Hash, root Hash) error {
	if err := proof.VerifyInclusion(treeHasher, index, size, leaf[:], hashSlices(p), root[:]); err != nil {
		return E("registry.VerifyInclusion", EINVALID, "the inclusion proof does not verify", err)
	}
	return nil
}

// VerifyConsistency checks that the tree of size1 with root1 is a prefix of
// the tree of size2 with root2 (RFC 9162 §2.1.4.2).
func VerifyConsistency(size1, size2 uint64, p []Hash, root1, root2 Hash) error {
	if size1 == 0 && root1 != EmptyRoot() {
		return Errorf("registry.VerifyConsistency", EINVALID, "the root of an empty tree must be %s", EmptyRoot())
	}
	if err := proof.VerifyConsistency(treeHasher, size1, size2, hashSlices(p), root1[:], root2[:]); err != nil {
		return E("registry.VerifyConsistency", EINVALID, "the consistency proof does not verify", err)
	}
	return nil
}
