package node

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/store"
)

// SharedTesting configures test work shared with the federation
// (docs/PIPELINE.md, "Shared test work"). A node with it on tests every
// authorized release it holds that the federation still needs a report
// on, and takes a lease (a claim record) before each run, so that the
// testers of a federation test each release once, or twice when it is to
// be confirmed. Every tester of a federation should run with it.
type SharedTesting struct {
	// Enabled turns shared testing on (needs the pipeline).
	Enabled bool
	// Lease is the length of the leases this node takes; it renews them
	// every Lease/3 while it runs (default registry.DefaultLease).
	Lease time.Duration
	// MaxLease caps the length of any lease this node honours, its own
	// included (default registry.DefaultMaxLease; raised to Lease if
	// smaller).
	MaxLease time.Duration
	// ConfirmPerMille is the share of releases, in thousandths, that a
	// second tester confirms (registry.InConfirmationShare); every node of
	// a federation should use the same. The zero value confirms only the
	// releases whose verdict would put them in the wasm-only index; the
	// daemon's default is registry.DefaultConfirmPerMille.
	ConfirmPerMille uint64
	// Scan is how often the node looks for releases that need a tester
	// (default 10 s).
	Scan time.Duration
	// Settle is how long a new claim waits for concurrent claims to
	// arrive before the run starts (default 2 s). It must be well below
	// Lease/3.
	Settle time.Duration
}

func (c *SharedTesting) fill() {
	if c.Lease <= 0 {
		c.Lease = registry.DefaultLease
	}
	if c.MaxLease <= 0 {
		c.MaxLease = registry.DefaultMaxLease
	}
	if c.MaxLease < c.Lease {
		c.MaxLease = c.Lease
	}
	if c.ConfirmPerMille > 1000 {
		c.ConfirmPerMille = 1000
	}
	if c.Scan <= 0 {
		c.Scan = 10 * time.Second
	}
	if c.Settle <= 0 {
		c.Settle = 2 * time.Second
	}
}

// sharedWork keeps the leases this node knows of and schedules the
// releases the federation still needs tested.
type sharedWork struct {
	n   *Node
	cfg SharedTesting

	mu sync.Mutex
	// seen holds the newest claim per (subject, author) with when it
	// arrived: one entry per live claim the store holds, so the store's
	// quotas bound it.
	seen map[claimKey]seenClaim

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type claimKey struct{ subject, author string }

type seenClaim struct {
	rec      *registry.Record
	received time.Time
}

func newSharedWork(n *Node, cfg SharedTesting) *sharedWork {
	cfg.fill()
	ctx, cancel := context.WithCancel(context.Background())
	return &sharedWork{n: n, cfg: cfg, seen: map[claimKey]seenClaim{}, ctx: ctx, cancel: cancel}
}

func (s *sharedWork) start() {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			if err := s.scan(); err != nil && s.ctx.Err() == nil {
				s.n.log.Warn("looking for releases to test", "err", err)
			}
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(s.cfg.Scan):
			}
		}
	}()
}

func (s *sharedWork) stop() {
	s.cancel()
	s.wg.Wait()
}

// observe notes the arrival of records, by this node's clock: a claim's
// lease runs from when this node first held it.
func (s *sharedWork) observe(recs []*registry.Record) {
	now := s.n.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range recs {
		if r.Kind == registry.KindClaim {
			s.noteLocked(r, now)
		}
	}
}

// noteLocked records r's arrival at now unless a newer claim of its author
// on its subject is known, and returns when r arrived.
func (s *sharedWork) noteLocked(r *registry.Record, now time.Time) time.Time {
	k := claimKey{r.Subject, string(r.Author)}
	old, ok := s.seen[k]
	switch {
	case ok && old.rec.ID() == r.ID():
		return old.received
	case ok && registry.CompareNewest(r, old.rec) < 0:
		return now // superseded: its lease never counts
	}
	s.seen[k] = seenClaim{rec: r, received: now}
	return now
}

