package cargo

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/store"
)

// view names one of the two indexes a node serves.
type view uint8

const (
	viewFull view = iota // every release this node holds
	viewWasm             // only the releases that pass the wasm policy
)

// nameFromIndexPath returns the lowercase crate name an index path names,
// or "" when p is not where Cargo would look for a crate. Directory names
// are compared without regard to case, so {prefix}-style paths work too.
func nameFromIndexPath(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return ""
	}
	name := strings.ToLower(p[i+1:])
	if registry.ValidateCrateName(name) != nil {
		return ""
	}
	dir := p[:i]
	var ok bool
	switch len(name) {
	case 1:
		ok = dir == "1"
	case 2:
		ok = dir == "2"
	case 3:
		ok = len(dir) == 3 && dir[:2] == "3/" && strings.EqualFold(dir[2:], name[:1])
	default:
		ok = len(dir) == 5 && dir[2] == '/' && strings.EqualFold(dir[:2], name[:2]) && strings.EqualFold(dir[3:], name[2:4])
	}
	if !ok {
		return ""
	}
	return name
}

// IndexLine is one line of an index file: one release, in the field order
// and with the field names of Cargo's index format.
type IndexLine struct {
	Name        string              `json:"name"`
	Vers        string              `json:"vers"`
	Deps        []IndexDep          `json:"deps"`
	Cksum       string              `json:"cksum"`
	Features    map[string][]string `json:"features"`
	Features2   map[string][]string `json:"features2,omitempty"`
	Yanked      bool                `json:"yanked"`
	Links       string              `json:"links,omitempty"`
	V           int                 `json:"v,omitempty"`
	RustVersion string              `json:"rust_version,omitempty"`
}

// IndexDep is one dependency in an index line. Registry is omitted for a
// dependency from the same registry; Package is omitted unless the
// dependency is renamed.
type IndexDep struct {
	Name            string   `json:"name"`
	Req             string   `json:"req"`
	Features        []string `json:"features"`
	Optional        bool     `json:"optional"`
	DefaultFeatures bool     `json:"default_features"`
	Target          *string  `json:"target"`
	Kind            string   `json:"kind"`
	Registry        string   `json:"registry,omitempty"`
	Package         string   `json:"package,omitempty"`
}

// newSyntax reports whether a feature value uses syntax that Cargo before
// 1.60 cannot read from "features": "dep:name" or "name?/feature".
func newSyntax(v string) bool {
	return strings.HasPrefix(v, "dep:") || strings.Contains(v, "?/")
}

// NewIndexLine renders a release body as an index line. A feature whose
// values use "dep:" or "?/" goes to features2 (and the line gets v: 2), as
// crates.io does, so that older Cargo versions can still read the rest.
// same reports whether a dependency's registry URL means this registry.
func NewIndexLine(b *registry.ReleaseBody, yanked bool, same func(string) bool) *IndexLine {
	l := &IndexLine{
		Name: b.Name, Vers: b.Version, Cksum: b.Cksum, Yanked: yanked,
		Links: b.Links, RustVersion: b.RustVersion,
		Deps: make([]IndexDep, 0, len(b.Deps)), Features: map[string][]string{},
	}
	for _, d := range b.Deps {
		id := IndexDep{
			Name: d.Name, Req: d.Req, Features: d.Features, Optional: d.Optional,
			DefaultFeatures: d.DefaultFeatures, Kind: d.Kind, Package: d.Package,
		}
		if id.Features == nil {
			id.Features = []string{}
		}
		if id.Kind == "" {
			id.Kind = registry.DepNormal
		}
		if d.Target != "" {
			t := d.Target
			id.Target = &t
		}
		if !same(d.Registry) {
			id.Registry = d.Registry
		}
		l.Deps = append(l.Deps, id)
	}
	for k, vals := range b.Features {
		if vals == nil {
			vals = []string{}
		}
		if slices.ContainsFunc(vals, newSyntax) {
			if l.Features2 == nil {
				l.Features2 = map[string][]string{}
			}
			l.Features2[k] = vals
		} else {
			l.Features[k] = vals
		}
	}
	if l.Features2 != nil {
		l.V = 2
	}
	return l
}

