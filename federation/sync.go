package federation

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// PeerSync reports one reconciliation with one peer.
type PeerSync struct {
	Peer string `json:"peer"`
	SyncStats
	Duration time.Duration `json:"duration_ns"`
	Error    string        `json:"error,omitempty"`
}

// SyncReport reports a forced reconciliation: the totals and each peer.
type SyncReport struct {
	SyncStats
	Duration time.Duration `json:"duration_ns"`
	Peers    []PeerSync    `json:"peers"`
}

// Sync reconciles now with one peer, or with every connected peer when
// target is empty, and reports what moved. target is a full multiaddr (the
// peer is connected if need be, but not remembered) or the peer ID of a
// connected or remembered peer. Sync fails when every reconciliation
// failed; the report still lists each error.
func (n *Node) Sync(ctx context.Context, target string) (SyncReport, error) {
	const op = "federation.Sync"
	start := time.Now()
	var targets []peer.ID
	var dial *peer.AddrInfo
	switch {
	case strings.HasPrefix(strings.TrimSpace(target), "/"):
		ai, err := parsePeerAddr(target)
		if err != nil {
			return SyncReport{}, err
		}
		if ai.ID == n.host.ID() {
			return SyncReport{}, registry.Errorf(op, registry.EINVALID, "%s is this node's own address", quote(target))
		}
		targets, dial = []peer.ID{ai.ID}, ai
	case target != "":
		pid, err := parsePeerRef(target)
		if err != nil {
			return SyncReport{}, err
		}
		n.mu.Lock()
		e := n.book[pid]
		n.mu.Unlock()
		if e != nil {
			dial = &peer.AddrInfo{ID: pid, Addrs: e.multiaddrs()}
		} else if n.host.Network().Connectedness(pid) != network.Connected {
			return SyncReport{}, registry.Errorf(op, registry.ENOTFOUND, "peer %s is neither connected nor remembered; give its full multiaddr", pid)
		}
		targets = []peer.ID{pid}
	default:
		for _, pid := range n.host.Network().Peers() {
			if n.speaksReconcile(pid) {
				targets = append(targets, pid)
			}
		}
		if len(targets) == 0 {
			return SyncReport{}, registry.Errorf(op, registry.ETEMPORARY, "no connected peer to reconcile with; join one with `peers add MULTIADDR`")
		}
	}
	slices.Sort(targets)
	rep := SyncReport{Peers: make([]PeerSync, len(targets))}
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxAutoSyncs)
	for i, pid := range targets {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			rep.Peers[i] = n.syncPeer(ctx, pid, dial)
		}()
	}
	wg.Wait()
	failed := 0
	var firstErr string
	for _, p := range rep.Peers {
		rep.add(p.SyncStats)
		if p.Error != "" {
			failed++
			if firstErr == "" {
				firstErr = p.Error
			}
		}
	}
	rep.Duration = time.Since(start)
	n.saveBook()
	if failed == len(targets) {
		return rep, registry.Errorf(op, registry.ETEMPORARY, "reconciliation failed: %s", firstErr)
	}
	return rep, nil
}

// syncPeer reconciles with pid, waiting for any running outbound
// reconciliation with it to finish first, and connecting to dial first if
// it is set and the peer is not connected.
func (n *Node) syncPeer(ctx context.Context, pid peer.ID, dial *peer.AddrInfo) PeerSync {
	n.mu.Lock()
	st := n.state(pid)
	n.mu.Unlock()
	locked := make(chan struct{})
	go func() {
		st.outbound.Lock()
		close(locked)
	}()
	select {
	case <-locked:
	case <-ctx.Done():
		go func() {
			<-locked
			st.outbound.Unlock()
		}()
		return PeerSync{Peer: pid.String(), Error: "cancelled while waiting for a running reconciliation"}
	}
	defer st.outbound.Unlock()
	if dial != nil && n.host.Network().Connectedness(pid) != network.Connected {
		dctx, cancel := context.WithTimeout(ctx, dialTimeout)
		err := n.host.Connect(dctx, *dial)
		cancel()
		if err != nil {
			return PeerSync{Peer: pid.String(), Error: "cannot connect: " + err.Error()}
		}
	}
	ps, err := n.syncLocked(ctx, pid, st)
	if err != nil {
		ps.Error = registry.MessageOf(err)
	}
	return ps
}

// syncLocked runs one reconciliation as initiator; st.outbound is held.
func (n *Node) syncLocked(ctx context.Context, pid peer.ID, st *peerState) (PeerSync, error) {
	const op = "federation.Sync"
	start := time.Now()
	ps := PeerSync{Peer: pid.String()}
	n.stats.sessionsOut.Add(1)
	s, err := n.host.NewStream(ctx, pid, ReconcileProtocol)
	if err != nil {
		n.stats.sessionErrors.Add(1)
		err = registry.E(op, registry.ETEMPORARY, "cannot open a reconciliation stream to "+pid.String(), err)
		n.finishSync(pid, st, &ps, err, start)
		return ps, err
	}
	n.mu.Lock()
	served, servedBytes := st.blobsOut, st.bytesOut
	n.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	sess := newSession(n.replicaFor(pid), s, true)
	res, err := sess.initiate(ctx)
	stop()
	if err != nil {
		if ctx.Err() != nil {
			err = registry.E(op, registry.ECANCELED, "reconciliation with "+pid.String()+" was cancelled", ctx.Err())
		}
		_ = s.Reset()
	} else {
		_ = s.Close()
	}
	ps.SyncStats = res.stats
	n.mu.Lock()
	ps.BlobsOut = int(st.blobsOut - served)
	ps.BytesOut += st.bytesOut - servedBytes
	n.mu.Unlock()
	n.afterSession(pid, res, err)
	n.finishSync(pid, st, &ps, err, start)
	return ps, err
}

