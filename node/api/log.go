package api

import (
	"net/http"
	"strconv"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/store"
)

// The transparency log endpoints (read-only; docs/API.md "Log").

// Limits of GET /log/entries.
const (
	defaultLogEntries = 100
	maxLogEntries     = 1000
)

func (s *Server) logRoutes() {
	s.route("/log/checkpoint", methods{"GET": s.logCheckpoint})
	s.route("/log/entries", methods{"GET": s.logEntries})
	s.route("/log/proof/inclusion", methods{"GET": s.logInclusion})
	s.route("/log/proof/consistency", methods{"GET": s.logConsistency})
	s.route("/log/evidence", methods{"GET": s.logEvidence})
	s.route("/log/witness", methods{"GET": s.logWitness})
}

// CheckpointJSON is a signed checkpoint. Record is the canonical record
// (base64 in JSON), so a client can verify the signature itself.
type CheckpointJSON struct {
	ID     registry.ID   `json:"id"`
	Author string        `json:"author"`
	Time   int64         `json:"time"` // Unix ms
	Size   uint64        `json:"size"`
	Prev   uint64        `json:"prev"`
	Root   registry.Hash `json:"root"`
	Note   string        `json:"note,omitempty"`
	Record []byte        `json:"record"`
}

// LogCheckpointResult is the answer to GET /log/checkpoint: the latest
// checkpoint and the log's current head (which may be ahead of it).
type LogCheckpointResult struct {
	Checkpoint CheckpointJSON `json:"checkpoint"`
	LogSize    uint64         `json:"log_size"`
	LogRoot    registry.Hash  `json:"log_root"`
}

func checkpointJSON(c *registry.Checkpoint) CheckpointJSON {
	note := ""
	if v, err := c.Record.DecodeBody(); err == nil {
		note = v.(*registry.CheckpointBody).Note
	}
	return CheckpointJSON{ID: c.ID(), Author: c.Author().PeerID(), Time: c.Time(), Size: c.Size, Prev: c.Prev, Root: c.Root, Note: note, Record: c.Record.Bytes()}
}

// logCheckpoint serves the latest checkpoint of this node, or with
// ?author=<peer ID> the head of another author's chain as this node holds it.
func (s *Server) logCheckpoint(w http.ResponseWriter, r *http.Request) (int, any, error) {
	var c *registry.Checkpoint
	var err error
	if a := r.URL.Query().Get("author"); a != "" {
		k, perr := registry.ParsePeerID(a)
		if perr != nil {
			return 0, nil, perr
		}
		c, err = s.n.CheckpointOf(k)
	} else {
		c, err = s.n.LogCheckpoint()
	}
	if err != nil {
		return 0, nil, err
	}
	size, root := s.n.LogHead()
	return 200, LogCheckpointResult{Checkpoint: checkpointJSON(c), LogSize: size, LogRoot: root}, nil
}

// queryUint parses an optional unsigned query parameter.
func queryUint(r *http.Request, name string, def uint64) (uint64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, registry.Errorf("api.log", registry.EINVALID, "%s must be a non-negative integer, not %.40q", name, v)
	}
	return n, nil
}

// LogEntriesResult is the answer to GET /log/entries.
type LogEntriesResult struct {
	Start   uint64           `json:"start"`
	LogSize uint64           `json:"log_size"`
	Entries []store.LogEntry `json:"entries"`
}

func (s *Server) logEntries(w http.ResponseWriter, r *http.Request) (int, any, error) {
	start, err := queryUint(r, "start", 0)
	if err != nil {
		return 0, nil, err
	}
	limit, err := queryUint(r, "limit", defaultLogEntries)
	if err != nil {
		return 0, nil, err
	}
	if limit == 0 || limit > maxLogEntries {
		return 0, nil, registry.Errorf("api.log", registry.EINVALID, "limit must be 1 to %d", maxLogEntries)
	}
	size, _ := s.n.LogHead()
	ents, err := s.n.LogEntries(start, int(limit))
	if err != nil {
		return 0, nil, err
	}
	return 200, LogEntriesResult{Start: start, LogSize: size, Entries: ents}, nil
}

// InclusionResult is the answer to GET /log/proof/inclusion: ID is entry
// Index of the tree of Size whose root is Root (RFC 9162 §2.1.3).
type InclusionResult struct {
	ID    registry.ID     `json:"id"`
	Index uint64          `json:"index"`
	Size  uint64          `json:"size"`
	Root  registry.Hash   `json:"root"`
	Proof []registry.Hash `json:"proof"`
}

func (s *Server) logInclusion(w http.ResponseWriter, r *http.Request) (int, any, error) {
	raw := r.URL.Query().Get("id")
	if raw == "" {
		return 0, nil, registry.Errorf("api.log", registry.EINVALID, "give the record with ?id=<record ID>")
	}
	id, err := registry.ParseID(raw)
	if err != nil {
		return 0, nil, err
	}
	size, err := queryUint(r, "size", 0)
	if err != nil {
		return 0, nil, err
	}
	idx, size, p, root, err := s.n.InclusionProof(id, size)
	if err != nil {
		return 0, nil, err
	}
	if p == nil {
		p = []registry.Hash{}
	}
	return 200, InclusionResult{ID: id, Index: idx, Size: size, Root: root, Proof: p}, nil
}

// ConsistencyResult is the answer to GET /log/proof/consistency: the tree
// of size First is a prefix of the tree of size Second (RFC 9162 §2.1.4).
type ConsistencyResult struct {
	First      uint64          `json:"first"`
	Second     uint64          `json:"second"`
	FirstRoot  registry.Hash   `json:"first_root"`
	SecondRoot registry.Hash   `json:"second_root"`
	Proof      []registry.Hash `json:"proof"`
}

func (s *Server) logConsistency(w http.ResponseWriter, r *http.Request) (int, any, error) {
	if r.URL.Query().Get("first") == "" || r.URL.Query().Get("second") == "" {
		return 0, nil, registry.Errorf("api.log", registry.EINVALID, "give both tree sizes: ?first=A&second=B")
	}
	a, err := queryUint(r, "first", 0)
	if err != nil {
		return 0, nil, err
	}
	b, err := queryUint(r, "second", 0)
	if err != nil {
		return 0, nil, err
	}
	p, ra, rb, err := s.n.ConsistencyProof(a, b)
	if err != nil {
		return 0, nil, err
	}
	if p == nil {
		p = []registry.Hash{}
	}
	return 200, ConsistencyResult{First: a, Second: b, FirstRoot: ra, SecondRoot: rb, Proof: p}, nil
}

// EvidenceResult is the answer to GET /log/evidence.
type EvidenceResult struct {
	Evidence []registry.Evidence `json:"evidence"`
}

func (s *Server) logEvidence(w http.ResponseWriter, r *http.Request) (int, any, error) {
	ev, err := s.n.Evidence()
	if err != nil {
		return 0, nil, err
	}
	return 200, EvidenceResult{Evidence: ev}, nil
}

// WitnessResult is the answer to GET /log/witness?id=: the record's
// witnessed time under each checkpoint author that includes it.
type WitnessResult struct {
	ID        registry.ID         `json:"id"`
	Witnessed []store.WitnessTime `json:"witnessed"`
}

func (s *Server) logWitness(w http.ResponseWriter, r *http.Request) (int, any, error) {
	id, err := registry.ParseID(r.URL.Query().Get("id"))
	if err != nil {
		return 0, nil, err
	}
	wt, err := s.n.WitnessTimes(id)
	if err != nil {
		return 0, nil, err
	}
	return 200, WitnessResult{ID: id, Witnessed: wt}, nil
}
