package cargo

import (
	"net/http"
	"strconv"
)

// serveMirrored serves the index file of a crate this node does not hold
// itself but mirrors from an upstream (node.MirroredIndexFile): the first
// line the node's trusted records observed for each version, with its
// current yank state. Errors are Cargo's: 404 when no upstream has the
// crate, 503 or 504 when the upstream failed and nothing is recorded.
func (h *Handler) serveMirrored(w http.ResponseWriter, r *http.Request, name string) {
	body, digest, err := h.n.MirroredIndexFile(r.Context(), name)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	writeFile(w, r, body, []string{`"` + digest + `"`}, []string{strconv.Itoa(len(body))})
}

// downloadMirrored serves the .crate of a mirrored release: kept by this
// node, fetched from peers or fetched upstream, and in every case checked
// against the checksum of the line the node serves for it.
func (h *Handler) downloadMirrored(w http.ResponseWriter, r *http.Request, name, version string) error {
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
