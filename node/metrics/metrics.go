// Package metrics exposes a node's figures to Prometheus at /metrics:
// requests of the REST API, records stored by kind and origin, gossip and
// reconciliation, peers, pipeline jobs and stages, and the store's size.
//
// Names follow Prometheus's conventions: the wcr_ prefix, _total for
// counters, _seconds and _bytes for units. No label carries a crate name, a
// peer ID or anything else a stranger chooses: every label's values are a
// short fixed set (a route pattern, a record kind this node knows or
// "other", an outcome), so a flood of odd input cannot grow the series.
//
// Counters the node increments itself (requests, records, jobs) live here;
// figures other parts already count (gossip, reconciliation, peers, the
// store) are read from them at scrape time through Sources.
package metrics

import (
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// FederationStats are the federation's running totals.
type FederationStats struct {
	GossipAccepted, GossipRejected, GossipIgnored, GossipBundles uint64
	SessionsIn, SessionsOut, SessionErrors                       uint64
	ReconcileBytesIn, ReconcileBytesOut, ReconcileRoundTrips     uint64
	BlobsFetched, BlobsServed                                    uint64
	Violations                                                   uint64
}

// PeerStats describe the peers now.
type PeerStats struct {
	Connected, Saved, Banned int
	// Scores are the connected peers' scores.
	Scores []float64
}

// StoreStats describe the store now.
type StoreStats struct {
	Records, Blobs          int64
	LSMBytes, Vlog          int64
	QueuedJobs, RunningJobs int
	LogEntries              uint64
}

// Sources read figures at scrape time; a nil source is left out (a node
// without federation has no gossip figures).
type Sources struct {
	Federation func() FederationStats
	Peers      func() PeerStats
	Store      func() StoreStats
}

// Origins of a stored record.
const (
	OriginLocal  = "local"  // made by this node (a publish, a report, a checkpoint)
	OriginImport = "import" // imported through the API
	OriginPeer   = "peer"   // received from a peer
)

// Metrics is a node's registry of metrics.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	records  *prometheus.CounterVec
	jobs     *prometheus.CounterVec
	stages   *prometheus.HistogramVec
	webhooks *prometheus.CounterVec
}

// New builds the registry: the node's own metrics, the Go runtime's and
// the process's, and the sources' figures.
func New(src Sources) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wcr_http_requests_total", Help: "Requests to the REST API, Cargo protocol and dashboard, by route pattern, method and status code.",
	}, []string{"route", "method", "code"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "wcr_http_request_duration_seconds", Help: "Time to answer a request, by route pattern and method.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10, 60},
	}, []string{"route", "method"})
	m.records = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wcr_records_stored_total", Help: "Records stored, by kind and origin (local, import, peer).",
	}, []string{"kind", "origin"})
	m.jobs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wcr_pipeline_jobs_total", Help: "Pipeline jobs finished, by outcome (a report outcome, or error, canceled).",
	}, []string{"outcome"})
	m.stages = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "wcr_pipeline_stage_duration_seconds", Help: "Time of each pipeline stage of finished jobs.",
		Buckets: prometheus.ExponentialBuckets(0.01, 3, 11), // 10 ms … ~10 min
	}, []string{"stage"})
	m.webhooks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wcr_webhook_deliveries_total", Help: "Webhook delivery attempts, by result (delivered, failed, dropped).",
	}, []string{"result"})
	m.reg.MustRegister(m.requests, m.latency, m.records, m.jobs, m.stages, m.webhooks,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if src.Federation != nil {
		m.reg.MustRegister(federationCollector(src.Federation))
	}
	if src.Peers != nil {
		m.reg.MustRegister(peerCollector(src.Peers))
	}
	if src.Store != nil {
		m.reg.MustRegister(storeCollector(src.Store))
	}
	return m
}

// Registerer is where other parts (libp2p) register their own metrics.
func (m *Metrics) Registerer() prometheus.Registerer { return m.reg }

// Handler serves the metrics in Prometheus's text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Request counts one answered request. route is the pattern that matched
// (never the path: a path names crates).
func (m *Metrics) Request(route, method string, code int, d time.Duration) {
	method = knownMethod(method)
	m.requests.WithLabelValues(route, method, strconv.Itoa(code)).Inc()
	m.latency.WithLabelValues(route, method).Observe(d.Seconds())
}

// Records counts records just stored.
func (m *Metrics) Records(recs []*registry.Record, origin string) {
	for _, r := range recs {
		k := string(r.Kind)
		if !r.Kind.Known() {
			k = "other"
		}
		m.records.WithLabelValues(k, origin).Inc()
	}
}

// Job counts a finished job and its stages.
func (m *Metrics) Job(outcome string, stages []registry.StageTime) {
	if outcome == "" {
		outcome = "unknown"
	}
	m.jobs.WithLabelValues(outcome).Inc()
	for _, s := range stages {
		m.stages.WithLabelValues(s.Stage).Observe(float64(s.US) / 1e6)
	}
}

// Webhook counts a delivery attempt.
func (m *Metrics) Webhook(result string) { m.webhooks.WithLabelValues(result).Inc() }

var methods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions}

