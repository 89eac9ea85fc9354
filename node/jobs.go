package node

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/pipeline"
	"github.com/wasmrust/wasm-crates-registry/store"
)

// jobRunner runs queued pipeline jobs with a fixed number of workers. Jobs
// live in the store, so a job cut off by a crash runs again after restart.
type jobRunner struct {
	n      *Node
	wake   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	running map[uint64]context.CancelFunc
	subs    map[uint64][]chan struct{} // woken on every change of a job
}

func newJobRunner(n *Node) *jobRunner {
	ctx, cancel := context.WithCancel(context.Background())
	return &jobRunner{n: n, wake: make(chan struct{}, 1), ctx: ctx, cancel: cancel,
		running: map[uint64]context.CancelFunc{}, subs: map[uint64][]chan struct{}{}}
}

func (jr *jobRunner) start(workers int) error {
	if jr.n.tester == nil {
		return nil
	}
	if k, err := jr.n.db.RequeueInterrupted(); err != nil {
		return err
	} else if k > 0 {
		jr.n.log.Info("requeued test jobs cut off by a restart", "jobs", k)
	}
	for i := 0; i < workers; i++ {
		jr.wg.Add(1)
		go jr.work()
	}
	jr.poke()
	return nil
}

func (jr *jobRunner) stop() {
	jr.cancel()
	jr.wg.Wait()
}

func (jr *jobRunner) poke() {
	select {
	case jr.wake <- struct{}{}:
	default:
	}
}

func (jr *jobRunner) work() {
	defer jr.wg.Done()
	for {
		job, err := jr.n.db.ClaimJob()
		if err != nil {
			jr.n.log.Error("claiming a test job", "err", err)
		}
		if job == nil {
			select {
			case <-jr.ctx.Done():
				return
			case <-jr.wake:
				continue
			case <-time.After(30 * time.Second):
				continue
			}
		}
		jr.poke() // another worker may take the next job
		jr.run(job)
		if jr.ctx.Err() != nil {
			return
		}
	}
}

// notify wakes everyone following a job.
func (jr *jobRunner) notify(id uint64) {
	jr.mu.Lock()
	subs := jr.subs[id]
	delete(jr.subs, id)
	jr.mu.Unlock()
	for _, c := range subs {
		close(c)
	}
}

// changed returns a channel closed at the next change of job id.
func (jr *jobRunner) changed(id uint64) <-chan struct{} {
	c := make(chan struct{})
	jr.mu.Lock()
	jr.subs[id] = append(jr.subs[id], c)
	jr.mu.Unlock()
	return c
}

func (jr *jobRunner) update(id uint64, fn func(*store.Job) error) (*store.Job, error) {
	j, err := jr.n.db.UpdateJob(id, fn)
	jr.notify(id)
	return j, err
}

// run runs one claimed job to its end (jobrun.go). While it runs, the job
// can be canceled through jr.running.
func (jr *jobRunner) run(job *store.Job) {
	ctx, cancel := context.WithCancel(jr.ctx)
	defer cancel()
	jr.mu.Lock()
	jr.running[job.ID] = cancel
	jr.mu.Unlock()
	defer func() {
		jr.mu.Lock()
		delete(jr.running, job.ID)
		jr.mu.Unlock()
	}()
	jr.notify(job.ID)
	x := &jobExec{jr: jr, n: jr.n, job: job, ctx: ctx, log: jr.n.log.With("job", job.ID, "release", job.Subject)}
	x.log.Info("test run started")
	x.execute()
}

// NotTestedHere starts the error of a job that shared testing left to
// other testers (the rest says why).
const NotTestedHere = "not tested here: "

// localCrates serves the node's own crates to the pipeline: every release
// that Cargo would pick (authorized, not yanked) whose author this node
// trusts, and what the reports of the authors in trust say of each. A
// release that any peer signed and relayed is never offered as a
// dependency source unless this node trusts its author. One is made per
// job, with the trust set of that moment.
type localCrates struct {
	n     *Node
	trust *TrustSet
}

var _ pipeline.LocalRegistry = localCrates{}

func (l localCrates) Releases(ctx context.Context) ([]*registry.ReleaseBody, error) {
	views, _, err := l.n.db.ListViews(store.ListQuery{Match: func(v *store.ReleaseView) bool {
		return !v.Unauthorized && !v.Yanked && l.trust.May(v.Author, registry.RolePublisher, v.Name)
	}})
	if err != nil {
		return nil, err
	}
	out := make([]*registry.ReleaseBody, 0, len(views))
	for _, v := range views {
		b := v.Body
		out = append(out, &b)
	}
	return out, nil
}

func (l localCrates) Blob(ctx context.Context, id registry.ID) ([]byte, error) {
	return l.n.blob(ctx, id)
}

func (l localCrates) Known(ctx context.Context, name, version string) pipeline.DepKnowledge {
	v, err := l.n.db.GetView(name, version)
	if err != nil {
		return pipeline.DepKnowledge{Wasm: registry.WasmUntested}
	}
	k := pipeline.DepKnowledge{Held: true, Wasm: registry.WasmUntested}
	if r := v.TrustedReport(l.trust.Tests(v.Name)); r != nil {
		k.Wasm = r.Wasm
	}
	return k
}

