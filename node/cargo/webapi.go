package cargo

import (
	"encoding/binary"
	"encoding/json"
	"hash/fnv"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/node"
	"github.com/wasmrust/wasm-crates-registry/store"
)

// maxMetadata bounds the JSON part of a publish request (it carries the
// README's text).
const maxMetadata = 4 << 20

// serveAPI dispatches the web API. rest is the path after /api/v1/.
func (h *Handler) serveAPI(w http.ResponseWriter, r *http.Request, wasm bool, rest string) {
	seg := strings.Split(rest, "/")
	if seg[0] != "crates" {
		h.writeError(w, r, registry.Errorf("cargo.api", registry.ENOTFOUND, "no such Cargo API endpoint: %s", r.URL.Path))
		return
	}
	var err error
	switch {
	case len(seg) == 1:
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.methodNotAllowed(w, r, http.MethodGet)
			return
		}
		err = h.search(w, r, wasm)
	case len(seg) == 2 && seg[1] == "new":
		if r.Method != http.MethodPut {
			h.methodNotAllowed(w, r, http.MethodPut)
			return
		}
		err = h.publish(w, r)
	case len(seg) == 3 && seg[2] == "owners":
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			err = h.listOwners(w, r, seg[1])
		case http.MethodPut:
			err = h.changeOwners(w, r, seg[1], true)
		case http.MethodDelete:
			err = h.changeOwners(w, r, seg[1], false)
		default:
			h.methodNotAllowed(w, r, http.MethodGet, http.MethodPut, http.MethodDelete)
			return
		}
	case len(seg) == 4 && seg[3] == "yank":
		if r.Method != http.MethodDelete {
			h.methodNotAllowed(w, r, http.MethodDelete)
			return
		}
		err = h.yank(w, r, seg[1], seg[2], true)
	case len(seg) == 4 && seg[3] == "unyank":
		if r.Method != http.MethodPut {
			h.methodNotAllowed(w, r, http.MethodPut)
			return
		}
		err = h.yank(w, r, seg[1], seg[2], false)
	case len(seg) == 4 && seg[3] == "download":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.methodNotAllowed(w, r, http.MethodGet)
			return
		}
		err = h.download(w, r, seg[1], seg[2])
	default:
		err = registry.Errorf("cargo.api", registry.ENOTFOUND, "no such Cargo API endpoint: %s", r.URL.Path)
	}
	if err != nil {
		h.writeError(w, r, err)
	}
}

// authenticate checks the token Cargo sends (the raw token; "Bearer" is
// accepted too) and returns the identity's audit name, with r's context
// now carrying the identity, whose scopes the node checks.
func (h *Handler) authenticate(r *http.Request) (string, error) {
	id, err := h.identify(r)
	if err != nil {
		return "", err
	}
	*r = *r.WithContext(node.WithIdentity(r.Context(), id))
	return id.String(), nil
}

func (h *Handler) identify(r *http.Request) (*node.Identity, error) {
	const op = "cargo.auth"
	tok := strings.TrimSpace(r.Header.Get("Authorization"))
	if tok == "" {
		return nil, registry.Errorf(op, registry.EUNAUTHORIZED,
			"this action needs a token of this registry node: run `cargo login --registry NAME` with the node's token "+
				"(the admin token is in its data directory, file admin-token), or set CARGO_REGISTRIES_NAME_TOKEN")
	}
	id, err := h.n.AuthenticateIdentity(tok)
	if registry.KindOf(err) == registry.EUNAUTHORIZED {
		return nil, registry.Errorf(op, registry.EUNAUTHORIZED,
			"the token is not valid on this registry node (%s): tokens belong to one node, so use a token that this node (%s) issued", registry.MessageOf(err), h.n.PeerID())
	}
	return id, err
}

// PublishMetadata is the JSON part of a publish request, as Cargo sends it.
// Only the fields this registry reads are declared; the rest are ignored,
// as Cargo's web API asks. Everything else about the release is read from
// the .crate archive itself.
type PublishMetadata struct {
	Name string       `json:"name"`
	Vers string       `json:"vers"`
	Deps []PublishDep `json:"deps"`
}

// PublishDep is one dependency in the publish metadata. Name is the real
// crate name; ExplicitNameInToml the name the crate uses for it when it is
// renamed.
type PublishDep struct {
	Name               string  `json:"name"`
	VersionReq         string  `json:"version_req"`
	Kind               string  `json:"kind"`
	Target             *string `json:"target"`
	Registry           *string `json:"registry"`
	ExplicitNameInToml *string `json:"explicit_name_in_toml"`
}