// claims returns the claims on subject with when this node received them.
// A claim it did not see arrive (it came while the node was down) counts
// as received now.
func (s *sharedWork) claims(subject string) ([]registry.SeenClaim, error) {
	recs, err := s.n.db.RecordsBySubject(subject)
	if err != nil {
		return nil, err
	}
	now := s.n.cfg.Now()
	var out []registry.SeenClaim
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range recs {
		if r.Kind != registry.KindClaim || !registry.Applicable(r, now, s.n.cfg.MaxSkew) {
			continue
		}
		b, err := r.DecodeBody()
		if err != nil {
			continue
		}
		out = append(out, registry.SeenClaim{Record: r, Body: b.(*registry.ClaimBody), Received: s.noteLocked(r, now)})
	}
	return out, nil
}

// WorkState is what the federation has done and is doing about testing
// one release, as this node judges it.
type WorkState struct {
	// Need is how many independent testers should report: 1, or 2 when
	// the release is in the confirmation share or a trusted report's
	// verdict would put it in the wasm-only index.
	Need int `json:"need"`
	// Reporters are the authorized testers with a live report on the
	// release.
	Reporters []registry.PublicKey `json:"reporters"`
	// Leases are the active leases of authorized testers that have not
	// reported yet, first come first.
	Leases []LeaseInfo `json:"leases"`
	// Mine: this node has reported.
	Mine bool `json:"reported_here"`
}

// LeaseInfo is one active lease.
type LeaseInfo struct {
	Tester   registry.PublicKey `json:"tester"`
	Claim    registry.ID        `json:"claim"`
	Received time.Time          `json:"received"`
	Ends     time.Time          `json:"ends"`
}

// wasmIndexable reports whether a report's verdict can put a release in
// the wasm-only index under any policy the index offers: a wasm verdict of
// compatible, builds or partial with a gate that is not rejected.
func wasmIndexable(r *store.ReportRef) bool {
	switch r.Wasm {
	case registry.WasmCompatible, registry.WasmBuilds, registry.WasmPartial:
		return r.Gate != registry.GateRejected
	}
	return false
}

// workState judges v's testing under trust at now. With lazy, the
// claims are not read when the reports alone settle that this node has
// nothing to do (Leases is then empty).
func (s *sharedWork) workState(v *store.ReleaseView, trust *TrustSet, lazy bool) (*WorkState, error) {
	may := trust.Tests(v.Name)
	st := &WorkState{Need: 1, Reporters: []registry.PublicKey{}, Leases: []LeaseInfo{}}
	if registry.InConfirmationShare(v.Release, s.cfg.ConfirmPerMille) {
		st.Need = 2
	}
	reported := map[string]bool{}
	for i := range v.Reports {
		r := &v.Reports[i]
		if r.Release != v.Release || !may(r.Author) || reported[string(r.Author)] {
			continue
		}
		reported[string(r.Author)] = true
		st.Reporters = append(st.Reporters, r.Author)
		if r.Author.Equal(s.n.PublicKey()) {
			st.Mine = true
		}
		if wasmIndexable(r) {
			st.Need = 2
		}
	}
	if lazy && (st.Mine || st.free() == 0) {
		return st, nil // enough reports: the claims do not matter
	}
	claims, err := s.claims(v.Subject())
	if err != nil {
		return nil, err
	}
	for _, c := range registry.ActiveLeases(claims, v.Release, s.n.cfg.Now(), s.cfg.MaxLease, may,
		func(k registry.PublicKey) bool { return reported[string(k)] }) {
		st.Leases = append(st.Leases, LeaseInfo{Tester: c.Record.Author, Claim: c.Record.ID(), Received: c.Received.UTC(), Ends: registry.LeaseEnd(c, s.cfg.MaxLease).UTC()})
	}
	return st, nil
}

