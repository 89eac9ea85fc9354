package cargo

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// serveMirrored serves the index file of a crate this node does not hold
// itself but mirrors from an upstream (node.MirroredIndexFile): the first
// line the node's trusted records observed for each version, with its
// current yank state. Errors are Cargo's: 404 when no upstream has the
// crate, 503 or 504 when the upstream failed and nothing is recorded. In
// the wasm view only versions whose trusted report passes the wasm policy
// are served, and it reports false, having written nothing, when there are
// none: the caller answers as for any crate absent from the view.
func (h *Handler) serveMirrored(w http.ResponseWriter, r *http.Request, v view, name string) bool {
	if v == viewFull {
		body, digest, err := h.n.MirroredIndexFile(r.Context(), name)
		if err != nil {
			h.writeError(w, r, err)
			return true
		}
		writeFile(w, r, body, []string{`"` + digest + `"`}, []string{strconv.Itoa(len(body))})
		return true
	}
	// A crate this node holds is its own in both views.
	if full, err := h.index.file(viewFull, name); err != nil || full.body != nil {
		if err != nil {
			h.writeError(w, r, err)
			return true
		}
		return false
	}
	vs, err := h.n.Mirrored(r.Context(), name)
	if err != nil {
		if registry.KindOf(err) == registry.ENOTFOUND {
			return false
		}
		h.writeError(w, r, err)
		return true
	}
	trust := h.n.Trust()
	var buf bytes.Buffer
	for _, mv := range vs {
		rv, err := h.n.MirroredView(mv)
		if err != nil {
			h.writeError(w, r, err)
			return true
		}
		if !h.passes(rv, trust) {
			continue
		}
		l, err := registry.UpstreamLineYanked(mv.Served.Line, mv.Yanked)
		if err != nil {
			h.writeError(w, r, registry.E("cargo.index", registry.EINTERNAL, "a stored upstream line does not parse", err))
			return true
		}
		buf.WriteString(l)
		buf.WriteByte('\n')
	}
	if buf.Len() == 0 {
		return false
	}
	sum := sha256.Sum256(buf.Bytes())
	writeFile(w, r, buf.Bytes(), []string{`"` + hex.EncodeToString(sum[:16]) + `"`}, []string{strconv.Itoa(buf.Len())})
	return true
}

// downloadMirrored serves the .crate of a mirrored release: kept by this
// node, fetched from peers or fetched upstream, and in every case checked
// against the checksum of the line the node serves for it.
func (h *Handler) downloadMirrored(w http.ResponseWriter, r *http.Request, name, version string) error {
	// A crate this node holds is its own: its missing versions are missing.
	if full, err := h.index.file(viewFull, strings.ToLower(name)); err != nil || full.body != nil {
		if err != nil {
			return err
		}
		return registry.Errorf("cargo.download", registry.ENOTFOUND, "no release %s@%s on this registry", name, version)
	}
	b, mv, err := h.n.MirroredDownload(r.Context(), name, version)
	if err != nil {
		return err
	}
	hdr := w.Header()
	hdr.Set("Etag", `"`+mv.Served.Cksum+`"`)
	hdr.Set("Cache-Control", h.cacheControl())
	if inm := r.Header["If-None-Match"]; len(inm) > 0 && etagMatches(inm, `"`+mv.Served.Cksum+`"`) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	hdr.Set("Content-Type", "application/gzip")
	hdr.Set("Content-Disposition", `attachment; filename="`+mv.Name+"-"+mv.Version+`.crate"`)
	hdr.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(b)
	}
	return nil
}
