package federation

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"testing"

	registry "github.com/wasmrust/wasm-crates-registry"
)

func randomKey(rng *rand.Rand, times int) key {
	var k key
	k.t = 1 + rng.Int64N(int64(times))
	k.id[0], k.id[1] = 0x12, 0x20
	for i := 2; i < len(k.id); i++ {
		k.id[i] = byte(rng.UintN(256))
	}
	return k
}

func bruteFP(ks []key, lo, hi key) (registry.Fingerprint, []key) {
	var fp registry.Fingerprint
	var in []key
	for _, k := range ks {
		if k.compare(lo) >= 0 && k.compare(hi) < 0 {
			fp.Add(k.id)
			in = append(in, k)
		}
	}
	return fp, in
}

// TestIndexAgainstBruteForce checks range fingerprints, key listing and
// splitting against a sorted slice, across block splits.
func TestIndexAgainstBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, tc := range []struct{ n, times int }{{0, 10}, {1, 10}, {37, 5}, {3000, 100}, {5000, 1 << 40}} {
		x := newIndex()
		var all []key
		for range tc.n {
			k := randomKey(rng, tc.times)
			if !x.add(k) {
				t.Fatalf("add of a new key reported it as held")
			}
			all = append(all, k)
		}
		for _, k := range all[:min(len(all), 20)] {
			if x.add(k) {
				t.Fatalf("second add of %v reported it as new", k)
			}
			if !x.has(k) {
				t.Fatalf("has(%v) = false after add", k)
			}
		}
		if x.has(randomKey(rng, tc.times)) && tc.n < 100 {
			t.Fatalf("has reports a key that was never added")
		}
		slices.SortFunc(all, key.compare)
		if got, want := x.fingerprint(), fingerprintOfKeys(all); got != want {
			t.Fatalf("n=%d: whole fingerprint differs", tc.n)
		}
		for range 200 {
			lo, hi := randomBound(rng, all, tc.times), randomBound(rng, all, tc.times)
			if lo.compare(hi) > 0 {
				lo, hi = hi, lo
			}
			wantFP, wantKeys := bruteFP(all, lo, hi)
			if got := x.rangeFP(lo, hi); got != wantFP {
				t.Fatalf("n=%d: rangeFP(%v, %v) count %d, want %d", tc.n, lo.t, hi.t, got.Count, wantFP.Count)
			}
			if got := x.keys(lo, hi, -1); !slices.Equal(got, wantKeys) {
				t.Fatalf("n=%d: keys(%v, %v) = %d keys, want %d", tc.n, lo.t, hi.t, len(got), len(wantKeys))
			}
			if n := len(wantKeys); n > 1 {
				parts := 1 + rng.IntN(min(n, 16))
				bounds, fps := x.splitRange(lo, hi, n, parts)
				if len(bounds) != parts || bounds[len(bounds)-1] != hi {
					t.Fatalf("splitRange gave %d bounds ending at %v, want %d ending at hi", len(bounds), bounds[len(bounds)-1], parts)
				}
				prev := lo
				total := 0
				for i, b := range bounds {
					want, in := bruteFP(all, prev, b)
					if fps[i] != want || len(in) == 0 {
						t.Fatalf("split part %d of %d: %d keys, want %d (non-empty)", i, parts, fps[i].Count, len(in))
					}
					total += len(in)
					prev = b
				}
				if total != n {
					t.Fatalf("split parts hold %d keys, want %d", total, n)
				}
			}
		}
	}
}

func fingerprintOfKeys(ks []key) registry.Fingerprint {
	var fp registry.Fingerprint
	for _, k := range ks {
		fp.Add(k.id)
	}
	return fp
}

// randomBound returns a bound that is sometimes a held key, sometimes a
// minimal bound between neighbours, sometimes an extreme.
func randomBound(rng *rand.Rand, all []key, times int) key {
	switch r := rng.IntN(10); {
	case r == 0:
		return minKey
	case r == 1:
		return infKey
	case r < 5 && len(all) > 0:
		return all[rng.IntN(len(all))]
	case r < 8 && len(all) > 1:
		i := 1 + rng.IntN(len(all)-1)
		return minimalBound(all[i-1], all[i])
	default:
		return randomKey(rng, times)
	}
}

func TestMinimalBound(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 10000 {
		a, b := randomKey(rng, 3), randomKey(rng, 3)
		if rng.IntN(3) == 0 {
			b.t = a.t
			copy(b.id[:], a.id[:2+rng.IntN(30)])
		}
		c := a.compare(b)
		if c == 0 {
			continue
		}
		if c > 0 {
			a, b = b, a
		}
		m := minimalBound(a, b)
		if !(a.compare(m) < 0 && m.compare(b) <= 0) {
			t.Fatalf("minimalBound(%x, %x) = %x is not in (a, b]", a.id, b.id, m.id)
		}
		if a.t != b.t && boundPrefixLen(m) != 0 {
			t.Fatalf("bound between different times carries ID bytes")
		}
	}
	if cmp.Compare(minKey.t, 1) >= 0 || !infKey.isInf() {
		t.Fatal("extreme bounds are wrong")
	}
}

func BenchmarkIndexRangeFP(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	x := newIndex()
	var all []key
	for range 100000 {
		k := randomKey(rng, 1<<40)
		x.add(k)
		all = append(all, k)
	}
	slices.SortFunc(all, key.compare)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		lo := all[i%len(all)]
		x.rangeFP(lo, infKey)
	}
}