// ParsePublish splits the body of PUT /api/v1/crates/new: a u32
// little-endian length, that many bytes of JSON metadata, a u32
// little-endian length and that many bytes of .crate archive, and nothing
// after. It returns the metadata and the archive (a subslice of body).
func ParsePublish(body []byte, maxCrate int64) (*PublishMetadata, []byte, error) {
	const op = "cargo.publish"
	bad := func(format string, args ...any) error {
		return registry.Errorf(op, registry.EINVALID, "the publish request is not in Cargo's format (u32 length, JSON, u32 length, .crate): "+format, args...)
	}
	if len(body) < 4 {
		return nil, nil, bad("it is %d bytes long", len(body))
	}
	jl := uint64(binary.LittleEndian.Uint32(body))
	if jl > maxMetadata {
		return nil, nil, registry.Errorf(op, registry.ETOOLARGE, "the publish metadata is %d bytes; this registry accepts at most %d (a very long README?)", jl, maxMetadata)
	}
	if uint64(len(body)) < 4+jl+4 {
		return nil, nil, bad("the metadata is said to be %d bytes but the request ends before it does", jl)
	}
	meta := body[4 : 4+jl]
	rest := body[4+jl:]
	cl := uint64(binary.LittleEndian.Uint32(rest))
	if int64(cl) > maxCrate {
		return nil, nil, registry.Errorf(op, registry.ETOOLARGE, "the .crate archive is %d bytes; this registry accepts at most %d", cl, maxCrate)
	}
	switch {
	case uint64(len(rest)-4) < cl:
		return nil, nil, bad("the archive is said to be %d bytes but only %d follow", cl, len(rest)-4)
	case uint64(len(rest)-4) > cl:
		return nil, nil, bad("%d bytes follow the %d-byte archive", uint64(len(rest)-4)-cl, cl)
	}
	var m PublishMetadata
	if err := json.Unmarshal(meta, &m); err != nil {
		return nil, nil, bad("the metadata is not JSON (%v)", err)
	}
	if m.Name == "" || m.Vers == "" {
		return nil, nil, bad("the metadata has no name or vers")
	}
	return &m, rest[4:], nil
}

// depKey identifies a dependency the way both the manifest and the publish
// metadata can name it.
type depKey struct{ name, kind, target string }

// adjust checks that the metadata describes the archive's release and
// records, for every dependency, the registry the metadata names in the
// index's terms: "" for this registry, otherwise the registry's index URL.
// base is the URL the publishing client reached this node at: its indexes
// under base are this registry too.
func (h *Handler) adjust(m *PublishMetadata, base string) func(*registry.ReleaseBody) error {
	here := map[string]bool{
		normalizeIndexURL(base + "/index/"):      true,
		normalizeIndexURL(base + "/wasm/index/"): true,
	}
	return func(b *registry.ReleaseBody) error {
		if m.Name != b.Name || m.Vers != b.Version {
			return registry.Errorf("cargo.publish", registry.EINVALID,
				"the publish metadata names %s %s but the .crate archive's Cargo.toml is %s %s; publish the archive that was packaged for this version",
				m.Name, m.Vers, b.Name, b.Version)
		}
		regs := map[depKey]string{}
		for _, d := range m.Deps {
			k := depKey{name: d.Name, kind: d.Kind, target: ""}
			if d.ExplicitNameInToml != nil && *d.ExplicitNameInToml != "" {
				k.name = *d.ExplicitNameInToml
			}
			if k.kind == "" {
				k.kind = registry.DepNormal
			}
			if d.Target != nil {
				k.target = *d.Target
			}
			reg := ""
			if d.Registry != nil && !h.isSameRegistry(*d.Registry) && !here[normalizeIndexURL(*d.Registry)] {
				reg = *d.Registry
			}
			regs[k] = reg
		}
		for i := range b.Deps {
			d := &b.Deps[i]
			if reg, ok := regs[depKey{d.Name, d.Kind, d.Target}]; ok {
				d.Registry = reg
			}
		}
		return nil
	}
}

// PublishWarnings is what Cargo prints after a successful publish.
type PublishWarnings struct {
	InvalidCategories []string `json:"invalid_categories"`
	InvalidBadges     []string `json:"invalid_badges"`
	Other             []string `json:"other"`
}