// free is how many more testers the release needs.
func (st *WorkState) free() int {
	if f := st.Need - len(st.Reporters); f > 0 {
		return f
	}
	return 0
}

// others returns the leases not held by self.
func (st *WorkState) others(self registry.PublicKey) []LeaseInfo {
	var out []LeaseInfo
	for _, l := range st.Leases {
		if !l.Tester.Equal(self) {
			out = append(out, l)
		}
	}
	return out
}

// wanted reports whether this node should test the release now.
func (st *WorkState) wanted(self registry.PublicKey) bool {
	return !st.Mine && len(st.others(self)) < st.free()
}

// scan queues a job for every release this node should test now and has
// neither queued nor failed on.
func (s *sharedWork) scan() error {
	n := s.n
	trust := n.Trust()
	views, _, err := n.db.ListViews(store.ListQuery{Match: func(v *store.ReleaseView) bool {
		return !v.Unauthorized && !v.Yanked && trust.May(v.Author, registry.RolePublisher, v.Name)
	}})
	if err != nil {
		return err
	}
	jobs, err := n.db.ListJobs(0, nil)
	if err != nil {
		return err
	}
	skip := map[registry.ID]bool{}
	for _, j := range jobs {
		// A run that failed on this node is not retried on its own: its
		// lease was given up, so another tester takes the release. Nor is
		// one an admin canceled. A job left to other testers is.
		switch {
		case j.State.Active(), j.State == store.JobFailed, j.State == store.JobDone,
			j.State == store.JobCanceled && !strings.HasPrefix(j.Error, NotTestedHere):
			skip[j.Release] = true
		}
	}
	queued := 0
	for _, v := range views {
		if s.ctx.Err() != nil {
			return nil
		}
		if skip[v.Release] {
			continue
		}
		st, err := s.workState(v, trust, true)
		if err != nil {
			return err
		}
		if !st.wanted(n.PublicKey()) {
			continue
		}
		subject := v.Subject()
		_, created, err := n.db.EnqueueJobAudited(subject, v.Release, func(j *store.Job) store.AuditEntry {
			return store.AuditEntry{Action: "test", Actor: n.PeerID(), Subject: subject, Detail: "job " + j.IDString() + " (shared testing)"}
		})
		if err != nil {
			return err
		}
		if created {
			queued++
		}
	}
	if queued > 0 {
		n.log.Info("queued releases the federation needs tested", "jobs", queued)
		n.jobs.poke()
	}
	return nil
}

// signClaim signs and publishes this node's claim on subject for release
// lasting d from now (d ≤ 0 gives the lease up). Its time is after every
// earlier claim of this node on subject, so the newest claim wins, even
// across restarts; other testers' claims do not move it.
func (s *sharedWork) signClaim(ctx context.Context, subject string, release registry.ID, d time.Duration) (*registry.Record, error) {
	n := s.n
	now := n.cfg.Now()
	recs, err := n.db.RecordsBySubject(subject)
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		if r.Kind == registry.KindClaim && r.Author.Equal(n.PublicKey()) && r.Time >= now.UnixMilli() {
			now = time.UnixMilli(r.Time + 1)
		}
	}
	until := now.UnixMilli()
	if d > 0 {
		until = now.Add(d).UnixMilli()
	}
	rec, err := registry.Sign(n.key, registry.KindClaim, subject, &registry.ClaimBody{Release: release.Bytes(), Until: until}, now)
	if err != nil {
		return nil, err
	}
	if err := n.storeAndPublishUnaudited(ctx, rec); err != nil {
		return nil, err
	}
	return rec, nil
}

// heldLease is a lease this node holds while it tests a release.
type heldLease struct {
	s       *sharedWork
	subject string
	release registry.ID
	stopped chan struct{}
	done    chan struct{}
}

