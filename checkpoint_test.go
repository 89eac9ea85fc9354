package registry

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// signCheckpoint signs a checkpoint of arbitrary content (including wrong
// roots) with k.
func signCheckpoint(t testing.TB, k PrivateKey, prev uint64, leaves []ID, root Hash, ms int64) *Checkpoint {
	t.Helper()
	r, err := Sign(k, KindCheckpoint, k.Public().PeerID(), NewCheckpointBody(k.Public().PeerID(), prev, leaves, root), time.UnixMilli(ms))
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseCheckpoint(r)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// log is an honest author's log: it signs checkpoints over its entries.
type testLog struct {
	k      PrivateKey
	leaves []ID
	size   uint64
}

func (l *testLog) next(t testing.TB, n int, ms int64) *Checkpoint {
	prev := l.size
	l.size += uint64(n)
	return signCheckpoint(t, l.k, prev, l.leaves[prev:l.size], TreeRoot(l.leaves[:l.size]), ms)
}

func TestCheckpointBodyRejectsHostileInput(t *testing.T) {
	k := goldenKey(t, 1)
	other := goldenKey(t, 2)
	ids := randIDs(rand.New(rand.NewPCG(1, 1)), 3)
	good := NewCheckpointBody(k.Public().PeerID(), 0, ids, TreeRoot(ids))
	if _, err := Sign(k, KindCheckpoint, k.Public().PeerID(), good, goldenTime); err != nil {
		t.Fatalf("a good checkpoint is refused: %v", err)
	}
	mod := func(f func(b *CheckpointBody)) *CheckpointBody {
		b := *good
		b.Leaves = slices.Clone(good.Leaves)
		f(&b)
		return &b
	}
	cases := map[string]struct {
		subject string
		body    any
		want    string
	}{
		"subject is another key": {other.Public().PeerID(), NewCheckpointBody(other.Public().PeerID(), 0, ids, TreeRoot(ids)), "author's peer ID"},
		"subject not a peer ID":  {"crate", good, "peer ID"},
		"short root":             {"", mod(func(b *CheckpointBody) { b.Root = b.Root[:31] }), "root must be 32"},
		"size not above prev":    {"", mod(func(b *CheckpointBody) { b.Prev = 3 }), "larger than prev"},
		"leaf count wrong":       {"", mod(func(b *CheckpointBody) { b.Leaves = b.Leaves[:2] }), "leaves for the entries"},
		"leaf not a multihash":   {"", mod(func(b *CheckpointBody) { b.Leaves[1] = []byte{1, 2, 3} }), "leaf 1"},
		"note of another size":   {"", mod(func(b *CheckpointBody) { b.Note = CheckpointNote(k.Public().PeerID(), 4, TreeRoot(ids)) }), "note"},
		"note of another origin": {"", mod(func(b *CheckpointBody) { b.Note = CheckpointNote(other.Public().PeerID(), 3, TreeRoot(ids)) }), "note"},
		"too many leaves":        {"", &CheckpointBody{Size: MaxCheckpointLeaves + 1, Root: good.Root, Leaves: make([][]byte, MaxCheckpointLeaves+1)}, "at most"},
		"unknown field":          {"", map[int]any{1: 3, 2: good.Root, 3: 0, 4: good.Leaves, 9: "x"}, "malformed"},
		"root is text":           {"", map[int]any{1: 3, 2: "root", 3: 0, 4: good.Leaves}, "malformed"},
		"negative size":          {"", map[int]any{1: -3, 2: good.Root, 3: 0, 4: good.Leaves}, "malformed"},
	}
	for name, tc := range cases {
		subject := tc.subject
		if subject == "" {
			subject = k.Public().PeerID()
		}
		_, err := Sign(k, KindCheckpoint, subject, tc.body, goldenTime)
		if KindOf(err) != EINVALID || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an invalid error mentioning %q", name, err, tc.want)
		}
	}
}

func TestCheckpointNoteFormat(t *testing.T) {
	var root Hash
	for i := range root {
		root[i] = byte(i)
	}
	got := CheckpointNote("12D3KooWExample", 42, root)
	want := "wcr/12D3KooWExample\n42\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
	if got != want {
		t.Fatalf("note %q, want %q", got, want)
	}
}

