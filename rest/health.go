package rest

import (
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// Health is what GET /health shows.
type Health struct {
	Status   string    `json:"status"`
	Name     string    `json:"name"`
	Version  string    `json:"version"`
	PeerID   string    `json:"peer_id"`
	Addrs    []string  `json:"addrs"`
	Records  int64     `json:"records"`
	Blobs    int64     `json:"blobs"`
	Digest   string    `json:"digest"`
	Peers    int       `json:"peers_connected"`
	Pipeline bool      `json:"pipeline"`
	Started  time.Time `json:"started"`
	Uptime   string    `json:"uptime"`
	// Toolchains is the pipeline's view of the installed toolchains.
	Toolchains any `json:"toolchains,omitempty"`
	// Scrub is the last re-verification of the store (absent until one ran).
	Scrub *ScrubSummary `json:"scrub,omitempty"`
	// Log is this node's transparency log: its size and root.
	Log LogHealth `json:"log"`
	// Equivocations lists the checkpoint authors caught signing two
	// inconsistent views of their log; Status is "degraded" while one of
	// them is a witness this node trusts.
	Equivocations []Equivocation `json:"equivocations"`
}

// LogHealth summarises the node's own transparency log.
type LogHealth struct {
	Size uint64 `json:"size"`
	Root string `json:"root"` // hex
}

// Equivocation is evidence that a checkpoint author equivocated.
type Equivocation struct {
	Author  string      `json:"author"`
	Trusted bool        `json:"trusted"` // the author is a witness of this node
	Reason  string      `json:"reason"`
	A       registry.ID `json:"a"`
	B       registry.ID `json:"b"`
	Detail  string      `json:"detail,omitempty"`
}

// State is the node's record-set summary: two nodes are in sync exactly
// when their digests match.
type State struct {
	Records int64  `json:"records"`
	Blobs   int64  `json:"blobs"`
	Digest  string `json:"digest"`
}

// ScrubSummary is the last verification as /health shows it.
type ScrubSummary struct {
	Finished time.Time `json:"finished"`
	Trigger  string    `json:"trigger"`
	Records  int64     `json:"records_checked"`
	Blobs    int64     `json:"blobs_checked"`
	Damaged  int       `json:"damaged"`
	Complete bool      `json:"complete"`
}
