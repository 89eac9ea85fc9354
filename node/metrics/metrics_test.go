package metrics

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// scrape reads /metrics as Prometheus would and parses it with
// Prometheus's own text parser.
func scrape(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return fams
}

// value is the value of the series of family name whose labels include
// all of want; -1 when there is none.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	return -1
}

func TestMetricsMoveAndStayBounded(t *testing.T) {
	fed := FederationStats{GossipAccepted: 5, GossipRejected: 1, ReconcileRoundTrips: 3}
	m := New(Sources{
		Federation: func() FederationStats { return fed },
		Peers:      func() PeerStats { return PeerStats{Connected: 2, Saved: 3, Scores: []float64{1.5, -20}} },
		Store:      func() StoreStats { return StoreStats{Records: 42, QueuedJobs: 1} },
	})
	before := scrape(t, m)
	if v := value(before, "wcr_gossip_messages_total", map[string]string{"result": "accepted"}); v != 5 {
		t.Errorf("gossip accepted %v, want 5", v)
	}
	if v := value(before, "wcr_store_records", nil); v != 42 {
		t.Errorf("records %v", v)
	}
	if v := value(before, "wcr_peer_score", nil); v != 2 {
		t.Errorf("peer score samples %v, want 2", v)
	}

	key, _ := registry.GenerateKey(nil)
	rel, _ := registry.Sign(key, registry.KindReview, "a@1.0.0", &registry.ReviewBody{Verdict: "approve"}, time.Now())
	odd, _ := registry.Sign(key, registry.Kind("someday-kind"), "x", map[int]int{1: 1}, time.Now())
	m.Records([]*registry.Record{rel, odd}, OriginPeer)
	m.Request("/crates/{id}", "GET", 200, 3*time.Millisecond)
	m.Request("/crates/{id}", "BREW", 405, time.Millisecond)
	m.Job(registry.OutcomeTestPass, []registry.StageTime{{Stage: "build", US: 2_000_000}, {Stage: "test", US: 500_000}})
	fed.GossipAccepted = 9
	after := scrape(t, m)
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"wcr_records_stored_total", map[string]string{"kind": "review", "origin": "peer"}, 1},
		{"wcr_records_stored_total", map[string]string{"kind": "other", "origin": "peer"}, 1},
		{"wcr_http_requests_total", map[string]string{"route": "/crates/{id}", "method": "GET", "code": "200"}, 1},
		{"wcr_http_requests_total", map[string]string{"method": "other", "code": "405"}, 1},
		{"wcr_http_request_duration_seconds", map[string]string{"route": "/crates/{id}", "method": "GET"}, 1},
		{"wcr_pipeline_jobs_total", map[string]string{"outcome": registry.OutcomeTestPass}, 1},
		{"wcr_pipeline_stage_duration_seconds", map[string]string{"stage": "build"}, 1},
		{"wcr_gossip_messages_total", map[string]string{"result": "accepted"}, 9},
		{"wcr_reconcile_round_trips_total", nil, 3},
	}
	for _, c := range checks {
		if v := value(after, c.name, c.labels); v != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, v, c.want)
		}
	}
	for name, f := range after {
		for _, mt := range f.GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetValue() == "someday-kind" || l.GetValue() == "BREW" {
					t.Errorf("%s carries the stranger's label value %q", name, l.GetValue())
				}
			}
		}
	}
	if after["go_goroutines"] == nil || after["process_resident_memory_bytes"] == nil {
		t.Error("the Go runtime's and the process's metrics are missing")
	}
}
