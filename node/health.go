package node

import (
	"context"
	"encoding/hex"
	"time"

	"github.com/wasmrust/wasm-crates-registry/rest"
)

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

// State returns the record count and state digest.
func (n *Node) State() State {
	recs, blobs := n.db.Counts()
	return State{Records: recs, Blobs: blobs, Digest: n.db.Fingerprint().Digest()}
}

// The JSON shapes of these are the REST contract's (package rest).
type Health = rest.Health
type LogHealth = rest.LogHealth
type Equivocation = rest.Equivocation
type State = rest.State