func TestChainWitnessesInOrder(t *testing.T) {
	l := &testLog{k: goldenKey(t, 1), leaves: randIDs(rand.New(rand.NewPCG(5, 5)), 10)}
	ch := NewChain(l.k.Public())
	c1 := l.next(t, 4, 1000)
	d, err := ch.Add(c1)
	if err != nil || len(d.Witnessed) != 4 || len(d.Evidence) != 0 {
		t.Fatalf("first checkpoint: %+v %v", d, err)
	}
	c2 := l.next(t, 6, 2000)
	d, _ = ch.Add(c2)
	if len(d.Witnessed) != 6 || d.Witnessed[0].Index != 4 || d.Witnessed[0].Time != 2000 || d.Witnessed[0].Checkpoint != c2.ID() {
		t.Fatalf("second checkpoint: %+v", d)
	}
	res := ch.Result()
	if res.Times[l.leaves[3]].Time != 1000 || res.Times[l.leaves[9]].Time != 2000 || res.Size != 10 || res.Halt != ^uint64(0) {
		t.Fatalf("result %+v", res)
	}
	if d, _ := ch.Add(c2); !d.Empty() {
		t.Fatal("re-adding a checkpoint changed the chain")
	}
	if _, err := ch.Add(signCheckpoint(t, goldenKey(t, 2), 0, l.leaves[:1], TreeRoot(l.leaves[:1]), 5)); KindOf(err) != EINVALID {
		t.Fatal("a checkpoint by another author was added")
	}
}

func TestChainGapIsPendingUntilFilled(t *testing.T) {
	l := &testLog{k: goldenKey(t, 1), leaves: randIDs(rand.New(rand.NewPCG(6, 6)), 6)}
	c1, c2 := l.next(t, 3, 1000), l.next(t, 3, 2000)
	ch := NewChain(l.k.Public())
	d, _ := ch.Add(c2)
	if len(d.Witnessed) != 0 || ch.Result().Pending != 1 {
		t.Fatalf("a checkpoint after a gap witnessed %+v", d)
	}
	d, _ = ch.Add(c1)
	if len(d.Witnessed) != 6 || ch.Result().Pending != 0 {
		t.Fatalf("filling the gap witnessed %d entries", len(d.Witnessed))
	}
}

func TestChainEquivocation(t *testing.T) {
	k := goldenKey(t, 1)
	ids := randIDs(rand.New(rand.NewPCG(7, 7)), 12)
	alt := randIDs(rand.New(rand.NewPCG(8, 8)), 12)
	base := signCheckpoint(t, k, 0, ids[:4], TreeRoot(ids[:4]), 1000)
	type step struct {
		ck *Checkpoint
	}
	cases := map[string]struct {
		later   *Checkpoint
		reason  string
		witness int // entries witnessed afterwards
	}{
		"fork: same size, other leaves": {
			signCheckpoint(t, k, 4, alt[4:8], TreeRoot(append(slices.Clone(ids[:4]), alt[4:8]...)), 2500), ReasonFork, 4},
		"inconsistent root": {
			signCheckpoint(t, k, 4, ids[4:10], TreeRoot(alt[:10]), 3000), ReasonInconsistent, 8},
		"backdated": {
			signCheckpoint(t, k, 8, ids[8:10], TreeRoot(ids[:10]), 1500), ReasonBackdated, 8},
		"repeated leaf": {
			signCheckpoint(t, k, 8, []ID{ids[8], ids[2]}, TreeRoot(append(slices.Clone(ids[:9]), ids[2])), 3000), ReasonRepeat, 8},
		"overlap disagrees": {
			signCheckpoint(t, k, 4, append(slices.Clone(ids[4:7]), alt[7], ids[8], ids[9]), TreeRoot(append(append(slices.Clone(ids[:7]), alt[7]), ids[8:10]...)), 3000), ReasonInconsistent, 4},
	}
	mid := signCheckpoint(t, k, 4, ids[4:8], TreeRoot(ids[:8]), 2000)
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			for _, order := range [][]*Checkpoint{{base, mid, tc.later}, {tc.later, mid, base}, {mid, tc.later, base}} {
				ch := NewChain(k.Public())
				var evs []Evidence
				for _, c := range order {
					d, _ := ch.Add(c)
					evs = append(evs, d.Evidence...)
				}
				res := ch.Result()
				if len(res.Evidence) != 1 || res.Evidence[0].Reason != tc.reason || !slices.Contains([]ID{res.Evidence[0].A, res.Evidence[0].B}, tc.later.ID()) {
					t.Fatalf("evidence %+v, want one %s naming the later checkpoint", res.Evidence, tc.reason)
				}
				if len(res.Times) != tc.witness {
					t.Fatalf("%d entries witnessed, want %d", len(res.Times), tc.witness)
				}
				if len(evs) == 0 {
					t.Fatal("no Add reported the evidence")
				}
			}
		})
	}
}

