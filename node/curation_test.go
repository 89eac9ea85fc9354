package node

import (
	"context"
	"strings"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// Over real libp2p: a release whose trusted report misses a performance
// threshold needs review on both nodes, with the reason; an approving
// review signed on each node (each node is a reviewer for the other,
// which trusts it) makes it curated on both; a review by a key that is no
// reviewer counts nowhere; a reviewer's rejection rejects it.
func TestReviewsFromTwoNodesCurate(t *testing.T) {
	a, b := fedNode(t), fedNode(t)
	ctx := context.Background()
	if _, err := b.AddPeer(ctx, "t", a.Health(ctx).Addrs[0], true); err != nil {
		t.Fatal(err)
	}
	if _, err := a.AddPeer(ctx, "t", b.Health(ctx).Addrs[0], true); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*Node{a, b} {
		if _, err := n.UpdateSettings(ctx, "t", []byte(`{"gates":{"curated_min_score":80,"reject_below_score":30,"require_wasm":true,"min_wasm":"compatible","max_time_ratio":2,"approvals":2}}`)); err != nil {
			t.Fatal(err)
		}
	}
	rel, _, err := a.Submit(ctx, "t", crateBytes(t, "curated", "1.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	report, err := a.sign(registry.KindReport, rel.Subject, &registry.ReportBody{
		Release: rel.ID.Bytes(), Outcome: registry.OutcomeTestPass, Wasm: registry.WasmCompatible, Score: 95, Gate: registry.GateCurated,
		Started: 1, Finished: 2, Timing: &registry.TimingSummary{Compared: 4, NativeUS: 1000, WasmUS: 3000, Ratio: 3000, Timed: 4},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.storeAndPublishUnaudited(ctx, report); err != nil {
		t.Fatal(err)
	}
	gateOn := func(n *Node) (*Release, bool) {
		r, err := n.Release(ctx, rel.Subject)
		return r, err == nil
	}
	waitGate := func(what, gate, reason string) {
		t.Helper()
		for _, n := range []*Node{a, b} {
			eventually(t, 30*time.Second, what, func() bool {
				r, ok := gateOn(n)
				return ok && r.Gate == gate && strings.Contains(strings.Join(r.GateReasons, "; "), reason)
			})
		}
	}
	waitGate("needs review for its time ratio on both", registry.GateNeedsReview, "3.00× the native time")

	// A stranger's approvals count nowhere.
	stranger, _ := registry.KeyFromSeed([]byte(strings.Repeat("s", 32)))
	for i := 0; i < 3; i++ {
		r, err := registry.Sign(stranger, registry.KindReview, rel.Subject, &registry.ReviewBody{Verdict: registry.VerdictApprove}, time.Now().Add(time.Duration(i)*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Ingest(ctx, "t", [][]byte{r.Bytes()}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Review(ctx, "t", rel.Subject, registry.VerdictApprove, "fine for us"); err != nil {
		t.Fatal(err)
	}
	waitGate("one approval of two on both", registry.GateNeedsReview, "1 of the 2")
	if _, err := b.Review(ctx, "t", rel.Subject, registry.VerdictApprove, "fine for us too"); err != nil {
		t.Fatal(err)
	}
	waitGate("curated by two approvals on both", registry.GateCurated, "approved by 2 reviewers")

	if _, err := b.Review(ctx, "t", rel.Subject, registry.VerdictReject, "a licence problem"); err != nil {
		t.Fatal(err)
	}
	waitGate("rejected by B's review on both", registry.GateRejected, "rejected by reviewer "+b.PeerID())
}
