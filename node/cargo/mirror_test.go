package cargo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/mirror"
	"github.com/wasmrust/wasm-crates-registry/node"
)

// upstreamIndex is a real HTTP server playing an upstream sparse index
// whose files each test changes, hostile ones included. (nginx serves the
// stand-in in the daemon tests; here the answers must change mid-test and
// be wrong on purpose.)
type upstreamIndex struct {
	srv      *httptest.Server
	mu       sync.Mutex
	files    map[string][]byte // path → body
	requests atomic.Int64
}

func newUpstreamIndex(t *testing.T) *upstreamIndex {
	u := &upstreamIndex{files: map[string][]byte{}}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.requests.Add(1)
		u.mu.Lock()
		b, ok := u.files[r.URL.Path]
		u.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		sum := sha256.Sum256(b)
		etag := `"` + hex.EncodeToString(sum[:8]) + `"`
		w.Header().Set("ETag", etag)
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Write(b)
	}))
	t.Cleanup(u.srv.Close)
	u.set("/index/config.json", []byte(`{"dl":"`+u.srv.URL+`/dl/{crate}/{version}"}`))
	return u
}

func (u *upstreamIndex) set(path string, b []byte) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.files[path] = b
}

// publish puts versions of a crate on the upstream: the archives and the
// index file listing them.
func (u *upstreamIndex) publish(t *testing.T, name string, yanked map[string]bool, archives map[string][]byte) map[string]string {
	lines := map[string]string{}
	var file strings.Builder
	for _, v := range sortedVersions(archives) {
		a := archives[v]
		sum := sha256.Sum256(a)
		l := fmt.Sprintf(`{"name":%q,"vers":%q,"deps":[],"cksum":"%x","features":{},"yanked":%v}`, name, v, sum, yanked[v])
		lines[v] = l
		file.WriteString(l + "\n")
		u.set("/dl/"+name+"/"+v, a)
	}
	u.set("/index/"+registry.IndexPath(strings.ToLower(name)), []byte(file.String()))
	return lines
}

func sortedVersions(m map[string][]byte) []string {
	var vs []string
	for v := range m {
		vs = append(vs, v)
	}
	for i := range vs {
		for j := i + 1; j < len(vs); j++ {
			if registry.CompareVersions(vs[j], vs[i]) < 0 {
				vs[i], vs[j] = vs[j], vs[i]
			}
		}
	}
	return vs
}