func (n *Node) finishSync(pid peer.ID, st *peerState, ps *PeerSync, err error, start time.Time) {
	ps.Duration = time.Since(start)
	n.mu.Lock()
	defer n.mu.Unlock()
	if err != nil {
		st.lastErr = registry.MessageOf(err)
		return
	}
	st.lastSync = n.cfg.Now().UTC()
	st.lastErr = ""
	n.stats.syncBytesIn.Add(uint64(max(ps.BytesIn, 0)))
	n.stats.syncBytesOut.Add(uint64(max(ps.BytesOut, 0)))
	n.stats.syncRoundTrips.Add(uint64(max(ps.RoundTrips, 0)))
	n.log.Debug("reconciled", "peer", pid.String(), "records_in", ps.RecordsIn, "records_out", ps.RecordsOut,
		"blobs_in", ps.BlobsIn, "blobs_out", ps.BlobsOut, "bytes_in", ps.BytesIn, "bytes_out", ps.BytesOut,
		"round_trips", ps.RoundTrips, "duration", ps.Duration)
}

// afterSession accounts a finished session (either role): penalties for
// violations, counters, and onward reconciliation of what was learned.
func (n *Node) afterSession(pid peer.ID, res sessionResult, err error) {
	if err != nil {
		n.stats.sessionErrors.Add(1)
		if errors.Is(err, errViolation) {
			n.penalize(pid, err)
		}
	}
	n.mu.Lock()
	st := n.state(pid)
	st.recordsIn += uint64(res.stats.RecordsIn)
	st.recOut += uint64(res.stats.RecordsOut)
	n.mu.Unlock()
	if res.heldBack > 0 {
		n.log.Info("held back records too far in the future; they will be fetched again once due", "peer", pid.String(), "records", res.heldBack)
	}
	if res.dropped > 0 {
		n.log.Debug("peer offered more missing records than one reconciliation remembers; the next one continues", "peer", pid.String(), "ids", res.dropped)
	}
	if res.added > 0 {
		n.markOthersDirty(pid)
	}
}

// replicaFor returns the session environment for a session with pid.
func (n *Node) replicaFor(pid peer.ID) *replica {
	return &replica{
		idx:     n.idx,
		network: n.cfg.Network,
		params:  n.rec,
		maxSkew: n.cfg.MaxSkew,
		now:     n.cfg.Now,
		load: func(id registry.ID) ([]byte, error) {
			r, err := n.st.GetRecord(id)
			if err != nil {
				return nil, err
			}
			return r.Bytes(), nil
		},
		ingest: func(recs []*registry.Record) ([]*registry.Record, error) {
			from := make([]peer.ID, len(recs))
			for i := range from {
				from[i] = pid
			}
			return n.ingest(recs, from, true)
		},
		refused: func(id registry.ID) bool { return n.refused.Contains(id) },
		held: func(id registry.ID) bool {
			_, err := n.st.GetRecord(id)
			return err == nil
		},
		queueBlobs: func(rels []*registry.Record) {
			for _, r := range rels {
				n.queueBlob(r, pid)
			}
		},
		fetchBlobs: func(ctx context.Context, rels []*registry.Record) (int, int64) {
			return n.sessionBlobs(ctx, pid, rels)
		},
	}
}

// handleReconcile serves a reconciliation opened by a peer.
func (n *Node) handleReconcile(s network.Stream) {
	pid := s.Conn().RemotePeer()
	n.stats.sessionsIn.Add(1)
	busy := func(msg string) {
		fw := newFrameWriter(s, time.Second, time.Time{})
		if fw.write(frameError, errorPayload(codeBusy, msg)) == nil {
			_ = fw.flush()
		}
		_ = s.Close()
	}
	select {
	case n.inbound <- struct{}{}:
	default:
		busy("too many reconciliations in progress")
		return
	}
	defer func() { <-n.inbound }()
	n.mu.Lock()
	st := n.state(pid)
	if st.inbound {
		n.mu.Unlock()
		busy("a reconciliation with this peer is already in progress")
		return
	}
	st.inbound = true
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		st.inbound = false
		n.mu.Unlock()
	}()
	stop := context.AfterFunc(n.ctx, func() { _ = s.Reset() })
	defer stop()
	sess := newSession(n.replicaFor(pid), s, false)
	res, err := sess.respond(n.ctx)
	if err != nil {
		_ = s.Reset()
		n.log.Debug("inbound reconciliation failed", "peer", pid.String(), "err", err)
	} else {
		_ = s.Close()
	}
	n.afterSession(pid, res, err)
	if err == nil {
		n.mu.Lock()
		st.lastSync = n.cfg.Now().UTC()
		n.mu.Unlock()
	}
}

// Forget removes records from the reconciliation index: the node found
// them damaged and quarantined them. Every peer is marked for
// reconciliation, which fetches them again from a peer that holds them.
func (n *Node) Forget(recs []ForgetKey) {
	removed := false
	for _, k := range recs {
		if n.idx.remove(key{t: k.Time, id: k.ID}) {
			removed = true
		}
	}
	if removed {
		n.markOthersDirty("")
	}
}

// ForgetKey names a record in the reconciliation index: its signed time
// and ID.
type ForgetKey struct {
	Time int64
	ID   registry.ID
}
