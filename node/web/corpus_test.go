package web

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	registry "github.com/wasmrust/wasm-crates-registry"
)

func corpusReport(rel registry.ID, wasmTest, rustc string) *registry.ReportBody {
	return &registry.ReportBody{
		Release: rel.Bytes(), Outcome: registry.OutcomeTestPass, Wasm: registry.WasmCompatible, Score: 90, Gate: registry.GateCurated,
		Toolchains: []registry.ToolchainReport{{ID: "debian", Rustc: rustc}},
		Targets:    []registry.TargetReport{{Target: "wasm32-wasip1", Toolchain: "debian", Outcome: registry.OutcomeTestPass, Build: "ok"}},
		Tests:      []registry.TestComparison{{Name: "lib::<b>adds</b>", Native: registry.TestPassed, Wasm: wasmTest}},
	}
}

// The corpus page shows the run's targets, its breaking dependencies, a
// confirmed verdict, a disagreement side by side and each tester's
// agreement; what reports carry is escaped; an unknown run is a 404.
func TestCorpusPage(t *testing.T) {
	ctx := context.Background()
	n := dashNode(t)
	t1, _ := registry.GenerateKey(nil)
	t2, _ := registry.GenerateKey(nil)
	if _, err := n.UpdateSettings(ctx, "test", []byte(`{"trust":{"keys":["`+t1.Public().PeerID()+`","`+t2.Public().PeerID()+`"]}}`)); err != nil {
		t.Fatal(err)
	}
	agree, _, _ := n.Submit(ctx, "test", crateBytes("agreed", "1.0.0"))
	split, _, _ := n.Submit(ctx, "test", crateBytes("split", "1.0.0"))
	broken, _, _ := n.Submit(ctx, "test", crateBytes("broken", "1.0.0"))
	for _, k := range []registry.PrivateKey{t1, t2} {
		ingestSigned(t, n, k, registry.KindReport, agree.Subject, corpusReport(agree.ID, registry.TestPassed, "rustc 1.63.0"))
	}
	ingestSigned(t, n, t1, registry.KindReport, split.Subject, corpusReport(split.ID, registry.TestPassed, "rustc 1.63.0"))
	ingestSigned(t, n, t2, registry.KindReport, split.Subject, corpusReport(split.ID, registry.TestFailed, "rustc 1.63.0"))
	b := corpusReport(broken.ID, registry.TestNotRun, "rustc 1.63.0")
	b.Outcome, b.Wasm, b.Gate, b.BrokenBy = registry.OutcomeBuildFail, registry.WasmIncompatible, registry.GateRejected, "getrandom@0.2.8"
	b.Targets[0].Outcome, b.Targets[0].Build = registry.OutcomeBuildFail, "failed"
	ingestSigned(t, n, t1, registry.KindReport, broken.Subject, b)

	srv := httptest.NewServer(New(n, nil))
	defer srv.Close()
	status, body := get(t, srv, "/ui/corpus")
	if status != 200 {
		t.Fatalf("status %d\n%s", status, body)
	}
	for _, want := range []string{
		"rustc 1.63.0", "wasm32-wasip1", "getrandom", "confirmed by 2 nodes", "2 nodes disagree on 1 results",
		"lib::&lt;b&gt;adds&lt;/b&gt; wasm", `<span class="badge failed">failed</span>`, "50.0%", "</html>",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("corpus page lacks %q\n%.3000s", want, body)
		}
	}
	if strings.Contains(body, "<b>adds</b>") {
		t.Error("a test name from a report reached the page unescaped")
	}
	// The release pages say it too.
	if _, page := get(t, srv, "/ui/crates/agreed@1.0.0"); !strings.Contains(page, "confirmed by 2 nodes") {
		t.Errorf("the release page of a confirmed release does not say so")
	}
	if _, page := get(t, srv, "/ui/crates/split@1.0.0"); !strings.Contains(page, "2 nodes disagree") || !strings.Contains(page, "lib::&lt;b&gt;adds&lt;/b&gt; wasm") {
		t.Errorf("the release page of a disagreement does not show it side by side")
	}
	if status, _ := get(t, srv, "/ui/corpus?run=%3Cscript%3E"); status != 404 {
		t.Errorf("unknown run: status %d", status)
	}
	if status, _ := get(t, srv, "/ui/corpus?from=x"); status != 400 {
		t.Errorf("regressions without a second run: status %d", status)
	}
}