func mirrorNode(t *testing.T, up *upstreamIndex, localFirst bool) *testNode {
	t.Helper()
	m, err := mirror.New(mirror.Config{URL: up.srv.URL + "/index/", Timeout: 2 * time.Second, MaxIndexBytes: 1 << 20, MaxCrateBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return newTestNode(t, node.Config{Upstream: node.UpstreamConfig{Upstreams: []node.Upstream{m}, Refresh: -1, LocalFirst: localFirst}}, Config{})
}

func upstreamRecords(t *testing.T, tn *testNode) []*registry.Record {
	t.Helper()
	recs, err := tn.n.Store().RecordsByKind(registry.KindUpstream)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func TestMirrorServesUpstreamAndKeepsArchives(t *testing.T) {
	up := newUpstreamIndex(t)
	a1, a2 := simpleCrate(t, "Mirrored", "1.0.0", ""), simpleCrate(t, "Mirrored", "1.1.0", "")
	lines := up.publish(t, "Mirrored", nil, map[string][]byte{"1.0.0": a1, "1.1.0": a2})
	tn := mirrorNode(t, up, false)

	r := tn.do("GET", "/index/"+registry.IndexPath("mirrored"), nil)
	if r.status != 200 || string(r.body) != lines["1.0.0"]+"\n"+lines["1.1.0"]+"\n" {
		t.Fatalf("index: %d %s", r.status, r.body)
	}
	if n := len(upstreamRecords(t, tn)); n != 2 {
		t.Fatalf("%d upstream records after the first fetch; want one per version", n)
	}
	// Revalidation with an unchanged upstream signs nothing new.
	if r := tn.do("GET", "/index/"+registry.IndexPath("mirrored"), nil); r.status != 200 || len(upstreamRecords(t, tn)) != 2 {
		t.Fatalf("second fetch: %d, %d records", r.status, len(upstreamRecords(t, tn)))
	}
	r = tn.do("GET", "/api/v1/crates/Mirrored/1.0.0/download", nil)
	if r.status != 200 || string(r.body) != string(a1) {
		t.Fatalf("download: %d (%d bytes)", r.status, len(r.body))
	}
	if has, _ := tn.n.Store().HasBlob(registry.Sum(a1)); !has {
		t.Fatal("the downloaded archive was not kept")
	}
	// With the upstream gone, what was observed and kept is still served.
	up.srv.Close()
	if r := tn.do("GET", "/api/v1/crates/Mirrored/1.0.0/download", nil); r.status != 200 || string(r.body) != string(a1) {
		t.Fatalf("download with the upstream down: %d %s", r.status, r.body)
	}
	if r := tn.do("GET", "/index/"+registry.IndexPath("mirrored"), nil); r.status != 200 || !strings.Contains(string(r.body), `"1.1.0"`) {
		t.Fatalf("index with the upstream down: %d %s", r.status, r.body)
	}
	// An archive never fetched cannot be served now: a clear 503.
	r = tn.do("GET", "/api/v1/crates/Mirrored/1.1.0/download", nil)
	if r.status != http.StatusServiceUnavailable || !strings.Contains(detail(t, r), "upstreams supplied") {
		t.Fatalf("uncached download with the upstream down: %d %s", r.status, r.body)
	}
	// A crate no one has is Cargo's 404.
	if r := tn.do("GET", "/index/"+registry.IndexPath("absent"), nil); r.status != http.StatusServiceUnavailable && r.status != 404 {
		t.Fatalf("absent crate: %d %s", r.status, r.body)
	}
}

func TestMirrorChangedUpstreamIsEvidence(t *testing.T) {
	up := newUpstreamIndex(t)
	first := simpleCrate(t, "changing", "1.0.0", "")
	lines := up.publish(t, "changing", nil, map[string][]byte{"1.0.0": first})
	tn := mirrorNode(t, up, false)
	// A stranger's record about the crate, dated far ahead, must not move
	// the dates of this node's observations.
	stranger := testKey(t, 11)
	sb, err := registry.NewUpstreamBody("http://elsewhere.example/", `{"name":"changing","vers":"9.0.0","cksum":"`+strings.Repeat("3", 64)+`","yanked":false}`)
	if err != nil {
		t.Fatal(err)
	}
	far, err := registry.Sign(stranger, registry.KindUpstream, "changing", sb, time.Now().Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tn.n.Store().PutRecords([]*registry.Record{far}); err != nil {
		t.Fatal(err)
	}
	if r := tn.do("GET", "/api/v1/crates/changing/1.0.0/download", nil); r.status != 200 {
		t.Fatalf("download: %d %s", r.status, r.body)
	}
	// The upstream replaces the archive of the published version.
	second := simpleCrate(t, "changing", "1.0.0", "license = \"MIT\"\n")
	up.publish(t, "changing", nil, map[string][]byte{"1.0.0": second})
	r := tn.do("GET", "/index/"+registry.IndexPath("changing"), nil)
	if r.status != 200 || string(r.body) != lines["1.0.0"]+"\n" {
		t.Fatalf("after the change the index must keep the first line: %d %s", r.status, r.body)
	}
	if r := tn.do("GET", "/api/v1/crates/changing/1.0.0/download", nil); r.status != 200 || string(r.body) != string(first) {
		t.Fatalf("after the change the first archive must be served: %d", r.status)
	}
	var st node.UpstreamStatus
	res, err := http.Get(tn.url + "/upstream")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(res.Body).Decode(&st)
	res.Body.Close()
	if len(st.Changed) != 1 || st.Changed[0].Version != "1.0.0" || len(st.Changed[0].Changed) != 1 ||
		st.Changed[0].Served.Cksum != registry.Sum(first).Hex() || st.Changed[0].Changed[0].Cksum != registry.Sum(second).Hex() {
		t.Fatalf("GET /upstream does not show the change: %+v", st)
	}
	// The change is recorded once, however often it is seen.
	tn.do("GET", "/index/"+registry.IndexPath("changing"), nil)
	mine := 0
	for _, r := range upstreamRecords(t, tn) {
		if r.Author.Equal(tn.n.PublicKey()) {
			mine++
			if r.When().After(time.Now().Add(time.Minute)) {
				t.Fatalf("an observation dated %s, after a stranger's record from the future", r.When())
			}
		}
	}
	if mine != 2 {
		t.Fatalf("%d upstream records by the node; want the first observation and the change", mine)
	}
	// A yank upstream is a yank here, not a change.
	up.publish(t, "changing", map[string]bool{"1.0.0": true}, map[string][]byte{"1.0.0": first})
	r = tn.do("GET", "/index/"+registry.IndexPath("changing"), nil)
	if var1, _ := registry.UpstreamLineYanked(lines["1.0.0"], true); r.status != 200 || !strings.Contains(string(r.body), `"yanked":true`) || len(r.body) != len(var1)+1 {
		t.Fatalf("after a yank upstream: %d %s", r.status, r.body)
	}
}

func TestMirrorHostileUpstreamKeepsNothing(t *testing.T) {
	up := newUpstreamIndex(t)
	good := simpleCrate(t, "hostile", "1.0.0", "")
	up.publish(t, "hostile", nil, map[string][]byte{"1.0.0": good})
	up.set("/dl/hostile/1.0.0", simpleCrate(t, "hostile", "1.0.0", "license = \"MIT\"\n")) // not what the index says
	up.set("/index/"+registry.IndexPath("garbage"), []byte("{\"name\":\"garbage\",\"vers\":\n"))
	up.set("/index/"+registry.IndexPath("other"), []byte(`{"name":"../../x","vers":"1.0.0","cksum":"`+strings.Repeat("0", 64)+`","yanked":false}`+"\n"))
	up.set("/index/"+registry.IndexPath("huge"), []byte(strings.Repeat(" ", 2<<20)))
	tn := mirrorNode(t, up, false)

	for _, name := range []string{"garbage", "other", "huge"} {
		r := tn.do("GET", "/index/"+registry.IndexPath(name), nil)
		if r.status != http.StatusServiceUnavailable || !strings.Contains(detail(t, r), "upstream") {
			t.Fatalf("%s: %d %s", name, r.status, r.body)
		}
	}
	r := tn.do("GET", "/api/v1/crates/hostile/1.0.0/download", nil)
	if r.status != http.StatusServiceUnavailable || !strings.Contains(detail(t, r), "not the index's cksum") {
		t.Fatalf("wrong checksum: %d %s", r.status, r.body)
	}
	if _, blobs := tn.n.Store().Counts(); blobs != 0 {
		t.Fatalf("%d blobs kept from a hostile upstream", blobs)
	}
	recs := upstreamRecords(t, tn)
	if len(recs) != 1 || recs[0].Subject != "hostile" {
		t.Fatalf("records after hostile answers: %v; want only the good line of hostile", recs)
	}
	// The REST API answers JSON errors for the same failures.
	res, err := http.Get(tn.url + "/upstream/crates/garbage")
	if err != nil {
		t.Fatal(err)
	}
	var eb struct {
		Error struct{ Code, Message string }
	}
	json.NewDecoder(res.Body).Decode(&eb)
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable || eb.Error.Code == "" || !strings.Contains(eb.Error.Message, "bad index file") {
		t.Fatalf("API: %d %+v", res.StatusCode, eb)
	}
	for _, p := range []string{"/upstream/crates/..%2f..%2fetc", "/upstream/crates/a%00b"} {
		res, err := http.Get(tn.url + p)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 400 && res.StatusCode != 404 {
			t.Fatalf("%s: %d", p, res.StatusCode)
		}
	}
}

func TestLocalPublishOfAnUpstreamNameIsRefused(t *testing.T) {
	up := newUpstreamIndex(t)
	up.publish(t, "taken", nil, map[string][]byte{"1.0.0": simpleCrate(t, "taken", "1.0.0", "")})
	tn := mirrorNode(t, up, false)
	r := tn.publish("taken", "2.0.0", simpleCrate(t, "taken", "2.0.0", ""))
	if r.status != http.StatusConflict || !strings.Contains(detail(t, r), "belongs to upstream") {
		t.Fatalf("publish of an upstream name: %d %s", r.status, r.body)
	}
	tn.mustPublish("free", "1.0.0", simpleCrate(t, "free", "1.0.0", ""))

	lf := mirrorNode(t, up, true)
	lf.mustPublish("taken", "2.0.0", simpleCrate(t, "taken", "2.0.0", ""))
	// Local first: the local crate is what the index serves, and the
	// upstream's versions of the name are not downloads here.
	if lines, r := lf.indexLines("/index/", "taken"); r.status != 200 || versions(lines) != "2.0.0" {
		t.Fatalf("local-first index: %d %s", r.status, r.body)
	}
	if r := lf.do("GET", "/api/v1/crates/taken/1.0.0/download", nil); r.status != 404 {
		t.Fatalf("local-first download of the upstream's version: %d %s", r.status, r.body)
	}
}

func TestMirrorServesOnlyTrustedObservations(t *testing.T) {
	up := newUpstreamIndex(t)
	archive := simpleCrate(t, "shared", "1.0.0", "")
	up.publish(t, "shared", nil, map[string][]byte{"1.0.0": archive})
	a := mirrorNode(t, up, false)
	if r := a.do("GET", "/api/v1/crates/shared/1.0.0/download", nil); r.status != 200 {
		t.Fatalf("A: %d", r.status)
	}
	// B has no upstream. A stranger's observation of another crate is
	// never served; A's are, once B trusts A.
	b := newTestNode(t, node.Config{}, Config{})
	syncRecords(t, a, b)
	stranger := testKey(t, 9)
	body, err := registry.NewUpstreamBody("http://evil.example/", `{"name":"shared","vers":"6.6.6","cksum":"`+strings.Repeat("1", 64)+`","yanked":false}`)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := registry.Sign(stranger, registry.KindUpstream, "shared", body, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.n.Ingest(context.Background(), "test", [][]byte{rec.Bytes()}); err != nil {
		t.Fatal(err)
	}
	if r := b.do("GET", "/index/"+registry.IndexPath("shared"), nil); r.status != 404 {
		t.Fatalf("B serves an untrusted observation: %d %s", r.status, r.body)
	}
	if r := b.do("GET", "/index/"+registry.IndexPath("shared"), nil); r.status != 404 {
		t.Fatalf("B serves A's observation before it trusts A: %d %s", r.status, r.body)
	}
	patch := fmt.Sprintf(`{"trust": {"keys": [%q]}}`, a.n.PeerID())
	if _, err := b.n.UpdateSettings(context.Background(), "test", []byte(patch)); err != nil {
		t.Fatal(err)
	}
	ra, rb := a.do("GET", "/index/"+registry.IndexPath("shared"), nil), b.do("GET", "/index/"+registry.IndexPath("shared"), nil)
	if rb.status != 200 || string(rb.body) != string(ra.body) {
		t.Fatalf("B trusting A must serve A's lines:\nA %d %s\nB %d %s", ra.status, ra.body, rb.status, rb.body)
	}
	// A trusted observation dated ahead of B's clock is not served yet.
	ahead := testKey(t, 10)
	patch = fmt.Sprintf(`{"trust": {"keys": [%q, %q]}}`, a.n.PeerID(), ahead.Public().PeerID())
	if _, err := b.n.UpdateSettings(context.Background(), "test", []byte(patch)); err != nil {
		t.Fatal(err)
	}
	future, err := registry.NewUpstreamBody("http://elsewhere.example/", `{"name":"shared","vers":"7.0.0","cksum":"`+strings.Repeat("2", 64)+`","yanked":false}`)
	if err != nil {
		t.Fatal(err)
	}
	frec, err := registry.Sign(ahead, registry.KindUpstream, "shared", future, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.n.Store().PutRecords([]*registry.Record{frec}); err != nil {
		t.Fatal(err)
	}
	if r := b.do("GET", "/index/"+registry.IndexPath("shared"), nil); r.status != 200 || strings.Contains(string(r.body), "7.0.0") {
		t.Fatalf("B serves an observation from the future: %d %s", r.status, r.body)
	}
	// B has neither peers nor upstreams: the archive is not there yet.
	if r := b.do("GET", "/api/v1/crates/shared/1.0.0/download", nil); r.status != http.StatusServiceUnavailable {
		t.Fatalf("B without the archive: %d %s", r.status, r.body)
	}
	if _, err := b.n.Store().PutBlob(archive); err != nil {
		t.Fatal(err)
	}
	if r := b.do("GET", "/api/v1/crates/shared/1.0.0/download", nil); r.status != 200 || string(r.body) != string(archive) {
		t.Fatalf("B with the archive: %d", r.status)
	}
}

func TestMirrorRefusesTraversalWithoutAskingUpstream(t *testing.T) {
	up := newUpstreamIndex(t)
	tn := mirrorNode(t, up, false)
	before := up.requests.Load()
	for _, p := range []string{
		"/index/../config.json", "/index/it/oa/../../../etc/passwd", "/index/%2e%2e/%2e%2e/x", "/index/it/oa/it%2Foa",
		"/index/ab/cd/abcd%00", "/index/3/a/a..", "/index/ab/cd/efgh",
		"/api/v1/crates/..%2F..%2Fetc/1.0.0/download", "/api/v1/crates/itoa/..%2F1.0.0/download",
		"/api/v1/crates/itoa/1.0.0%2F..%2F..%2Fx/download", "/api/v1/crates/-itoa/1.0.0/download",
	} {
		r := tn.do("GET", p, nil)
		if r.status != 400 && r.status != 404 {
			t.Errorf("%s: %d %s", p, r.status, r.body)
		}
	}
	if n := up.requests.Load() - before; n != 0 {
		t.Fatalf("%d requests reached the upstream", n)
	}
}

func TestMirrorSlowUpstreamIsATimeout(t *testing.T) {
	release := make(chan struct{})
	var asked atomic.Int64
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) })
	m, err := mirror.New(mirror.Config{URL: slow.URL + "/index/", Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	tn := newTestNode(t, node.Config{Upstream: node.UpstreamConfig{Upstreams: []node.Upstream{m}, Refresh: -1}}, Config{})
	r := tn.do("GET", "/index/"+registry.IndexPath("itoa"), nil)
	if r.status != http.StatusGatewayTimeout || !strings.Contains(detail(t, r), "in time") {
		t.Fatalf("slow upstream: %d %s", r.status, r.body)
	}
	if r := tn.publish("itoa", "1.0.0", simpleCrate(t, "itoa", "1.0.0", "")); r.status != http.StatusGatewayTimeout || !strings.Contains(detail(t, r), "cannot tell") {
		t.Fatalf("publish while the upstream cannot answer: %d %s", r.status, r.body)
	}
	if recs := upstreamRecords(t, tn); len(recs) != 0 {
		t.Fatalf("records from a slow upstream: %v", recs)
	}
	// Within the refresh interval a failed upstream is not asked again:
	// the failure is answered at once.
	cached := newTestNode(t, node.Config{Upstream: node.UpstreamConfig{Upstreams: []node.Upstream{m}, Refresh: time.Hour}}, Config{})
	before := asked.Load()
	for range 3 {
		if r := cached.do("GET", "/index/"+registry.IndexPath("itoa"), nil); r.status != http.StatusGatewayTimeout {
			t.Fatalf("slow upstream, cached failure: %d %s", r.status, r.body)
		}
	}
	if n := asked.Load() - before; n != 1 {
		t.Fatalf("the failing upstream was asked %d times within the refresh interval; want 1", n)
	}
}

func TestMirroredCratesInTheWasmViewByTheirReports(t *testing.T) {
	up := newUpstreamIndex(t)
	lines := up.publish(t, "wasmy", nil, map[string][]byte{
		"1.0.0": simpleCrate(t, "wasmy", "1.0.0", ""), "1.1.0": simpleCrate(t, "wasmy", "1.1.0", ""), "1.2.0": simpleCrate(t, "wasmy", "1.2.0", ""),
	})
	tn := mirrorNode(t, up, false)
	if r := tn.do("GET", "/wasm/index/"+registry.IndexPath("wasmy"), nil); r.status != 404 {
		t.Fatalf("no reports yet: %d %s", r.status, r.body)
	}
	tester, stranger := testKey(t, 3), testKey(t, 4)
	trustKey(t, tn, tester)
	vs, err := tn.n.Mirrored(context.Background(), "wasmy")
	if err != nil || len(vs) != 3 {
		t.Fatalf("%v %v", vs, err)
	}
	report := func(key registry.PrivateKey, mv *node.MirroredVersion, release registry.ID, gate, wasm string) {
		t.Helper()
		now := time.Now()
		body := &registry.ReportBody{Release: release.Bytes(), Outcome: registry.OutcomeTestPass, Wasm: wasm, Score: 90, Gate: gate,
			Started: now.UnixMilli() - 1000, Finished: now.UnixMilli()}
		rec, err := registry.Sign(key, registry.KindReport, mv.Name+"@"+mv.Version, body, now)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tn.n.Store().PutRecords([]*registry.Record{rec}); err != nil {
			t.Fatal(err)
		}
	}
	id := func(mv *node.MirroredVersion) registry.ID {
		id, err := registry.ParseID(mv.Served.Record)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	report(tester, vs[0], id(vs[0]), registry.GateCurated, registry.WasmCompatible)    // passes
	report(tester, vs[1], id(vs[1]), registry.GateRejected, registry.WasmIncompatible) // fails the gates
	report(stranger, vs[2], id(vs[2]), registry.GateCurated, registry.WasmCompatible)  // not a tester here
	report(tester, vs[2], id(vs[0]), registry.GateCurated, registry.WasmCompatible)    // about another release
	r := tn.do("GET", "/wasm/index/"+registry.IndexPath("wasmy"), nil)
	if r.status != 200 || string(r.body) != lines["1.0.0"]+"\n" {
		t.Fatalf("wasm view: %d %s", r.status, r.body)
	}
	// The tester's newer report on 1.0.0 takes it out again.
	time.Sleep(2 * time.Millisecond)
	report(tester, vs[0], id(vs[0]), registry.GateRejected, registry.WasmIncompatible)
	if r := tn.do("GET", "/wasm/index/"+registry.IndexPath("wasmy"), nil); r.status != 404 {
		t.Fatalf("after the newer report: %d %s", r.status, r.body)
	}
}
