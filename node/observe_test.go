package node

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/federation"
	"github.com/wasmrust/wasm-crates-registry/node/webhook"
)

// scrapeNode reads n's /metrics with Prometheus's text parser.
func scrapeNode(t *testing.T, n *Node) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(n.Metrics().Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return fams
}

// metricValue is the counter, gauge or histogram count of family name's
// series whose labels include want (0 when absent).
func metricValue(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	total := 0.0
	f := fams[name]
	if f == nil {
		return 0
	}
next:
	for _, m := range f.GetMetric() {
		for k, v := range want {
			found := false
			for _, l := range m.GetLabel() {
				found = found || (l.GetName() == k && l.GetValue() == v)
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			total += m.GetCounter().GetValue()
		case m.Gauge != nil:
			total += m.GetGauge().GetValue()
		case m.Histogram != nil:
			total += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return total
}

// observedNode is a federated node whose pipeline is a fake tester.
func observedNode(t *testing.T) *Node {
	t.Helper()
	n, err := Open(context.Background(), Config{
		DataDir: t.TempDir(), Announce: io.Discard, Logger: slog.New(slog.DiscardHandler),
		Network: Federation(federation.Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Network: "observe-test", SyncInterval: -1}),
		Tester: func(*slog.Logger) (Tester, error) {
			return &fakeTester{node: "a", runs: &runLog{runs: map[string][]string{}}}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// TestMetricsFollowTheNode: a publish, a pipeline job and a sync each move
// the counters that describe them, as Prometheus parses them.
func TestMetricsFollowTheNode(t *testing.T) {
	ctx := context.Background()
	a, b := observedNode(t), observedNode(t)
	before := scrapeNode(t, a)

	rel, _, err := a.Submit(ctx, "t", crateBytes(t, "ok-metered", "1.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	job, err := a.QueueTest(WithIdentity(ctx, &Identity{Person: "admin", Scopes: []string{ScopeAdmin}}), "t", rel.Subject)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for j := job; j.State.Active(); {
		if j, err = a.WaitJob(wctx, strconv.FormatUint(job.ID, 10), len(j.Events), j.State); err != nil {
			t.Fatal(err)
		}
	}
	afterA := scrapeNode(t, a)
	rels := map[string]string{"kind": "release", "origin": "local"}
	if d := metricValue(afterA, "wcr_records_stored_total", rels) - metricValue(before, "wcr_records_stored_total", rels); d != 1 {
		t.Errorf("a publish moved wcr_records_stored_total{release,local} by %v, want 1", d)
	}
	if v := metricValue(afterA, "wcr_pipeline_jobs_total", map[string]string{"outcome": registry.OutcomeTestPass}); v != 1 {
		t.Errorf("wcr_pipeline_jobs_total{test-pass} = %v after one job", v)
	}
	if v := metricValue(afterA, "wcr_records_stored_total", map[string]string{"kind": "report", "origin": "local"}); v != 1 {
		t.Errorf("the job's report: wcr_records_stored_total{report,local} = %v", v)
	}

	// b joins a and reconciles: b starts a session and receives records.
	beforeB := scrapeNode(t, b)
	if _, err := b.AddPeer(ctx, "t", a.Health(ctx).Addrs[0], true); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Sync(ctx, "t", a.Health(ctx).Addrs[0]); err != nil {
		t.Fatal(err)
	}
	afterB := scrapeNode(t, b)
	peer := map[string]string{"origin": "peer"}
	if d := metricValue(afterB, "wcr_records_stored_total", peer) - metricValue(beforeB, "wcr_records_stored_total", peer); d < 2 {
		t.Errorf("a sync that brought a release and its report moved records{origin=peer} by %v", d)
	}
	out := map[string]string{"direction": "out"}
	if d := metricValue(afterB, "wcr_reconcile_sessions_total", out) - metricValue(beforeB, "wcr_reconcile_sessions_total", out); d < 1 {
		t.Errorf("sessions out moved by %v after a sync", d)
	}
	if v := metricValue(afterB, "wcr_reconcile_bytes_total", map[string]string{"direction": "in"}); v <= 0 {
		t.Errorf("reconciliation bytes in: %v", v)
	}
	if v := metricValue(afterB, "wcr_reconcile_round_trips_total", nil); v < 1 {
		t.Errorf("round trips: %v", v)
	}
	if v := metricValue(afterB, "wcr_peers", map[string]string{"state": "connected"}); v != 1 {
		t.Errorf("b's connected peers: %v", v)
	}
	if afterB["libp2p_swarm_connections_opened_total"] == nil && afterB["libp2p_identify_identify_pushes_triggered_total"] == nil {
		names := []string{}
		for k := range afterB {
			names = append(names, k)
		}
		t.Errorf("libp2p's own metrics are missing; families: %v", names)
	}
}

// TestWebhooksFollowTheNode: a subscriber's real HTTP endpoint hears of a
// publish, a job's report with the verdict and gate it changed, and a
// yank, each signed with its secret; a stranger's records make no event.
func TestWebhooksFollowTheNode(t *testing.T) {
	ctx := context.Background()
	a := observedNode(t)
	var mu sync.Mutex
	var got []webhook.Event
	var secret string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if err := webhook.Verify(secret, r.Header, body, time.Now(), time.Minute); err != nil {
			t.Errorf("delivery: %v", err)
		}
		var ev webhook.Event
		json.Unmarshal(body, &ev)
		got = append(got, ev)
	}))
	defer srv.Close()
	sub, err := a.Webhooks().Subscribe(ctx, srv.URL, nil, "admin")
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	secret = sub.Secret
	mu.Unlock()

	rel, _, err := a.Submit(ctx, "t", crateBytes(t, "ok-hooked", "1.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	admin := WithIdentity(ctx, &Identity{Person: "admin", Scopes: []string{ScopeAdmin}})
	job, err := a.QueueTest(admin, "t", rel.Subject)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for j := job; j.State.Active(); {
		if j, err = a.WaitJob(wctx, strconv.FormatUint(job.ID, 10), len(j.Events), j.State); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.SetYank(ctx, "t", rel.Subject, true, "broken"); err != nil {
		t.Fatal(err)
	}
	// A stranger's review and yank: kept as claims, no event.
	stranger, _ := registry.GenerateKey(nil)
	y, _ := registry.Sign(stranger, registry.KindYank, rel.Subject, &registry.YankBody{Yanked: false}, time.Now())
	if _, err := a.Ingest(admin, "t", [][]byte{y.Bytes()}); err != nil {
		t.Fatal(err)
	}
	types := func() []string {
		mu.Lock()
		defer mu.Unlock()
		var out []string
		for _, e := range got {
			out = append(out, e.Type)
		}
		return out
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(types()) < 5 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // anything extra would arrive now
	want := map[string]int{webhook.EventPublish: 1, webhook.EventReport: 1, webhook.EventVerdict: 1, webhook.EventGate: 1, webhook.EventYank: 1}
	have := map[string]int{}
	for _, ty := range types() {
		have[ty]++
	}
	for ty, n := range want {
		if have[ty] != n {
			t.Errorf("%d %s events, want %d (all: %v)", have[ty], ty, n, types())
		}
	}
	if len(types()) != 5 {
		t.Errorf("events %v, want exactly five (the stranger's yank makes none)", types())
	}
	mu.Lock()
	defer mu.Unlock()
	for _, e := range got {
		var d map[string]any
		json.Unmarshal(e.Data, &d)
		if e.Subject != rel.Subject || e.Node != a.PeerID() || d["name"] != "ok-hooked" {
			t.Errorf("event %+v data %v", e, d)
		}
		if e.Type == webhook.EventVerdict && (d["from"] != registry.WasmUntested || d["to"] != registry.WasmCompatible) {
			t.Errorf("verdict event %v", d)
		}
		if e.Type == webhook.EventYank && d["yanked"] != true {
			t.Errorf("yank event %v", d)
		}
	}
	if m := scrapeNode(t, a); metricValue(m, "wcr_webhook_deliveries_total", map[string]string{"result": "delivered"}) != 5 {
		t.Errorf("delivered attempts: %v", metricValue(m, "wcr_webhook_deliveries_total", map[string]string{"result": "delivered"}))
	}
}
