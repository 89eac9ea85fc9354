package store_test

import (
	"testing"

	"github.com/wasmrust/wasm-crates-registry/federation"
	"github.com/wasmrust/wasm-crates-registry/internal/testkit/storetest"
	"github.com/wasmrust/wasm-crates-registry/store"
)

var _ federation.Store = (*store.DB)(nil)

// TestStoreContract runs the federation.Store contract against Badger on
// disk, the store a node runs on.
func TestStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) federation.Store {
		db, err := store.Open(t.TempDir(), store.Options{GCInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	})
}
