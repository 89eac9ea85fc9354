// Package pipeline tests releases for WebAssembly (DESIGN.md §5): it finds
// the cargo/rustc pairs on the machine and what each can build, unpacks a
// release into a fresh work directory, resolves its dependencies offline
// from the node's own releases and configured directory sources, builds it
// natively and for the wasm targets with cargo inside a bubblewrap sandbox,
// runs its tests natively (one sandboxed process per test) and under wazero
// (one fresh instance per test, modules compiled once through an on-disk
// cache), analyses the wasm modules, scores the result and returns the body
// of a report record for the node to sign.
//
// It is the only package that imports wazero. docs/PIPELINE.md describes
// the stages, the sandbox, the limits, the outcome classification, the
// GC-readiness checks and the score.
package pipeline
