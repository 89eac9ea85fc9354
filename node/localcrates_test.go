package node

import (
	"context"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// The pipeline's dependency sources from the store are the releases this
// node trusts: its own, and those of keys it trusts; never a release that
// a stranger founded a crate with and relayed, which would otherwise
// become a dependency of every crate tested here.
func TestLocalCratesOfferOnlyTrustedReleases(t *testing.T) {
	n := openNode(t, nil)
	ctx := context.Background()
	if _, _, err := n.Submit(ctx, "t", crateBytes(t, "ours", "1.0.0")); err != nil {
		t.Fatal(err)
	}
	stranger, _ := registry.GenerateKey(nil)
	blob := registry.Sum([]byte("a stranger's crate"))
	body := &registry.ReleaseBody{Name: "itoa", Version: "1.0.1", Cksum: blob.Hex(), Blob: blob.Bytes(), Size: 18}
	rec, err := registry.Sign(stranger, registry.KindRelease, "itoa@1.0.1", body, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Ingest(ctx, "peer", [][]byte{rec.Bytes()}); err != nil {
		t.Fatal(err)
	}
	offered := func() map[string]bool {
		rels, err := localCrates{n: n, trust: n.Trust()}.Releases(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]bool{}
		for _, r := range rels {
			m[r.Name+"@"+r.Version] = true
		}
		return m
	}
	got := offered()
	if !got["ours@1.0.0"] {
		t.Errorf("the node's own release is not offered: %v", got)
	}
	if got["itoa@1.0.1"] {
		t.Errorf("a stranger's release is offered as a dependency source: %v", got)
	}
	if _, err := n.UpdateSettings(ctx, "t", []byte(`{"trust":{"keys":["`+stranger.Public().PeerID()+`"]}}`)); err != nil {
		t.Fatal(err)
	}
	if got := offered(); !got["itoa@1.0.1"] {
		t.Errorf("a release by a key the node trusts is not offered: %v", got)
	}
}
