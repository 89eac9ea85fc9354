// Package cargo serves a node as a registry that cargo itself uses: the
// sparse index (RFC 2789) of every release, a second sparse index holding
// only the releases that passed the registry's wasm gates, the crate
// downloads, and Cargo's registry web API (publish, yank, unyank, owners,
// search). docs/CARGO.md is the user's guide; the Cargo book's "Registry
// Index" and "Web API" chapters are the specification it follows.
//
// URL layout, relative to the node's public URL:
//
//	/index/config.json                        index configuration (dl, api)
//	/index/{1,2}/NAME, /index/3/C/NAME,
//	/index/AB/CD/NAME                         index files, lowercase paths
//	/wasm/index/...                           the same for the wasm-only view
//	/api/v1/crates/new                        PUT: publish
//	/api/v1/crates/NAME/VERSION/yank          DELETE: yank
//	/api/v1/crates/NAME/VERSION/unyank        PUT: unyank
//	/api/v1/crates/NAME/VERSION/download      GET: the verified .crate
//	/api/v1/crates/NAME/owners                GET, PUT, DELETE: owners
//	/api/v1/crates?q=&per_page=               GET: search
//	/wasm/api/v1/...                          the web API as seen from the wasm view
//
// Reads are open unless the node is private (Config.AuthRequired): then
// config.json says "auth-required": true and every request, reads included,
// needs a token. The refusal of anonymous reads is the api.Server's, which
// answers them through Challenge, so Cargo sees its own error format and
// challenge. Publish, yank, unyank and owner changes always need one of the
// node's tokens in the Authorization header, as Cargo sends it.
package cargo

import (
	"log/slog"
	"net/http"
	"strings"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/node"
	"github.com/wasmrust/wasm-crates-registry/node/api"
	"github.com/wasmrust/wasm-crates-registry/rest"
)

// Patterns are the net/http ServeMux patterns under which the handler must
// be mounted; it serves nothing else.
var Patterns = []string{"/index/", "/wasm/index/", "/api/v1/", "/wasm/api/v1/"}

// Config configures the Cargo protocols of a node.
type Config struct {
	// PublicURL is the base URL clients reach the node at, such as
	// "https://registry.example.org" (a trailing slash is ignored). The
	// index's config.json names the download and API endpoints under it.
	// When empty, each config.json is built from the request's Host, as
	// http://HOST (https://HOST on a TLS connection).
	PublicURL string
	// SameRegistry lists other index URLs that mean this registry (for
	// example another node of the same federation, or an old host name). A
	// dependency whose registry is one of them, or one of this node's own
	// index URLs, is written to the index without a "registry" field, so
	// Cargo resolves it from whichever index it is reading.
	SameRegistry []string
	// Wasm is the policy of the wasm-only view (default DefaultWasmPolicy).
	Wasm WasmPolicy
	// MaxCachedFiles bounds the rendered index files kept in memory
	// (default 50,000; both views count).
	MaxCachedFiles int
	// Logger receives errors that are the node's fault (default: discard).
	Logger *slog.Logger
	// AuthRequired makes the registry private: config.json carries
	// "auth-required": true, so Cargo sends its token on index fetches and
	// downloads too, and responses are marked private for caches. The
	// api.Server in front of the handler must be private too
	// (api.Options.AuthRequired): it is what refuses anonymous requests.
	AuthRequired bool
}

// Handler serves the Cargo protocols of one node. It is safe for concurrent
// use.
type Handler struct {
	n     *node.Node
	cfg   Config
	log   *slog.Logger
	same  map[string]bool
	index *index
}

var _ http.Handler = (*Handler)(nil)

// New returns the Cargo protocols of n. Mount the handler at every pattern
// in Patterns.
func New(n *node.Node, cfg Config) (*Handler, error) {
	const op = "cargo.New"
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.PublicURL = strings.TrimRight(strings.TrimSpace(cfg.PublicURL), "/")
	if cfg.PublicURL != "" && !strings.HasPrefix(cfg.PublicURL, "http://") && !strings.HasPrefix(cfg.PublicURL, "https://") {
		return nil, registry.Errorf(op, registry.EINVALID, "public URL %q must start with http:// or https://", cfg.PublicURL)
	}
	if cfg.MaxCachedFiles <= 0 {
		cfg.MaxCachedFiles = 50_000
	}
	if cfg.Wasm.Gates == nil && cfg.Wasm.Verdicts == nil {
		cfg.Wasm = DefaultWasmPolicy()
	}
	if err := cfg.Wasm.Validate(); err != nil {
		return nil, err
	}
	h := &Handler{n: n, cfg: cfg, log: cfg.Logger, same: map[string]bool{}}
	if cfg.PublicURL != "" {
		for _, p := range []string{"/index/", "/wasm/index/"} {
			h.same[normalizeIndexURL(cfg.PublicURL+p)] = true
		}
	}
	for _, u := range cfg.SameRegistry {
		h.same[normalizeIndexURL(u)] = true
	}
	h.index = newIndex(h)
	return h, nil
}

