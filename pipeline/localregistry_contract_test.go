package pipeline

import (
	"testing"

	"github.com/wasmrust/wasm-crates-registry/internal/testkit/localregtest"
)

// TestMemRegistryContract runs the LocalRegistry contract against the
// in-memory registry the pipeline's tests use in place of the node's store,
// so that what those tests show holds for the store too.
func TestMemRegistryContract(t *testing.T) {
	localregtest.Run(t, func(k DepKnowledge) (bool, string) { return k.Held, k.Wasm },
		func(t *testing.T, crates [][]byte) localregtest.Registry[DepKnowledge] {
			m := newMemRegistry()
			for _, c := range crates {
				m.add(t, c, "")
			}
			return m
		})
}
