package web

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/internal/testkit"
	"github.com/wasmrust/wasm-crates-registry/node"
)

func crateBytes(name, version string) []byte {
	return testkit.Crate(name, version, nil, testkit.Description("<b>not bold</b>"))
}

// dashNode opens a node for a dashboard test, closed when the test ends.
func dashNode(t *testing.T) *node.Node {
	t.Helper()
	n, err := node.Open(context.Background(), node.Config{DataDir: t.TempDir(), Announce: io.Discard, Name: "dash"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// ingestSigned signs a record with k and imports it into n.
func ingestSigned(t *testing.T, n *node.Node, k registry.PrivateKey, kind registry.Kind, subject string, body any) {
	t.Helper()
	rec, err := registry.Sign(k, kind, subject, body, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Ingest(context.Background(), "test", [][]byte{rec.Bytes()}); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, srv *httptest.Server, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestDashboardPages(t *testing.T) {
	ctx := context.Background()
	n := dashNode(t)
	rel, _, err := n.Submit(ctx, "test", crateBytes("dashcrate", "1.2.3"))
	if err != nil {
		t.Fatal(err)
	}
	// A report from another key, trusted by configuration.
	tester, _ := registry.GenerateKey(nil)
	rep := &registry.ReportBody{
		Release: rel.ID.Bytes(), Outcome: registry.OutcomeTestPass, Wasm: registry.WasmCompatible, GCReady: true, Dual: true,
		Score: 88, Gate: registry.GateCurated, Started: 1, Finished: 2, Message: "all good",
		Targets: []registry.TargetReport{{Target: "wasm32-wasip1", Outcome: registry.OutcomeTestPass, Build: "ok", Runner: "wazero",
			Tests:    &registry.TestCounts{Passed: 3},
			Refusals: []registry.Refusal{{Action: "network-attempt", Detail: "<script>203.0.113.9:443</script>", Count: 2}, {Action: "syscall", Detail: "ptrace", Count: 1}}}},
		Notes:    []string{"wasm32-wasip1: code of the crate tried to reach the network"},
		GCChecks: []registry.GCCheck{{Name: "no-shared-memory", Pass: true, Reason: "memory is not shared"}},
	}
	ingestSigned(t, n, tester, registry.KindReport, rel.Subject, rep)
	if _, err := n.UpdateSettings(ctx, "test", []byte(`{"trust":{"keys":["`+tester.Public().PeerID()+`"]}}`)); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(n, nil))
	defer srv.Close()

	code, body := get(t, srv, "/ui/")
	if code != 200 || !strings.Contains(body, "dashcrate") || !strings.Contains(body, ">compatible<") || !strings.Contains(body, "&lt;b&gt;not bold&lt;/b&gt;") {
		t.Fatalf("index: %d\n%s", code, body)
	}
	code, body = get(t, srv, "/ui/?wasm=incompatible")
	if code != 200 || strings.Contains(body, "/ui/crates/dashcrate") {
		t.Fatalf("filtered index lists an excluded crate: %d", code)
	}
	code, body = get(t, srv, "/ui/crates/dashcrate@1.2.3")
	for _, want := range []string{"wasm32-wasip1", "all good", "no-shared-memory", "memory is not shared", rel.ID.String(), `<span class="badge ok">trusted</span>`,
		"Sandbox refusals", "network-attempt", "&lt;script&gt;203.0.113.9:443&lt;/script&gt;", "ptrace", "tried to reach the network"} {
		if !strings.Contains(body, want) {
			t.Errorf("crate page lacks %q", want)
		}
	}
	if code != 200 {
		t.Fatalf("crate page: %d", code)
	}
	if code, body = get(t, srv, "/ui/crates/nope@1.0.0"); code != 404 || !strings.Contains(body, "not found") {
		t.Fatalf("missing crate: %d %s", code, body)
	}
	if code, _ = get(t, srv, "/ui/?limit=abc"); code != 400 {
		t.Fatalf("bad filter: %d", code)
	}
	if code, body = get(t, srv, "/ui/peers"); code != 200 || !strings.Contains(body, n.PeerID()) {
		t.Fatalf("peers page: %d", code)
	}

	// A stranger's release, backdated to 1970, of a version the node never
	// published: shown as an untrusted claim, and the owner's release as
	// witnessed (or pending) and not as a claim.
	stranger, _ := registry.GenerateKey(nil)
	fake := crateBytes("dashcrate", "0.0.1")
	sum := registry.Sum(fake)
	claim, err := registry.Sign(stranger, registry.KindRelease, "dashcrate@0.0.1", &registry.ReleaseBody{
		Name: "dashcrate", Version: "0.0.1", Cksum: sum.Hex(), Blob: sum.Bytes(), Size: uint64(len(fake))}, time.UnixMilli(1000))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Ingest(ctx, "test", [][]byte{claim.Bytes()}); err != nil {
		t.Fatal(err)
	}
	if code, body = get(t, srv, "/ui/crates/dashcrate@0.0.1"); code != 200 || !strings.Contains(body, "untrusted claim") {
		t.Fatalf("the stranger's release is not shown as an untrusted claim: %d\n%s", code, body)
	}
	if _, body = get(t, srv, "/ui/crates/dashcrate@1.2.3"); strings.Contains(body, "untrusted claim") || !strings.Contains(body, "Witnessed") {
		t.Fatalf("the owner's release page: %s", body)
	}
}

// A crate that builds for wasm but whose tests were not run on the
// reporting node: its own colour, its own filter, and the reason shown
// wherever the verdict is.
func TestDashboardBuildsVerdict(t *testing.T) {
	ctx := context.Background()
	n := dashNode(t)
	rel, _, err := n.Submit(ctx, "test", crateBytes("buildscrate", "0.4.0"))
	if err != nil {
		t.Fatal(err)
	}
	tester, _ := registry.GenerateKey(nil)
	const reason = "Its tests were not run under wazero on this node: the tests' dev-dependencies (<i>quickcheck</i> ^1) cannot all be resolved."
	rep := &registry.ReportBody{
		Release: rel.ID.Bytes(), Outcome: registry.OutcomeBrokenDeps, Wasm: registry.WasmBuilds, Score: 70,
		Gate: registry.GateNeedsReview, Started: 1, Finished: 2, Reason: reason, MissingDeps: []string{"quickcheck ^1"},
	}
	ingestSigned(t, n, tester, registry.KindReport, rel.Subject, rep)
	if _, err := n.UpdateSettings(ctx, "test", []byte(`{"trust":{"keys":["`+tester.Public().PeerID()+`"]}}`)); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(n, nil))
	defer srv.Close()
	escaped := strings.ReplaceAll(strings.ReplaceAll(strings.ReplaceAll(reason, "<", "&lt;"), ">", "&gt;"), "'", "&#39;")
	code, body := get(t, srv, "/ui/?wasm=builds")
	if code != 200 || !strings.Contains(body, "/ui/crates/buildscrate") || !strings.Contains(body, `class="badge builds"`) || !strings.Contains(body, `<option value="builds" selected>`) {
		t.Fatalf("wasm=builds: %d\n%s", code, body)
	}
	if code, body = get(t, srv, "/ui/?wasm=partial"); code != 200 || strings.Contains(body, "/ui/crates/buildscrate") {
		t.Fatalf("wasm=partial lists a crate whose verdict is builds: %d", code)
	}
	code, body = get(t, srv, "/ui/crates/buildscrate@0.4.0")
	for _, want := range []string{`<span class="badge builds">builds</span> ` + escaped, `title="` + escaped + `"`, "quickcheck ^1", "Not available to this node"} {
		if !strings.Contains(body, want) {
			t.Errorf("crate page lacks %q", want)
		}
	}
	if code != 200 {
		t.Fatalf("crate page: %d", code)
	}
	info, err := n.Release(ctx, "buildscrate@0.4.0")
	if err != nil {
		t.Fatal(err)
	}
	if info.Wasm != registry.WasmBuilds || info.WasmReason != reason {
		t.Errorf("release view: wasm %q reason %q", info.Wasm, info.WasmReason)
	}
}

// The crate page shows the gate with its reasons and who reviewed what,
// and whether each review counts here.
func TestDashboardShowsGateReasonsAndReviewers(t *testing.T) {
	ctx := context.Background()
	n := dashNode(t)
	rel, _, err := n.Submit(ctx, "test", crateBytes("gated", "1.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	rep := &registry.ReportBody{Release: rel.ID.Bytes(), Outcome: registry.OutcomeTestPass, Wasm: registry.WasmPartial, Score: 90,
		Gate: registry.GateNeedsReview, Started: 1, Finished: 2}
	stranger, _ := registry.GenerateKey(nil)
	var raws [][]byte
	for _, r := range []struct {
		k    registry.PrivateKey
		kind registry.Kind
		body any
	}{{stranger, registry.KindReview, &registry.ReviewBody{Verdict: registry.VerdictApprove, Comment: "from a stranger"}}} {
		rec, err := registry.Sign(r.k, r.kind, rel.Subject, r.body, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		raws = append(raws, rec.Bytes())
	}
	if _, err := n.Ingest(ctx, "test", raws); err != nil {
		t.Fatal(err)
	}
	// The node's own review counts (it is a reviewer); the tester's report
	// counts once the node trusts the tester.
	if _, err := n.Review(ctx, "test", rel.Subject, registry.VerdictApprove, "looks right"); err != nil {
		t.Fatal(err)
	}
	tester, _ := registry.GenerateKey(nil)
	ingestSigned(t, n, tester, registry.KindReport, rel.Subject, rep)
	if _, err := n.UpdateSettings(ctx, "test", []byte(`{"trust":{"keys":["`+tester.Public().PeerID()+`"]}}`)); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(n, nil))
	defer srv.Close()
	code, body := get(t, srv, "/ui/crates/gated@1.0.0")
	for _, want := range []string{
		`Gate: <span class="badge needs-review">needs-review</span>`,
		"<li>wasm verdict partial is below min_wasm compatible</li>",
		"<li>1 of the 2 approving reviews that curate it</li>",
		n.PeerID() + `</td><td>yes: a reviewer of this crate`,
		stranger.Public().PeerID() + `</td><td>no: not a reviewer here`,
		"from a stranger",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("crate page lacks %q", want)
		}
	}
	if code != 200 {
		t.Fatalf("crate page: %d", code)
	}
}

// A report's extra target (another toolchain's run, information only) is
// labelled as such, and doc-test counts are shown.
func TestDashboardExtraTarget(t *testing.T) {
	ctx := context.Background()
	n := dashNode(t)
	rel, _, err := n.Submit(ctx, "test", crateBytes("extracrate", "1.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	rep := &registry.ReportBody{
		Release: rel.ID.Bytes(), Outcome: registry.OutcomeTestPass, Wasm: registry.WasmCompatible,
		Score: 80, Gate: registry.GateCurated, Started: 1, Finished: 2,
		Targets: []registry.TargetReport{
			{Target: "x86_64-unknown-linux-gnu", Toolchain: "1.63.0@/usr/bin", Outcome: registry.OutcomeTestPass, Build: "ok", Runner: "native",
				Tests: &registry.TestCounts{Passed: 3}, DocTests: &registry.TestCounts{Passed: 55, Failed: 1, Ignored: 2}},
			{Target: "x86_64-unknown-linux-gnu", Toolchain: "1.95.0@/opt/rust/bin", Outcome: registry.OutcomeTestPass, Build: "ok", Runner: "native",
				Tests: &registry.TestCounts{Passed: 3}, Extra: true},
		},
	}
	tester, _ := registry.GenerateKey(nil)
	ingestSigned(t, n, tester, registry.KindReport, rel.Subject, rep)
	if _, err := n.UpdateSettings(ctx, "test", []byte(`{"trust":{"keys":["`+tester.Public().PeerID()+`"]}}`)); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(n, nil))
	defer srv.Close()
	code, body := get(t, srv, "/ui/crates/extracrate@1.0.0")
	for _, want := range []string{"extra, information only: 1.95.0@/opt/rust/bin", "doc-tests 55 / 1 / 2"} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("crate page (%d) lacks %q", code, want)
		}
	}
	if strings.Count(body, "extra, information only") != 1 {
		t.Error("the compared target is labelled extra")
	}
}

// The crate page shows the configurations a report tested and its
// benchmark ratios.
func TestDashboardShowsConfigsAndBenches(t *testing.T) {
	ctx := context.Background()
	n := dashNode(t)
	rel, _, err := n.Submit(ctx, "test", crateBytes("configured", "1.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	tester, _ := registry.GenerateKey(nil)
	rep := &registry.ReportBody{Release: rel.ID.Bytes(), Outcome: registry.OutcomeTestPass, Wasm: registry.WasmCompatible, Score: 90,
		Gate: registry.GateCurated, Started: 1, Finished: 2, Config: "no-default-features features=wasm",
		Configs: []registry.ConfigReport{
			{Name: "default", Source: "default", Wasm: registry.WasmIncompatible, Outcome: registry.OutcomeBuildFail, Message: "no <b>wasm</b>"},
			{Name: "no-default-features features=wasm", Source: "wasm-crates-registry", Wasm: registry.WasmCompatible, Outcome: registry.OutcomeTestPass},
		},
		Benches: []registry.BenchComparison{{Name: "heavy", Iterations: 5, NativeUS: 44900, WasmUS: 35100, Ratio: 782}, {Name: "nightly", Note: "needs a nightly toolchain"}},
	}
	ingestSigned(t, n, tester, registry.KindReport, rel.Subject, rep)
	srv := httptest.NewServer(New(n, nil))
	defer srv.Close()
	code, body := get(t, srv, "/ui/crates/configured@1.0.0")
	for _, want := range []string{"Configurations tested", `The verdict is for <span class="mono">no-default-features features=wasm</span>`,
		`<span class="badge incompatible">incompatible</span>`, "no &lt;b&gt;wasm&lt;/b&gt;", "Benchmarks", "<td>5</td><td>44.9 ms</td><td>35.1 ms</td><td>0.78×</td>", "needs a nightly toolchain"} {
		if !strings.Contains(body, want) {
			t.Errorf("crate page lacks %q", want)
		}
	}
	if code != 200 {
		t.Fatalf("crate page: %d", code)
	}
}

// TestFederationPageWarnsOfUntrustedClaims: a stranger's release in place
// of the node's and a stranger's new crate are listed as warnings; the
// node's own release is not.
func TestFederationPageWarnsOfUntrustedClaims(t *testing.T) {
	ctx := context.Background()
	n := dashNode(t)
	if _, _, err := n.Submit(ctx, "test", crateBytes("ownedcrate", "1.0.0")); err != nil {
		t.Fatal(err)
	}
	stranger, _ := registry.GenerateKey(nil)
	for _, name := range []string{"ownedcrate", "strangecrate"} {
		// Another archive than the node's for the same name@version.
		b, err := registry.ParseCrate(testkit.Crate(name, "1.0.0", nil, testkit.Description("a stranger's")), 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		ingestSigned(t, n, stranger, registry.KindRelease, name+"@1.0.0", b)
	}
	srv := httptest.NewServer(New(n, nil))
	defer srv.Close()
	code, body := get(t, srv, "/ui/peers")
	if code != 200 {
		t.Fatalf("/ui/peers: %d", code)
	}
	i := strings.Index(body, `id="claims"`)
	if i < 0 {
		t.Fatalf("no claims table:\n%s", body)
	}
	claims := body[i:]
	if !strings.Contains(claims, "ownedcrate@1.0.0") || !strings.Contains(claims, "untrusted claim") || !strings.Contains(claims, stranger.Public().PeerID()) {
		t.Errorf("the stranger's claim on ownedcrate is not listed:\n%s", claims)
	}
	if !strings.Contains(claims, "strangecrate@1.0.0") || !strings.Contains(claims, "untrusted release") {
		t.Errorf("the stranger's own crate is not listed as an untrusted release:\n%s", claims)
	}
}