func (h *Handler) publish(w http.ResponseWriter, r *http.Request) error {
	const op = "cargo.publish"
	actor, err := h.authenticate(r)
	if err != nil {
		return err
	}
	maxCrate := h.n.MaxCrateSize()
	limit := maxCrate + maxMetadata + 8
	if r.ContentLength > limit {
		return registry.Errorf(op, registry.ETOOLARGE, "the publish request is %d bytes; this registry accepts .crate archives of at most %d bytes", r.ContentLength, maxCrate)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		return err
	}
	meta, crate, err := ParsePublish(body, maxCrate)
	if err != nil {
		return err
	}
	rel, created, err := h.n.SubmitWith(r.Context(), actor, crate, h.adjust(meta, requestURL(r)))
	if err != nil {
		return err
	}
	warn := PublishWarnings{InvalidCategories: []string{}, InvalidBadges: []string{}, Other: []string{}}
	if !created {
		warn.Other = append(warn.Other, rel.Subject+" was already published with exactly this archive; nothing changed")
	}
	if h.n.AutoTests() {
		warn.Other = append(warn.Other, "the wasm test pipeline is queued for "+rel.Subject+
			"; it appears in this registry's wasm-only index (/wasm/index/) once it passes the wasm gates")
	}
	writeJSON(w, http.StatusOK, map[string]any{"warnings": warn})
	return nil
}

type okResponse struct {
	OK  bool   `json:"ok"`
	Msg string `json:"msg,omitempty"`
}

func (h *Handler) yank(w http.ResponseWriter, r *http.Request, name, version string, yanked bool) error {
	actor, err := h.authenticate(r)
	if err != nil {
		return err
	}
	subject := registry.ReleaseSubject(name, version)
	if _, _, err := registry.ParseReleaseSubject(subject); err != nil {
		return err
	}
	if _, err := h.n.SetYank(r.Context(), actor, subject, yanked, ""); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, okResponse{OK: true})
	return nil
}

// Owner is an owner as Cargo's owners API shows it. On this registry the
// owners of a crate are keys, so Login is a key's libp2p peer ID.
type Owner struct {
	ID    uint32  `json:"id"`
	Login string  `json:"login"`
	Name  *string `json:"name"`
}

func ownerID(login string) uint32 {
	f := fnv.New32a()
	f.Write([]byte(login))
	return f.Sum32()
}

func (h *Handler) listOwners(w http.ResponseWriter, r *http.Request, name string) error {
	owners, err := h.n.Owners(r.Context(), name)
	if err != nil {
		return err
	}
	users := make([]Owner, 0, len(owners))
	self := h.n.PeerID()
	for _, o := range owners {
		u := Owner{ID: ownerID(o), Login: o}
		if o == self {
			s := "this node (" + h.n.Settings().Name + ")"
			u.Name = &s
		}
		users = append(users, u)
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": users})
	return nil
}

// changeOwners adds (PUT) or removes (DELETE) owners given as logins, which
// must be peer IDs.
func (h *Handler) changeOwners(w http.ResponseWriter, r *http.Request, name string, add bool) error {
	const op = "cargo.owners"
	actor, err := h.authenticate(r)
	if err != nil {
		return err
	}
	var req struct {
		Users []string `json:"users"`
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &req); err != nil || len(req.Users) == 0 {
		return registry.Errorf(op, registry.EINVALID, `the request needs a JSON body {"users": ["<peer ID>", …]}`)
	}
	for _, u := range req.Users {
		if _, err := registry.ParsePeerID(u); err != nil {
			return registry.Errorf(op, registry.EINVALID,
				"owner %q is not a peer ID: on this registry the owners of a crate are keys, named by their libp2p peer ID (12D3KooW…); "+
					"ask the owner for their node's peer ID (wasm-crates-registry-cli health shows it)", truncate(u, 80))
		}
	}
	current, err := h.n.Owners(r.Context(), name)
	if err != nil {
		return err
	}
	next := slices.Clone(current)
	var msg string
	if add {
		for _, u := range req.Users {
			if !slices.Contains(next, u) {
				next = append(next, u)
			}
		}
		msg = "added " + strings.Join(req.Users, ", ") + " as owner(s) of " + name
	} else {
		for _, u := range req.Users {
			if !slices.Contains(current, u) {
				return registry.Errorf(op, registry.EINVALID, "%s is not an owner of %s; its owners are %s", u, name, strings.Join(current, ", "))
			}
			next = slices.DeleteFunc(next, func(o string) bool { return o == u })
		}
		if len(next) == 0 {
			return registry.Errorf(op, registry.EINVALID, "removing %s would leave %s without owners; add the new owner first", strings.Join(req.Users, ", "), name)
		}
		msg = "removed " + strings.Join(req.Users, ", ") + " from the owners of " + name
	}
	if _, err := h.n.SetOwners(r.Context(), actor, name, next); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, okResponse{OK: true, Msg: msg})
	return nil
}

