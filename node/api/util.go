package api

import "github.com/wasmrust/wasm-crates-registry/store"

func storeState(s string) store.JobState { return store.JobState(s) }
