// Package registry holds the domain of wasm-crates-registry: signed,
// content-addressed records (DESIGN.md §2), their canonical CBOR encoding,
// keys and IDs, the .crate archive format, the conflict rules that turn a set
// of records into visible state, and the error type every package uses.
//
// It does no I/O. Everything here is a pure function of its arguments, so it
// can be tested exhaustively and any node, given the same records, computes
// the same state.
package registry
