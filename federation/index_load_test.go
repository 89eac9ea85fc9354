package federation

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestIndexLoadedInOrderMatchesAdd: an index loaded from a store's keys in
// order (appendSorted; with some keys repeated or out of order, as a
// hostile or damaged store could give them) answers every range like one
// built by add, stays correct under later adds and removes, and its
// blocks are full, not half empty.
func TestIndexLoadedInOrderMatchesAdd(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	for _, n := range []int{0, 1, 2 * indexBlock, 2*indexBlock + 1, 20000} {
		var all []key
		for range n {
			all = append(all, randomKey(rng, 1<<30))
		}
		slices.SortFunc(all, key.compare)
		loaded, built := newIndex(), newIndex()
		feed := slices.Clone(all)
		if n > 10 {
			feed = slices.Insert(feed, n/2, all[n/3], all[0]) // repeated, out of order
		}
		for _, k := range feed {
			loaded.appendSorted(k)
			built.add(k)
		}
		all = slices.CompactFunc(all, func(a, b key) bool { return a.compare(b) == 0 })
		if loaded.count() != len(all) || loaded.fingerprint() != built.fingerprint() {
			t.Fatalf("n=%d: loaded %d keys, want %d", n, loaded.count(), len(all))
		}
		if n >= 20000 && len(loaded.blocks) > len(all)/(2*indexBlock)+2 {
			t.Fatalf("n=%d: %d blocks for %d keys; blocks are not full", n, len(loaded.blocks), len(all))
		}
		check := func(when string) {
			for range 200 {
				lo, hi := randomBound(rng, all, 1<<30), randomBound(rng, all, 1<<30)
				if lo.compare(hi) > 0 {
					lo, hi = hi, lo
				}
				want, in := bruteFP(all, lo, hi)
				if got := loaded.rangeFP(lo, hi); got != want {
					t.Fatalf("n=%d %s: range fingerprint differs", n, when)
				}
				if got := loaded.keys(lo, hi, len(in)+1); !slices.Equal(got, in) {
					t.Fatalf("n=%d %s: keys of a range differ: %d, want %d", n, when, len(got), len(in))
				}
			}
		}
		check("after loading")
		for range 300 {
			k := randomKey(rng, 1<<30)
			loaded.add(k)
			i, found := slices.BinarySearchFunc(all, k, key.compare)
			if !found {
				all = slices.Insert(all, i, k)
			}
			if len(all) > 0 && rng.IntN(3) == 0 {
				j := rng.IntN(len(all))
				loaded.remove(all[j])
				all = slices.Delete(all, j, j+1)
			}
		}
		check("after adds and removes")
	}
}
