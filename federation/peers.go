package federation

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"

	registry "github.com/wasmrust/wasm-crates-registry"
)

const (
	protectTag         = "wcr-sync"
	peerstorePermanent = peerstore.PermanentAddrTTL
	dialTimeout        = 10 * time.Second
	minBackoff         = time.Second
	maxBackoff         = 2 * time.Minute
)

const fullAddrHelp = "a full multiaddr names the transport and the peer, like /ip4/192.0.2.10/tcp/4001/p2p/12D3KooW… or /ip4/192.0.2.10/udp/4001/quic-v1/p2p/12D3KooW… (a running node prints its own in health)"

// parsePeerAddr reads a full multiaddr (…/p2p/<peer ID>); an error of kind
// registry.EINVALID says what a full multiaddr looks like.
func parsePeerAddr(s string) (*peer.AddrInfo, error) {
	const op = "federation.parsePeerAddr"
	s = strings.TrimSpace(s)
	a, err := ma.NewMultiaddr(s)
	if err != nil {
		return nil, registry.Errorf(op, registry.EINVALID, "%s is not a multiaddr; %s", quote(s), fullAddrHelp)
	}
	ai, err := peer.AddrInfoFromP2pAddr(a)
	if err != nil {
		return nil, registry.Errorf(op, registry.EINVALID, "%s does not name a peer; %s", quote(s), fullAddrHelp)
	}
	if len(ai.Addrs) == 0 {
		return nil, registry.Errorf(op, registry.EINVALID, "%s names a peer but no transport address; %s", quote(s), fullAddrHelp)
	}
	return ai, nil
}

// bookEntry is a remembered peer. It is persisted as JSON under PeerBookKey.
type bookEntry struct {
	ID         string    `json:"id"`
	Addrs      []string  `json:"addrs"` // transport multiaddrs without /p2p
	Added      time.Time `json:"added"`
	LastSync   time.Time `json:"last_sync,omitzero"`
	LastError  string    `json:"last_error,omitempty"`
	RecordsIn  uint64    `json:"records_in"`
	RecordsOut uint64    `json:"records_out"`
}

func (e *bookEntry) multiaddrs() []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, s := range e.Addrs {
		if a, err := ma.NewMultiaddr(s); err == nil {
			out = append(out, a)
		}
	}
	return out
}

// peerState is what the node knows of a peer while it runs.
type peerState struct {
	outbound  sync.Mutex // held by an outbound reconciliation
	inbound   bool       // an inbound reconciliation is running
	dirty     bool       // reconcile soon: this node learned records the peer may lack
	onConnect bool       // reconcile soon unless a reconciliation ran since connecting
	nextSync  time.Time  // earliest time for the next automatic reconciliation
	nextDial  time.Time
	backoff   time.Duration
	dialing   bool
	lastSync  time.Time
	connected time.Time // when the current connection was made
	lastErr   string
	recordsIn uint64
	recOut    uint64
	blobsOut  uint64 // blobs served to this peer
	bytesOut  int64  // blob bytes served to this peer
	blobConns int    // blob streams being served to this peer
	penalty   float64
	penaltyAt time.Time
	credit    float64 // useful first deliveries, decayed (creditDelivery)
	creditAt  time.Time
}

// state returns the peer's state, creating it. n.mu must be held.
func (n *Node) state(pid peer.ID) *peerState {
	ps := n.peers[pid]
	if ps == nil {
		ps = &peerState{}
		n.peers[pid] = ps
	}
	return ps
}

// PeerInfo describes a peer for `peers` and health.
type PeerInfo struct {
	ID         string    `json:"id"`
	Addrs      []string  `json:"addrs"` // full multiaddrs
	Connected  bool      `json:"connected"`
	Saved      bool      `json:"saved"` // in the peer book: reconnected after restarts
	LastSync   time.Time `json:"last_sync,omitzero"`
	LastError  string    `json:"last_error,omitempty"`
	RecordsIn  uint64    `json:"records_in"`  // records received from the peer (gossip and reconciliation)
	RecordsOut uint64    `json:"records_out"` // records sent by reconciliation
	Score      float64   `json:"score"`       // gossipsub score, with this node's protocol penalties
	Banned     time.Time `json:"banned_until,omitzero"`
}

