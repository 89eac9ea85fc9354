package api

import (
	"net/http"

	"github.com/wasmrust/wasm-crates-registry/node"
)

// The shared-testing and corpus endpoints (read-only; docs/API.md
// "Corpus runs and confirmations").

func (s *Server) corpusRoutes() {
	s.route("/corpus/runs", methods{"GET": s.corpusRuns})
	s.route("/corpus/report", methods{"GET": s.corpusReport})
	s.route("/corpus/regressions", methods{"GET": s.corpusRegressions})
	s.route("/corpus/confirmations", methods{"GET": s.corpusConfirmations})
	s.route("/tests/{id}/confirmation", methods{"GET": s.testConfirmation})
	s.route("/tests/{id}/work", methods{"GET": s.testWork})
}

// CorpusRunsResult is the answer to GET /corpus/runs.
type CorpusRunsResult struct {
	Runs []node.RunInfo `json:"runs"`
}

func (s *Server) corpusRuns(w http.ResponseWriter, r *http.Request) (int, any, error) {
	runs, err := s.n.CorpusRuns(r.Context())
	return 200, CorpusRunsResult{Runs: runs}, err
}

func (s *Server) corpusReport(w http.ResponseWriter, r *http.Request) (int, any, error) {
	rep, err := s.n.CorpusReport(r.Context(), r.URL.Query().Get("run"))
	return 200, rep, err
}

func (s *Server) corpusRegressions(w http.ResponseWriter, r *http.Request) (int, any, error) {
	q := r.URL.Query()
	reg, err := s.n.CorpusRegressions(r.Context(), q.Get("from"), q.Get("to"))
	return 200, reg, err
}

func (s *Server) corpusConfirmations(w http.ResponseWriter, r *http.Request) (int, any, error) {
	c, err := s.n.AllConfirmations(r.Context())
	return 200, c, err
}

func (s *Server) testConfirmation(w http.ResponseWriter, r *http.Request) (int, any, error) {
	c, err := s.n.Confirmation(r.Context(), r.PathValue("id"))
	return 200, c, err
}

func (s *Server) testWork(w http.ResponseWriter, r *http.Request) (int, any, error) {
	st, err := s.n.Work(r.Context(), r.PathValue("id"))
	return 200, st, err
}
