// Package api serves a node's REST API: JSON throughout, errors as
// {"error":{"code","message"}} with the status mapped from the error kind
// in one place (StatusOf). Reads are open unless the node is private
// (Options.AuthRequired); writes need a token. Every request, including
// those of mounted handlers (the Cargo protocol, the dashboard), passes the
// Server's gate first: rate limits, the private node's token check and
// deadlines on reading the body and writing the answer (limits.go).
package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/node"
	"github.com/wasmrust/wasm-crates-registry/store"
)

// Server is the REST API of one node.
type Server struct {
	n   *node.Node
	log *slog.Logger
	mux *http.ServeMux
	opt Options

	byAddr, byToken *limiter
	patterns        []string // the API's own routes, for the OpenAPI check
}

// New builds the API for a node with the zero Options: open reads, no
// rate limits, default body timeouts. Extra mounts (the Cargo protocol, the
// dashboard) are added with Mount.
func New(n *node.Node, log *slog.Logger) *Server {
	return NewWith(n, log, Options{})
}

// NewWith builds the API for a node with its access rules and protections.
func NewWith(n *node.Node, log *slog.Logger, opt Options) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opt.Body.defaults()
	s := &Server{n: n, log: log, mux: http.NewServeMux(), opt: opt,
		byAddr:  newLimiter(opt.Rate.PerAddr, opt.Rate.AddrBurst, opt.Rate.MaxEntries),
		byToken: newLimiter(opt.Rate.PerToken, opt.Rate.TokenBurst, opt.Rate.MaxEntries)}
	s.routes()
	return s
}

// Challenger is a mounted handler that answers requests the Server's gate
// refuses (401 on a private node, 429) in its own protocol's format.
type Challenger interface {
	Challenge(w http.ResponseWriter, r *http.Request, err error)
}

// Routes lists the "METHOD path" pairs the API itself serves (not the
// mounts).
func (s *Server) Routes() []string { return slices.Clone(s.patterns) }

// Mount serves h under pattern (a net/http ServeMux pattern).
func (s *Server) Mount(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// ServeHTTP implements http.Handler: the gate (rate limits, then a private
// node's token check; GET /health is always open so that monitors need no
// token), body and response deadlines, panic recovery and access logs.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rc := http.NewResponseController(w)
	// A deadline left by the previous request on this connection must not
	// cut this one.
	_ = rc.SetWriteDeadline(time.Time{})
	sw := &statusWriter{ResponseWriter: w, status: 200}
	dw := &deadlineWriter{statusWriter: sw, rc: rc, t: s.opt.Body}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = newDeadlineBody(rc, r, s.opt.Body)
	}
	defer func() {
		// Time for the last buffered bytes to leave.
		dw.arm(4 << 10)
	}()
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("panic serving request", "method", r.Method, "path", r.URL.Path, "panic", p, "stack", string(debug.Stack()))
			if !sw.wrote {
				writeError(sw, r, registry.Errorf("api", registry.EINTERNAL, "panic"))
			}
		}
		d := time.Since(start)
		if m := s.n.Metrics(); m != nil {
			m.Request(s.routeOf(r), r.Method, sw.status, d)
		}
		if s.log.Enabled(r.Context(), slog.LevelDebug) {
			s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", sw.status, "dur", d)
		}
	}()
	if r, err := s.gate(dw, r); err != nil {
		s.refuse(dw, r, err)
	} else {
		s.mux.ServeHTTP(dw, r)
	}
}

// routeOf is the pattern that serves r, the label of its metrics: never
// the path, which names crates.
func (s *Server) routeOf(r *http.Request) string {
	if _, p := s.mux.Handler(r); p != "" {
		return p
	}
	return "/"
}