// acquire takes the lease on job's release, or returns nil and why this
// node does not test it now. It waits cfg.Settle after claiming so that
// claims made at the same time by other testers arrive; of those, the
// first come keep the lease, the others give it up.
func (s *sharedWork) acquire(ctx context.Context, job *store.Job) (*heldLease, string, error) {
	n := s.n
	name, version, err := registry.ParseReleaseSubject(job.Subject)
	if err != nil {
		return nil, "", err
	}
	v, err := n.db.GetView(name, version)
	if err != nil {
		return nil, "", err
	}
	if v.Release != job.Release {
		return nil, "the release record tested is no longer the one that wins " + job.Subject, nil
	}
	self := n.PublicKey()
	st, err := s.workState(v, n.Trust(), false)
	if err != nil {
		return nil, "", err
	}
	if why := st.notWanted(self); why != "" {
		return nil, why, nil
	}
	if _, err := s.signClaim(ctx, job.Subject, job.Release, s.cfg.Lease); err != nil {
		return nil, "", err
	}
	select {
	case <-ctx.Done():
		return nil, "", ctx.Err()
	case <-time.After(s.cfg.Settle):
	}
	if v, err = n.db.GetView(name, version); err != nil {
		return nil, "", err
	}
	if st, err = s.workState(v, n.Trust(), false); err != nil {
		return nil, "", err
	}
	pos := -1
	for i, l := range st.Leases {
		if l.Tester.Equal(self) {
			pos = i
		}
	}
	if st.Mine || pos < 0 || pos >= st.free() {
		if _, err := s.signClaim(context.WithoutCancel(ctx), job.Subject, job.Release, 0); err != nil {
			n.log.Warn("giving up a lease", "release", job.Subject, "err", err)
		}
		why := st.notWanted(self)
		if why == "" {
			why = "another tester claimed it first"
		}
		return nil, why, nil
	}
	h := &heldLease{s: s, subject: job.Subject, release: job.Release, stopped: make(chan struct{}), done: make(chan struct{})}
	go h.renew(ctx)
	return h, "", nil
}

// notWanted says why this node should not test the release, or "".
func (st *WorkState) notWanted(self registry.PublicKey) string {
	if st.Mine {
		return "this node has reported on it already"
	}
	if st.free() == 0 {
		return fmt.Sprintf("tested by %d testers already", len(st.Reporters))
	}
	if others := st.others(self); len(others) >= st.free() {
		return fmt.Sprintf("leased by %s until %s", others[0].Tester.PeerID(), others[0].Ends.Format(time.RFC3339))
	}
	return ""
}

func (h *heldLease) renew(ctx context.Context) {
	defer close(h.done)
	every := h.s.cfg.Lease / 3
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.stopped:
			return
		case <-time.After(every):
		}
		if _, err := h.s.signClaim(ctx, h.subject, h.release, h.s.cfg.Lease); err != nil && ctx.Err() == nil {
			h.s.n.log.Warn("renewing a lease", "release", h.subject, "err", err)
		}
	}
}

// end stops renewing the lease; unless reported (the report supersedes
// the lease) it gives the lease up, so that another tester takes the
// release at once.
func (h *heldLease) end(reported bool) {
	close(h.stopped)
	<-h.done
	if reported {
		return
	}
	if _, err := h.s.signClaim(context.Background(), h.subject, h.release, 0); err != nil {
		h.s.n.log.Warn("giving up a lease", "release", h.subject, "err", err)
	}
}

// Work returns how the federation's testing of a release stands, as this
// node judges it; EUNAVAILABLE when shared testing is off.
func (n *Node) Work(ctx context.Context, id string) (*WorkState, error) {
	if n.shared == nil {
		return nil, registry.Errorf("node.Work", registry.EUNAVAILABLE, "shared testing is not enabled on this node (start it with --shared-testing)")
	}
	v, err := n.ResolveView(ctx, id)
	if err != nil {
		return nil, err
	}
	return n.shared.workState(v, n.Trust(), false)
}
