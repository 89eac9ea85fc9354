package api

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/node"
)

// Badges for a crate's README: GET /badges/{crate}.svg is a flat,
// shields-style image, GET /badges/{crate}.json the same facts in
// shields.io's endpoint format (https://shields.io/badges/endpoint-badge).
// ?version=X names a version; otherwise the badge is of the newest version
// that is neither yanked nor an untrusted claim. The message is the wasm
// verdict, then the score and the gate when there is a trusted report:
// "compatible · 92 · curated".
//
// Answers may be cached for a minute and are readable from any origin. A
// crate or version the node does not hold is still a badge ("not found",
// grey) with status 404, so an image in a README never breaks; the JSON
// then also carries the API's error object.

// badgeMaxAge is how long a badge may be cached.
const badgeMaxAge = 60

type badge struct {
	Label   string
	Message string
	Color   string // hex, without '#'
}

// shieldsBadge is shields.io's endpoint schema, with the API's error object
// added when the badge stands for an error.
type shieldsBadge struct {
	SchemaVersion int          `json:"schemaVersion"`
	Label         string       `json:"label"`
	Message       string       `json:"message"`
	Color         string       `json:"color"`
	IsError       bool         `json:"isError,omitempty"`
	CacheSeconds  int          `json:"cacheSeconds"`
	Error         *ErrorDetail `json:"error,omitempty"`
}

var wasmColors = map[string]string{
	registry.WasmCompatible:   "44cc11",
	registry.WasmBuilds:       "97ca00",
	registry.WasmPartial:      "dfb317",
	registry.WasmIncompatible: "e05d44",
}

const greyColor = "9f9f9f"

func (s *Server) badges(w http.ResponseWriter, r *http.Request) {
	file := r.PathValue("file")
	name, format, ok := strings.Cut(file, ".")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSON(w, http.StatusMethodNotAllowed, ErrorBody{Error: ErrorDetail{Code: "method_not_allowed", Message: r.Method + " is not allowed on " + r.URL.Path + "; use GET"}})
		return
	}
	if !ok || (format != "svg" && format != "json") {
		writeError(w, r, registry.Errorf("api.badges", registry.ENOTFOUND, "no such badge %q: ask for /badges/CRATE.svg or /badges/CRATE.json", file))
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Cache-Control", "public, max-age="+strconv.Itoa(badgeMaxAge))
	b, err := s.badgeOf(r, name)
	status := http.StatusOK
	var detail *ErrorDetail
	if err != nil {
		kind, cerr := Classify(err)
		status = StatusOf(kind)
		detail = &ErrorDetail{Code: string(kind), Message: registry.MessageOf(cerr)}
		msg := "not found"
		switch kind {
		case registry.EINVALID:
			msg = "invalid name"
		case registry.ENOTFOUND:
		default:
			msg = "unavailable"
			h.Set("Cache-Control", "no-store")
		}
		if kind == registry.EINTERNAL {
			s.log.Error("badge failed", "path", r.URL.Path, "err", err)
			detail.Message = "internal error on this node; its log has the details"
		}
		b = badge{Label: "wasm", Message: msg, Color: greyColor}
	}
	if format == "json" {
		writeJSON(w, status, shieldsBadge{SchemaVersion: 1, Label: b.Label, Message: b.Message, Color: b.Color,
			IsError: detail != nil, CacheSeconds: badgeMaxAge, Error: detail})
		return
	}
	h.Set("Content-Type", "image/svg+xml; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	w.WriteHeader(status)
	_, _ = w.Write(badgeSVG(b))
}

// badgeOf is the badge of the crate name, at ?version= or its newest
// served version.
func (s *Server) badgeOf(r *http.Request, name string) (badge, error) {
	const op = "api.badges"
	if err := registry.ValidateCrateName(name); err != nil {
		return badge{}, registry.E(op, registry.EINVALID, "", err)
	}
	vs, err := s.n.Versions(r.Context(), name)
	if err != nil {
		return badge{}, err
	}
	want := r.URL.Query().Get("version")
	var rel *node.Release
	for i := len(vs) - 1; i >= 0; i-- {
		v := vs[i]
		if v.Unauthorized {
			continue
		}
		if want != "" {
			if v.Version == want {
				rel = v
				break
			}
			continue
		}
		if !v.Yanked {
			rel = v
			break
		}
	}
	if rel == nil {
		if want != "" {
			return badge{}, registry.Errorf(op, registry.ENOTFOUND, "no release %s@%s on this node", name, want)
		}
		return badge{}, registry.Errorf(op, registry.ENOTFOUND, "no release of %s on this node that is not yanked", name)
	}
	b := badge{Label: "wasm", Message: rel.Wasm, Color: greyColor}
	if b.Message == "" {
		b.Message = registry.WasmUntested
	}
	if c, ok := wasmColors[rel.Wasm]; ok {
		b.Color = c
	}
	if rel.Score != nil {
		b.Message += " · " + strconv.FormatUint(*rel.Score, 10)
	}
	if rel.Gate != "" {
		b.Message += " · " + rel.Gate
	}
	if want != "" {
		b.Label = "wasm " + rel.Version
	}
	if rel.Yanked {
		b.Message += " · yanked"
	}
	return b, nil
}

// textWidth approximates the width in pixels of s in 11px Verdana, the
// font of flat badges: narrow letters 4 px, wide ones 9, the rest 7.
func textWidth(s string) int {
	w := 0
	for _, r := range s {
		switch {
		case strings.ContainsRune("ijlt.,:;|!' ·", r):
			w += 4
		case strings.ContainsRune("mwMW@", r):
			w += 10
		case r >= 'A' && r <= 'Z':
			w += 8
		default:
			w += 7
		}
	}
	return w
}

// badgeSVG draws b as a flat badge: a grey label box and a coloured
// message box, 20 px high, each text centred with 5 px of padding.
func badgeSVG(b badge) []byte {
	lw, mw := textWidth(b.Label)+10, textWidth(b.Message)+10
	total := lw + mw
	label, msg := xmlText(b.Label), xmlText(b.Message)
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="20" role="img" aria-label="%s: %s">`, total, label, msg)
	fmt.Fprintf(&sb, `<title>%s: %s</title>`, label, msg)
	sb.WriteString(`<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>`)
	fmt.Fprintf(&sb, `<clipPath id="r"><rect width="%d" height="20" rx="3" fill="#fff"/></clipPath>`, total)
	fmt.Fprintf(&sb, `<g clip-path="url(#r)"><rect width="%d" height="20" fill="#555"/><rect x="%d" width="%d" height="20" fill="#%s"/><rect width="%d" height="20" fill="url(#s)"/></g>`, lw, lw, mw, b.Color, total)
	sb.WriteString(`<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11">`)
	fmt.Fprintf(&sb, `<text x="%d" y="14">%s</text>`, lw/2, label)
	fmt.Fprintf(&sb, `<text x="%d" y="14">%s</text>`, lw+mw/2, msg)
	sb.WriteString(`</g></svg>`)
	return []byte(sb.String())
}

// xmlText escapes s for XML text and attribute values.
func xmlText(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&apos;").Replace(s)
}
