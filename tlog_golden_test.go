package registry

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// tlogGolden is testdata/golden/tlog.json: a small log, its roots and
// proofs, and a checkpoint record over it, recomputable from fixed inputs
// (leaf i is the ID of the bytes "golden leaf i"; the key seed is 32 bytes
// of 0x01; the time is goldenTime).
type tlogGolden struct {
	Leaves     []string `json:"leaves_multihash_hex"`
	LeafHashes []string `json:"leaf_hashes_hex"`
	Roots      []string `json:"roots_hex"` // roots[n] = root of the first n leaves
	Inclusion  struct {
		Index uint64   `json:"index"`
		Size  uint64   `json:"size"`
		Proof []string `json:"proof_hex"`
	} `json:"inclusion"`
	Consistency struct {
		First  uint64   `json:"first"`
		Second uint64   `json:"second"`
		Proof  []string `json:"proof_hex"`
	} `json:"consistency"`
	Checkpoint struct {
		Body   string `json:"body_hex"`
		Note   string `json:"note"`
		Record string `json:"record_hex"`
		ID     string `json:"id_base32"`
	} `json:"checkpoint"`
}

func goldenLeaves() []ID {
	out := make([]ID, 7)
	for i := range out {
		out[i] = Sum([]byte(fmt.Sprintf("golden leaf %d", i)))
	}
	return out
}

func hexes(hs []Hash) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.String()
	}
	return out
}

func makeTlogGolden(t testing.TB) tlogGolden {
	var g tlogGolden
	leaves := goldenLeaves()
	mt := newMemTree(leaves)
	for _, id := range leaves {
		g.Leaves = append(g.Leaves, hex.EncodeToString(id[:]))
		g.LeafHashes = append(g.LeafHashes, LeafHash(id).String())
	}
	for n := 0; n <= len(leaves); n++ {
		g.Roots = append(g.Roots, TreeRoot(leaves[:n]).String())
	}
	g.Inclusion.Index, g.Inclusion.Size = 3, 7
	ip, _ := InclusionPlan(3, 7)
	g.Inclusion.Proof = hexes(mt.build(t, ip))
	g.Consistency.First, g.Consistency.Second = 3, 7
	cp, _ := ConsistencyPlan(3, 7)
	g.Consistency.Proof = hexes(mt.build(t, cp))
	k := goldenKey(t, 1)
	body := NewCheckpointBody(k.Public().PeerID(), 0, leaves, TreeRoot(leaves))
	r, err := Sign(k, KindCheckpoint, k.Public().PeerID(), body, goldenTime)
	if err != nil {
		t.Fatal(err)
	}
	g.Checkpoint.Body, g.Checkpoint.Note = hex.EncodeToString(r.Body), body.Note
	g.Checkpoint.Record, g.Checkpoint.ID = hex.EncodeToString(r.Bytes()), r.ID().String()
	return g
}

func TestTlogGoldenVectors(t *testing.T) {
	path := filepath.Join("testdata", "golden", "tlog.json")
	got := makeTlogGolden(t)
	if *update {
		b, _ := json.MarshalIndent(got, "", "  ")
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	var want tlogGolden
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("the log vectors changed:\n got %+v\nwant %+v", got, want)
	}
	// The file's roots agree with the independent implementation.
	leaves := goldenLeaves()
	sd := newSumdbTree(t, leaves)
	for n := 1; n <= len(leaves); n++ {
		h, _ := tlog.TreeHash(int64(n), sd)
		if Hash(h).String() != want.Roots[n] {
			t.Fatalf("golden root %d disagrees with sumdb", n)
		}
	}
	// The checkpoint decodes and verifies from its bytes alone.
	raw, _ := hex.DecodeString(want.Checkpoint.Record)
	r, err := DecodeRecord(raw)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseCheckpoint(r)
	if err != nil || c.Root.String() != want.Roots[7] || c.Size != 7 || r.ID().String() != want.Checkpoint.ID {
		t.Fatalf("golden checkpoint: %+v %v", c, err)
	}
	var proof []Hash
	for _, s := range want.Inclusion.Proof {
		h, _ := ParseHash(s)
		proof = append(proof, h)
	}
	if err := VerifyInclusion(leaves[3], 3, 7, proof, c.Root); err != nil {
		t.Fatal(err)
	}
}

// Adversarial checkpoint bytes: bit flips anywhere in the golden record
// never decode to a different valid checkpoint signed by the same key.
func TestTlogGoldenBitFlips(t *testing.T) {
	raw, _ := hex.DecodeString(makeTlogGolden(t).Checkpoint.Record)
	for i := 0; i < len(raw); i++ {
		b := bytes.Clone(raw)
		b[i] ^= 0x04
		if _, err := DecodeRecord(b); err == nil {
			t.Fatalf("flipping a bit of byte %d still decodes", i)
		}
	}
	if _, err := DecodeRecord(raw[:len(raw)-1]); err == nil {
		t.Fatal("a truncated checkpoint decodes")
	}
}
