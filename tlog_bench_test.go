package registry

import (
	"math/rand/v2"
	"testing"
	"time"
)

// BenchmarkChainAdd measures verifying an author's next 4,096-entry
// checkpoint when its log already holds a million entries (the fast path:
// the checkpoint sorts after all held ones), and re-deriving the whole
// chain (what an out-of-order arrival costs).
func BenchmarkChainAdd(b *testing.B) {
	const per = MaxCheckpointLeaves
	k := goldenKey(b, 1)
	rng := rand.New(rand.NewPCG(1, 1))
	ids := randIDs(rng, 1<<20+per*64)
	f := NewFrontier()
	var cks []*Checkpoint
	for size, ms := 0, int64(1000); size+per <= len(ids); size, ms = size+per, ms+1000 {
		for _, id := range ids[size : size+per] {
			f.Append(id, nil)
		}
		r, err := Sign(k, KindCheckpoint, k.Public().PeerID(), NewCheckpointBody(k.Public().PeerID(), uint64(size), ids[size:size+per], f.Root()), time.UnixMilli(ms))
		if err != nil {
			b.Fatal(err)
		}
		c, _ := ParseCheckpoint(r)
		cks = append(cks, c)
	}
	base := (1 << 20) / per
	ch := NewChain(k.Public())
	for _, c := range cks[:base] {
		ch.Add(c)
	}
	next := base
	b.Run("next-4096", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if next == len(cks) {
				b.StopTimer()
				ch, next = NewChain(k.Public()), base
				for _, c := range cks[:base] {
					ch.Add(c)
				}
				b.StartTimer()
			}
			if d, _ := ch.Add(cks[next]); len(d.Witnessed) != per {
				b.Fatal("checkpoint not accepted")
			}
			next++
		}
	})
	b.Run("rederive-1M", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			Witness(recordsOf(cks[:base]))
		}
	})
}

func recordsOf(cks []*Checkpoint) []*Record {
	out := make([]*Record, len(cks))
	for i, c := range cks {
		out[i] = c.Record
	}
	return out
}
