package node

import (
	"context"
	"testing"

	"github.com/wasmrust/wasm-crates-registry/internal/testkit/localregtest"
	"github.com/wasmrust/wasm-crates-registry/pipeline"
)

// TestLocalCratesContract runs the pipeline.LocalRegistry contract against
// the node's crates as the pipeline sees them: releases the node
// published itself.
func TestLocalCratesContract(t *testing.T) {
	localregtest.Run(t, func(k pipeline.DepKnowledge) (bool, string) { return k.Held, k.Wasm },
		func(t *testing.T, crates [][]byte) localregtest.Registry[pipeline.DepKnowledge] {
			n := openNode(t, nil)
			for _, c := range crates {
				if _, _, err := n.Submit(context.Background(), "test", c); err != nil {
					t.Fatal(err)
				}
			}
			return localCrates{n: n, trust: n.Trust()}
		})
}
