package node

import (
	"context"
	"encoding/hex"
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

// Health reports the node's state.
func (n *Node) Health(ctx context.Context) *Health {
	recs, blobs := n.db.Counts()
	h := &Health{
		Status: "ok", Name: n.Settings().Name, Version: n.cfg.Version, PeerID: n.PeerID(),
		Addrs: []string{}, Records: recs, Blobs: blobs, Digest: n.db.Fingerprint().Digest(),
		Started: n.started.UTC(), Uptime: n.cfg.Now().Sub(n.started).Round(time.Second).String(),
		Scrub: n.scrubSummary(), Equivocations: []Equivocation{},
	}
	size, root := n.db.LogHead()
	h.Log = LogHealth{Size: size, Root: hex.EncodeToString(root[:])}
	if ev, err := n.db.Evidence(); err != nil {
		n.log.Warn("reading equivocation evidence", "err", err)
	} else {
		trust := n.Trust()
		for _, e := range ev {
			q := Equivocation{Author: e.Author.PeerID(), Trusted: trust.Witness(e.Author), Reason: e.Reason, A: e.A, B: e.B, Detail: e.Detail}
			if q.Trusted {
				h.Status = "degraded"
			}
			h.Equivocations = append(h.Equivocations, q)
		}
	}
	if n.net != nil {
		h.Addrs = n.net.Addrs()
		for _, p := range n.net.Peers() {
			if p.Connected {
				h.Peers++
			}
		}
	}
	if n.tester != nil {
		h.Pipeline = true
		h.Toolchains = n.tester.Toolchains()
	}
	return h
}

// State is the node's record-set summary: two nodes are in sync exactly
// when their digests match.
type State struct {
	Records int64  `json:"records"`
	Blobs   int64  `json:"blobs"`
	Digest  string `json:"digest"`
}

// State returns the record count and state digest.
func (n *Node) State() State {
	recs, blobs := n.db.Counts()
	return State{Records: recs, Blobs: blobs, Digest: n.db.Fingerprint().Digest()}
}
