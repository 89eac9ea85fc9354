package node

import (
	"context"
	"encoding/json"
	"maps"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/federation"
	"github.com/wasmrust/wasm-crates-registry/node/metrics"
	"github.com/wasmrust/wasm-crates-registry/node/webhook"
	"github.com/wasmrust/wasm-crates-registry/store"
)

// What the node tells the outside about itself: Prometheus metrics and
// webhook events. Both follow every record the node stores, through
// stored.

// Metrics is the node's metrics registry, served at /metrics.
func (n *Node) Metrics() *metrics.Metrics { return n.metrics }

// Webhooks is the node's webhook dispatcher.
func (n *Node) Webhooks() *webhook.Dispatcher { return n.hooks }

// Registerer lets the federation register libp2p's metrics with the node's.
func (s netStore) Registerer() prometheus.Registerer { return s.n.metrics.Registerer() }

func (n *Node) newMetrics() *metrics.Metrics {
	return metrics.New(metrics.Sources{
		Federation: func() metrics.FederationStats {
			st, ok := n.net.(interface{ Stats() federation.Stats })
			if n.net == nil || !ok {
				return metrics.FederationStats{}
			}
			s := st.Stats()
			return metrics.FederationStats{
				GossipAccepted: s.GossipAccepted, GossipRejected: s.GossipRejected,
				GossipIgnored: s.GossipIgnoredHeld + s.GossipIgnoredFuture + s.GossipIgnoredQuota, GossipBundles: s.GossipBundles,
				SessionsIn: s.SessionsIn, SessionsOut: s.SessionsOut, SessionErrors: s.SessionErrors,
				ReconcileBytesIn: s.SyncBytesIn, ReconcileBytesOut: s.SyncBytesOut, ReconcileRoundTrips: s.SyncRoundTrips,
				BlobsFetched: s.BlobsFetched, BlobsServed: s.BlobsServed, Violations: s.Violations,
			}
		},
		Peers: func() metrics.PeerStats {
			var ps metrics.PeerStats
			if n.net == nil {
				return ps
			}
			for _, p := range n.net.Peers() {
				if p.Connected {
					ps.Connected++
					ps.Scores = append(ps.Scores, p.Score)
				}
				if p.Saved {
					ps.Saved++
				}
				if !p.Banned.IsZero() {
					ps.Banned++
				}
			}
			return ps
		},
		Store: func() metrics.StoreStats {
			recs, blobs := n.db.Counts()
			lsm, vlog := n.db.Size()
			size, _ := n.db.LogHead()
			s := metrics.StoreStats{Records: recs, Blobs: blobs, LSMBytes: lsm, Vlog: vlog, LogEntries: size}
			_, _ = n.db.ListJobs(0, func(j *store.Job) bool {
				switch j.State {
				case store.JobQueued:
					s.QueuedJobs++
				case store.JobRunning:
					s.RunningJobs++
				}
				return false
			})
			return s
		},
	})
}

// stored is told of every record just stored, whatever its origin
// (metrics.Origin*): it counts them, hands them to shared testing, and
// turns them into webhook events.
func (n *Node) stored(recs []*registry.Record, origin string) {
	if len(recs) == 0 {
		return
	}
	if n.metrics != nil {
		n.metrics.Records(recs, origin)
	}
	if n.shared != nil {
		n.shared.observe(recs)
	}
	if n.hooks != nil && n.hooks.Active() {
		select {
		case n.events <- recs:
		default:
			n.log.Warn("webhook events dropped: the event queue is full", "records", len(recs))
		}
	}
}

// eventQueue bounds the batches of stored records waiting to become
// webhook events: deriving them reads views, which must not slow the
// paths that store records (gossip, reconciliation, the API). A burst
// beyond it loses events, never records, and is logged.
const eventQueue = 256

// eventLoop turns queued batches into webhook events until the node
// closes.
func (n *Node) eventLoop() {
	defer close(n.eventsDone)
	for {
		select {
		case recs := <-n.events:
			n.emitEvents(recs)
		case <-n.eventsStop:
			return
		}
	}
}

// webhookStore keeps the webhooks in the store's local values.
type webhookStore struct{ db *store.DB }

const webhookKey = "webhooks"

type webhookState struct {
	Subs    []webhook.Subscription `json:"subscriptions"`
	Pending []webhook.Pending      `json:"pending"`
	Log     []webhook.Delivery     `json:"log"`
}

func (w webhookStore) LoadWebhooks(context.Context) ([]webhook.Subscription, []webhook.Pending, []webhook.Delivery, error) {
	var st webhookState
	if err := w.db.GetLocalJSON(webhookKey, &st); err != nil && registry.KindOf(err) != registry.ENOTFOUND {
		return nil, nil, nil, err
	}
	return st.Subs, st.Pending, st.Log, nil
}