func (n *Node) pipelineOff(op string) error {
	return registry.Errorf(op, registry.EUNAVAILABLE, "the testing pipeline is not enabled on this node (start it with --pipeline)")
}

// QueueTest queues a pipeline run for a release; if one is already queued or
// running, that job is returned.
func (n *Node) QueueTest(ctx context.Context, actor, id string) (*store.Job, error) {
	const op = "node.QueueTest"
	if n.tester == nil {
		return nil, n.pipelineOff(op)
	}
	v, err := n.ResolveView(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := require(ctx, op, ScopeTest, v.Name); err != nil {
		return nil, err
	}
	job, created, err := n.db.EnqueueJobAudited(v.Subject(), v.Release, func(j *store.Job) store.AuditEntry {
		return store.AuditEntry{Action: "test", Actor: actor, Subject: v.Subject(), Detail: "job " + j.IDString()}
	})
	if err != nil {
		return nil, err
	}
	if created {
		n.jobs.poke()
	}
	return job, nil
}

// Job returns a job by its ID.
func (n *Node) Job(ctx context.Context, id string) (*store.Job, error) {
	jid, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		return nil, registry.Errorf("node.Job", registry.EINVALID, "job ID %q is not a number", truncate(id, 40))
	}
	return n.db.GetJob(jid)
}

// WaitJob returns the job once it differs from seen (by state or events) or
// ctx ends, whichever is first.
func (n *Node) WaitJob(ctx context.Context, id string, seenEvents int, seenState store.JobState) (*store.Job, error) {
	for {
		j, err := n.Job(ctx, id)
		if err != nil {
			return nil, err
		}
		if len(j.Events) != seenEvents || j.State != seenState || !j.State.Active() {
			return j, nil
		}
		select {
		case <-ctx.Done():
			return j, nil
		case <-n.jobs.changed(j.ID):
		case <-time.After(5 * time.Second):
		}
	}
}

// CancelJob cancels a queued or running job.
func (n *Node) CancelJob(ctx context.Context, actor, id string) (*store.Job, error) {
	const op = "node.CancelJob"
	j, err := n.Job(ctx, id)
	if err != nil {
		return nil, err
	}
	if name, _, _ := strings.Cut(j.Subject, "@"); require(ctx, op, ScopeTest, name) != nil {
		return nil, require(ctx, op, ScopeTest, name)
	}
	if !j.State.Active() {
		return nil, registry.Errorf(op, registry.ECONFLICT, "job %d has already ended (%s)", j.ID, j.State)
	}
	n.jobs.mu.Lock()
	cancel := n.jobs.running[j.ID]
	n.jobs.mu.Unlock()
	j, err = n.jobs.update(j.ID, func(sj *store.Job) error {
		switch sj.State {
		case store.JobQueued:
			sj.State, sj.Finished, sj.Error = store.JobCanceled, n.cfg.Now().UTC(), "canceled before it ran"
		case store.JobRunning:
			sj.Cancel = true
		default:
			return registry.Errorf(op, registry.ECONFLICT, "job %d has already ended (%s)", sj.ID, sj.State)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if cancel != nil {
		cancel()
	}
	n.audit(store.AuditEntry{Action: "cancel", Actor: actor, Subject: j.Subject, Detail: fmt.Sprintf("job %d", j.ID)})
	return j, nil
}

// Tests returns the reports about a release from every author, newest
// first, with whether this node trusts each, and the node's jobs for it.
type Tests struct {
	Release *Release           `json:"release"`
	Reports []ReportWithDetail `json:"reports"`
	Jobs    []*store.Job       `json:"jobs"`
}

// ReportWithDetail is a report record with its full body.
type ReportWithDetail struct {
	ReportSummary
	Body *registry.ReportBody `json:"report"`
}

// TestsFor returns every live report about a release and this node's jobs.
func (n *Node) TestsFor(ctx context.Context, id string) (*Tests, error) {
	v, err := n.ResolveView(ctx, id)
	if err != nil {
		return nil, err
	}
	rel := releaseFromView(v, n.Trust(), n.Settings().Gates)
	out := &Tests{Release: rel, Reports: []ReportWithDetail{}}
	for _, s := range rel.Reports {
		r, err := n.db.GetRecord(s.ID)
		if err != nil {
			return nil, err
		}
		b, err := r.DecodeBody()
		if err != nil {
			return nil, err
		}
		out.Reports = append(out.Reports, ReportWithDetail{ReportSummary: s, Body: b.(*registry.ReportBody)})
	}
	subject := v.Subject()
	out.Jobs, err = n.db.ListJobs(20, func(j *store.Job) bool { return j.Subject == subject })
	if err != nil {
		return nil, err
	}
	if out.Jobs == nil {
		out.Jobs = []*store.Job{}
	}
	return out, nil
}

// AutoTests reports whether this node runs the testing pipeline and queues
// it for every release it accepts.
func (n *Node) AutoTests() bool {
	return n.tester != nil && n.Settings().AutoTest
}