// Random chains by several authors, with duplicates, forks, backdating and
// gaps, give the same witnessed state in any arrival order, and the deltas
// of the incremental verifier add up to it.
func TestWitnessAnyOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for round := 0; round < 60; round++ {
		var recs []*Record
		for a := byte(1); a <= 3; a++ {
			k := goldenKey(t, a)
			ids := randIDs(rng, 40)
			size, ms := uint64(0), int64(1000)
			for size < 40 {
				n := uint64(1 + rng.IntN(6))
				if size+n > 40 {
					n = 40 - size
				}
				ms += int64(rng.IntN(100))
				c := signCheckpoint(t, k, size, ids[size:size+n], TreeRoot(ids[:size+n]), ms)
				recs = append(recs, c.Record)
				switch rng.IntN(12) {
				case 0: // a fork at the same size
					alt := slices.Clone(ids[:size+n])
					alt[size] = Sum([]byte{byte(rng.Uint32())})
					recs = append(recs, signCheckpoint(t, k, size, alt[size:], TreeRoot(alt), ms+1).Record)
				case 1: // a backdated extension
					if size+n < 40 {
						recs = append(recs, signCheckpoint(t, k, size+n, ids[size+n:size+n+1], TreeRoot(ids[:size+n+1]), ms-50).Record)
					}
				case 2: // a redundant overlapping checkpoint
					if size > 0 {
						recs = append(recs, signCheckpoint(t, k, 0, ids[:size+n], TreeRoot(ids[:size+n]), ms+2).Record)
					}
				case 3: // a duplicate delivery
					recs = append(recs, c.Record)
				}
				size += n
			}
			if rng.IntN(3) == 0 { // a gap: drop one checkpoint
				i := rng.IntN(len(recs))
				recs = slices.Delete(recs, i, i+1)
			}
		}
		want := Witness(recs)
		for perm := 0; perm < 4; perm++ {
			shuffled := slices.Clone(recs)
			rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			if got := Witness(shuffled); !reflect.DeepEqual(got, want) {
				t.Fatalf("round %d: Witness depends on order", round)
			}
			chains := map[string]*Chain{}
			times := map[string]map[ID]Witnessed{}
			evs := map[string]map[[3]string]bool{}
			for _, r := range shuffled {
				c, err := ParseCheckpoint(r)
				if err != nil {
					t.Fatal(err)
				}
				p := r.Author.PeerID()
				if chains[p] == nil {
					chains[p], times[p], evs[p] = NewChain(r.Author), map[ID]Witnessed{}, map[[3]string]bool{}
				}
				d, _ := chains[p].Add(c)
				for _, w := range d.Witnessed {
					times[p][w.ID] = w
				}
				for _, id := range d.Unwitnessed {
					delete(times[p], id)
				}
				for _, e := range d.Withdrawn {
					delete(evs[p], evKey(e))
				}
				for _, e := range d.Evidence {
					evs[p][evKey(e)] = true
				}
			}
			for p, ch := range chains {
				if got := ch.Result(); !reflect.DeepEqual(got, want[p]) {
					t.Fatalf("round %d: incremental result for %s differs from Witness:\n%+v\n%+v", round, p, got.Evidence, want[p].Evidence)
				}
				if !reflect.DeepEqual(times[p], want[p].Times) {
					t.Fatalf("round %d: deltas do not add up to the witnessed times", round)
				}
				if len(evs[p]) != len(want[p].Evidence) {
					t.Fatalf("round %d: deltas add up to %d pieces of evidence, not %d", round, len(evs[p]), len(want[p].Evidence))
				}
				for _, e := range want[p].Evidence {
					if !evs[p][evKey(e)] {
						t.Fatalf("round %d: deltas miss evidence %+v", round, e)
					}
				}
			}
		}
	}
}

// The head's fast path gives exactly what the whole chain gives, whenever
// it applies, and declines everything else.
func TestChainHeadAgreesWithChain(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 11))
	applied := 0
	for round := 0; round < 200; round++ {
		k := goldenKey(t, 1)
		ids := randIDs(rng, 30)
		ch := NewChain(k.Public())
		head := NewChainHead()
		size, ms := uint64(0), int64(1000)
		for step := 0; step < 12 && size < 30; step++ {
			n := min(uint64(1+rng.IntN(4)), 30-size)
			ms += int64(rng.IntN(50)) - 10
			leaves := slices.Clone(ids[size : size+n])
			prev := size
			root := TreeRoot(ids[:size+n])
			switch rng.IntN(8) {
			case 0:
				leaves[0] = ids[rng.IntN(int(size+1))] // maybe a repeat
				root = TreeRoot(append(slices.Clone(ids[:size]), leaves...))
			case 1:
				root[0] ^= 1
			case 2:
				if size > 0 {
					prev = size - 1
					leaves = append([]ID{ids[size-1]}, leaves...)
				}
			}
			c := signCheckpoint(t, k, prev, leaves, root, ms)
			has := func(id ID) (bool, error) { _, ok := ch.pos[id]; return ok, nil }
			next, wit, ok, err := head.Extend(c, has)
			if err != nil {
				t.Fatal(err)
			}
			d, _ := ch.Add(c)
			if ok {
				applied++
				if !reflect.DeepEqual(next, ch.Summary()) || !reflect.DeepEqual(wit, d.Witnessed) || len(d.Evidence) != 0 {
					t.Fatalf("round %d step %d: the head's fast path disagrees with the chain", round, step)
				}
			}
			head = ch.Summary()
			size = ch.Size()
			if ch.Halted() {
				break
			}
		}
	}
	if applied < 100 {
		t.Fatalf("the fast path applied only %d times", applied)
	}
}