// gate applies the rate limits and, on a private node, the token check. On
// success it returns the request with the authenticated actor in its
// context.
func (s *Server) gate(w http.ResponseWriter, r *http.Request) (*http.Request, error) {
	if err := s.rateLimit(w, r); err != nil {
		return r, err
	}
	if !s.opt.AuthRequired || (r.URL.Path == "/health" && (r.Method == http.MethodGet || r.Method == http.MethodHead)) {
		return r, nil
	}
	id, err := s.n.AuthenticateIdentity(r.Header.Get("Authorization"))
	if err != nil {
		if registry.KindOf(err) == registry.EUNAUTHORIZED {
			err = registry.E("api.gate", registry.EUNAUTHORIZED, "this registry node is private: every request needs a token", err)
		}
		return r, err
	}
	return r.WithContext(node.WithIdentity(context.WithValue(r.Context(), actorKey{}, id.String()), id)), nil
}

// refuse answers a request the gate stopped, in the format of the handler
// that would have served it.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, err error) {
	if kind, _ := Classify(err); kind == registry.EINTERNAL {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if h, _ := s.mux.Handler(r); h != nil {
		if c, ok := h.(Challenger); ok {
			c.Challenge(w, r, err)
			return
		}
	}
	writeError(w, r, err)
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// handler is an API endpoint: it returns a status and a value to encode, or
// an error.
type handler func(w http.ResponseWriter, r *http.Request) (int, any, error)

type methods map[string]handler

// route registers path for the given methods; other methods get a JSON 405.
func (s *Server) route(path string, ms methods) {
	for m := range ms {
		s.patterns = append(s.patterns, m+" "+path)
	}
	m := ms
	s.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		h, ok := m[r.Method]
		if !ok && r.Method == http.MethodHead {
			h, ok = m[http.MethodGet]
		}
		if !ok {
			allow := make([]string, 0, len(m))
			for k := range m {
				allow = append(allow, k)
			}
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeJSON(w, http.StatusMethodNotAllowed, ErrorBody{Error: ErrorDetail{
				Code: "method_not_allowed", Message: fmt.Sprintf("%s is not allowed on %s; use %s", r.Method, r.URL.Path, strings.Join(allow, " or "))}})
			return
		}
		status, v, err := h(w, r)
		if err != nil {
			if kind, _ := Classify(err); kind == registry.EINTERNAL {
				s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			}
			writeError(w, r, err)
			return
		}
		if v != nil {
			writeJSON(w, status, v)
		}
	})
}

func (s *Server) routes() {
	s.route("/health", methods{"GET": s.health})
	s.route("/crates", methods{"GET": s.listCrates, "POST": s.auth(s.submit)})
	s.route("/crates/{id}", methods{"GET": s.getCrate, "PUT": s.auth(s.putCrate), "DELETE": s.auth(s.deleteCrate)})
	s.route("/crates/{id}/download", methods{"GET": s.download})
	s.route("/crates/{id}/versions", methods{"GET": s.versions})
	s.route("/crates/{id}/owners", methods{"GET": s.getOwners, "PUT": s.auth(s.putOwners)})
	s.route("/records", methods{"POST": s.auth(s.postRecord)})
	s.route("/records/{id}", methods{"GET": s.getRecord})
	s.route("/registry", methods{"GET": s.getRegistry, "PUT": s.auth(s.putRegistry)})
	s.route("/registry/state", methods{"GET": s.state})
	s.route("/registry/sync", methods{"POST": s.auth(s.sync)})
	s.route("/peers", methods{"GET": s.peers, "POST": s.auth(s.addPeer)})
	s.route("/peers/{id}", methods{"DELETE": s.auth(s.removePeer)})
	s.route("/tests/{id}", methods{"GET": s.getTests, "POST": s.auth(s.postTest)})
	s.route("/jobs/{id}", methods{"GET": s.getJob, "DELETE": s.auth(s.cancelJob)})
	s.route("/audit", methods{"GET": s.auth(s.audit)})
	s.route("/audit/verify", methods{"GET": s.auth(s.auditVerify)})
	s.route("/me", methods{"GET": s.auth(s.me)})
	s.route("/tokens", methods{"GET": s.auth(s.listTokens), "POST": s.auth(s.createToken)})
	s.route("/tokens/{id}", methods{"DELETE": s.auth(s.revokeToken)})
	s.route("/keys", methods{"GET": s.auth(s.listKeys), "POST": s.auth(s.requestKey)})
	s.route("/keys/{key}", methods{"PUT": s.auth(s.approveKey), "DELETE": s.auth(s.revokeKey)})
	s.route("/records/signed", methods{"POST": s.auth(s.postSigned)})
	s.mux.HandleFunc("/badges/{file}", s.badges)
	s.mux.Handle("GET /metrics", s.n.Metrics().Handler())
	s.patterns = append(s.patterns, "GET /badges/{file}", "GET /metrics")
	s.route("/openapi.json", methods{"GET": s.openapi})
	s.webhookRoutes()
	s.logRoutes()
	s.upstreamRoutes()
	s.corpusRoutes()
	s.route("/verify", methods{"GET": s.getVerify, "POST": s.auth(s.postVerify)})
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, registry.Errorf("api", registry.ENOTFOUND, "no such endpoint: %s %s", r.Method, r.URL.Path))
	})
}