func (n *Node) loadBook() error {
	b, err := n.st.GetLocal(PeerBookKey)
	if registry.KindOf(err) == registry.ENOTFOUND {
		return nil
	}
	if err != nil {
		return registry.E("federation.New", registry.KindOf(err), "reading the peer book", err)
	}
	var entries []*bookEntry
	if err := json.Unmarshal(b, &entries); err != nil {
		n.log.Warn("peer book is unreadable; starting with an empty one", "err", err)
		return nil
	}
	for _, e := range entries {
		pid, err := peer.Decode(e.ID)
		if err != nil {
			continue
		}
		n.book[pid] = e
		st := n.state(pid)
		st.lastSync, st.lastErr, st.recordsIn, st.recOut = e.LastSync, e.LastError, e.RecordsIn, e.RecordsOut
	}
	return nil
}

// saveBook persists the peer book with the latest counters.
func (n *Node) saveBook() {
	n.mu.Lock()
	entries := make([]*bookEntry, 0, len(n.book))
	for pid, e := range n.book {
		if st := n.peers[pid]; st != nil {
			e.LastSync, e.LastError, e.RecordsIn, e.RecordsOut = st.lastSync, st.lastErr, st.recordsIn, st.recOut
		}
		c := *e
		entries = append(entries, &c)
	}
	n.mu.Unlock()
	slices.SortFunc(entries, func(a, b *bookEntry) int { return strings.Compare(a.ID, b.ID) })
	b, _ := json.Marshal(entries)
	if err := n.st.PutLocal(PeerBookKey, b); err != nil {
		n.log.Error("cannot save the peer book", "err", err)
	}
}

// remember adds ai to the peer book (merging addresses).
func (n *Node) remember(ai *peer.AddrInfo) {
	n.mu.Lock()
	defer n.mu.Unlock()
	e := n.book[ai.ID]
	if e == nil {
		e = &bookEntry{ID: ai.ID.String(), Added: n.cfg.Now().UTC()}
		n.book[ai.ID] = e
	}
	for _, a := range ai.Addrs {
		if !slices.Contains(e.Addrs, a.String()) {
			e.Addrs = append(e.Addrs, a.String())
		}
	}
	n.state(ai.ID).backoff = 0
	if n.host != nil {
		n.cm.Protect(ai.ID, protectTag)
		n.host.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstorePermanent)
	}
}

// AddPeer joins this node to the peer at addr (a full multiaddr): it is
// remembered across restarts, protected in the connection manager,
// connected, and reconciled with before AddPeer returns. When the peer
// cannot be reached it stays remembered and is retried with backoff; the
// error (registry.ETEMPORARY) says so.
func (n *Node) AddPeer(ctx context.Context, addr string) (PeerInfo, error) {
	const op = "federation.AddPeer"
	ai, err := parsePeerAddr(addr)
	if err != nil {
		return PeerInfo{}, err
	}
	if ai.ID == n.host.ID() {
		return PeerInfo{}, registry.Errorf(op, registry.EINVALID, "%s is this node's own address", quote(addr))
	}
	n.gater.unban(ai.ID)
	n.remember(ai)
	n.saveBook()
	// Hold the outbound lock so the reconciliation that connecting triggers
	// is this one.
	n.mu.Lock()
	st := n.state(ai.ID)
	n.mu.Unlock()
	st.outbound.Lock()
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	err = n.host.Connect(dctx, *ai)
	cancel()
	if err != nil {
		st.outbound.Unlock()
		n.mu.Lock()
		st.lastErr = "connect: " + err.Error()
		n.mu.Unlock()
		return n.peerInfo(ai.ID), registry.E(op, registry.ETEMPORARY, "the peer is remembered but cannot be reached now; the node keeps retrying with backoff", err)
	}
	_, err = n.syncLocked(ctx, ai.ID, st)
	st.outbound.Unlock()
	if err != nil {
		n.log.Warn("initial reconciliation failed", "peer", ai.ID.String(), "err", err)
	}
	n.saveBook()
	return n.peerInfo(ai.ID), nil
}

