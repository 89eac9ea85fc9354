package federation

import (
	"math"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

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