// appendLine appends the line's JSON, without HTML escaping and ended by a
// newline (as json.Encoder writes it), to buf.
func appendLine(buf *bytes.Buffer, l *IndexLine) error {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	return enc.Encode(l)
}

// indexFile is a rendered index file, valid for the record set fp and, in
// the wasm view, for the trust set trust.
type indexFile struct {
	fp    registry.Fingerprint
	trust string
	body  []byte // nil: no such crate in this view
	etag  []string
	clen  []string
}

type fileKey struct {
	v    view
	name string // lowercase
}

// index renders and caches index files. A cached file is used only while
// the record set (and, for the wasm view, the trust set) is the one it was
// rendered from, so the served content is always that of the current state
// and its ETag (a digest of the content) changes whenever the content does.
type index struct {
	h     *Handler
	mu    sync.RWMutex
	files map[fileKey]*indexFile
}

func newIndex(h *Handler) *index {
	return &index{h: h, files: map[fileKey]*indexFile{}}
}

// file returns the current file of a crate in a view.
func (x *index) file(v view, name string) (*indexFile, error) {
	fp := x.h.n.Fingerprint() // read before the views: they are never older than fp
	// Trust decides which releases are authorized, so every view of the
	// index depends on it, not only the wasm one. Asking for it first also
	// brings the store's views up to date with it.
	trust := x.h.n.Trust()
	trustKey := trust.Key()
	k := fileKey{v, name}
	x.mu.RLock()
	f := x.files[k]
	x.mu.RUnlock()
	if f != nil && f.fp == fp && f.trust == trustKey {
		return f, nil
	}
	views, err := x.viewsFold(name)
	if err != nil {
		return nil, err
	}
	f = &indexFile{fp: fp, trust: trustKey}
	var buf bytes.Buffer
	for _, rv := range views {
		if rv.Unauthorized || (v == viewWasm && !x.h.passes(rv, trust)) {
			continue
		}
		if err := appendLine(&buf, NewIndexLine(&rv.Body, rv.Yanked, x.h.isSameRegistry)); err != nil {
			return nil, registry.E("cargo.index", registry.EINTERNAL, "rendering an index line", err)
		}
	}
	if buf.Len() > 0 {
		f.body = buf.Bytes()
		sum := sha256.Sum256(f.body)
		f.etag = []string{`"` + hex.EncodeToString(sum[:16]) + `"`}
		f.clen = []string{strconv.Itoa(len(f.body))}
	}
	x.put(k, f)
	return f, nil
}

func (x *index) put(k fileKey, f *indexFile) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if len(x.files) >= x.h.cfg.MaxCachedFiles {
		// Drop about an eighth, chosen by map order (effectively at random).
		drop := max(1, len(x.files)/8)
		for dk := range x.files {
			delete(x.files, dk)
			if drop--; drop == 0 {
				break
			}
		}
	}
	x.files[k] = f
}