func (w webhookStore) SaveWebhooks(_ context.Context, subs []webhook.Subscription, pending []webhook.Pending, log []webhook.Delivery) error {
	return w.db.PutLocalJSON(webhookKey, webhookState{subs, pending, log})
}

// verdictState is what a release's subscribers last heard of its verdict
// and gate, so that a change is announced once.
type verdictState struct {
	Wasm string `json:"wasm"`
	Gate string `json:"gate"`
}

func verdictKey(subject string) string { return "webhook-verdict/" + subject }

// emitEvents turns stored records into events: a release this node
// serves is a publish; an authorized yank a yank; a trusted report a
// report; and after any record about a release, a change of its verdict or
// gate since subscribers last heard of it is a verdict or gate event.
// Records nobody here trusts make no event.
func (n *Node) emitEvents(recs []*registry.Record) {
	ctx := context.Background()
	trust := n.Trust()
	touched := map[string]bool{}
	for _, r := range recs {
		name, version, err := registry.ParseReleaseSubject(r.Subject)
		if err != nil {
			continue
		}
		switch r.Kind {
		case registry.KindRelease, registry.KindYank, registry.KindReport, registry.KindReview:
		default:
			continue
		}
		rel, err := n.Release(ctx, r.Subject)
		if err != nil || rel.Unauthorized {
			continue
		}
		data := map[string]any{"name": name, "version": version, "record": r.ID(), "author": r.Author.PeerID()}
		switch r.Kind {
		case registry.KindRelease:
			if rel.ID != r.ID() {
				continue // a conflicting claim, not the release served
			}
			data["cksum"], data["wasm"] = rel.Cksum, rel.Wasm
			n.emit(ctx, webhook.EventPublish, r.Subject, data)
		case registry.KindYank:
			if !trust.May(r.Author, registry.RolePublisher, name) {
				continue
			}
			data["yanked"] = rel.Yanked
			n.emit(ctx, webhook.EventYank, r.Subject, data)
		case registry.KindReport:
			if !trust.Tests(name)(r.Author) {
				continue
			}
			for _, s := range rel.Reports {
				if s.ID == r.ID() {
					data["outcome"], data["wasm"], data["score"], data["gate"] = s.Outcome, s.Wasm, s.Score, s.Gate
				}
			}
			n.emit(ctx, webhook.EventReport, r.Subject, data)
		}
		touched[r.Subject] = true
	}
	subjects := make([]string, 0, len(touched))
	for s := range touched {
		subjects = append(subjects, s)
	}
	slices.Sort(subjects)
	for _, subject := range subjects {
		n.announceVerdict(ctx, subject)
	}
}

// announceVerdict emits verdict and gate events when the release's verdict
// or gate differs from what subscribers last heard.
func (n *Node) announceVerdict(ctx context.Context, subject string) {
	rel, err := n.Release(ctx, subject)
	if err != nil {
		return
	}
	now := verdictState{Wasm: rel.Wasm, Gate: rel.Gate}
	var last verdictState
	if err := n.db.GetLocalJSON(verdictKey(subject), &last); err != nil {
		if registry.KindOf(err) != registry.ENOTFOUND {
			n.log.Warn("reading a verdict for webhooks", "release", subject, "err", err)
			return
		}
		last = verdictState{Wasm: registry.WasmUntested} // what a new release starts as
	}
	if last == now {
		return
	}
	if err := n.db.PutLocalJSON(verdictKey(subject), now); err != nil {
		n.log.Warn("remembering a verdict for webhooks", "release", subject, "err", err)
		return
	}
	base := map[string]any{"name": rel.Name, "version": rel.Version, "score": rel.Score}
	if last.Wasm != now.Wasm {
		d := maps.Clone(base)
		d["from"], d["to"], d["reason"] = last.Wasm, now.Wasm, rel.WasmReason
		n.emit(ctx, webhook.EventVerdict, subject, d)
	}
	if last.Gate != now.Gate {
		d := maps.Clone(base)
		d["from"], d["to"], d["reasons"] = last.Gate, now.Gate, rel.GateReasons
		n.emit(ctx, webhook.EventGate, subject, d)
	}
}

func (n *Node) emit(ctx context.Context, typ, subject string, data map[string]any) {
	b, err := json.Marshal(data)
	if err != nil {
		n.log.Warn("encoding a webhook event", "err", err)
		return
	}
	n.hooks.Emit(ctx, webhook.Event{Type: typ, Subject: subject, Data: b})
}