type actorKey struct{}

// auth wraps an endpoint that needs a valid token: the token's identity
// goes into the request's context, where the node checks its scopes (a
// private node's gate has put it there already).
func (s *Server) auth(h handler) handler {
	return func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		if node.IdentityFrom(r.Context()) != nil {
			return h(w, r)
		}
		id, err := s.n.AuthenticateIdentity(r.Header.Get("Authorization"))
		if err != nil {
			return 0, nil, err
		}
		ctx := node.WithIdentity(context.WithValue(r.Context(), actorKey{}, id.String()), id)
		return h(w, r.WithContext(ctx))
	}
}

func actor(r *http.Request) string {
	a, _ := r.Context().Value(actorKey{}).(string)
	return a
}

// maxJSONBody bounds JSON request bodies.
const maxJSONBody = 64 << 10

func readJSON(w http.ResponseWriter, r *http.Request, v any, allowEmpty bool) error {
	const op = "api.readJSON"
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxJSONBody))
	if err != nil {
		return err
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		if allowEmpty {
			return nil
		}
		return registry.Errorf(op, registry.EINVALID, "the request needs a JSON body")
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return registry.Errorf(op, registry.EINVALID, "the body is not the JSON this endpoint takes: %v", err)
	}
	if dec.More() {
		return registry.Errorf(op, registry.EINVALID, "trailing data after the JSON body")
	}
	return nil
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) (int, any, error) {
	return 200, s.n.Health(r.Context()), nil
}

func (s *Server) listCrates(w http.ResponseWriter, r *http.Request) (int, any, error) {
	p, err := node.ParseListParams(r.URL.Query().Get)
	if err != nil {
		return 0, nil, err
	}
	page, err := s.n.List(r.Context(), p)
	if err != nil {
		return 0, nil, err
	}
	return 200, page, nil
}

// SubmitResult is the answer to POST /crates.
type SubmitResult struct {
	Created bool          `json:"created"`
	Release *node.Release `json:"release"`
}

func (s *Server) submit(w http.ResponseWriter, r *http.Request) (int, any, error) {
	max := s.n.MaxCrateSize()
	if r.ContentLength > max {
		return 0, nil, registry.Errorf("api.submit", registry.ETOOLARGE, "the .crate archive is %d bytes; this registry accepts at most %d", r.ContentLength, max)
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		return 0, nil, err
	}
	if h := r.Header.Get(registry.SignedRecordHeader); h != "" {
		raw, err := base64.StdEncoding.DecodeString(h)
		if err != nil {
			return 0, nil, registry.Errorf("api.submit", registry.EINVALID, "the %s header is not standard base64", registry.SignedRecordHeader)
		}
		rec, err := s.n.PublishSigned(r.Context(), actor(r), raw, b)
		if err != nil {
			return 0, nil, err
		}
		rel, err := s.n.Release(r.Context(), rec.Subject)
		w.Header().Set("Location", "/crates/"+rec.Subject)
		return http.StatusCreated, SubmitResult{Created: true, Release: rel}, err
	}
	rel, created, err := s.n.Submit(r.Context(), actor(r), b)
	if err != nil {
		return 0, nil, err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		w.Header().Set("Location", "/crates/"+rel.Subject)
	}
	return status, SubmitResult{Created: created, Release: rel}, nil
}

