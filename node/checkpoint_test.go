package node

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/internal/testkit"
)

func devRecords(t testing.TB, n int, at time.Time) [][]byte {
	t.Helper()
	k := testkit.Key(7)
	out := make([][]byte, n)
	for i := range out {
		r, err := registry.Sign(k, registry.KindYank, fmt.Sprintf("crate%d@1.0.0", i), &registry.YankBody{Yanked: true}, at.Add(time.Duration(i)*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		out[i] = r.Bytes()
	}
	return out
}

// A node with 10k records signs checkpoints over all of them, stops when
// only its own checkpoints are new, and after a restart its proofs still
// verify against the checkpoints it signed.
func TestCheckpointsCoverTheLogAndSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	var clock atomic.Int64
	clock.Store(time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC).UnixMilli())
	now := func() time.Time { return time.UnixMilli(clock.Load()) }
	// The 10,001 records come from one untrusted key: more than an author's
	// default quota, which this test is not about.
	cfg := Config{DataDir: dir, Announce: io.Discard, Now: now, Quotas: Quotas{AuthorCount: 1 << 40}}
	n, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	raw := devRecords(t, 10000, now().Add(-time.Hour))
	var recs []*registry.Record
	for i := 0; i < len(raw); i += 2500 {
		got, err := n.Ingest(ctx, "t", raw[i:i+2500])
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, got...)
	}
	cks, err := n.SignCheckpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// 10000 entries, at most 4096 per checkpoint, each checkpoint logged
	// before the next is signed: [0,4096) [4096,8192) [8192,10002).
	if len(cks) != 3 {
		t.Fatalf("%d checkpoints, want 3", len(cks))
	}
	var parsed []*registry.Checkpoint
	for i, r := range cks {
		c, err := registry.ParseCheckpoint(r)
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && (c.Prev != parsed[i-1].Size || c.Time() <= parsed[i-1].Time()) {
			t.Fatalf("checkpoint %d does not follow the previous one", i)
		}
		parsed = append(parsed, c)
	}
	if last := parsed[2]; last.Size != 10002 || last.Leaves[len(last.Leaves)-1] != cks[1].ID() {
		t.Fatalf("last checkpoint has size %d", last.Size)
	}
	again, err := n.SignCheckpoints(ctx)
	if err != nil || len(again) != 0 {
		t.Fatalf("an idle node signed %d more checkpoints (%v)", len(again), err)
	}
	wt, err := n.WitnessTimes(recs[5000].ID())
	if err != nil || len(wt) != 1 || !wt[0].Author.Equal(n.PublicKey()) || wt[0].Time != cks[1].Time {
		t.Fatalf("witnessed time of record 5000: %+v %v", wt, err)
	}

	// The clock steps back: the next checkpoint is still later.
	clock.Add(-int64(time.Hour / time.Millisecond))
	if _, err := n.Ingest(ctx, "t", devRecords(t, 10001, now().Add(-time.Hour))[10000:]); err != nil {
		t.Fatal(err)
	}
	more, err := n.SignCheckpoints(ctx)
	if err != nil || len(more) != 1 || more[0].Time != cks[2].Time+1 {
		t.Fatalf("after the clock stepped back: %d checkpoints, %v", len(more), err)
	}
	n.Close()

	n, err = Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	head, err := n.LogCheckpoint()
	if err != nil || head.ID() != more[0].ID() {
		t.Fatalf("head after restart: %v", err)
	}
	for _, i := range []int{0, 1, 4095, 4096, 7777, 9999} {
		idx, size, p, root, err := n.InclusionProof(recs[i].ID(), parsed[2].Size)
		if err != nil || size != parsed[2].Size || root != parsed[2].Root {
			t.Fatalf("inclusion of %d: %v", i, err)
		}
		if err := registry.VerifyInclusion(recs[i].ID(), idx, size, p, parsed[2].Root); err != nil {
			t.Fatalf("record %d against the signed checkpoint: %v", i, err)
		}
	}
	p, ra, rb, err := n.ConsistencyProof(parsed[0].Size, head.Size)
	if err != nil || ra != parsed[0].Root || rb != head.Root {
		t.Fatalf("consistency: %v", err)
	}
	if err := registry.VerifyConsistency(parsed[0].Size, head.Size, p, parsed[0].Root, head.Root); err != nil {
		t.Fatal(err)
	}
	if again, _ := n.SignCheckpoints(ctx); len(again) != 0 {
		t.Fatalf("a restarted idle node signed %d checkpoints", len(again))
	}
}

// The signer loop checkpoints new records on its own, then goes quiet.
func TestCheckpointLoopStopsWhenIdle(t *testing.T) {
	n, err := Open(context.Background(), Config{DataDir: t.TempDir(), Announce: io.Discard, CheckpointInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	recs, err := n.Ingest(context.Background(), "t", devRecords(t, 20, time.Now().Add(-time.Minute)))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if wt, _ := n.WitnessTimes(recs[19].ID()); len(wt) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the signer loop never covered the new records")
		}
		time.Sleep(10 * time.Millisecond)
	}
	size, _ := n.LogHead()
	time.Sleep(200 * time.Millisecond) // twenty intervals
	if s, _ := n.LogHead(); s != size {
		t.Fatalf("an idle node went on signing: log %d → %d", size, s)
	}
}
