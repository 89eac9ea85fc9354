package node

import (
	"context"
	"log/slog"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/store"
)

// jobExec is one run of a claimed job: take the shared-testing lease,
// fetch the release, run the tester, sign and store the report, and
// record how the job ended. Each step that ends the job early records
// that end itself and reports false; a job left as it is (running) when
// the node stops is requeued at the next start.
type jobExec struct {
	jr  *jobRunner
	n   *Node
	job *store.Job
	ctx context.Context // ends when the job is canceled or the node stops
	log *slog.Logger

	// reported: the report is stored, so the lease ends as done.
	reported bool
}

// execute runs the job's steps in order.
func (x *jobExec) execute() {
	release, ok := x.takeLease()
	if !ok {
		return
	}
	defer release()
	tj, ok := x.fetch()
	if !ok {
		return
	}
	report, ok := x.test(tj)
	if !ok {
		return
	}
	rr, ok := x.publish(tj.Release, report)
	if !ok {
		return
	}
	x.finish(rr, report)
}

// stopping reports whether the node is stopping (not merely this job
// being canceled).
func (x *jobExec) stopping() bool { return x.jr.ctx.Err() != nil }

// fail records the job's end in state with msg.
func (x *jobExec) fail(state store.JobState, msg string) {
	x.n.metrics.Job(string(state), nil)
	_, err := x.jr.update(x.job.ID, func(j *store.Job) error {
		j.State, j.Error, j.Finished = state, msg, x.n.cfg.Now().UTC()
		return nil
	})
	if err != nil {
		x.log.Error("recording a job's end", "err", err)
	}
}

// takeLease takes the shared-testing lease for the job when shared testing
// is on. ok false: the job ended (recorded), or the node is stopping.
// release, called when the run ends, ends the lease: as done once the
// report is stored, else given back; when the node stops first, the lease
// is left to run out so that another tester (or this one after a restart)
// takes the job.
func (x *jobExec) takeLease() (release func(), ok bool) {
	if x.n.shared == nil {
		return func() {}, true
	}
	lease, why, err := x.n.shared.acquire(x.ctx, x.job)
	switch {
	case err != nil && x.stopping():
		return nil, false // the job is requeued at the next start
	case err != nil && x.ctx.Err() != nil:
		x.fail(store.JobCanceled, "canceled")
		return nil, false
	case err != nil:
		x.fail(store.JobFailed, "the lease could not be taken: "+registry.MessageOf(err))
		return nil, false
	case lease == nil:
		x.log.Info("not tested here", "reason", why)
		x.fail(store.JobCanceled, NotTestedHere+why)
		return nil, false
	}
	return func() {
		if x.stopping() && !x.reported {
			// Stopping: the lease runs out and the job is requeued.
			close(lease.stopped)
			<-lease.done
			return
		}
		lease.end(x.reported)
	}, true
}

// fetch reads the job's release record from the store and its .crate
// blob from the store or a peer. ok false: the job failed (recorded).
func (x *jobExec) fetch() (tj TestJob, ok bool) {
	rec, err := x.n.db.GetRecord(x.job.Release)
	if err != nil {
		x.fail(store.JobFailed, "the release record is not in the store: "+registry.MessageOf(err))
		return TestJob{}, false
	}
	b, err := rec.DecodeBody()
	if err != nil {
		x.fail(store.JobFailed, registry.MessageOf(err))
		return TestJob{}, false
	}
	body := b.(*registry.ReleaseBody)
	crate, err := x.n.blob(x.ctx, body.BlobID())
	if err != nil {
		x.fail(store.JobFailed, registry.MessageOf(err))
		return TestJob{}, false
	}
	return TestJob{Release: rec, Body: body, Crate: crate, Local: localCrates{n: x.n, trust: x.n.Trust()}}, true
}

// progress appends a pipeline event to the job.
func (x *jobExec) progress(ev store.JobEvent) {
	if ev.Time.IsZero() {
		ev.Time = x.n.cfg.Now().UTC()
	}
	if _, err := x.jr.update(x.job.ID, func(j *store.Job) error {
		j.Events = append(j.Events, ev)
		return nil
	}); err != nil {
		x.log.Warn("recording progress", "err", err)
	}
}

// test runs the tester on tj. ok false: the job ended (recorded as
// canceled or failed with why), or the node is stopping and the job is
// left running so that it is requeued at the next start.
func (x *jobExec) test(tj TestJob) (*registry.ReportBody, bool) {
	report, err := x.n.tester.Test(x.ctx, tj, x.progress)
	if err == nil {
		return report, true
	}
	switch {
	case x.stopping():
	case x.ctx.Err() != nil:
		x.fail(store.JobCanceled, "canceled")
	case registry.KindOf(err) == registry.EUNAVAILABLE:
		x.log.Info("no report possible on this node", "reason", registry.MessageOf(err))
		x.fail(store.JobFailed, "no report: "+registry.MessageOf(err))
	default:
		x.log.Error("test run failed", "err", err)
		x.fail(store.JobFailed, "the registry could not run the pipeline: "+registry.MessageOf(err))
	}
	return nil, false
}

// publish signs the report about rec as a report record, stores it with
// its audit entry and gossips it. ok false: the job failed (recorded).
func (x *jobExec) publish(rec *registry.Record, report *registry.ReportBody) (*registry.Record, bool) {
	rr, err := x.n.sign(registry.KindReport, rec.Subject, report)
	if err != nil {
		x.fail(store.JobFailed, "the report could not be signed: "+registry.MessageOf(err))
		return nil, false
	}
	if err := x.n.storeAndPublish(x.jr.ctx, store.AuditEntry{Action: "report", Actor: x.n.PeerID(), Subject: rec.Subject, Detail: report.Outcome}, rr); err != nil {
		x.fail(store.JobFailed, "the report could not be stored: "+registry.MessageOf(err))
		return nil, false
	}
	x.reported = true
	return rr, true
}

// finish records the job's end as done with its report.
func (x *jobExec) finish(rr *registry.Record, report *registry.ReportBody) {
	x.n.metrics.Job(report.Outcome, report.Stages)
	if _, err := x.jr.update(x.job.ID, func(j *store.Job) error {
		j.State, j.Finished, j.Report, j.Outcome = store.JobDone, x.n.cfg.Now().UTC(), rr.ID(), report.Outcome
		return nil
	}); err != nil {
		x.log.Error("recording a job's end", "err", err)
	}
	x.log.Info("test run finished", "outcome", report.Outcome, "wasm", report.Wasm, "score", report.Score)
}