func knownMethod(m string) string {
	if slices.Contains(methods, m) {
		return m
	}
	return "other"
}

// funcCollector turns a snapshot function into metrics at scrape time.
type funcCollector struct {
	descs   []*prometheus.Desc
	collect func(ch chan<- prometheus.Metric)
}

func (c *funcCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *funcCollector) Collect(ch chan<- prometheus.Metric) { c.collect(ch) }

func federationCollector(f func() FederationStats) prometheus.Collector {
	gossip := prometheus.NewDesc("wcr_gossip_messages_total", "Gossip messages validated, by result (accepted, rejected: forged or malformed, ignored: held, future or over quota).", []string{"result"}, nil)
	bundles := prometheus.NewDesc("wcr_gossip_bundles_total", "Accepted gossip messages that carried a bundle of records.", nil, nil)
	sessions := prometheus.NewDesc("wcr_reconcile_sessions_total", "Reconciliation sessions, by direction (in: a peer asked, out: this node asked).", []string{"direction"}, nil)
	sessionErrs := prometheus.NewDesc("wcr_reconcile_session_errors_total", "Reconciliation sessions that failed.", nil, nil)
	rbytes := prometheus.NewDesc("wcr_reconcile_bytes_total", "Bytes of reconciliation sessions this node started, by direction.", []string{"direction"}, nil)
	rounds := prometheus.NewDesc("wcr_reconcile_round_trips_total", "Round trips of reconciliation sessions this node started.", nil, nil)
	blobs := prometheus.NewDesc("wcr_blobs_transferred_total", "Archives transferred over the blob protocol, by direction.", []string{"direction"}, nil)
	viol := prometheus.NewDesc("wcr_peer_violations_total", "Protocol violations by peers (each one penalised).", nil, nil)
	return &funcCollector{descs: []*prometheus.Desc{gossip, bundles, sessions, sessionErrs, rbytes, rounds, blobs, viol}, collect: func(ch chan<- prometheus.Metric) {
		s := f()
		c := func(d *prometheus.Desc, v uint64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
		}
		c(gossip, s.GossipAccepted, "accepted")
		c(gossip, s.GossipRejected, "rejected")
		c(gossip, s.GossipIgnored, "ignored")
		c(bundles, s.GossipBundles)
		c(sessions, s.SessionsIn, "in")
		c(sessions, s.SessionsOut, "out")
		c(sessionErrs, s.SessionErrors)
		c(rbytes, s.ReconcileBytesIn, "in")
		c(rbytes, s.ReconcileBytesOut, "out")
		c(rounds, s.ReconcileRoundTrips)
		c(blobs, s.BlobsFetched, "in")
		c(blobs, s.BlobsServed, "out")
		c(viol, s.Violations)
	}}
}

func peerCollector(f func() PeerStats) prometheus.Collector {
	peers := prometheus.NewDesc("wcr_peers", "Peers, by state (connected, saved: in the peer book, banned).", []string{"state"}, nil)
	scores := prometheus.NewDesc("wcr_peer_score", "Scores of the connected peers (gossipsub's, with this node's penalties); below zero a peer is distrusted, far below it is banned.", nil, nil)
	return &funcCollector{descs: []*prometheus.Desc{peers, scores}, collect: func(ch chan<- prometheus.Metric) {
		s := f()
		for state, n := range map[string]int{"connected": s.Connected, "saved": s.Saved, "banned": s.Banned} {
			ch <- prometheus.MustNewConstMetric(peers, prometheus.GaugeValue, float64(n), state)
		}
		buckets := map[float64]uint64{}
		bounds := []float64{-100, -10, -1, 0, 1, 10, 100}
		sum := 0.0
		for _, v := range s.Scores {
			sum += v
			for _, b := range bounds {
				if v <= b {
					buckets[b]++
				}
			}
		}
		ch <- prometheus.MustNewConstHistogram(scores, uint64(len(s.Scores)), sum, buckets)
	}}
}

func storeCollector(f func() StoreStats) prometheus.Collector {
	records := prometheus.NewDesc("wcr_store_records", "Records held.", nil, nil)
	blobs := prometheus.NewDesc("wcr_store_blobs", "Archives held.", nil, nil)
	size := prometheus.NewDesc("wcr_store_size_bytes", "Size of the store on disk, by part (lsm, vlog).", []string{"part"}, nil)
	queue := prometheus.NewDesc("wcr_pipeline_queue_depth", "Pipeline jobs, by state (queued, running).", []string{"state"}, nil)
	logSize := prometheus.NewDesc("wcr_log_entries", "Entries of this node's transparency log.", nil, nil)
	return &funcCollector{descs: []*prometheus.Desc{records, blobs, size, queue, logSize}, collect: func(ch chan<- prometheus.Metric) {
		s := f()
		g := func(d *prometheus.Desc, v float64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
		}
		g(records, float64(s.Records))
		g(blobs, float64(s.Blobs))
		g(size, float64(s.LSMBytes), "lsm")
		g(size, float64(s.Vlog), "vlog")
		g(queue, float64(s.QueuedJobs), "queued")
		g(queue, float64(s.RunningJobs), "running")
		g(logSize, float64(s.LogEntries))
	}}
}
