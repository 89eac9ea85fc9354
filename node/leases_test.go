package node

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/federation"
	"github.com/wasmrust/wasm-crates-registry/store"
)

// fakeTester stands in for the pipeline, which needs cargo and seconds
// per crate: the shared-testing logic under test is the node's, not the
// pipeline's. It counts every run per node and release; a crate named
// ok-* is compatible, any other is incompatible and broken by getrandom;
// a crate named hang-* runs until its run is cut off.
type fakeTester struct {
	node  string
	runs  *runLog
	delay time.Duration
}

type runLog struct {
	mu   sync.Mutex
	runs map[string][]string // subject → nodes that started a run
}

func (l *runLog) add(subject, node string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.runs[subject] = append(l.runs[subject], node)
}

func (l *runLog) of(subject string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.runs[subject]...)
}

func (f *fakeTester) Test(ctx context.Context, job TestJob, progress func(store.JobEvent)) (*registry.ReportBody, error) {
	f.runs.add(job.Release.Subject, f.node)
	if strings.HasPrefix(job.Body.Name, "hang-") {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(f.delay):
	}
	return fakeReport(job.Release.ID(), job.Body.Name, "rustc 1.63.0"), nil
}

func fakeReport(release registry.ID, name, rustc string) *registry.ReportBody {
	b := &registry.ReportBody{
		Release: release.Bytes(), Outcome: registry.OutcomeTestPass, Wasm: registry.WasmCompatible, Score: 90, Gate: registry.GateCurated,
		Toolchains: []registry.ToolchainReport{{ID: "debian", Rustc: rustc}},
		Targets: []registry.TargetReport{
			{Target: "x86_64-unknown-linux-gnu", Toolchain: "debian", Outcome: registry.OutcomeTestPass, Build: "ok"},
			{Target: "wasm32-wasip1", Toolchain: "debian", Outcome: registry.OutcomeTestPass, Build: "ok"},
		},
		Tests: []registry.TestComparison{{Name: "lib::adds", Native: registry.TestPassed, Wasm: registry.TestPassed}},
	}
	if !strings.HasPrefix(name, "ok-") {
		b.Outcome, b.Wasm, b.Score, b.Gate, b.BrokenBy = registry.OutcomeBuildFail, registry.WasmIncompatible, 10, registry.GateRejected, "getrandom@0.2.8"
		b.Targets[1] = registry.TargetReport{Target: "wasm32-wasip1", Toolchain: "debian", Outcome: registry.OutcomeBuildFail, Build: "failed"}
		b.Tests[0].Wasm = registry.TestNotRun
	}
	return b
}

func (f *fakeTester) Toolchains() any { return nil }
func (f *fakeTester) Close() error    { return nil }

var _ Tester = (*fakeTester)(nil)

