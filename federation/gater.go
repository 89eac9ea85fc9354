package federation

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

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