func (s *Server) getCrate(w http.ResponseWriter, r *http.Request) (int, any, error) {
	rel, err := s.n.Release(r.Context(), r.PathValue("id"))
	return 200, rel, err
}

func (s *Server) versions(w http.ResponseWriter, r *http.Request) (int, any, error) {
	vs, err := s.n.Versions(r.Context(), r.PathValue("id"))
	return 200, VersionsResult{Versions: vs}, err
}

// CrateUpdate is the body of PUT /crates/{id}: what may change.
type CrateUpdate struct {
	Yanked *bool   `json:"yanked,omitempty"`
	Reason string  `json:"reason,omitempty"`
	Review *Review `json:"review,omitempty"`
}

// Review is a curation note.
type Review struct {
	Verdict string `json:"verdict"`
	Comment string `json:"comment,omitempty"`
}

func (s *Server) putCrate(w http.ResponseWriter, r *http.Request) (int, any, error) {
	var u CrateUpdate
	if err := readJSON(w, r, &u, false); err != nil {
		return 0, nil, err
	}
	if u.Yanked == nil && u.Review == nil {
		return 0, nil, registry.Errorf("api.putCrate", registry.EINVALID, `nothing to change: send {"yanked": true|false, "reason": "…"} and/or {"review": {"verdict": "approve|reject|flag", "comment": "…"}}`)
	}
	id := r.PathValue("id")
	var rel *node.Release
	var err error
	if u.Yanked != nil {
		if rel, err = s.n.SetYank(r.Context(), actor(r), id, *u.Yanked, u.Reason); err != nil {
			return 0, nil, err
		}
	}
	if u.Review != nil {
		if rel, err = s.n.Review(r.Context(), actor(r), id, u.Review.Verdict, u.Review.Comment); err != nil {
			return 0, nil, err
		}
	}
	return 200, rel, nil
}

func (s *Server) deleteCrate(w http.ResponseWriter, r *http.Request) (int, any, error) {
	reason := r.URL.Query().Get("reason")
	rel, err := s.n.SetYank(r.Context(), actor(r), r.PathValue("id"), true, reason)
	return 200, rel, err
}

func (s *Server) download(w http.ResponseWriter, r *http.Request) (int, any, error) {
	b, rel, err := s.n.Download(r.Context(), r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	w.Header().Set("Content-Type", "application/gzip")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-%s.crate"`, rel.Name, rel.Version))
	w.Header().Set("ETag", `"`+rel.Cksum+`"`)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(200)
	if r.Method != http.MethodHead {
		w.Write(b)
	}
	return 0, nil, nil
}

func (s *Server) getOwners(w http.ResponseWriter, r *http.Request) (int, any, error) {
	o, err := s.n.Owners(r.Context(), r.PathValue("id"))
	return 200, OwnersResult{Owners: o}, err
}

func (s *Server) putOwners(w http.ResponseWriter, r *http.Request) (int, any, error) {
	var body struct {
		Owners []string `json:"owners"`
	}
	if err := readJSON(w, r, &body, false); err != nil {
		return 0, nil, err
	}
	o, err := s.n.SetOwners(r.Context(), actor(r), r.PathValue("id"), body.Owners)
	return 200, OwnersResult{Owners: o}, err
}

// RecordJSON is a record as JSON, for GET /records/{id} with Accept:
// application/json. Canonical is the exact signed bytes, base64.
type RecordJSON struct {
	ID        registry.ID `json:"id"`
	Kind      string      `json:"kind"`
	Subject   string      `json:"subject"`
	Author    string      `json:"author"`
	Time      time.Time   `json:"time"`
	Body      any         `json:"body"`
	Canonical []byte      `json:"canonical"`
}

func (s *Server) getRecord(w http.ResponseWriter, r *http.Request) (int, any, error) {
	b, rec, err := s.n.RecordBytes(r.Context(), r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	if wantsJSON(r) {
		body, berr := rec.DecodeBody()
		if berr != nil {
			body = nil
		}
		return 200, RecordJSON{ID: rec.ID(), Kind: string(rec.Kind), Subject: rec.Subject, Author: rec.Author.PeerID(), Time: rec.When(), Body: body, Canonical: b}, nil
	}
	w.Header().Set("Content-Type", "application/cbor")
	w.Header().Set("ETag", `"`+rec.ID().String()+`"`)
	w.Header().Set("Cache-Control", s.cacheControl())
	w.WriteHeader(200)
	if r.Method != http.MethodHead {
		w.Write(b)
	}
	return 0, nil, nil
}

// RecordResult is the answer to POST /records.
type RecordResult struct {
	ID    registry.ID `json:"id"`
	Added bool        `json:"added"` // false when the node held it already
}

// postRecord imports one record signed elsewhere (a report from an
// external tester, a record copied by an auditor): it is verified like a
// record from a peer, stored and gossiped.
func (s *Server) postRecord(w http.ResponseWriter, r *http.Request) (int, any, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, registry.MaxRecordSize))
	if err != nil {
		return 0, nil, err
	}
	added, err := s.n.Ingest(r.Context(), actor(r), [][]byte{b})
	if err != nil {
		return 0, nil, err
	}
	id := registry.Sum(b)
	if len(added) == 0 {
		return http.StatusOK, RecordResult{ID: id}, nil
	}
	w.Header().Set("Location", "/records/"+id.String())
	return http.StatusCreated, RecordResult{ID: id, Added: true}, nil
}