func sharedNode(t *testing.T, name string, runs *runLog, dir string) *Node {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	n, err := Open(context.Background(), Config{
		DataDir: dir, Announce: io.Discard, Logger: slog.New(slog.DiscardHandler),
		Network: Federation(federation.Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Network: "shared-test", SyncInterval: time.Second}),
		Tester: func(*slog.Logger) (Tester, error) {
			return &fakeTester{node: name, runs: runs, delay: 300 * time.Millisecond}, nil
		},
		Shared: SharedTesting{Enabled: true, Lease: 3 * time.Second, Scan: 200 * time.Millisecond, Settle: 300 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// join connects every pair of nodes with trust both ways.
func join(t *testing.T, nodes ...*Node) {
	t.Helper()
	ctx := context.Background()
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				if _, err := a.AddPeer(ctx, "t", b.Health(ctx).Addrs[0], true); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

func reportAuthors(t *testing.T, n *Node, subject string) []string {
	t.Helper()
	c, err := n.Confirmation(context.Background(), subject)
	if err != nil {
		return nil
	}
	var out []string
	for _, r := range c.Reports {
		out = append(out, r.Tester.PeerID())
	}
	return out
}

// Three nodes with shared testing share the releases published to one:
// each release is run exactly as often as it needs reports (1, or 2 when
// its verdict would put it in the wasm-only index), by distinct nodes,
// and the confirmed verdicts agree. A stranger's claim is kept and
// ignored.
func TestSharedTestingRunsEachReleaseOnceOrConfirmed(t *testing.T) {
	runs := &runLog{runs: map[string][]string{}}
	a, b, c := sharedNode(t, "a", runs, ""), sharedNode(t, "b", runs, ""), sharedNode(t, "c", runs, "")
	join(t, a, b, c)
	ctx := context.Background()

	var subjects []string
	for _, name := range []string{"ok-one", "ok-two", "bad-one", "bad-two", "bad-three"} {
		rel, _, err := a.Submit(ctx, "t", crateBytes(t, name, "1.0.0"))
		if err != nil {
			t.Fatal(err)
		}
		subjects = append(subjects, rel.Subject)
		if name == "bad-three" {
			// A stranger claims it far into the future: kept, ignored.
			stranger, _ := registry.GenerateKey(nil)
			cl, err := registry.Sign(stranger, registry.KindClaim, rel.Subject, &registry.ClaimBody{Release: rel.ID.Bytes(), Until: 1 << 62}, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := b.Ingest(ctx, "t", [][]byte{cl.Bytes()}); err != nil {
				t.Fatal(err)
			}
		}
	}
	need := func(s string) int {
		if strings.HasPrefix(s, "ok-") {
			return 2
		}
		return 1
	}
	eventually(t, 60*time.Second, "every release reported as often as it needs on every node", func() bool {
		for _, s := range subjects {
			for _, n := range []*Node{a, b, c} {
				if len(reportAuthors(t, n, s)) != need(s) {
					return false
				}
			}
		}
		return true
	})
	// Give the schedulers time to do anything more they would do.
	time.Sleep(2 * time.Second)
	for _, s := range subjects {
		got := runs.of(s)
		if len(got) != need(s) {
			t.Errorf("%s ran %d times (%v), want %d", s, len(got), got, need(s))
		}
		if len(got) == 2 && got[0] == got[1] {
			t.Errorf("%s confirmed by the same node twice: %v", s, got)
		}
	}
	for _, s := range subjects[:2] {
		conf, err := c.Confirmation(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		if conf.Status != ConfirmConfirmed || conf.Summary != "confirmed by 2 nodes" {
			t.Errorf("%s: %s (%s)", s, conf.Status, conf.Summary)
		}
	}
	// The stranger's claim is stored, and the node says who holds what.
	w, err := b.Work(ctx, "bad-three@1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if len(w.Leases) != 0 || len(w.Reporters) != 1 {
		t.Fatalf("bad-three work state: %+v", w)
	}
	recs, _ := b.db.RecordsBySubject("bad-three@1.0.0")
	claims := 0
	for _, r := range recs {
		if r.Kind == registry.KindClaim {
			claims++
		}
	}
	if claims < 2 {
		t.Fatalf("claims on bad-three held by b: %d, want the stranger's and the tester's", claims)
	}

	// The corpus report of the run.
	rep, err := a.CorpusReport(ctx, "latest")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Run.Toolchain != "rustc 1.63.0" || rep.Run.Releases != 5 || rep.Run.Reports != 7 || rep.Confirmed != 2 || rep.Disagreeing != 0 {
		t.Fatalf("run: %+v confirmed %d disagreeing %d", rep.Run, rep.Confirmed, rep.Disagreeing)
	}
	if rep.Verdicts[registry.WasmCompatible] != 2 || rep.Verdicts[registry.WasmIncompatible] != 3 {
		t.Fatalf("verdicts: %v", rep.Verdicts)
	}
	if len(rep.BreakingDeps) != 1 || rep.BreakingDeps[0].Name != "getrandom" || rep.BreakingDeps[0].Crates != 3 {
		t.Fatalf("breaking deps: %+v", rep.BreakingDeps)
	}
	var wasm *TargetTally
	for i := range rep.Targets {
		if rep.Targets[i].Target == "wasm32-wasip1" {
			wasm = &rep.Targets[i]
		}
	}
	if wasm == nil || wasm.Tested != 5 || wasm.Built != 2 || wasm.Passed != 2 {
		t.Fatalf("wasm32-wasip1 tally: %+v", wasm)
	}
	all, err := a.AllConfirmations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Releases) != 2 {
		t.Fatalf("confirmed releases: %d", len(all.Releases))
	}
	for _, r := range all.Testers {
		if r.Compared > 0 && r.RatePerMille != 1000 {
			t.Fatalf("tester %s agreement %d‰", r.Tester, r.RatePerMille)
		}
	}
}

// A node cut off mid-run loses only its lease: while the lease holds,
// nobody else runs the release; once it has run out (judged from receipt),
// another node takes it and reports.
func TestLeaseOfADeadTesterIsRetaken(t *testing.T) {
	runs := &runLog{runs: map[string][]string{}}
	a, b := sharedNode(t, "a", runs, ""), sharedNode(t, "b", runs, "")
	cdir := t.TempDir()
	c := sharedNode(t, "c", runs, cdir)
	join(t, a, b, c)
	ctx := context.Background()
	// c holds the lease of a release that hangs on c.
	rel, _, err := c.Submit(ctx, "t", crateBytes(t, "hang-me", "1.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "a sees c's lease", func() bool {
		w, err := a.Work(ctx, rel.Subject)
		return err == nil && len(w.Leases) == 1 && w.Leases[0].Tester.Equal(c.PublicKey())
	})
	// Renewed past the lease's length, it still holds.
	time.Sleep(4 * time.Second)
	if got := runs.of(rel.Subject); len(got) != 1 || got[0] != "c" {
		t.Fatalf("runs while c holds the lease: %v", got)
	}
	c.Close() // c stops renewing; its run is cut off
	eventually(t, 30*time.Second, "another node took the release over", func() bool {
		return len(runs.of(rel.Subject)) == 2
	})
	got := runs.of(rel.Subject)
	if got[1] == "c" {
		t.Fatalf("runs: %v", got)
	}
	// hang-me hangs only on the fake's name rule: the taker's run hangs
	// too, and holds its own lease, so no third node runs it.
	time.Sleep(4 * time.Second)
	if got := runs.of(rel.Subject); len(got) != 2 {
		t.Fatalf("runs after the takeover: %v", got)
	}
	// c comes back: its interrupted job is requeued, finds the release
	// leased by the taker and leaves it.
	c2 := sharedNode(t, "c", runs, cdir)
	join(t, a, b, c2)
	eventually(t, 30*time.Second, "c's requeued job ends", func() bool {
		j, err := c2.Job(ctx, "1")
		return err == nil && j.State == store.JobCanceled && strings.HasPrefix(j.Error, NotTestedHere+"leased by")
	})
	if got := runs.of(rel.Subject); len(got) != 2 {
		t.Fatalf("runs after c came back: %v", got)
	}
}

// Reports from two testers are compared result by result; a difference
// in one test is a disagreement, shown with both values, and lowers both
// testers' agreement rates; runs by two toolchains give regressions.
func TestConfirmationDisagreementAndRegressions(t *testing.T) {
	n := openNode(t, nil)
	ctx := context.Background()
	t1, _ := registry.GenerateKey(nil)
	t2, _ := registry.GenerateKey(nil)
	for i, k := range []registry.PrivateKey{t1, t2} {
		kb := &registry.KeyBody{Key: k.Public(), Name: "tester" + string(rune('1'+i)), Roles: []string{registry.RoleTester}}
		rec, err := n.sign(registry.KindKey, k.Public().KeyID(), kb)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.storeAndPublishUnaudited(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	report := func(k registry.PrivateKey, b *registry.ReportBody, subject string) registry.ID {
		rec, err := registry.Sign(k, registry.KindReport, subject, b, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.Ingest(ctx, "t", [][]byte{rec.Bytes()}); err != nil {
			t.Fatal(err)
		}
		return rec.ID()
	}
	agreeRel, _, _ := n.Submit(ctx, "t", crateBytes(t, "ok-agree", "1.0.0"))
	splitRel, _, _ := n.Submit(ctx, "t", crateBytes(t, "ok-split", "1.0.0"))
	report(t1, fakeReport(agreeRel.ID, "ok-agree", "rustc 1.63.0"), agreeRel.Subject)
	report(t2, fakeReport(agreeRel.ID, "ok-agree", "rustc 1.63.0"), agreeRel.Subject)
	report(t1, fakeReport(splitRel.ID, "ok-split", "rustc 1.63.0"), splitRel.Subject)
	other := fakeReport(splitRel.ID, "ok-split", "rustc 1.63.0")
	other.Tests[0].Wasm = registry.TestFailed
	failing := report(t2, other, splitRel.Subject)

	c, err := n.Confirmation(ctx, agreeRel.Subject)
	if err != nil || c.Status != ConfirmConfirmed || c.Summary != "confirmed by 2 nodes" {
		t.Fatalf("agreeing reports: %+v %v", c, err)
	}
	c, err = n.Confirmation(ctx, splitRel.Subject)
	if err != nil || c.Status != ConfirmDisagreement || len(c.Disagreements) != 1 {
		t.Fatalf("differing reports: %+v %v", c, err)
	}
	// A and B are the two reports in the order they were made; two made
	// in the same millisecond are ordered by ID.
	dis := c.Disagreements[0]
	d := dis.Differences
	wantA, wantB := registry.TestPassed, registry.TestFailed
	if dis.A == failing {
		wantA, wantB = wantB, wantA
	} else if dis.B != failing {
		t.Fatalf("the disagreement names reports %s and %s, neither of them the failing one %s", dis.A, dis.B, failing)
	}
	if len(d) != 1 || d[0].Item != "test lib::adds wasm" || d[0].A != wantA || d[0].B != wantB {
		t.Fatalf("differences: %+v (A %s, B %s, failing %s)", d, dis.A, dis.B, failing)
	}
	all, err := n.AllConfirmations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Testers) != 2 {
		t.Fatalf("testers: %+v", all.Testers)
	}
	for _, r := range all.Testers {
		if r.Compared != 2 || r.Agreed != 1 || r.RatePerMille != 500 {
			t.Fatalf("agreement of %s: %+v", r.Tester, r)
		}
	}

	// t1 tests again with a newer toolchain: ok-agree regresses.
	newer := fakeReport(agreeRel.ID, "bad", "rustc 1.80.0")
	time.Sleep(2 * time.Millisecond)
	report(t1, newer, agreeRel.Subject)
	runs, err := n.CorpusRuns(ctx)
	if err != nil || len(runs) != 2 {
		t.Fatalf("runs: %+v %v", runs, err)
	}
	var oldRun, newRun string
	for _, r := range runs {
		if r.Toolchain == "rustc 1.80.0" {
			newRun = r.ID
			if r.Releases != 1 || r.Reports != 1 {
				t.Fatalf("new run: %+v", r)
			}
		} else {
			oldRun = r.ID
			// t1's superseded report stays in the run it was made in.
			if r.Releases != 2 || r.Reports != 4 {
				t.Fatalf("old run: %+v", r)
			}
		}
	}
	reg, err := n.CorpusRegressions(ctx, oldRun, newRun)
	if err != nil {
		t.Fatal(err)
	}
	if len(reg.Regressed) != 1 || reg.Regressed[0].Subject != "ok-agree@1.0.0" || reg.Regressed[0].ToWasm != registry.WasmIncompatible || reg.OnlyFrom != 1 {
		t.Fatalf("regressions: %+v", reg)
	}
	if _, err := n.CorpusRegressions(ctx, oldRun, "nope"); registry.KindOf(err) != registry.ENOTFOUND {
		t.Fatalf("unknown run: %v", err)
	}
	if _, err := n.CorpusReport(ctx, strings.Repeat("x", 5000)); registry.KindOf(err) != registry.ENOTFOUND {
		t.Fatalf("hostile run ID: %v", err)
	}
}

// A run an admin cancels is not queued again by the scheduler; its lease
// is given up at once.
func TestCanceledSharedJobStaysCanceled(t *testing.T) {
	runs := &runLog{runs: map[string][]string{}}
	n := sharedNode(t, "a", runs, "")
	ctx := context.Background()
	rel, _, err := n.Submit(ctx, "t", crateBytes(t, "hang-cancel", "1.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the run starts", func() bool { return len(runs.of(rel.Subject)) == 1 })
	if _, err := n.CancelJob(ctx, "t", "1"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the lease is given up", func() bool {
		w, err := n.Work(ctx, rel.Subject)
		return err == nil && len(w.Leases) == 0
	})
	time.Sleep(time.Second) // five scans
	jobs, err := n.db.ListJobs(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 1 || jobs[0].State != store.JobCanceled || len(runs.of(rel.Subject)) != 1 {
		t.Fatalf("after the cancel: %d jobs, first %s; runs %v", len(jobs), jobs[0].State, runs.of(rel.Subject))
	}
}