// SearchResult is one crate in a search answer.
type SearchResult struct {
	Name        string `json:"name"`
	MaxVersion  string `json:"max_version"`
	Description string `json:"description"`
}

// search answers GET /api/v1/crates?q=&per_page=: crates whose name,
// description or keywords contain q (case-insensitive), the exact name
// first, then names starting with q, then the rest by name. max_version is
// the highest version that is not yanked (the highest of all when every
// version is). On the wasm view only releases that pass the wasm policy
// count.
func (h *Handler) search(w http.ResponseWriter, r *http.Request, wasm bool) error {
	const op = "cargo.search"
	q := r.URL.Query()
	needle := strings.ToLower(strings.TrimSpace(q.Get("q")))
	if len(needle) > 128 {
		return registry.Errorf(op, registry.EINVALID, "the search query is longer than 128 characters")
	}
	perPage := 10
	if s := q.Get("per_page"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 100 {
			return registry.Errorf(op, registry.EINVALID, "per_page=%q: use a whole number from 1 to 100 (cargo search --limit)", truncate(s, 20))
		}
		perPage = n
	}
	trust := h.n.Trust()
	type agg struct {
		best   *store.ReleaseView
		yanked bool // best is yanked
	}
	crates := map[string]*agg{}
	match := func(v *store.ReleaseView) bool {
		if v.Unauthorized || (wasm && !h.passes(v, trust)) {
			return false
		}
		return needle == "" || node.MatchesQuery(v, needle)
	}
	after := ""
	for {
		views, next, err := h.n.ListViews(store.ListQuery{After: after, Limit: 1000, Match: match})
		if err != nil {
			return err
		}
		for _, v := range views {
			a := crates[v.Name]
			switch {
			case a == nil:
				crates[v.Name] = &agg{best: v, yanked: v.Yanked}
			case a.yanked && !v.Yanked,
				a.yanked == v.Yanked && registry.CompareVersions(v.Version, a.best.Version) > 0:
				a.best, a.yanked = v, v.Yanked
			}
		}
		if next == "" {
			break
		}
		after = next
	}
	names := make([]string, 0, len(crates))
	for n := range crates {
		names = append(names, n)
	}
	rank := func(n string) int {
		l := strings.ToLower(n)
		switch {
		case l == needle:
			return 0
		case strings.HasPrefix(l, needle):
			return 1
		}
		return 2
	}
	slices.SortFunc(names, func(a, b string) int {
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra - rb
		}
		return strings.Compare(a, b)
	})
	out := make([]SearchResult, 0, min(perPage, len(names)))
	for _, n := range names[:min(perPage, len(names))] {
		v := crates[n].best
		out = append(out, SearchResult{Name: v.Name, MaxVersion: v.Version, Description: v.Body.Description})
	}
	writeJSON(w, http.StatusOK, map[string]any{"crates": out, "meta": map[string]int{"total": len(names)}})
	return nil
}

// download serves the verified .crate of a release the index lists,
// fetching it from peers first when this node lacks it.
func (h *Handler) download(w http.ResponseWriter, r *http.Request, name, version string) error {
	const op = "cargo.download"
	subject := registry.ReleaseSubject(name, version)
	if _, _, err := registry.ParseReleaseSubject(subject); err != nil {
		return err
	}
	v, err := h.n.View(name, version)
	if registry.KindOf(err) == registry.ENOTFOUND {
		return h.downloadMirrored(w, r, name, version)
	}
	if err != nil {
		return err
	}
	if v.Unauthorized {
		if err := h.downloadMirrored(w, r, name, version); registry.KindOf(err) != registry.ENOTFOUND {
			return err
		}
		return registry.Errorf(op, registry.ENOTFOUND, "%s is not served: its publisher was not an owner of %s", subject, name)
	}
	etag := `"` + v.Body.Cksum + `"`
	hdr := w.Header()
	hdr.Set("Etag", etag)
	hdr.Set("Cache-Control", h.cacheControl())
	if inm := r.Header["If-None-Match"]; len(inm) > 0 && etagMatches(inm, etag) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	b, _, err := h.n.Download(r.Context(), subject)
	if err != nil {
		hdr.Del("Etag")
		hdr.Del("Cache-Control")
		return err
	}
	hdr.Set("Content-Type", "application/gzip")
	hdr.Set("Content-Disposition", `attachment; filename="`+name+"-"+version+`.crate"`)
	hdr.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(b)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
