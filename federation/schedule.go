package federation

import (
	"context"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// eventLoop reacts to identification (reconcile with new peers) and
// disconnection (redial remembered peers).
func (n *Node) eventLoop(sub event.Subscription) {
	defer n.wg.Done()
	defer sub.Close()
	for {
		select {
		case <-n.ctx.Done():
			return
		case e, ok := <-sub.Out():
			if !ok {
				return
			}
			switch ev := e.(type) {
			case event.EvtPeerIdentificationCompleted:
				if !slices.Contains(ev.Protocols, ReconcileProtocol) {
					continue
				}
				n.noteRecent(ev.Peer)
				// Of two peers that meet, the one with the smaller ID opens
				// the reconciliation, a moment later, so that they do not
				// run two at once and an explicit one goes first.
				if n.host.ID() < ev.Peer {
					n.mu.Lock()
					st := n.state(ev.Peer)
					st.onConnect = true
					st.nextSync = time.Now().Add(connectSyncDelay)
					n.mu.Unlock()
				}
			case event.EvtPeerConnectednessChanged:
				if ev.Connectedness != network.Connected {
					n.mu.Lock()
					if st := n.peers[ev.Peer]; st != nil {
						st.nextDial = time.Now().Add(jitter(minBackoff))
					}
					n.mu.Unlock()
				} else {
					n.mu.Lock()
					st := n.state(ev.Peer)
					st.backoff = 0
					st.connected = time.Now()
					n.mu.Unlock()
				}
			}
		}
	}
}

func (n *Node) markDirty(pid peer.ID) {
	n.mu.Lock()
	n.state(pid).dirty = true
	n.mu.Unlock()
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// markOthersDirty schedules reconciliation with every connected peer but
// except: records this node just learned travel on to them.
func (n *Node) markOthersDirty(except peer.ID) {
	for _, pid := range n.host.Network().Peers() {
		if pid != except && n.speaksReconcile(pid) {
			n.markDirty(pid)
		}
	}
}

func (n *Node) speaksReconcile(pid peer.ID) bool {
	ps, err := n.host.Peerstore().SupportsProtocols(pid, ReconcileProtocol)
	return err == nil && len(ps) > 0
}

func jitter(d time.Duration) time.Duration {
	return d + time.Duration(rand.Int64N(int64(d)/4+1))
}

// maxAutoSyncs bounds concurrent automatic reconciliations.
const maxAutoSyncs = 4

// connectSyncDelay is how long after identifying a new peer the automatic
// reconciliation waits.
const connectSyncDelay = 500 * time.Millisecond

// scheduleLoop redials remembered peers with backoff and runs automatic
// reconciliations: with peers marked dirty (new connection, records learned
// from another peer) and with every connected peer each SyncInterval.
func (n *Node) scheduleLoop() {
	defer n.wg.Done()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	sem := make(chan struct{}, maxAutoSyncs)
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-tick.C:
		case <-n.kick:
		}
		now := time.Now()
		var dial []peer.AddrInfo
		var syncs []peer.ID
		n.mu.Lock()
		for pid, e := range n.book {
			st := n.state(pid)
			if st.dialing || now.Before(st.nextDial) || n.host.Network().Connectedness(pid) == network.Connected || !n.gater.allowed(pid) {
				continue
			}
			st.dialing = true
			st.backoff = min(max(2*st.backoff, minBackoff), maxBackoff)
			st.nextDial = now.Add(jitter(st.backoff))
			dial = append(dial, peer.AddrInfo{ID: pid, Addrs: e.multiaddrs()})
		}
		for pid, st := range n.peers {
			if now.Before(st.nextSync) {
				continue
			}
			last := st.lastSync
			if st.connected.After(last) {
				last = st.connected
			}
			periodic := n.cfg.SyncInterval > 0 && !last.IsZero() && now.Sub(last) > n.cfg.SyncInterval
			if st.dirty || st.onConnect || periodic {
				syncs = append(syncs, pid)
			}
		}
		n.mu.Unlock()
		for _, ai := range dial {
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				ctx, cancel := context.WithTimeout(n.ctx, dialTimeout)
				err := n.host.Connect(ctx, ai)
				cancel()
				n.mu.Lock()
				st := n.state(ai.ID)
				st.dialing = false
				if err == nil {
					st.backoff = 0
				}
				n.mu.Unlock()
				if err != nil {
					n.log.Debug("redial failed", "peer", ai.ID.String(), "err", err)
				}
			}()
		}
		for _, pid := range syncs {
			if n.host.Network().Connectedness(pid) != network.Connected || !n.speaksReconcile(pid) {
				n.mu.Lock()
				st := n.state(pid)
				st.dirty, st.onConnect = false, false
				n.mu.Unlock()
				continue
			}
			select {
			case sem <- struct{}{}:
			default:
				continue
			}
			n.mu.Lock()
			st := n.state(pid)
			relay := st.dirty
			st.dirty, st.onConnect = false, false
			st.nextSync = now.Add(jitter(time.Second))
			n.mu.Unlock()
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				defer func() { <-sem }()
				n.autoSync(pid, relay)
			}()
		}
	}
}

// autoSync reconciles with pid. When a reconciliation with pid is running,
// a relay (records to pass on) is retried later, and a periodic or
// on-connect one is dropped if a reconciliation has run since connecting.
func (n *Node) autoSync(pid peer.ID, relay bool) {
	n.mu.Lock()
	st := n.state(pid)
	busy := st.inbound
	n.mu.Unlock()
	if busy || !st.outbound.TryLock() {
		if relay {
			n.markDirtyLater(pid)
		}
		return
	}
	n.mu.Lock()
	fresh := !relay && st.lastSync.After(st.connected) && (n.cfg.SyncInterval <= 0 || time.Since(st.lastSync) < n.cfg.SyncInterval)
	n.mu.Unlock()
	if fresh {
		st.outbound.Unlock()
		return
	}
	_, err := n.syncLocked(n.ctx, pid, st)
	st.outbound.Unlock()
	if err != nil && n.ctx.Err() == nil {
		n.log.Debug("automatic reconciliation failed", "peer", pid.String(), "err", err)
		if registry.KindOf(err) == registry.EBUSY {
			n.markDirtyLater(pid)
		}
	}
}

func (n *Node) markDirtyLater(pid peer.ID) {
	n.mu.Lock()
	st := n.state(pid)
	st.dirty = true
	st.nextSync = time.Now().Add(jitter(500 * time.Millisecond))
	n.mu.Unlock()
}