// cacheControl is the Cache-Control of immutable content: public unless the
// node is private.
func (s *Server) cacheControl() string {
	if s.opt.AuthRequired {
		return "private, max-age=31536000, immutable"
	}
	return "public, max-age=31536000, immutable"
}

func wantsJSON(r *http.Request) bool {
	return r.URL.Query().Get("format") == "json" || strings.Contains(r.Header.Get("Accept"), "application/json")
}

func (s *Server) getRegistry(w http.ResponseWriter, r *http.Request) (int, any, error) {
	return 200, s.n.Settings(), nil
}

func (s *Server) putRegistry(w http.ResponseWriter, r *http.Request) (int, any, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxJSONBody))
	if err != nil {
		return 0, nil, err
	}
	st, err := s.n.UpdateSettings(r.Context(), actor(r), b)
	return 200, st, err
}

func (s *Server) state(w http.ResponseWriter, r *http.Request) (int, any, error) {
	return 200, s.n.State(), nil
}

func (s *Server) sync(w http.ResponseWriter, r *http.Request) (int, any, error) {
	var body struct {
		Peer string `json:"peer"`
	}
	if err := readJSON(w, r, &body, true); err != nil {
		return 0, nil, err
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Minute)
	defer cancel()
	rep, err := s.n.Sync(ctx, actor(r), body.Peer)
	return 200, rep, err
}

func (s *Server) peers(w http.ResponseWriter, r *http.Request) (int, any, error) {
	p, err := s.n.Peers(r.Context())
	return 200, PeersResult{Peers: p}, err
}

