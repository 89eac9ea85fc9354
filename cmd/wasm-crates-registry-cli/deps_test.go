package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestCLILinksNeitherStoreNorNetwork: the CLI speaks only REST, through
// the contract types of package rest; it must not link the store, the
// federation, the node or their dependencies (Badger, libp2p, wazero).
func TestCLILinksNeitherStoreNorNetwork(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{
			"github.com/dgraph-io/badger", "github.com/libp2p/", "github.com/tetratelabs/wazero",
			"github.com/wasmrust/wasm-crates-registry/store", "github.com/wasmrust/wasm-crates-registry/federation",
			"github.com/wasmrust/wasm-crates-registry/pipeline", "github.com/wasmrust/wasm-crates-registry/node",
		} {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("the CLI links %s", dep)
			}
		}
	}
}
