package federation

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"time"

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