// Mount mounts h at every pattern in Patterns with mount, for example
// (*api.Server).Mount.
func (h *Handler) Mount(mount func(pattern string, h http.Handler)) {
	for _, p := range Patterns {
		mount(p, h)
	}
}

// normalizeIndexURL reduces an index URL to a comparable form: without the
// "sparse+" or "registry+" prefix, the trailing slash and case differences
// in the scheme and host.
func normalizeIndexURL(u string) string {
	u = strings.TrimSpace(u)
	for _, p := range []string{"sparse+", "registry+"} {
		u = strings.TrimPrefix(u, p)
	}
	u = strings.TrimRight(u, "/")
	if i := strings.Index(u, "://"); i >= 0 {
		rest := u[i+3:]
		host, path, _ := strings.Cut(rest, "/")
		u = strings.ToLower(u[:i+3]+host) + "/" + path
		u = strings.TrimRight(u, "/")
	}
	return u
}

// isSameRegistry reports whether an index URL names this registry.
func (h *Handler) isSameRegistry(u string) bool {
	return u == "" || h.same[normalizeIndexURL(u)]
}

// ServeHTTP dispatches by path.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	wasm := false
	if rest, ok := strings.CutPrefix(p, "/wasm/"); ok {
		wasm, p = true, "/"+rest
	}
	switch {
	case strings.HasPrefix(p, "/index/"):
		v := viewFull
		if wasm {
			v = viewWasm
		}
		h.serveIndex(w, r, v, p[len("/index/"):])
	case strings.HasPrefix(p, "/api/v1/"):
		h.serveAPI(w, r, wasm, p[len("/api/v1/"):])
	default:
		h.writeError(w, r, registry.Errorf("cargo", registry.ENOTFOUND, "no such Cargo endpoint: %s", r.URL.Path))
	}
}

// publicURL is the base URL for config.json.
func (h *Handler) publicURL(r *http.Request) string {
	if h.cfg.PublicURL != "" {
		return h.cfg.PublicURL
	}
	return requestURL(r)
}

// requestURL is the base URL a request reached this node at.
func requestURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// ErrorBody is the JSON of every error response, as Cargo shows it: each
// detail is printed to the user.
type ErrorBody struct {
	Errors []ErrorDetail `json:"errors"`
}

// ErrorDetail is one error message.
type ErrorDetail struct {
	Detail string `json:"detail"`
}

// writeError answers with Cargo's error JSON and the status that node/api
// gives the error's kind.
func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	kind, err := api.Classify(err)
	api.RetryAfter(w.Header(), kind)
	msg := registry.MessageOf(err)
	if kind == registry.EINTERNAL {
		h.log.Error("cargo request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		msg = "internal error on this registry node; its log has the details"
	}
	if kind == registry.EUNAUTHORIZED {
		w.Header().Set("WWW-Authenticate", "Cargo")
	}
	writeJSON(w, api.StatusOf(kind), ErrorBody{Errors: []ErrorDetail{{Detail: msg}}})
}

// Challenge answers a request the api.Server refused before it reached the
// handler (no token on a private node, over a rate limit) in Cargo's error
// format, with Cargo's WWW-Authenticate challenge on a 401.
func (h *Handler) Challenge(w http.ResponseWriter, r *http.Request, err error) {
	if registry.KindOf(err) == registry.EUNAUTHORIZED {
		msg := "this registry is private: every request needs a token of this node; set CARGO_REGISTRIES_NAME_TOKEN " +
			"with registries.NAME.credential-provider = \"cargo:token\" (or run `cargo login --registry NAME`)"
		if r.Header.Get("Authorization") != "" {
			msg = "this registry is private and the token Cargo sent is not valid on this node (" + h.n.PeerID() + "): tokens belong to one node"
		}
		err = registry.E("cargo.auth", registry.EUNAUTHORIZED, msg, nil)
	}
	h.writeError(w, r, err)
}

// cacheControl is the Cache-Control of a download: immutable, and public
// unless the registry is private.
func (h *Handler) cacheControl() string {
	if h.cfg.AuthRequired {
		return "private, max-age=31536000, immutable"
	}
	return "public, max-age=31536000, immutable"
}

// cargoFailure is the answer when an answer cannot be encoded, in Cargo's
// error format.
var cargoFailure = []byte(`{"errors":[{"detail":"internal error on this registry node"}]}` + "\n")

func writeJSON(w http.ResponseWriter, status int, v any) {
	rest.WriteJSON(w, status, v, false, cargoFailure)
}

// methodNotAllowed answers a request whose path exists with another method.
func (h *Handler) methodNotAllowed(w http.ResponseWriter, r *http.Request, allow ...string) {
	w.Header().Set("Allow", strings.Join(allow, ", "))
	writeJSON(w, http.StatusMethodNotAllowed, ErrorBody{Errors: []ErrorDetail{{
		Detail: r.Method + " is not allowed on " + r.URL.Path + "; use " + strings.Join(allow, " or "),
	}}})
}
