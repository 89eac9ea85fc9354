package node

import (
	"github.com/wasmrust/wasm-crates-registry/rest"
	"github.com/wasmrust/wasm-crates-registry/store"
)

// RestJob is a job as the REST API shows it.
func RestJob(j *store.Job) *rest.Job {
	if j == nil {
		return nil
	}
	out := &rest.Job{ID: j.ID, Subject: j.Subject, Release: j.Release, State: string(j.State), Created: j.Created,
		Started: j.Started, Finished: j.Finished, Attempts: j.Attempts, Cancel: j.Cancel, Report: j.Report,
		Outcome: j.Outcome, Error: j.Error}
	for _, e := range j.Events {
		out.Events = append(out.Events, rest.JobEvent(e))
	}
	return out
}
