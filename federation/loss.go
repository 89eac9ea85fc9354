package federation

import (
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// lossTracer turns gossip that the bounded queues dropped into prompt
// reconciliation with the peer concerned: a message dropped because this
// node's validation queue or subscription buffer was full (a burst, or a
// flood) marks its sender for reconciliation, and an RPC dropped because a
// peer's outbound queue was full marks that peer. The queues stay bounded
// in bytes (docs/FEDERATION.md §8.3) and nothing waits for the next
// periodic sync to be repaired.
//
// Tracer calls come from gossipsub's own goroutines, so marking happens in
// a goroutine of its own (at most lossMarkers at once; more losses at the
// same moment mark nothing new: the peers are already marked).
type lossTracer struct {
	n        *Node
	inFlight *atomic.Int32 // marking goroutines running
}

// lossMarkers bounds the goroutines marking peers after losses.
const lossMarkers = 64

var _ pubsub.RawTracer = lossTracer{}

func (t lossTracer) RejectMessage(msg *pubsub.Message, reason string) {
	switch reason {
	case pubsub.RejectValidationQueueFull, pubsub.RejectValidationThrottled:
		t.lost(msg.ReceivedFrom)
	}
}

func (t lossTracer) DropRPC(_ *pubsub.RPC, p peer.ID)         { t.lost(p) }
func (t lossTracer) UndeliverableMessage(msg *pubsub.Message) { t.lost(msg.ReceivedFrom) }
func (t lossTracer) lost(p peer.ID) {
	if p == "" || p == t.n.host.ID() {
		return
	}
	if t.inFlight.Add(1) > lossMarkers {
		t.inFlight.Add(-1)
		return
	}
	go func() {
		defer t.inFlight.Add(-1)
		t.n.markDirty(p)
	}()
}

func (lossTracer) AddPeer(peer.ID, protocol.ID)                         {}
func (lossTracer) RemovePeer(peer.ID)                                   {}
func (lossTracer) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (lossTracer) OnClosedOutboundStream(peer.ID)                       {}
func (lossTracer) Join(string)                                          {}
func (lossTracer) Leave(string)                                         {}
func (lossTracer) Graft(peer.ID, string)                                {}
func (lossTracer) Prune(peer.ID, string)                                {}
func (lossTracer) ValidateMessage(*pubsub.Message)                      {}
func (lossTracer) DeliverMessage(*pubsub.Message)                       {}
func (lossTracer) DuplicateMessage(*pubsub.Message)                     {}
func (lossTracer) ThrottlePeer(peer.ID)                                 {}
func (lossTracer) RecvRPC(*pubsub.RPC)                                  {}
func (lossTracer) SendRPC(*pubsub.RPC, peer.ID)                         {}
func (lossTracer) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
