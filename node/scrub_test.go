package node

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/federation"
)

// flipRecordOnDisk opens a closed node's Badger database directly and
// flips one bit of the stored value of record id (the store's record table
// is 'r' ‖ ID).
func flipRecordOnDisk(t *testing.T, dir string, id registry.ID) {
	t.Helper()
	bdb, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithSyncWrites(true))
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	k := append([]byte{'r'}, id[:]...)
	err = bdb.Update(func(txn *badger.Txn) error {
		it, err := txn.Get(k)
		if err != nil {
			return err
		}
		v, err := it.ValueCopy(nil)
		if err != nil {
			return err
		}
		v[len(v)/2] ^= 0x10
		return txn.Set(k, v)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestVerifyQuarantinesAndPeersRepair (DESIGN.md §2 "Bounded by design":
// records are re-verified): a bit flipped on disk in one record of a
// closed node is reported by verify for exactly that record, which is then
// no longer served, /health shows the result, and reconciliation fetches
// the intact copy back from a peer, so the two nodes' digests match again.
func TestVerifyQuarantinesAndPeersRepair(t *testing.T) {
	ctx := context.Background()
	a := openFederated(t, t.TempDir(), Quotas{}, federation.Limits{})
	dirB := t.TempDir()
	b := openFederated(t, dirB, Quotas{}, federation.Limits{})
	var ids []registry.ID
	for _, v := range []string{"1.0.0", "1.1.0"} {
		rel, _, err := a.Submit(ctx, "test", crateBytes(t, "rot", v))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, rel.ID)
	}
	if _, err := b.AddPeer(ctx, "test", a.net.Addrs()[0], true); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "b to hold a's records", func() bool { return b.State().Digest == a.State().Digest })
	victim := ids[1]
	b.Close()
	flipRecordOnDisk(t, dirB, victim)

	b = openFederated(t, dirB, Quotas{}, federation.Limits{})
	rep, err := b.Verify(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Damaged) != 1 || rep.Damaged[0].Kind != "record" || rep.Damaged[0].ID != victim.String() {
		t.Fatalf("verify reported %+v, want exactly record %s", rep.Damaged, victim)
	}
	if rep.Records != a.State().Records || !rep.Complete {
		t.Errorf("verify checked %d records (complete %v), want %d", rep.Records, rep.Complete, a.State().Records)
	}
	if _, err := b.db.GetRecord(victim); registry.KindOf(err) != registry.ENOTFOUND {
		t.Errorf("the damaged record is still served: %v", err)
	}
	h := b.Health(ctx)
	if h.Scrub == nil || h.Scrub.Damaged != 1 || h.Scrub.Trigger != "api" {
		t.Errorf("health scrub = %+v, want one damaged item from an api run", h.Scrub)
	}
	last, err := b.LastVerify()
	if err != nil || len(last.Damaged) != 1 {
		t.Errorf("last verification: %+v, %v", last, err)
	}
	// No explicit sync: quarantine marks the peers for reconciliation.
	eventually(t, 15*time.Second, "the intact record to come back from the peer", func() bool {
		r, err := b.db.GetRecord(victim)
		return err == nil && r.ID() == victim && b.State().Digest == a.State().Digest
	})
	again, err := b.Verify(ctx, "test")
	if err != nil || len(again.Damaged) != 0 {
		t.Fatalf("verify after the repair: %+v, %v", again, err)
	}
}

// TestPeriodicScrubRuns: with a scrub interval set, the node re-verifies
// its store by itself and /health shows the result.
func TestPeriodicScrubRuns(t *testing.T) {
	n, err := Open(context.Background(), Config{DataDir: t.TempDir(), Announce: io.Discard, ScrubInterval: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if _, _, err := n.Submit(context.Background(), "test", crateBytes(t, "scrubbed", "1.0.0")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "a periodic scrub that saw the release", func() bool {
		h := n.Health(context.Background())
		return h.Scrub != nil && h.Scrub.Trigger == "scrub" && h.Scrub.Records == 1 && h.Scrub.Blobs == 1
	})
}
