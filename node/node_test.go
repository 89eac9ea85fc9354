package node

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/internal/testkit"
)

func crateBytes(t *testing.T, name, version string) []byte {
	t.Helper()
	return testkit.Crate(name, version, nil)
}

func openNode(t *testing.T, now func() time.Time) *Node {
	t.Helper()
	n, err := Open(context.Background(), Config{DataDir: t.TempDir(), Announce: io.Discard, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// TestStrangersDoNotMoveTheNodesClock: a stranger's yank dated a minute
// ahead (within the skew a node accepts) on the node's release does not
// push the node's own next yank to that time; the node's own earlier
// record still does.
func TestStrangersDoNotMoveTheNodesClock(t *testing.T) {
	frozen := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	n := openNode(t, func() time.Time { return frozen })
	ctx := context.Background()
	if _, _, err := n.Submit(ctx, "t", crateBytes(t, "clock", "1.0.0")); err != nil {
		t.Fatal(err)
	}
	stranger, _ := registry.GenerateKey(nil)
	ahead, err := registry.Sign(stranger, registry.KindYank, "clock@1.0.0", &registry.YankBody{Yanked: true}, frozen.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Ingest(WithIdentity(ctx, &Identity{Person: "admin", Scopes: []string{ScopeAdmin}}), "t", [][]byte{ahead.Bytes()}); err != nil {
		t.Fatal(err)
	}
	rec, err := n.sign(registry.KindYank, "clock@1.0.0", &registry.YankBody{Yanked: true})
	if err != nil {
		t.Fatal(err)
	}
	if rec.When().After(frozen.Add(time.Millisecond)) {
		t.Errorf("the node's yank is dated %s, pushed by a stranger's record to after %s", rec.When(), frozen)
	}
	if _, err := n.SetYank(ctx, "t", "clock@1.0.0", true, ""); err != nil {
		t.Fatal(err)
	}
	next, err := n.sign(registry.KindYank, "clock@1.0.0", &registry.YankBody{Yanked: false})
	if err != nil {
		t.Fatal(err)
	}
	if !next.When().After(frozen) {
		t.Errorf("the node's next yank (%s) is not after its own previous one (%s)", next.When(), frozen)
	}
}

// TestLaterActionWinsWithinOneMillisecond: a yank and an unyank made in the
// same millisecond must leave the release unyanked, whatever their IDs.
func TestLaterActionWinsWithinOneMillisecond(t *testing.T) {
	frozen := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	n := openNode(t, func() time.Time { return frozen })
	ctx := context.Background()
	if _, _, err := n.Submit(ctx, "t", crateBytes(t, "clock", "1.0.0")); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if _, err := n.SetYank(ctx, "t", "clock@1.0.0", true, "r"+string(rune('a'+i))); err != nil {
			t.Fatal(err)
		}
		rel, err := n.SetYank(ctx, "t", "clock@1.0.0", false, "")
		if err != nil {
			t.Fatal(err)
		}
		if rel.Yanked {
			t.Fatalf("round %d: the unyank made in the same millisecond as the yank lost", i)
		}
	}
}

// TestTrustFollowsSettingsAndKeyRecords checks whose reports count: not a
// stranger's; a key the settings name; a key this node registered as a
// tester (until the registration is revoked); everyone with trust.all.
func TestTrustFollowsSettingsAndKeyRecords(t *testing.T) {
	n := openNode(t, nil)
	ctx := context.Background()
	rel, _, err := n.Submit(ctx, "t", crateBytes(t, "trusty", "1.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	tester, _ := registry.GenerateKey(nil)
	rep, err := registry.Sign(tester, registry.KindReport, rel.Subject, &registry.ReportBody{
		Release: rel.ID.Bytes(), Outcome: registry.OutcomeTestPass, Wasm: registry.WasmCompatible, Score: 90, Gate: registry.GateCurated,
	}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Ingest(ctx, "test", [][]byte{rep.Bytes()}); err != nil {
		t.Fatal(err)
	}
	wasm := func() string {
		r, err := n.Release(ctx, "trusty@1.0.0")
		if err != nil {
			t.Fatal(err)
		}
		return r.Wasm
	}
	if got := wasm(); got != registry.WasmUntested {
		t.Fatalf("a stranger's report counted: wasm=%s", got)
	}
	register := func(revoked bool) {
		kb := &registry.KeyBody{Key: tester.Public(), Name: "ci", Roles: []string{registry.RoleTester}, Revoked: revoked}
		rec, err := n.sign(registry.KindKey, tester.Public().KeyID(), kb)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.storeAndPublishUnaudited(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	register(false)
	if got := wasm(); got != registry.WasmCompatible {
		t.Fatalf("a tester registered by this node is not trusted: wasm=%s", got)
	}
	register(true)
	if got := wasm(); got != registry.WasmUntested {
		t.Fatalf("a revoked tester is still trusted: wasm=%s", got)
	}
	if _, err := n.UpdateSettings(ctx, "t", []byte(`{"trust":{"keys":["`+tester.Public().PeerID()+`"]}}`)); err != nil {
		t.Fatal(err)
	}
	if got := wasm(); got != registry.WasmCompatible {
		t.Fatalf("a key named in trust.keys is not trusted: wasm=%s", got)
	}
	if _, err := n.UpdateSettings(ctx, "t", []byte(`{"trust":{"keys":[],"all":true}}`)); err != nil {
		t.Fatal(err)
	}
	if got := wasm(); got != registry.WasmCompatible {
		t.Fatalf("trust.all does not trust everyone: wasm=%s", got)
	}
}

// TestIngestRefusesFutureAndForgedRecords: records from outside are
// verified, and a record dated beyond MaxSkew is refused, with nothing
// stored.
func TestIngestRefusesFutureAndForgedRecords(t *testing.T) {
	n := openNode(t, nil)
	ctx := context.Background()
	k, _ := registry.GenerateKey(nil)
	blob := registry.Sum([]byte("x"))
	body := &registry.ReleaseBody{Name: "far", Version: "1.0.0", Cksum: blob.Hex(), Blob: blob.Bytes(), Size: 1}
	future, err := registry.Sign(k, registry.KindRelease, "far@1.0.0", body, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Ingest(ctx, "test", [][]byte{future.Bytes()}); registry.KindOf(err) != registry.EINVALID {
		t.Fatalf("future record: %v", err)
	}
	now, _ := registry.Sign(k, registry.KindRelease, "far@1.0.0", body, time.Now())
	forged := bytes.Clone(now.Bytes())
	forged[len(forged)-1] ^= 1
	if _, err := n.Ingest(ctx, "test", [][]byte{now.Bytes(), forged}); registry.KindOf(err) != registry.EINVALID {
		t.Fatalf("forged record in a batch: %v", err)
	}
	if st := n.State(); st.Records != 0 {
		t.Fatalf("a refused batch stored %d records", st.Records)
	}
}