// viewsFold returns the views of every crate whose name in lowercase is
// lower, ordered by SemVer precedence and then by name. The store keys views
// by exact name, so names with capitals are found by walking the candidate
// spellings letter by letter and pruning every prefix no crate starts with.
func (x *index) viewsFold(lower string) ([]*store.ReleaseView, error) {
	db := x.h.n
	out, err := db.ViewsByName(lower)
	if err != nil {
		return nil, err
	}
	var walk func(prefix string, i int) error
	walk = func(prefix string, i int) error {
		if i == len(lower) {
			vs, err := db.ViewsByName(prefix)
			out = append(out, vs...)
			return err
		}
		vs, _, err := db.ListViews(store.ListQuery{Prefix: prefix, Limit: 1})
		if err != nil || len(vs) == 0 {
			return err
		}
		c := lower[i]
		if err := walk(prefix+string(c), i+1); err != nil {
			return err
		}
		if c >= 'a' && c <= 'z' {
			return walk(prefix+string(c-'a'+'A'), i+1)
		}
		return nil
	}
	// The all-lowercase spelling is read above; walk the others, which have
	// a capital at some first position i.
	for i := 0; i < len(lower); i++ {
		c := lower[i]
		if c < 'a' || c > 'z' {
			continue
		}
		if err := walk(lower[:i]+string(c-'a'+'A'), i+1); err != nil {
			return nil, err
		}
	}
	slices.SortStableFunc(out, func(a, b *store.ReleaseView) int {
		if c := registry.CompareVersions(a.Version, b.Version); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out, nil
}

// IndexConfig is the index's config.json.
type IndexConfig struct {
	DL  string `json:"dl"`
	API string `json:"api"`
	// AuthRequired tells Cargo to send its token with every request to
	// the registry: index files, downloads and the web API (RFC 3139).
	AuthRequired bool `json:"auth-required,omitempty"`
}

// config returns the config.json of a view. Both views download from the
// same endpoint; the wasm view's API base is /wasm, so that cargo search
// on it lists only what it serves.
func (h *Handler) config(r *http.Request, v view) IndexConfig {
	base := h.publicURL(r)
	c := IndexConfig{DL: base + "/api/v1/crates/{crate}/{version}/download", API: base, AuthRequired: h.cfg.AuthRequired}
	if v == viewWasm {
		c.API = base + "/wasm"
	}
	return c
}

// serveIndex serves config.json and index files of a view.
func (h *Handler) serveIndex(w http.ResponseWriter, r *http.Request, v view, p string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.methodNotAllowed(w, r, http.MethodGet, http.MethodHead)
		return
	}
	if h.cfg.AuthRequired {
		// Only the token holder may keep a copy.
		w.Header().Set("Cache-Control", "private, no-cache")
	}
	if p == "config.json" {
		b, _ := json.Marshal(h.config(r, v))
		b = append(b, '\n')
		sum := sha256.Sum256(b)
		writeFile(w, r, b, []string{`"` + hex.EncodeToString(sum[:16]) + `"`}, []string{strconv.Itoa(len(b))})
		return
	}
	name := nameFromIndexPath(p)
	if name == "" {
		h.writeError(w, r, registry.Errorf("cargo.index", registry.ENOTFOUND, "%s is not an index file path (1/NAME, 2/NAME, 3/C/NAME or AB/CD/NAME, in lowercase)", r.URL.Path))
		return
	}
	f, err := h.index.file(v, name)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if f.body == nil {
		if h.serveMirrored(w, r, v, name) {
			return
		}
	}
	if f.body == nil {
		msg := "no crate named %s on this registry"
		if v == viewWasm {
			msg = "no release of a crate named %s has passed this registry's wasm gates"
		}
		h.writeError(w, r, registry.Errorf("cargo.index", registry.ENOTFOUND, msg, name))
		return
	}
	writeFile(w, r, f.body, f.etag, f.clen)
}

var hdrTextPlain = []string{"text/plain; charset=utf-8"}

// writeFile answers a GET or HEAD for an index file or config.json, with
// 304 Not Modified when If-None-Match names its ETag.
func writeFile(w http.ResponseWriter, r *http.Request, body []byte, etag, clen []string) {
	hdr := w.Header()
	hdr["Etag"] = etag
	if inm := r.Header["If-None-Match"]; len(inm) > 0 && etagMatches(inm, etag[0]) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hdr["Content-Type"] = hdrTextPlain
	hdr["Content-Length"] = clen
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

// etagMatches applies If-None-Match's weak comparison (RFC 9110 §13.1.2):
// "*" or any listed tag equal to etag, ignoring a W/ prefix.
func etagMatches(headers []string, etag string) bool {
	for _, h := range headers {
		for _, t := range strings.Split(h, ",") {
			t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
			if t == "*" || t == etag {
				return true
			}
		}
	}
	return false
}