func (s *Server) addPeer(w http.ResponseWriter, r *http.Request) (int, any, error) {
	var body struct {
		Addr string `json:"addr"`
		// Trust (default true) makes the peer a trust root of this node.
		Trust *bool `json:"trust"`
	}
	if err := readJSON(w, r, &body, false); err != nil {
		return 0, nil, err
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	p, err := s.n.AddPeer(ctx, actor(r), body.Addr, body.Trust == nil || *body.Trust)
	return 201, p, err
}

func (s *Server) removePeer(w http.ResponseWriter, r *http.Request) (int, any, error) {
	if err := s.n.RemovePeer(r.Context(), actor(r), r.PathValue("id")); err != nil {
		return 0, nil, err
	}
	return 200, RemovedResult{Removed: r.PathValue("id")}, nil
}

func (s *Server) getTests(w http.ResponseWriter, r *http.Request) (int, any, error) {
	t, err := s.n.TestsFor(r.Context(), r.PathValue("id"))
	return 200, t, err
}

func (s *Server) postTest(w http.ResponseWriter, r *http.Request) (int, any, error) {
	j, err := s.n.QueueTest(r.Context(), actor(r), r.PathValue("id"))
	return http.StatusAccepted, node.RestJob(j), err
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request) (int, any, error) {
	q := r.URL.Query()
	if q.Get("wait") == "" {
		j, err := s.n.Job(r.Context(), r.PathValue("id"))
		return 200, node.RestJob(j), err
	}
	// Long poll: answer when the job has changed from what the client saw.
	wait, err := time.ParseDuration(q.Get("wait"))
	if err != nil || wait <= 0 || wait > 2*time.Minute {
		return 0, nil, registry.Errorf("api.getJob", registry.EINVALID, "wait=%q: use a duration up to 2m, like 30s", q.Get("wait"))
	}
	events, _ := strconv.Atoi(q.Get("events"))
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	j, err := s.n.WaitJob(ctx, r.PathValue("id"), events, store.JobState(q.Get("state")))
	return 200, node.RestJob(j), err
}

func (s *Server) cancelJob(w http.ResponseWriter, r *http.Request) (int, any, error) {
	j, err := s.n.CancelJob(r.Context(), actor(r), r.PathValue("id"))
	return 200, node.RestJob(j), err
}

func (s *Server) audit(w http.ResponseWriter, r *http.Request) (int, any, error) {
	if id := node.IdentityFrom(r.Context()); !id.Allows(node.ScopeAdmin, "") {
		return 0, nil, registry.Errorf("api.audit", registry.EFORBIDDEN, "reading the audit log needs a token with the admin scope")
	}
	before, _ := strconv.ParseUint(r.URL.Query().Get("before"), 10, 64)
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	e, err := s.n.AuditLog(r.Context(), before, limit)
	if e == nil {
		e = []store.AuditEntry{}
	}
	return 200, AuditResult{Entries: e}, err
}

func (s *Server) auditVerify(w http.ResponseWriter, r *http.Request) (int, any, error) {
	c, err := s.n.VerifyAudit(r.Context())
	return 200, c, err
}

func (s *Server) me(w http.ResponseWriter, r *http.Request) (int, any, error) {
	return 200, node.IdentityFrom(r.Context()), nil
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) (int, any, error) {
	t, err := s.n.Tokens(r.Context())
	return 200, TokensResult{Tokens: t}, err
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) (int, any, error) {
	var req node.TokenRequest
	if err := readJSON(w, r, &req, false); err != nil {
		return 0, nil, err
	}
	t, err := s.n.CreateToken(r.Context(), req)
	return http.StatusCreated, t, err
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) (int, any, error) {
	t, err := s.n.RevokeToken(r.Context(), r.PathValue("id"))
	return 200, t, err
}

func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) (int, any, error) {
	k, err := s.n.KeyRequests(r.Context())
	return 200, KeysResult{Keys: k}, err
}

func (s *Server) requestKey(w http.ResponseWriter, r *http.Request) (int, any, error) {
	var reg node.KeyRegistration
	if err := readJSON(w, r, &reg, false); err != nil {
		return 0, nil, err
	}
	k, err := s.n.RequestKey(r.Context(), reg)
	return http.StatusAccepted, k, err
}

func (s *Server) approveKey(w http.ResponseWriter, r *http.Request) (int, any, error) {
	k, err := s.n.SetKey(r.Context(), r.PathValue("key"), true)
	return 200, k, err
}

func (s *Server) revokeKey(w http.ResponseWriter, r *http.Request) (int, any, error) {
	k, err := s.n.SetKey(r.Context(), r.PathValue("key"), false)
	return 200, k, err
}

// maxSignedRecord bounds POST /records/signed.
const maxSignedRecord = 64 << 10

func (s *Server) postSigned(w http.ResponseWriter, r *http.Request) (int, any, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSignedRecord))
	if err != nil {
		return 0, nil, err
	}
	rec, err := s.n.PublishSigned(r.Context(), actor(r), b, nil)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, SignedResult{ID: rec.ID(), Kind: string(rec.Kind), Subject: rec.Subject}, nil
}
