package api

import (
	"context"
	"net/http"
	"time"
)

// verifyTimeout bounds a verification run by POST /verify.
const verifyTimeout = 30 * time.Minute

// getVerify serves GET /verify: the report of the last verification (the
// periodic scrub, --reindex or POST /verify).
func (s *Server) getVerify(w http.ResponseWriter, r *http.Request) (int, any, error) {
	rep, err := s.n.LastVerify()
	return 200, rep, err
}

// postVerify serves POST /verify: re-verify every stored record and blob
// now, quarantine what is damaged, and answer the report.
func (s *Server) postVerify(w http.ResponseWriter, r *http.Request) (int, any, error) {
	if err := readJSON(w, r, &struct{}{}, true); err != nil {
		return 0, nil, err
	}
	ctx, cancel := context.WithTimeout(r.Context(), verifyTimeout)
	defer cancel()
	rep, err := s.n.Verify(ctx, actor(r))
	return 200, rep, err
}
