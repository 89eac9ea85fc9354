package store

import (
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/dgraph-io/badger/v4"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// JobState is where a pipeline job is in its life.
type JobState string

// Job states. A job moves queued → running → done | failed; a queued or
// running job may become canceled. A running job found at Open (cut off by a
// crash) goes back to queued.
const (
	JobQueued   JobState = "queued"
	JobRunning  JobState = "running"
	JobDone     JobState = "done"
	JobFailed   JobState = "failed"
	JobCanceled JobState = "canceled"
)

// Active reports whether the job has not finished.
func (s JobState) Active() bool { return s == JobQueued || s == JobRunning }

// MaxJobEvents bounds the progress events kept with a job.
const MaxJobEvents = 200

// JobEvent is one progress step of a job.
type JobEvent struct {
	Time    time.Time `json:"time"`
	Stage   string    `json:"stage"`
	Target  string    `json:"target,omitempty"`
	State   string    `json:"state"`
	Message string    `json:"message,omitempty"`
}

// Job is a queued pipeline run for one release.
type Job struct {
	ID       uint64      `json:"id"`
	Subject  string      `json:"subject"` // name@version
	Release  registry.ID `json:"release"`
	State    JobState    `json:"state"`
	Created  time.Time   `json:"created"`
	Started  time.Time   `json:"started,omitzero"`
	Finished time.Time   `json:"finished,omitzero"`
	Attempts int         `json:"attempts"`
	// Cancel is set when cancellation was asked for while running.
	Cancel  bool        `json:"cancel,omitempty"`
	Report  registry.ID `json:"report,omitzero"`
	Outcome string      `json:"outcome,omitempty"`
	Error   string      `json:"error,omitempty"`
	Events  []JobEvent  `json:"events,omitempty"`
}

// IDString is the job ID as users see it.
func (j *Job) IDString() string { return strconv.FormatUint(j.ID, 10) }

func getJob(txn *badger.Txn, id uint64) (*Job, error) {
	it, err := txn.Get(seqKey(pJob, id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, notFound("store.GetJob", "job "+strconv.FormatUint(id, 10))
	}
	if err != nil {
		return nil, internal("store.GetJob", err)
	}
	j := new(Job)
	if err := it.Value(func(b []byte) error { return json.Unmarshal(b, j) }); err != nil {
		return nil, registry.E("store.GetJob", registry.EINTERNAL, "stored job is corrupt", err)
	}
	return j, nil
}

func putJob(txn *badger.Txn, j *Job) error {
	b, err := json.Marshal(j)
	if err != nil {
		return err
	}
	return txn.Set(seqKey(pJob, j.ID), b)
}

// EnqueueJob queues a run for a release unless one is already queued or
// running for it, in which case that job is returned with created false.
func (db *DB) EnqueueJob(subject string, release registry.ID) (*Job, bool, error) {
	return db.EnqueueJobAudited(subject, release, nil)
}

// EnqueueJobAudited is EnqueueJob that, when it creates the job, writes
// the audit entry audit returns for it in the same transaction.
func (db *DB) EnqueueJobAudited(subject string, release registry.ID, audit func(*Job) AuditEntry) (*Job, bool, error) {
	const op = "store.EnqueueJob"
	db.jobMu.Lock()
	defer db.jobMu.Unlock()
	db.writeMu.Lock() // audit entries are appended under writeMu
	defer db.writeMu.Unlock()
	var job *Job
	created := false
	head := db.AuditHeadNow()
	txn := db.bdb.NewTransaction(true)
	defer txn.Discard()
	err := func(txn *badger.Txn) error {
		active, err := scanJobs(txn, 0, func(j *Job) bool { return j.Release == release && j.State.Active() })
		if err != nil {
			return err
		}
		if len(active) > 0 {
			job = active[0]
			return nil
		}
		seq, err := nextSeq(txn, "job")
		if err != nil {
			return err
		}
		job = &Job{ID: seq, Subject: subject, Release: release, State: JobQueued, Created: db.opts.Now().UTC()}
		created = true
		if err := putJob(txn, job); err != nil {
			return err
		}
		if audit != nil {
			if head, err = db.appendAudit(txn, []AuditEntry{audit(job)}); err != nil {
				return err
			}
		}
		return nil
	}(txn)
	if err == nil {
		err = txn.Commit()
	}
	if err == nil {
		db.setAuditHead(head)
	}
	if err != nil {
		return nil, false, registry.E(op, registry.KindOf(err), "queueing a test run", err)
	}
	return job, created, nil
}

// ClaimJob marks the oldest queued job running and returns it, or returns
// nil when none is queued.
func (db *DB) ClaimJob() (*Job, error) {
	db.jobMu.Lock()
	defer db.jobMu.Unlock()
	var job *Job
	err := db.bdb.Update(func(txn *badger.Txn) error {
		q, err := scanJobs(txn, 1, func(j *Job) bool { return j.State == JobQueued })
		if err != nil || len(q) == 0 {
			return err
		}
		job = q[0]
		job.State = JobRunning
		job.Started = db.opts.Now().UTC()
		job.Attempts++
		return putJob(txn, job)
	})
	if err != nil {
		return nil, registry.E("store.ClaimJob", registry.KindOf(err), "claiming a job", err)
	}
	return job, nil
}

// UpdateJob applies fn to the stored job and stores the result durably.
func (db *DB) UpdateJob(id uint64, fn func(*Job) error) (*Job, error) {
	db.jobMu.Lock()
	defer db.jobMu.Unlock()
	var job *Job
	err := db.bdb.Update(func(txn *badger.Txn) error {
		j, err := getJob(txn, id)
		if err != nil {
			return err
		}
		if err := fn(j); err != nil {
			return err
		}
		if len(j.Events) > MaxJobEvents {
			j.Events = j.Events[len(j.Events)-MaxJobEvents:]
		}
		job = j
		return putJob(txn, j)
	})
	return job, err
}

// GetJob returns a job; ENOTFOUND when there is none with that ID.
func (db *DB) GetJob(id uint64) (*Job, error) {
	var job *Job
	err := db.bdb.View(func(txn *badger.Txn) error {
		var err error
		job, err = getJob(txn, id)
		return err
	})
	return job, err
}

// ListJobs returns up to limit jobs (0 = all) matching keep (nil = all),
// newest first.
func (db *DB) ListJobs(limit int, keep func(*Job) bool) ([]*Job, error) {
	var out []*Job
	err := db.bdb.View(func(txn *badger.Txn) error {
		o := badger.DefaultIteratorOptions
		o.Reverse = true
		o.Prefix = []byte{pJob}
		it := txn.NewIterator(o)
		defer it.Close()
		for it.Seek(seqKey(pJob, ^uint64(0))); it.Valid() && (limit <= 0 || len(out) < limit); it.Next() {
			j := new(Job)
			if err := it.Item().Value(func(b []byte) error { return json.Unmarshal(b, j) }); err != nil {
				return err
			}
			if keep == nil || keep(j) {
				out = append(out, j)
			}
		}
		return nil
	})
	if err != nil {
		return nil, internal("store.ListJobs", err)
	}
	return out, nil
}

// RequeueInterrupted puts jobs left running by a previous process back in
// the queue and returns how many there were. Call it once, at start-up,
// before any worker runs.
func (db *DB) RequeueInterrupted() (int, error) {
	db.jobMu.Lock()
	defer db.jobMu.Unlock()
	n := 0
	err := db.bdb.Update(func(txn *badger.Txn) error {
		running, err := scanJobs(txn, 0, func(j *Job) bool { return j.State == JobRunning })
		if err != nil {
			return err
		}
		for _, j := range running {
			j.State = JobQueued
			j.Events = append(j.Events, JobEvent{Time: db.opts.Now().UTC(), Stage: "queue", State: "requeued", Message: "the node stopped while this job ran; it runs again"})
			if err := putJob(txn, j); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, internal("store.RequeueInterrupted", err)
	}
	return n, nil
}

// scanJobs returns up to limit (0 = all) jobs matching keep, oldest first.
func scanJobs(txn *badger.Txn, limit int, keep func(*Job) bool) ([]*Job, error) {
	o := badger.DefaultIteratorOptions
	o.Prefix = []byte{pJob}
	it := txn.NewIterator(o)
	defer it.Close()
	var out []*Job
	for it.Rewind(); it.Valid(); it.Next() {
		if len(it.Item().Key()) != 9 {
			continue
		}
		j := new(Job)
		if err := it.Item().Value(func(b []byte) error { return json.Unmarshal(b, j) }); err != nil {
			return nil, err
		}
		if keep(j) {
			out = append(out, j)
			if limit > 0 && len(out) == limit {
				break
			}
		}
	}
	return out, nil
}
