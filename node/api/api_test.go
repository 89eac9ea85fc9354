package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/internal/testkit"
	"github.com/wasmrust/wasm-crates-registry/node"
)

type fixture struct {
	t     *testing.T
	srv   *httptest.Server
	n     *node.Node
	token string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	n, err := node.Open(context.Background(), node.Config{DataDir: dir, Announce: io.Discard, MaxCrateSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	tok, err := os.ReadFile(filepath.Join(dir, node.AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(validated(t, New(n, nil)))
	t.Cleanup(srv.Close)
	return &fixture{t: t, srv: srv, n: n, token: strings.TrimSpace(string(tok))}
}

// crate is a small library crate described as "test crate <name>", with
// extra TOML after its [package] table.
func crate(t testing.TB, name, version, extra string) []byte {
	return testkit.Crate(name, version, map[string]string{"src/lib.rs": "pub fn f() -> u32 { 1 }\n"},
		testkit.Description("test crate "+name), testkit.ManifestLines(extra))
}

type resp struct {
	status int
	body   []byte
	header http.Header
}

func (f *fixture) do(method, path string, body []byte, auth bool, hdr ...string) resp {
	f.t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	if auth {
		req.Header.Set("Authorization", "Bearer "+f.token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return resp{r.StatusCode, b, r.Header}
}

func (r resp) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("status %d, body not JSON: %v\n%s", r.status, err, r.body)
	}
}

// errCode checks a 4xx error body and returns its code.
func (r resp) errCode(t *testing.T) string {
	t.Helper()
	var e ErrorBody
	r.json(t, &e)
	if e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("error body lacks code or message: %s", r.body)
	}
	return e.Error.Code
}

func TestCrateLifecycle(t *testing.T) {
	f := newFixture(t)
	b := crate(t, "lifecycle", "1.0.0", "license = \"MIT\"\n")

	r := f.do("POST", "/crates", b, false)
	if r.status != 401 || r.errCode(t) != "unauthorized" {
		t.Fatalf("submit without token: %d %s", r.status, r.body)
	}
	r = f.do("POST", "/crates", b, true)
	if r.status != 201 {
		t.Fatalf("submit: %d %s", r.status, r.body)
	}
	var sub SubmitResult
	r.json(t, &sub)
	if !sub.Created || sub.Release.Subject != "lifecycle@1.0.0" || sub.Release.Cksum != registry.Sum(b).Hex() || sub.Release.License != "MIT" {
		t.Fatalf("submit result: %+v", sub.Release)
	}
	// Same bytes again: idempotent.
	r = f.do("POST", "/crates", b, true)
	var again SubmitResult
	r.json(t, &again)
	if r.status != 200 || again.Created || again.Release.ID != sub.Release.ID {
		t.Fatalf("resubmit: %d %s", r.status, r.body)
	}
	// Different bytes, same version: conflict naming the existing release.
	r = f.do("POST", "/crates", crate(t, "lifecycle", "1.0.0", "license = \"Apache-2.0\"\n"), true)
	if r.status != 409 || r.errCode(t) != "conflict" || !bytes.Contains(r.body, []byte(sub.Release.ID.String())) {
		t.Fatalf("conflicting submit: %d %s", r.status, r.body)
	}

	for _, id := range []string{"lifecycle@1.0.0", sub.Release.ID.String(), sub.Release.ID.Base58(), "lifecycle"} {
		r = f.do("GET", "/crates/"+id, nil, false)
		var rel node.Release
		r.json(t, &rel)
		if r.status != 200 || rel.ID != sub.Release.ID {
			t.Fatalf("GET /crates/%s: %d %s", id, r.status, r.body)
		}
	}
	r = f.do("GET", "/crates/lifecycle@1.0.0/download", nil, false)
	if r.status != 200 || !bytes.Equal(r.body, b) {
		t.Fatalf("download: %d, %d bytes", r.status, len(r.body))
	}
	r = f.do("GET", "/records/"+sub.Release.ID.String(), nil, false)
	rec, err := registry.DecodeRecord(r.body)
	if r.status != 200 || err != nil || rec.ID() != sub.Release.ID {
		t.Fatalf("record: %d %v", r.status, err)
	}

	// DELETE yanks; the release and its blob stay.
	r = f.do("DELETE", "/crates/lifecycle@1.0.0?reason=broken", nil, true)
	var rel node.Release
	r.json(t, &rel)
	if r.status != 200 || !rel.Yanked || rel.Yank == nil || rel.Yank.Reason != "broken" {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if r = f.do("GET", "/crates/lifecycle@1.0.0/download", nil, false); r.status != 200 {
		t.Fatal("a yanked release is no longer downloadable")
	}
	r = f.do("PUT", "/crates/lifecycle@1.0.0", []byte(`{"yanked":false,"review":{"verdict":"approve","comment":"fine"}}`), true)
	r.json(t, &rel)
	if r.status != 200 || rel.Yanked || len(rel.Reviews) != 1 || rel.Reviews[0].Verdict != "approve" {
		t.Fatalf("put: %d %s", r.status, r.body)
	}
	// Filters.
	var page node.Page
	f.do("GET", "/crates?yanked=false&wasm=untested", nil, false).json(t, &page)
	if len(page.Crates) != 1 {
		t.Fatalf("filtered list: %+v", page)
	}
	f.do("GET", "/crates?yanked=true", nil, false).json(t, &page)
	if len(page.Crates) != 0 {
		t.Fatal("yanked=true lists an unyanked release")
	}
	f.do("GET", "/crates?wasm=compatible", nil, false).json(t, &page)
	if len(page.Crates) != 0 {
		t.Fatal("an untested release is listed as compatible")
	}
}

func TestListPaginationIsStable(t *testing.T) {
	f := newFixture(t)
	for i := 0; i < 7; i++ {
		if r := f.do("POST", "/crates", crate(t, fmt.Sprintf("page%d", i), "1.0.0", ""), true); r.status != 201 {
			t.Fatalf("submit: %s", r.body)
		}
	}
	var names []string
	cursor := ""
	for i := 0; i < 10; i++ {
		var page node.Page
		f.do("GET", "/crates?limit=3&cursor="+cursor, nil, false).json(t, &page)
		for _, c := range page.Crates {
			names = append(names, c.Name)
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if strings.Join(names, ",") != "page0,page1,page2,page3,page4,page5,page6" {
		t.Fatalf("pages: %v", names)
	}
}

// TestBadInputNeverGets5xx drives every endpoint with malformed IDs, bodies,
// query parameters and oversized uploads: each gets a 4xx JSON error with a
// code and a message, and the store is left as it was.
func TestBadInputNeverGets5xx(t *testing.T) {
	f := newFixture(t)
	good := crate(t, "good", "1.0.0", "")
	if r := f.do("POST", "/crates", good, true); r.status != 201 {
		t.Fatal(string(r.body))
	}
	before := f.n.State()
	big := bytes.Repeat([]byte{0x1f}, 70<<10)
	weird := []string{"%00", "..", "a@b@c", "good@", "@1.0.0", "good@1.0", "b" + strings.Repeat("a", 60), "zzzzzzzz", strings.Repeat("x", 3000), "ünïcode", "good%401.0.0%2F..", "Qm123"}
	type call struct {
		method, path string
		body         []byte
		auth         bool
	}
	var calls []call
	for _, id := range weird {
		p := "/crates/" + id
		calls = append(calls,
			call{"GET", p, nil, false}, call{"PUT", p, []byte(`{"yanked":true}`), true}, call{"DELETE", p, nil, true},
			call{"GET", p + "/download", nil, false}, call{"GET", p + "/versions", nil, false}, call{"GET", p + "/owners", nil, false},
			call{"PUT", p + "/owners", []byte(`{"owners":["x"]}`), true},
			call{"GET", "/records/" + id, nil, false}, call{"GET", "/tests/" + id, nil, false}, call{"POST", "/tests/" + id, nil, true},
			call{"GET", "/jobs/" + id, nil, false}, call{"DELETE", "/jobs/" + id, nil, true},
		)
	}
	bodies := [][]byte{nil, []byte("{"), []byte("[]"), []byte(`{"yanked":"yes"}`), []byte(`{"unknown":1}`), []byte(`{"yanked":true} trailing`), bytes.Repeat([]byte("a"), 100<<10), []byte(`{}`), []byte(`{"review":{"verdict":"maybe"}}`)}
	for _, b := range bodies {
		calls = append(calls,
			call{"PUT", "/crates/good@1.0.0", b, true}, call{"PUT", "/registry", b, true}, call{"POST", "/registry/sync", b, true},
			call{"POST", "/peers", b, true}, call{"PUT", "/crates/good/owners", b, true})
	}
	uploads := [][]byte{nil, []byte("not a crate"), big, good[:len(good)/2], crate(t, "Bad Name", "1.0.0", ""), crate(t, "x", "1", "")}
	for _, u := range uploads {
		calls = append(calls, call{"POST", "/crates", u, true})
	}
	queries := []string{"limit=0", "limit=-1", "limit=abc", "limit=100000", "yanked=maybe", "wasm=sometimes", "gc_ready=2", "dual=x", "cursor=!!!", "cursor=" + strings.Repeat("A", 50), "name=9bad", "q=" + strings.Repeat("q", 500)}
	for _, q := range queries {
		calls = append(calls, call{"GET", "/crates?" + q, nil, false})
	}
	calls = append(calls,
		call{"PUT", "/registry", []byte(`{"name":""}`), true},
		call{"PUT", "/registry", []byte(`{"gates":{"curated_min_score":500}}`), true},
		call{"PUT", "/registry", []byte(`{"trust":{"keys":["nope"]}}`), true},
		call{"POST", "/peers", []byte(`{"addr":"not a multiaddr"}`), true},
		call{"DELETE", "/peers/nobody", nil, true},
		call{"GET", "/jobs/99999", nil, false},
		call{"GET", "/jobs/1?wait=forever", nil, false},
		call{"PATCH", "/crates", nil, true},
		call{"GET", "/nope", nil, false},
		call{"POST", "/crates", good, false},
		call{"GET", "/audit", nil, false},
	)
	for _, c := range calls {
		r := f.do(c.method, c.path, c.body, c.auth)
		name := fmt.Sprintf("%s %.80s", c.method, c.path)
		if r.status >= 500 && r.status != http.StatusNotImplemented {
			t.Errorf("%s: %d %s", name, r.status, r.body)
			continue
		}
		if r.status < 400 {
			// Only an empty settings patch ("{}") is a valid request here.
			if !(c.method == "PUT" && c.path == "/registry" && string(c.body) == "{}") {
				t.Errorf("%s: unexpected success %d %s", name, r.status, r.body)
			}
			continue
		}
		r.errCode(t)
	}
	after := f.n.State()
	if after.Records != before.Records || after.Digest != before.Digest {
		t.Fatalf("bad input changed the store: %+v → %+v", before, after)
	}
	var rel node.Release
	f.do("GET", "/crates/good@1.0.0", nil, false).json(t, &rel)
	if rel.Yanked {
		t.Fatal("bad input yanked a release")
	}
}

func TestSettingsRoundTrip(t *testing.T) {
	f := newFixture(t)
	r := f.do("PUT", "/registry", []byte(`{"name":"edge","gates":{"curated_min_score":70,"reject_below_score":20,"require_wasm":false},"trust":{"all":true}}`), true)
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	var s registry.Settings
	f.do("GET", "/registry", nil, false).json(t, &s)
	if s.Name != "edge" || s.Gates.CuratedMinScore != 70 || !s.Trust.All || s.Gates.RequireWasm {
		t.Fatalf("settings: %+v", s)
	}
	// A partial update keeps the rest.
	f.do("PUT", "/registry", []byte(`{"description":"d"}`), true)
	f.do("GET", "/registry", nil, false).json(t, &s)
	if s.Name != "edge" || s.Description != "d" || s.Gates.CuratedMinScore != 70 {
		t.Fatalf("partial update lost fields: %+v", s)
	}
	var h node.Health
	f.do("GET", "/health", nil, false).json(t, &h)
	if h.Name != "edge" || !strings.HasPrefix(h.PeerID, "12D3Koo") {
		t.Fatalf("health: %+v", h)
	}
}

func TestPipelineAndSyncSayNotAvailable(t *testing.T) {
	f := newFixture(t)
	f.do("POST", "/crates", crate(t, "na", "1.0.0", ""), true)
	for _, c := range []struct{ method, path string }{{"POST", "/tests/na@1.0.0"}, {"POST", "/registry/sync"}} {
		r := f.do(c.method, c.path, nil, true)
		if r.status != http.StatusNotImplemented || r.errCode(t) != "not_available" {
			t.Errorf("%s %s: %d %s", c.method, c.path, r.status, r.body)
		}
	}
}

// TestImportRecords: POST /records takes a record signed elsewhere (here a
// report from an external tester), verifies it like a peer's, stores it
// once, and refuses forged, truncated and future records.
func TestImportRecords(t *testing.T) {
	f := newFixture(t)
	r := f.do("POST", "/crates", crate(t, "imported", "1.0.0", ""), true)
	var sub SubmitResult
	r.json(t, &sub)
	tester, _ := registry.GenerateKey(nil)
	rep, err := registry.Sign(tester, registry.KindReport, "imported@1.0.0", &registry.ReportBody{
		Release: sub.Release.ID.Bytes(), Outcome: registry.OutcomeTestPass, Wasm: registry.WasmCompatible, Score: 70, Gate: registry.GateNeedsReview,
	}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if r := f.do("POST", "/records", rep.Bytes(), false); r.status != 401 {
		t.Fatalf("import without a token: %d", r.status)
	}
	r = f.do("POST", "/records", rep.Bytes(), true)
	var res RecordResult
	r.json(t, &res)
	if r.status != 201 || !res.Added || res.ID != rep.ID() {
		t.Fatalf("import: %d %s", r.status, r.body)
	}
	r = f.do("POST", "/records", rep.Bytes(), true)
	r.json(t, &res)
	if r.status != 200 || res.Added {
		t.Fatalf("second import: %d %s", r.status, r.body)
	}
	var rel node.Release
	f.do("GET", "/crates/imported@1.0.0", nil, false).json(t, &rel)
	if len(rel.Reports) != 1 || rel.Reports[0].Author != tester.Public().PeerID() || rel.Reports[0].Trusted || rel.Wasm != registry.WasmUntested {
		t.Fatalf("imported report: %+v, wasm %s (an unknown tester is listed, not trusted)", rel.Reports, rel.Wasm)
	}
	before := f.n.State()
	forged := bytes.Clone(rep.Bytes())
	forged[len(forged)-1] ^= 1
	future, _ := registry.Sign(tester, registry.KindReview, "imported@1.0.0", &registry.ReviewBody{Verdict: "flag"}, time.Now().Add(time.Hour))
	for name, b := range map[string][]byte{"forged": forged, "truncated": rep.Bytes()[:40], "future": future.Bytes(), "empty": nil} {
		if r := f.do("POST", "/records", b, true); r.status != 400 || r.errCode(t) != "invalid" {
			t.Errorf("%s record: %d %s", name, r.status, r.body)
		}
	}
	if r := f.do("POST", "/records", bytes.Repeat([]byte{0xa6}, registry.MaxRecordSize+10), true); r.status != 413 {
		t.Errorf("oversized record: %d", r.status)
	}
	if after := f.n.State(); after != before {
		t.Fatalf("refused imports changed the store: %+v → %+v", before, after)
	}
}
