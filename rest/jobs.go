package rest

import (
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// Job is a pipeline run for one release (GET /jobs/{id}, POST /tests/{id}).
type Job struct {
	ID       uint64      `json:"id"`
	Subject  string      `json:"subject"` // name@version
	Release  registry.ID `json:"release"`
	State    string      `json:"state"` // queued, running, done, failed, canceled
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

// JobEvent is one step of a job's progress.
type JobEvent struct {
	Time    time.Time `json:"time"`
	Stage   string    `json:"stage"`
	Target  string    `json:"target,omitempty"`
	State   string    `json:"state"`
	Message string    `json:"message,omitempty"`
}