// RemovePeer forgets a peer (by peer ID or full multiaddr), unprotects it
// and closes its connections. ENOTFOUND when the node neither remembers
// nor is connected to it.
func (n *Node) RemovePeer(ctx context.Context, idOrAddr string) error {
	const op = "federation.RemovePeer"
	pid, err := parsePeerRef(idOrAddr)
	if err != nil {
		return err
	}
	n.mu.Lock()
	_, saved := n.book[pid]
	delete(n.book, pid)
	n.mu.Unlock()
	connected := n.host.Network().Connectedness(pid) == network.Connected
	if !saved && !connected {
		return registry.Errorf(op, registry.ENOTFOUND, "peer %s is neither remembered nor connected", pid)
	}
	n.cm.Unprotect(pid, protectTag)
	n.host.Peerstore().ClearAddrs(pid)
	_ = n.host.Network().ClosePeer(pid)
	n.saveBook()
	return nil
}

func parsePeerRef(s string) (peer.ID, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "/") {
		a, err := ma.NewMultiaddr(s)
		if err == nil {
			if ai, err := peer.AddrInfoFromP2pAddr(a); err == nil {
				return ai.ID, nil
			}
		}
		return "", registry.Errorf("federation.parsePeerRef", registry.EINVALID, "%s names no peer; give a peer ID (12D3KooW…) or %s", quote(s), fullAddrHelp)
	}
	pid, err := peer.Decode(s)
	if err != nil {
		return "", registry.Errorf("federation.parsePeerRef", registry.EINVALID, "%s is neither a peer ID (12D3KooW…) nor a full multiaddr; %s", quote(s), fullAddrHelp)
	}
	return pid, nil
}

// Peers lists remembered, connected and banned peers, sorted by ID.
func (n *Node) Peers() []PeerInfo {
	ids := map[peer.ID]bool{}
	n.mu.Lock()
	for pid := range n.book {
		ids[pid] = true
	}
	n.mu.Unlock()
	for _, pid := range n.host.Network().Peers() {
		ids[pid] = true
	}
	for _, pid := range n.gater.banned() {
		ids[pid] = true
	}
	out := make([]PeerInfo, 0, len(ids))
	for pid := range ids {
		out = append(out, n.peerInfo(pid))
	}
	slices.SortFunc(out, func(a, b PeerInfo) int { return strings.Compare(a.ID, b.ID) })
	return out
}

func (n *Node) peerInfo(pid peer.ID) PeerInfo {
	p2p, _ := ma.NewComponent("p2p", pid.String())
	info := PeerInfo{ID: pid.String(), Connected: n.host.Network().Connectedness(pid) == network.Connected}
	seen := map[string]bool{}
	addAddr := func(a ma.Multiaddr) {
		s := a.Encapsulate(p2p).String()
		if !seen[s] {
			seen[s] = true
			info.Addrs = append(info.Addrs, s)
		}
	}
	n.mu.Lock()
	if e := n.book[pid]; e != nil {
		info.Saved = true
		for _, a := range e.multiaddrs() {
			addAddr(a)
		}
	}
	if st := n.peers[pid]; st != nil {
		info.LastSync, info.LastError = st.lastSync, st.lastErr
		info.RecordsIn, info.RecordsOut = st.recordsIn, st.recOut
	}
	info.Score = n.scores[pid]
	if _, ok := n.scores[pid]; !ok {
		info.Score = n.appScoreLocked(pid)
	}
	n.mu.Unlock()
	for _, c := range n.host.Network().ConnsToPeer(pid) {
		addAddr(c.RemoteMultiaddr())
	}
	info.Banned = n.gater.bannedUntil(pid)
	return info
}

