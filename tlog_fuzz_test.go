package registry

import (
	"encoding/hex"
	"testing"
)

// FuzzCheckpointBody: whatever body bytes decode as a checkpoint body
// re-encode to the same bytes, and a valid one can be signed and parsed.
func FuzzCheckpointBody(f *testing.F) {
	g := makeTlogGolden(f)
	b, _ := hex.DecodeString(g.Checkpoint.Body)
	f.Add(b)
	f.Add([]byte{0xa0})
	f.Add([]byte{0xa4, 0x01, 0x01, 0x02, 0x40, 0x03, 0x00, 0x04, 0x80})
	k := goldenKey(f, 1)
	subject := k.Public().PeerID()
	f.Fuzz(func(t *testing.T, b []byte) {
		var body CheckpointBody
		if err := Unmarshal(b, &body); err != nil {
			return
		}
		if err := body.validate(subject); err != nil {
			if KindOf(err) == EINTERNAL {
				t.Fatalf("internal error on bad input: %v", err)
			}
			return
		}
		r, err := Sign(k, KindCheckpoint, subject, &body, goldenTime)
		if err != nil {
			t.Fatalf("a valid body cannot be signed: %v", err)
		}
		if string(r.Body) != string(b) {
			t.Fatal("the signed body differs from the decoded bytes")
		}
		c, err := ParseCheckpoint(r)
		if err != nil || c.Size != body.Size || uint64(len(c.Leaves)) != c.Size-c.Prev {
			t.Fatalf("parse: %v", err)
		}
	})
}

// FuzzVerifyInclusion: a proof verifies only when it is the tree's real
// proof for that leaf, index and size; nothing panics.
func FuzzVerifyInclusion(f *testing.F) {
	leaves := goldenLeaves()
	mt := newMemTree(leaves)
	f.Add(uint64(3), uint64(7), []byte{})
	f.Add(uint64(0), uint64(1), make([]byte, 32))
	f.Add(uint64(1<<63), uint64(1<<63+1), make([]byte, 64))
	f.Fuzz(func(t *testing.T, index, size uint64, raw []byte) {
		var proof []Hash
		for len(raw) >= 32 && len(proof) < 70 {
			var h Hash
			copy(h[:], raw)
			proof = append(proof, h)
			raw = raw[32:]
		}
		var root Hash
		var leaf ID
		if size >= 1 && size <= 7 && index < size {
			root, leaf = mt.root(t, size), leaves[index]
		}
		if VerifyInclusion(leaf, index, size, proof, root) != nil {
			return
		}
		if size < 1 || size > 7 || index >= size {
			t.Fatalf("a proof for leaf %d of a tree of size %d verified against a root no tree has", index, size)
		}
		plan, _ := InclusionPlan(index, size)
		want := mt.build(t, plan)
		if len(want) != len(proof) {
			t.Fatal("a proof of the wrong length verified")
		}
		for i := range want {
			if want[i] != proof[i] {
				t.Fatal("a forged proof verified")
			}
		}
	})
}

// FuzzVerifyConsistency: random consistency proofs never verify between
// roots of two trees of the golden log unless they are the real proof.
func FuzzVerifyConsistency(f *testing.F) {
	leaves := goldenLeaves()
	mt := newMemTree(leaves)
	f.Add(uint64(3), uint64(7), []byte{})
	f.Add(uint64(0), uint64(0), []byte{})
	f.Fuzz(func(t *testing.T, a, b uint64, raw []byte) {
		var proof []Hash
		for len(raw) >= 32 && len(proof) < 70 {
			var h Hash
			copy(h[:], raw)
			proof = append(proof, h)
			raw = raw[32:]
		}
		if a > 7 || b > 7 {
			_ = VerifyConsistency(a, b, proof, Hash{}, Hash{})
			return
		}
		ra, rb := mt.root(t, a), mt.root(t, b)
		if a == 0 {
			ra = EmptyRoot()
		}
		if b == 0 {
			rb = EmptyRoot()
		}
		if VerifyConsistency(a, b, proof, ra, rb) != nil || a > b {
			if a > b && VerifyConsistency(a, b, proof, ra, rb) == nil {
				t.Fatal("a backwards consistency proof verified")
			}
			return
		}
		plan, _ := ConsistencyPlan(a, b)
		want := mt.build(t, plan)
		if len(want) != len(proof) {
			t.Fatal("a consistency proof of the wrong length verified")
		}
		for i := range want {
			if want[i] != proof[i] {
				t.Fatal("a forged consistency proof verified")
			}
		}
	})
}
