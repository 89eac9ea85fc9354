package api

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/wasmrust/wasm-crates-registry/node/webhook"
)

// TestWebhookEndpoints: an admin subscribes a real receiver, tests it and
// reads the log; anybody else is refused, and bad subscriptions are
// refused with the reason.
func TestWebhookEndpoints(t *testing.T) {
	f := newFixture(t)
	var mu sync.Mutex
	var pings []webhook.Event
	var secret string
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		var ev webhook.Event
		json.Unmarshal(body, &ev)
		if webhook.Verify(secret, r.Header, body, time.Now(), time.Minute) == nil {
			pings = append(pings, ev)
		}
	}))
	defer rcv.Close()

	// A token without the admin scope may not see or make subscriptions.
	r := f.do("POST", "/tokens", []byte(`{"name":"pub","person":"bob","scopes":["publish-new"]}`), true)
	var nt struct {
		Token string `json:"token"`
	}
	r.json(t, &nt)
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/webhooks", ""}, {"POST", "/webhooks", `{"url":"` + rcv.URL + `"}`},
	} {
		req, _ := http.NewRequest(c.method, f.srv.URL+c.path, strings.NewReader(c.body))
		req.Header.Set("Authorization", "Bearer "+nt.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 403 {
			t.Errorf("%s %s with a publish token: %d, want 403", c.method, c.path, resp.StatusCode)
		}
	}
	if r := f.do("GET", "/webhooks", nil, false); r.status != 401 {
		t.Errorf("GET /webhooks without a token: %d", r.status)
	}
	for _, body := range []string{`{"url":"ftp://x/"}`, `{"url":"http://u:p@127.0.0.1/"}`, `{"url":"` + rcv.URL + `","events":["everything"]}`, `{"url":3}`, `not json`} {
		if r := f.do("POST", "/webhooks", []byte(body), true); r.status != 400 || r.errCode(t) != "invalid" {
			t.Errorf("POST /webhooks %s: %d %s", body, r.status, r.body)
		}
	}

	r = f.do("POST", "/webhooks", []byte(`{"url":"`+rcv.URL+`","events":["publish","gate"]}`), true)
	var sub webhook.Subscription
	r.json(t, &sub)
	if r.status != 201 || sub.Secret == "" || len(sub.Events) != 2 {
		t.Fatalf("subscribe: %d %s", r.status, r.body)
	}
	mu.Lock()
	secret = sub.Secret
	mu.Unlock()
	r = f.do("GET", "/webhooks", nil, true)
	if r.status != 200 || bytes.Contains(r.body, []byte(sub.Secret)) || !bytes.Contains(r.body, []byte(sub.ID)) {
		t.Errorf("list: %d %s (the secret must not be listed)", r.status, r.body)
	}
	if r := f.do("POST", "/webhooks/"+sub.ID+"/ping", nil, true); r.status != 202 {
		t.Fatalf("ping: %d %s", r.status, r.body)
	}
	// A publish reaches the subscriber as well.
	if r := f.do("POST", "/crates", crate(t, "hooked", "1.0.0", ""), true); r.status != 201 {
		t.Fatalf("publish: %d", r.status)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		mu.Lock()
		n := len(pings)
		mu.Unlock()
		if n >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	if len(pings) != 2 || pings[0].Type != webhook.EventPing || pings[1].Type != webhook.EventPublish || pings[1].Subject != "hooked@1.0.0" {
		t.Errorf("the receiver verified %+v, want the ping then the publish", pings)
	}
	mu.Unlock()
	var log struct {
		Deliveries []webhook.Delivery `json:"deliveries"`
	}
	deadline = time.Now().Add(5 * time.Second)
	for len(log.Deliveries) < 2 && time.Now().Before(deadline) {
		f.do("GET", "/webhooks/"+sub.ID+"/deliveries", nil, true).json(t, &log)
		time.Sleep(20 * time.Millisecond)
	}
	if len(log.Deliveries) != 2 || log.Deliveries[0].Final != "delivered" || log.Deliveries[0].Status != 200 {
		t.Errorf("delivery log %+v", log.Deliveries)
	}
	for _, p := range []string{"/webhooks/wh_nosuch/deliveries"} {
		if r := f.do("GET", p, nil, true); r.status != 404 {
			t.Errorf("GET %s: %d", p, r.status)
		}
	}
	for _, p := range []string{"/webhooks/wh_nosuch/ping", "/webhooks/wh_nosuch"} {
		method := "POST"
		if !strings.HasSuffix(p, "/ping") {
			method = "DELETE"
		}
		if r := f.do(method, p, nil, true); r.status != 404 {
			t.Errorf("%s %s: %d", method, p, r.status)
		}
	}
	if r := f.do("DELETE", "/webhooks/"+sub.ID, nil, true); r.status != 200 {
		t.Errorf("remove: %d %s", r.status, r.body)
	}
	if r := f.do("GET", "/webhooks", nil, true); bytes.Contains(r.body, []byte(sub.ID)) {
		t.Errorf("a removed subscription is still listed: %s", r.body)
	}
}

// TestMetricsEndpoint: /metrics parses as Prometheus text and counts
// requests by route pattern, never by path.
func TestMetricsEndpoint(t *testing.T) {
	f := newFixture(t)
	f.do("POST", "/crates", crate(t, "metered-crate", "1.0.0", ""), true)
	f.do("GET", "/crates/metered-crate@1.0.0", nil, false)
	f.do("GET", "/crates/nosuch-crate@1.0.0", nil, false)
	r := f.do("GET", "/metrics", nil, false)
	if r.status != 200 {
		t.Fatalf("/metrics: %d", r.status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(r.body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	reqs := fams["wcr_http_requests_total"]
	if reqs == nil {
		t.Fatal("no wcr_http_requests_total")
	}
	seen := map[string]float64{}
	for _, m := range reqs.GetMetric() {
		l := map[string]string{}
		for _, p := range m.GetLabel() {
			l[p.GetName()] = p.GetValue()
		}
		seen[l["route"]+" "+l["code"]] += m.GetCounter().GetValue()
	}
	if seen["/crates/{id} 200"] != 1 || seen["/crates/{id} 404"] != 1 || seen["/crates 201"] != 1 {
		t.Errorf("requests by route and code: %v", seen)
	}
	if bytes.Contains(r.body, []byte("metered-crate")) || bytes.Contains(r.body, []byte("nosuch-crate")) {
		t.Error("a crate name reached a metric label")
	}
	if v := fams["wcr_records_stored_total"]; v == nil {
		t.Error("no wcr_records_stored_total")
	}
}