// appScore is gossipsub's application-specific score: the decayed credit
// for useful first deliveries minus the decayed penalties for violations of
// the reconciliation and blob protocols.
func (n *Node) appScore(pid peer.ID) float64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.appScoreLocked(pid)
}

// penaltyHalfLife is how fast protocol penalties are forgiven.
const penaltyHalfLife = 10 * time.Minute

// Delivery credit: a peer earns creditPerDelivery for each record signed by
// a trust root that it delivers first by gossip, up to creditCap, halved
// every creditHalfLife. Records by other authors earn nothing, however
// valid, so a flood of junk from fresh keys cannot buy a peer standing.
const (
	creditPerDelivery = 1
	creditCap         = 10
	creditHalfLife    = time.Minute
)

func (n *Node) appScoreLocked(pid peer.ID) float64 {
	st := n.peers[pid]
	if st == nil {
		return 0
	}
	return decayed(st.credit, st.creditAt, creditHalfLife) - decayed(st.penalty, st.penaltyAt, penaltyHalfLife)
}

func decayed(v float64, at time.Time, halfLife time.Duration) float64 {
	if v == 0 {
		return 0
	}
	return v * math.Exp2(-time.Since(at).Seconds()/halfLife.Seconds())
}

// creditDelivery credits pid for delivering a useful record first.
func (n *Node) creditDelivery(pid peer.ID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	st := n.state(pid)
	st.credit = min(creditCap, decayed(st.credit, st.creditAt, creditHalfLife)+creditPerDelivery)
	st.creditAt = time.Now()
}

// penalize records a protocol violation by pid; a peer whose penalty
// reaches the graylist threshold is banned.
func (n *Node) penalize(pid peer.ID, err error) {
	n.stats.violations.Add(1)
	n.mu.Lock()
	st := n.state(pid)
	cur := decayed(st.penalty, st.penaltyAt, penaltyHalfLife)
	st.penalty, st.penaltyAt = cur+violationPenalty, time.Now()
	total := st.penalty
	n.mu.Unlock()
	n.log.Warn("peer broke the protocol", "peer", pid.String(), "err", err)
	if -total < graylistThreshold {
		n.ban(pid, "repeated protocol violations")
	}
}

// ban refuses pid for Limits.BanDuration and closes its connections.
func (n *Node) ban(pid peer.ID, why string) {
	if pid == n.host.ID() {
		return
	}
	if n.gater.ban(pid, time.Now().Add(n.cfg.Limits.BanDuration)) {
		n.log.Warn("banning peer", "peer", pid.String(), "reason", why, "for", n.cfg.Limits.BanDuration)
	}
	_ = n.host.Network().ClosePeer(pid)
}

// gater refuses connections to and from banned peers.
type gater struct {
	mu    sync.Mutex
	until map[peer.ID]time.Time
}

func newGater() *gater { return &gater{until: map[peer.ID]time.Time{}} }

func (g *gater) bannedUntil(p peer.ID) time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	until, ok := g.until[p]
	if ok && time.Now().After(until) {
		delete(g.until, p)
		return time.Time{}
	}
	return until
}

func (g *gater) banned() []peer.ID {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []peer.ID
	for p, until := range g.until {
		if time.Now().Before(until) {
			out = append(out, p)
		}
	}
	return out
}

// ban reports whether p was not banned before.
func (g *gater) ban(p peer.ID, until time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	old, ok := g.until[p]
	g.until[p] = until
	return !ok || time.Now().After(old)
}

func (g *gater) unban(p peer.ID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.until, p)
}

func (g *gater) allowed(p peer.ID) bool { return g.bannedUntil(p).IsZero() }

func (g *gater) InterceptPeerDial(p peer.ID) bool                 { return g.allowed(p) }
func (g *gater) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return g.allowed(p) }
func (g *gater) InterceptAccept(network.ConnMultiaddrs) bool      { return true }
func (g *gater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return g.allowed(p)
}
func (g *gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }

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
