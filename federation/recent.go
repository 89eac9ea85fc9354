package federation

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Recent peers: every peer of this network the node was connected to
// (whichever side dialled), with the listen addresses it announced, so
// that after a restart the node dials them again at once instead of
// waiting for them to retry with backoff. It is not the peer book: a
// recent peer is not trusted, not protected, not retried; it is dialled
// once at start.

// RecentPeersKey is the LocalStore key of the recent peers (JSON).
const RecentPeersKey = "federation/recent"

// maxRecent bounds the recent peers kept; the most recently seen win.
const maxRecent = 64

// maxRecentAddrs bounds the addresses kept per recent peer.
const maxRecentAddrs = 8

// recentDialTimeout bounds each dial of a recent peer at start.
const recentDialTimeout = 5 * time.Second

type recentEntry struct {
	ID    string    `json:"id"`
	Addrs []string  `json:"addrs"`
	Seen  time.Time `json:"seen"`
}

// noteRecent records that pid, a peer of this network, is connected now,
// saving the list when the peer or its addresses are new.
func (n *Node) noteRecent(pid peer.ID) {
	var addrs []string
	for _, a := range n.host.Peerstore().Addrs(pid) {
		if manet.IsIPUnspecified(a) || len(addrs) == maxRecentAddrs {
			continue
		}
		addrs = append(addrs, a.String())
	}
	if len(addrs) == 0 {
		return
	}
	n.mu.Lock()
	if n.recent == nil {
		n.recent = map[peer.ID]*recentEntry{}
	}
	old := n.recent[pid]
	changed := old == nil || !slices.Equal(old.Addrs, addrs)
	n.recent[pid] = &recentEntry{ID: pid.String(), Addrs: addrs, Seen: n.cfg.Now().UTC()}
	if len(n.recent) > maxRecent {
		var oldest peer.ID
		var at time.Time
		for p, e := range n.recent {
			if oldest == "" || e.Seen.Before(at) {
				oldest, at = p, e.Seen
			}
		}
		delete(n.recent, oldest)
	}
	n.mu.Unlock()
	if changed {
		n.saveRecent() // now, so that a node killed later still knows the peer
	}
}

func (n *Node) loadRecent() {
	b, err := n.st.GetLocal(RecentPeersKey)
	if err != nil {
		return
	}
	var entries []*recentEntry
	if json.Unmarshal(b, &entries) != nil {
		n.log.Warn("the recent peers list is unreadable; it is started again")
		return
	}
	n.recent = map[peer.ID]*recentEntry{}
	for _, e := range entries {
		if pid, err := peer.Decode(e.ID); err == nil && len(n.recent) < maxRecent {
			if len(e.Addrs) > maxRecentAddrs {
				e.Addrs = e.Addrs[:maxRecentAddrs]
			}
			n.recent[pid] = e
		}
	}
}

func (n *Node) saveRecent() {
	n.mu.Lock()
	entries := make([]*recentEntry, 0, len(n.recent))
	for _, e := range n.recent {
		c := *e
		entries = append(entries, &c)
	}
	n.mu.Unlock()
	slices.SortFunc(entries, func(a, b *recentEntry) int { return strings.Compare(a.ID, b.ID) })
	b, _ := json.Marshal(entries)
	if err := n.st.PutLocal(RecentPeersKey, b); err != nil {
		n.log.Warn("cannot save the recent peers", "err", err)
	}
}

// dialRecent dials, once each and concurrently, the recent peers that are
// not in the peer book (those are dialled and retried by scheduleLoop).
func (n *Node) dialRecent() {
	defer n.wg.Done()
	n.mu.Lock()
	var ais []peer.AddrInfo
	for pid, e := range n.recent {
		if _, booked := n.book[pid]; booked || pid == n.host.ID() || !n.gater.allowed(pid) {
			continue
		}
		ai := peer.AddrInfo{ID: pid}
		for _, s := range e.Addrs {
			if a, err := ma.NewMultiaddr(s); err == nil {
				ai.Addrs = append(ai.Addrs, a)
			}
		}
		ais = append(ais, ai)
	}
	n.mu.Unlock()
	for _, ai := range ais {
		n.wg.Add(1)
		go func(ai peer.AddrInfo) {
			defer n.wg.Done()
			ctx, cancel := context.WithTimeout(n.ctx, recentDialTimeout)
			defer cancel()
			if err := n.host.Connect(ctx, ai); err != nil {
				n.log.Debug("a recent peer did not answer", "peer", ai.ID, "err", err)
			}
		}(ai)
	}
}
