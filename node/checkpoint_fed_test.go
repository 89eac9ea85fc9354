package node

import (
	"context"
	"io"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/federation"
	"github.com/wasmrust/wasm-crates-registry/internal/testkit"
)

func fedNode(t *testing.T) *Node {
	t.Helper()
	n, err := Open(context.Background(), Config{
		DataDir: t.TempDir(), Announce: io.Discard, CheckpointInterval: 20 * time.Millisecond,
		Network: Federation(federation.Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Network: "tlog-test", SyncInterval: -1}),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// Over real libp2p: a node's checkpoints reach its peer, which computes the
// records' witnessed time under the first node; both nodes then go quiet;
// a forked checkpoint pair signed by a key B trusts is detected on receipt,
// and one signed by a stranger is only logged until B trusts it too.
func TestCheckpointsFederate(t *testing.T) {
	a, b := fedNode(t), fedNode(t)
	ctx := context.Background()
	if _, err := b.AddPeer(ctx, "t", a.Health(ctx).Addrs[0], true); err != nil {
		t.Fatal(err)
	}
	rel, _, err := a.Submit(ctx, "t", crateBytes(t, "witnessed", "1.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "B witnesses A's release under A's checkpoint", func() bool {
		wt, _ := b.WitnessTimes(rel.ID)
		for _, w := range wt {
			if w.Author.Equal(a.PublicKey()) {
				return true
			}
		}
		return false
	})
	// Both go quiet with the same records.
	eventually(t, 30*time.Second, "the nodes settle", func() bool {
		sa, sb := a.State(), b.State()
		if sa.Digest != sb.Digest {
			return false
		}
		time.Sleep(200 * time.Millisecond) // ten signer intervals
		return a.State().Digest == sa.Digest && b.State().Digest == sb.Digest
	})

	// Two keys sign a forked pair of checkpoints each: w, which B trusts
	// before the pair arrives, and s, a stranger.
	w, s := testkit.Key(77), testkit.Key(78)
	if _, err := b.UpdateSettings(ctx, "t", []byte(`{"trust":{"keys":["`+w.Public().PeerID()+`"]}}`)); err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-time.Minute)
	x := []registry.ID{registry.Sum([]byte("x")), registry.Sum([]byte("y"))}
	y := []registry.ID{registry.Sum([]byte("x")), registry.Sum([]byte("z"))}
	var raws [][]byte
	for _, k := range []registry.PrivateKey{w, s} {
		for i, leaves := range [][]registry.ID{x, y} {
			r, err := registry.Sign(k, registry.KindCheckpoint, k.Public().PeerID(), registry.NewCheckpointBody(k.Public().PeerID(), 0, leaves, registry.TreeRoot(leaves)), at.Add(time.Duration(i)*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			raws = append(raws, r.Bytes())
		}
	}
	if _, err := a.Ingest(ctx, "t", raws); err != nil {
		t.Fatal(err)
	}
	// The trusted key's fork is detected on receipt; the stranger's pair is
	// only logged: its checkpoints are not verified and leave no evidence.
	eventually(t, 30*time.Second, "B holds all four checkpoints", func() bool {
		for _, raw := range raws {
			r, err := registry.DecodeRecord(raw)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := b.RecordBytes(ctx, r.ID().String()); err != nil {
				return false
			}
		}
		return true
	})
	if ev, _ := b.Evidence(); len(ev) != 1 || !ev[0].Author.Equal(w.Public()) || ev[0].Reason != registry.ReasonFork {
		t.Fatalf("B's evidence: %+v", ev)
	}
	if h := b.Health(ctx); h.Status != "degraded" || len(h.Equivocations) != 1 || !h.Equivocations[0].Trusted {
		t.Fatalf("health: status %s, equivocations %+v", h.Status, h.Equivocations)
	}
	// Once B trusts the stranger too, its fork is evidence as well.
	if _, err := b.UpdateSettings(ctx, "t", []byte(`{"trust":{"keys":["`+w.Public().PeerID()+`","`+s.Public().PeerID()+`"]}}`)); err != nil {
		t.Fatal(err)
	}
	if ev, _ := b.Evidence(); len(ev) != 2 {
		t.Fatalf("B's evidence once it trusts both keys: %+v", ev)
	}
	if h := b.Health(ctx); h.Status != "degraded" || len(h.Equivocations) != 2 {
		t.Fatalf("health after trusting both keys: status %s, %+v", h.Status, h.Equivocations)
	}
}
