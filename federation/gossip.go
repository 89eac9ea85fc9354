package federation

import (
	"context"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// Gossip score thresholds (docs/FEDERATION.md §3.2). A peer below
// graylistThreshold is ignored by gossipsub and banned by this node.
const (
	gossipThreshold   = -100
	publishThreshold  = -500
	graylistThreshold = -1000
	// violationPenalty is the application score a peer loses for each
	// violation of the reconciliation or blob protocols.
	violationPenalty = 400
)

// maxGossipMessage is gossipsub's limit on one message. It is above
// registry.MaxRecordSize so that oversized records reach the validator and
// their sender is penalised; larger RPCs are dropped by gossipsub itself.
const maxGossipMessage = 1 << 20

// Gossip queue sizes, in messages; with maxGossipMessage and
// registry.MaxRecordSize they bound gossip memory in bytes
// (docs/FEDERATION.md §8.3). A full validation queue or subscription buffer
// drops messages: reconciliation fetches what gossip lost.
const (
	validateQueue      = 64  // received messages awaiting validation, ≤ maxGossipMessage each
	validateThrottle   = 16  // validations running at once
	subscriptionBuffer = 64  // accepted records awaiting readGossip, ≤ MaxRecordSize each
	outboundQueue      = 256 // RPCs queued per peer; they share the message bytes of the cache
)

// messageID is the gossipsub message ID: the record ID (the multihash of
// the message data).
func messageID(m *pb.Message) string {
	id := registry.Sum(m.Data)
	return string(id[:])
}

func (n *Node) startGossip() error {
	const op = "federation.New"
	topic := Topic(n.cfg.Network)
	_, loopback, _ := net.ParseCIDR("127.0.0.0/8")
	_, loopback6, _ := net.ParseCIDR("::1/128")
	params := &pubsub.PeerScoreParams{
		SkipAtomicValidation: true,
		Topics: map[string]*pubsub.TopicScoreParams{topic: {
			SkipAtomicValidation: true,
			TopicWeight:          1,
			TimeInMeshWeight:     0.01,
			TimeInMeshQuantum:    time.Second,
			TimeInMeshCap:        100,
			// First deliveries earn credit through the application score
			// only when the record is useful (creditDelivery): valid junk
			// from fresh keys must not raise a peer's score.
			FirstMessageDeliveriesWeight:   0,
			InvalidMessageDeliveriesWeight: -100,
			InvalidMessageDeliveriesDecay:  0.99,
		}},
		AppSpecificScore:            n.appScore,
		AppSpecificWeight:           1,
		IPColocationFactorWeight:    -5,
		IPColocationFactorThreshold: 10,
		IPColocationFactorWhitelist: []*net.IPNet{loopback, loopback6},
		BehaviourPenaltyWeight:      -10,
		BehaviourPenaltyThreshold:   6,
		BehaviourPenaltyDecay:       0.99,
		DecayInterval:               time.Second,
		DecayToZero:                 0.01,
		RetainScore:                 10 * time.Minute,
	}
	thresholds := &pubsub.PeerScoreThresholds{
		GossipThreshold:             gossipThreshold,
		PublishThreshold:            publishThreshold,
		GraylistThreshold:           graylistThreshold,
		AcceptPXThreshold:           100,
		OpportunisticGraftThreshold: 2,
	}
	ps, err := pubsub.NewGossipSub(n.ctx, n.host,
		pubsub.WithMessageIdFn(messageID),
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithNoAuthor(),
		pubsub.WithPeerScore(params, thresholds),
		pubsub.WithPeerScoreInspect(pubsub.PeerScoreInspectFn(n.inspectScores), time.Second),
		pubsub.WithPeerExchange(false),
		pubsub.WithFloodPublish(true),
		pubsub.WithMaxMessageSize(maxGossipMessage),
		pubsub.WithPeerOutboundQueueSize(outboundQueue),
		pubsub.WithValidateQueueSize(validateQueue),
		pubsub.WithValidateThrottle(validateThrottle),
		pubsub.WithRawTracer(lossTracer{n: n, inFlight: new(atomic.Int32)}),
		pubsub.WithLogger(slog.New(minLevel{n.log.Handler(), slog.LevelInfo}).With("system", "gossipsub")),
	)
	if err != nil {
		return registry.E(op, registry.EINTERNAL, "starting gossipsub", err)
	}
	if err := ps.RegisterTopicValidator(topic, pubsub.ValidatorEx(n.validate)); err != nil {
		return registry.E(op, registry.EINTERNAL, "registering the record validator", err)
	}
	t, err := ps.Join(topic)
	if err != nil {
		return registry.E(op, registry.EINTERNAL, "joining "+topic, err)
	}
	sub, err := t.Subscribe(pubsub.WithBufferSize(subscriptionBuffer))
	if err != nil {
		return registry.E(op, registry.EINTERNAL, "subscribing to "+topic, err)
	}
	events, err := t.EventHandler()
	if err != nil {
		return registry.E(op, registry.EINTERNAL, "watching "+topic, err)
	}
	n.ps, n.topic, n.sub = ps, t, sub
	n.wg.Add(2)
	go n.readGossip()
	go n.watchTopic(events)
	return nil
}

// joinSyncDelay is how long after a peer joins the topic this node
// reconciles with it: past the next two heartbeats, by when the peer is in
// the mesh, so that records gossiped while it joined are not missed.
const joinSyncDelay = 2 * time.Second

// watchTopic reconciles with peers some time after they join the topic.
func (n *Node) watchTopic(h *pubsub.TopicEventHandler) {
	defer n.wg.Done()
	defer h.Cancel()
	for {
		ev, err := h.NextPeerEvent(n.ctx)
		if err != nil {
			return
		}
		if ev.Type == pubsub.PeerJoin && n.host.ID() < ev.Peer {
			n.mu.Lock()
			st := n.state(ev.Peer)
			st.dirty = true
			st.nextSync = time.Now().Add(joinSyncDelay)
			n.mu.Unlock()
		}
	}
}

// validate is the gossip validator (docs/FEDERATION.md §3.1): Reject for
// oversized, malformed or forged records (gossipsub penalises the sender),
// Ignore for records already held, too far in the future or over a quota
// (Admission), Accept otherwise. Nothing is relayed unless accepted.
func (n *Node) validate(_ context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	if from == n.host.ID() {
		switch vd := msg.ValidatorData.(type) {
		case *registry.Record:
			if string(vd.Bytes()) == string(msg.Data) {
				return pubsub.ValidationAccept
			}
		case []*registry.Record:
			if b, err := encodeBundle(vd); err == nil && string(b) == string(msg.Data) {
				return pubsub.ValidationAccept
			}
		}
	}
	if isBundle(msg.Data) {
		return n.validateBundle(from, msg)
	}
	if len(msg.Data) > registry.MaxRecordSize {
		n.stats.gossipRejected.Add(1)
		n.log.Debug("gossip: rejected oversized record", "peer", from.String(), "bytes", len(msg.Data))
		return pubsub.ValidationReject
	}
	rec, err := registry.DecodeRecord(msg.Data)
	if err != nil {
		n.stats.gossipRejected.Add(1)
		n.log.Debug("gossip: rejected record", "peer", from.String(), "err", err)
		return pubsub.ValidationReject
	}
	if !registry.Applicable(rec, n.cfg.Now(), n.cfg.MaxSkew) {
		n.stats.gossipFuture.Add(1)
		return pubsub.ValidationIgnore
	}
	if n.idx.has(keyOf(rec)) {
		n.stats.gossipHeld.Add(1)
		return pubsub.ValidationIgnore
	}
	ok, useful := n.admit(rec, from)
	if !ok {
		n.stats.gossipOverQuota.Add(1)
		return pubsub.ValidationIgnore
	}
	if useful {
		n.creditDelivery(from)
	}
	msg.ValidatorData = rec
	n.stats.gossipAccepted.Add(1)
	return pubsub.ValidationAccept
}

// admit asks the node's Admission about a record from pid.
func (n *Node) admit(rec *registry.Record, pid peer.ID) (ok, useful bool) {
	if n.cfg.Admission == nil {
		return true, true
	}
	return n.cfg.Admission.Admit(rec, pid.String())
}

// readGossip hands accepted records from other peers to ingestLoop.
func (n *Node) readGossip() {
	defer n.wg.Done()
	for {
		msg, err := n.sub.Next(n.ctx)
		if err != nil {
			return
		}
		if msg.ReceivedFrom == n.host.ID() {
			continue
		}
		var recs []*registry.Record
		switch vd := msg.ValidatorData.(type) {
		case *registry.Record:
			recs = []*registry.Record{vd}
		case []*registry.Record:
			recs = vd
		}
		for _, rec := range recs {
			if err := n.ingestBytes.Acquire(n.ctx, int64(len(rec.Bytes()))); err != nil {
				return
			}
			select {
			case n.ingestCh <- gossiped{rec: rec, from: msg.ReceivedFrom}:
			case <-n.ctx.Done():
				return
			}
		}
	}
}

// ingestLoop stores gossiped records in batches: whatever has arrived by
// the time the previous batch is durable.
func (n *Node) ingestLoop() {
	defer n.wg.Done()
	const maxBatch = 1024
	recs := make([]*registry.Record, 0, maxBatch)
	from := make([]peer.ID, 0, maxBatch)
	for {
		recs, from = recs[:0], from[:0]
		select {
		case g := <-n.ingestCh:
			recs, from = append(recs, g.rec), append(from, g.from)
		case <-n.ctx.Done():
			return
		}
	drain:
		for len(recs) < maxBatch {
			select {
			case g := <-n.ingestCh:
				recs, from = append(recs, g.rec), append(from, g.from)
			default:
				break drain
			}
		}
		_, err := n.ingest(recs, from, false)
		var held int64
		for _, r := range recs {
			held += int64(len(r.Bytes()))
		}
		n.ingestBytes.Release(held)
		if err != nil {
			n.log.Error("cannot store gossiped records; reconciliation will fetch them again", "records", len(recs), "err", err)
		}
	}
}

// inspectScores receives gossipsub's peer scores every second and bans
// peers below the graylist threshold.
func (n *Node) inspectScores(scores map[peer.ID]float64) {
	n.mu.Lock()
	n.scores = scores
	n.mu.Unlock()
	for pid, s := range scores {
		if s < graylistThreshold {
			n.ban(pid, "gossip score fell below the graylist threshold")
		}
	}
}

// minLevel drops records below a level: gossipsub logs every RPC at debug
// level, which would drown the node's own debug logs.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(as), h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.min}
}
