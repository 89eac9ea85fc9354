package main

import (
	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/rest"
)

// The API's JSON is the REST contract's (package rest): the CLI reads the
// same types the node writes. --json prints the node's answer unchanged.
type (
	health        = rest.Health
	dep           = registry.Dep
	reportSummary = rest.ReportSummary
	release       = rest.Release
	page          = rest.Page
	jobEvent      = rest.JobEvent
	job           = rest.Job
	peerInfo      = rest.PeerInfo
	syncReport    = rest.SyncReport
	claim         = rest.ClaimInfo
)
