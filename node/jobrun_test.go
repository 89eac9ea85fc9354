package node

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/store"
)

// scriptedTester stands in for the pipeline (which needs cargo and
// seconds per crate): what a job ends as is the node's concern here. By
// crate name: unavail-* cannot be reported on this node, crash-* fails in
// the registry, hang-* runs until canceled, any other passes after one
// progress event.
type scriptedTester struct{}

func (scriptedTester) Test(ctx context.Context, job TestJob, progress func(store.JobEvent)) (*registry.ReportBody, error) {
	const op = "scriptedTester.Test"
	switch name := job.Body.Name; {
	case strings.HasPrefix(name, "unavail-"):
		return nil, registry.Errorf(op, registry.EUNAVAILABLE, "no toolchain for wasm32-wasip1")
	case strings.HasPrefix(name, "crash-"):
		return nil, registry.Errorf(op, registry.EINTERNAL, "the sandbox could not start")
	case strings.HasPrefix(name, "hang-"):
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if len(job.Crate) == 0 || job.Local == nil {
		return nil, registry.Errorf(op, registry.EINTERNAL, "the job came without its crate or its local registry")
	}
	progress(store.JobEvent{Stage: "build", Target: "wasm32-wasip1", State: "done"})
	return fakeReport(job.Release.ID(), "ok-"+job.Body.Name, "rustc 1.63.0"), nil
}

func (scriptedTester) Toolchains() any { return nil }
func (scriptedTester) Close() error    { return nil }

var _ Tester = scriptedTester{}

func scriptedNode(t *testing.T) *Node {
	t.Helper()
	n, err := Open(context.Background(), Config{
		DataDir: t.TempDir(), Announce: io.Discard, Logger: slog.New(slog.DiscardHandler),
		Tester: func(*slog.Logger) (Tester, error) { return scriptedTester{}, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// queue publishes a crate and queues its test as an admin.
func queue(t *testing.T, n *Node, name string) *store.Job {
	t.Helper()
	ctx := context.Background()
	rel, _, err := n.Submit(ctx, "t", crateBytes(t, name, "1.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	job, err := n.QueueTest(WithIdentity(ctx, &Identity{Person: "admin", Scopes: []string{ScopeAdmin}}), "t", rel.Subject)
	if err != nil {
		t.Fatal(err)
	}
	return job
}

// waitEnd follows a job until it ends.
func waitEnd(t *testing.T, n *Node, job *store.Job) *store.Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	j := job
	for j.State.Active() {
		var err error
		if j, err = n.WaitJob(ctx, strconv.FormatUint(job.ID, 10), len(j.Events), j.State); err != nil {
			t.Fatal(err)
		}
		if ctx.Err() != nil {
			t.Fatalf("job %d still %s", job.ID, j.State)
		}
	}
	return j
}

// A job ends as done with its signed report stored, or as failed or
// canceled with a message that says which step stopped it.
func TestJobEnds(t *testing.T) {
	n := scriptedNode(t)

	t.Run("report", func(t *testing.T) {
		j := waitEnd(t, n, queue(t, n, "fine"))
		if j.State != store.JobDone || j.Outcome != registry.OutcomeTestPass || j.Error != "" {
			t.Fatalf("job %s (%s) %q", j.State, j.Outcome, j.Error)
		}
		if len(j.Events) == 0 || j.Events[0].Stage != "build" || j.Events[0].Time.IsZero() {
			t.Errorf("progress events %+v: the tester's event, timed by the node", j.Events)
		}
		rec, err := n.db.GetRecord(j.Report)
		if err != nil {
			t.Fatalf("the job's report is not stored: %v", err)
		}
		if rec.Kind != registry.KindReport || rec.Subject != "fine@1.0.0" || !rec.Author.Equal(n.key.Public()) {
			t.Errorf("report record %s %s by %s", rec.Kind, rec.Subject, rec.Author)
		}
	})

	t.Run("unavailable", func(t *testing.T) {
		j := waitEnd(t, n, queue(t, n, "unavail-x"))
		if j.State != store.JobFailed || j.Error != "no report: no toolchain for wasm32-wasip1" {
			t.Fatalf("job %s %q", j.State, j.Error)
		}
		if !j.Report.IsZero() {
			t.Error("a failed job names a report")
		}
	})

	t.Run("pipeline error", func(t *testing.T) {
		j := waitEnd(t, n, queue(t, n, "crash-x"))
		if j.State != store.JobFailed || j.Error != "the registry could not run the pipeline: the sandbox could not start" {
			t.Fatalf("job %s %q", j.State, j.Error)
		}
	})

	t.Run("canceled", func(t *testing.T) {
		job := queue(t, n, "hang-x")
		admin := WithIdentity(context.Background(), &Identity{Person: "admin", Scopes: []string{ScopeAdmin}})
		deadline := time.Now().Add(30 * time.Second)
		for {
			j, err := n.Job(admin, job.IDString())
			if err != nil {
				t.Fatal(err)
			}
			if j.State == store.JobRunning {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("job still %s", j.State)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if _, err := n.CancelJob(admin, "t", job.IDString()); err != nil {
			t.Fatal(err)
		}
		j := waitEnd(t, n, job)
		if j.State != store.JobCanceled || j.Error != "canceled" {
			t.Fatalf("job %s %q", j.State, j.Error)
		}
	})
}
