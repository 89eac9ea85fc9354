package node

import (
	"bytes"
	"testing"

	"github.com/wasmrust/wasm-crates-registry/federation"
	"github.com/wasmrust/wasm-crates-registry/internal/testkit/storetest"
)

// TestNetStoreContract runs the federation.Store contract against the
// node's storage as the federation sees it, and checks that its local keys
// cannot reach the node's own.
func TestNetStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) federation.Store { return netStore{openNode(t, nil)} })

	n := openNode(t, nil)
	if err := n.db.PutLocal("secret", []byte("node")); err != nil {
		t.Fatal(err)
	}
	s := netStore{n}
	if err := s.PutLocal("secret", []byte("peer")); err != nil {
		t.Fatal(err)
	}
	if v, err := n.db.GetLocal("secret"); err != nil || !bytes.Equal(v, []byte("node")) {
		t.Fatalf("the federation overwrote the node's local key: %q, %v", v, err)
	}
}
