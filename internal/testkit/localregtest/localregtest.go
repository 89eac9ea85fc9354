// Package localregtest is the contract every pipeline.LocalRegistry must
// keep, as a suite of tests to run against each implementation. It does not
// import the pipeline (whose own tests run it), so it takes the type Known
// returns as a type parameter. Only tests import it.
package localregtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"testing"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/internal/testkit"
)

// Registry is pipeline.LocalRegistry with Known's result type K
// (pipeline.DepKnowledge).
type Registry[K any] interface {
	Releases(ctx context.Context) ([]*registry.ReleaseBody, error)
	Blob(ctx context.Context, id registry.ID) ([]byte, error)
	Known(ctx context.Context, name, version string) K
}

// Run runs the contract. open returns a registry that holds exactly the
// given .crate archives as releases it offers (published by a key it
// trusts, not yanked, with no reports); facts reads what a K says: whether
// the release is held and the registry's wasm verdict.
func Run[K any](t *testing.T, facts func(K) (held bool, wasm string), open func(t *testing.T, crates [][]byte) Registry[K]) {
	ctx := context.Background()
	crates := [][]byte{
		testkit.Crate("contract-a", "1.0.0", map[string]string{"src/lib.rs": "pub fn a() {}\n"}),
		testkit.Crate("contract-a", "1.1.0", map[string]string{"src/lib.rs": "pub fn a() -> u8 { 1 }\n"}),
		testkit.Crate("contract-b", "0.1.0", nil, testkit.Description("b")),
	}
	reg := open(t, crates)

	t.Run("ReleasesAreTheHeldCrates", func(t *testing.T) {
		rels, err := reg.Releases(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range rels {
			got = append(got, r.Name+"@"+r.Version+" "+r.Cksum)
		}
		slices.Sort(got)
		var want []string
		for _, c := range crates {
			b, err := registry.ParseCrate(c, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(c)
			want = append(want, b.Name+"@"+b.Version+" "+hex.EncodeToString(sum[:]))
		}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("Releases:\n%q\nwant:\n%q", got, want)
		}
		// The slice is the caller's: clearing it changes nothing held.
		clear(rels)
		again, err := reg.Releases(ctx)
		if err != nil || len(again) != len(want) || slices.Contains(again, nil) {
			t.Fatalf("Releases after the caller cleared an earlier result: %d entries, %v", len(again), err)
		}
	})

	t.Run("BlobsHashToTheirRelease", func(t *testing.T) {
		rels, err := reg.Releases(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rels {
			b, err := reg.Blob(ctx, r.BlobID())
			if err != nil {
				t.Fatalf("Blob of %s@%s: %v", r.Name, r.Version, err)
			}
			if registry.Sum(b) != r.BlobID() {
				t.Fatalf("Blob of %s@%s returned bytes that hash to %s, not %s", r.Name, r.Version, registry.Sum(b), r.BlobID())
			}
		}
		_, err = reg.Blob(ctx, registry.Sum([]byte("never held")))
		if registry.KindOf(err) != registry.ENOTFOUND {
			t.Fatalf("Blob of an unknown archive: %v, want kind %v", err, registry.ENOTFOUND)
		}
	})

	t.Run("Known", func(t *testing.T) {
		for _, c := range [][2]string{{"contract-a", "1.0.0"}, {"contract-a", "1.1.0"}, {"contract-b", "0.1.0"}} {
			if held, wasm := facts(reg.Known(ctx, c[0], c[1])); !held || wasm != registry.WasmUntested {
				t.Errorf("Known(%s@%s) = held %t, %q; want held, %q", c[0], c[1], held, wasm, registry.WasmUntested)
			}
		}
		for _, c := range [][2]string{{"contract-a", "2.0.0"}, {"contract-c", "1.0.0"}, {"", ""}, {"../contract-a", "1.0.0"}} {
			if held, wasm := facts(reg.Known(ctx, c[0], c[1])); held || wasm != registry.WasmUntested {
				t.Errorf("Known(%q@%q) = held %t, %q; want not held, %q", c[0], c[1], held, wasm, registry.WasmUntested)
			}
		}
	})
}
