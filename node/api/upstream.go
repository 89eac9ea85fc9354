package api

import (
	"net/http"
)

// upstreamRoutes serves the pull-through mirror (docs/MIRROR.md): its
// upstreams and the evidence of changed upstream versions, and what the
// node serves for one mirrored crate.
func (s *Server) upstreamRoutes() {
	s.route("/upstream", methods{"GET": s.getUpstream})
	s.route("/upstream/crates/{name}", methods{"GET": s.getMirrored})
}

func (s *Server) getUpstream(w http.ResponseWriter, r *http.Request) (int, any, error) {
	st, err := s.n.Upstream(r.Context())
	return http.StatusOK, st, err
}

func (s *Server) getMirrored(w http.ResponseWriter, r *http.Request) (int, any, error) {
	vs, err := s.n.Mirrored(r.Context(), r.PathValue("name"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, MirroredResult{Versions: vs}, nil
}
