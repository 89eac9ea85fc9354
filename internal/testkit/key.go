package testkit

import (
	"bytes"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// Key returns the ed25519 key whose 32-byte seed is seed repeated: the
// same seed always gives the same key, so tests and their golden files can
// name authors by a byte.
func Key(seed byte) registry.PrivateKey {
	k, err := registry.KeyFromSeed(bytes.Repeat([]byte{seed}, 32))
	if err != nil {
		panic(err)
	}
	return k
}
