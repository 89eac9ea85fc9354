// Package web serves a node's dashboard: server-rendered HTML pages over the
// same operations the REST API uses. It needs no JavaScript.
package web

import (
	"embed"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/node"
	"github.com/wasmrust/wasm-crates-registry/node/web/chart"
	"github.com/wasmrust/wasm-crates-registry/rest"
)

//go:embed templates/*.html
var files embed.FS

// Handler serves the dashboard under /ui/.
type Handler struct {
	n    *node.Node
	log  *slog.Logger
	tmpl *template.Template
	mux  *http.ServeMux
}

// New builds the dashboard for a node.
func New(n *node.Node, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	funcs := template.FuncMap{
		"ms":    func(us uint64) string { return fmt.Sprintf("%.1f ms", float64(us)/1000) },
		"ratio": func(m uint64) string { return fmt.Sprintf("%.2f×", float64(m)/1000) },
		"bytes": humanBytes,
		"time":  fmtTime,
		"short": func(s string) string {
			if len(s) > 16 {
				return s[:8] + "…" + s[len(s)-6:]
			}
			return s
		},
		"path":     url.PathEscape,
		"mstime":   func(ms int64) string { return fmtTime(time.UnixMilli(ms)) },
		"permille": func(p int) string { return fmt.Sprintf("%d.%d%%", p/10, p%10) },
		"list":     func(s ...string) []string { return s },
		"deref": func(p *uint64) uint64 {
			if p == nil {
				return 0
			}
			return *p
		},
	}
	h := &Handler{n: n, log: log, mux: http.NewServeMux(),
		tmpl: template.Must(template.New("").Funcs(funcs).ParseFS(files, "templates/*.html"))}
	h.mux.HandleFunc("GET /ui/{$}", h.index)
	h.mux.HandleFunc("GET /ui/crates/{id}", h.crate)
	h.mux.HandleFunc("GET /ui/peers", h.peers)
	h.mux.HandleFunc("GET /ui/corpus", h.corpus)
	h.mux.HandleFunc("/ui/", func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, registry.Errorf("web", registry.ENOTFOUND, "no such page: %s", r.URL.Path))
	})
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	h.mux.ServeHTTP(w, r)
}

type layout struct {
	Title    string
	Registry string
	Health   *node.Health
	Body     any
}

func (h *Handler) render(w http.ResponseWriter, r *http.Request, name, title string, body any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	data := layout{Title: title, Registry: h.n.Settings().Name, Health: h.n.Health(r.Context()), Body: body}
	if err := h.tmpl.ExecuteTemplate(w, name, data); err != nil {
		h.log.Error("rendering the dashboard", "page", name, "err", err)
	}
}

func (h *Handler) fail(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	switch registry.KindOf(err) {
	case registry.EINVALID:
		status = http.StatusBadRequest
	case registry.ENOTFOUND:
		status = http.StatusNotFound
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	h.tmpl.ExecuteTemplate(w, "error.html", layout{Title: "Error", Registry: h.n.Settings().Name, Body: registry.MessageOf(err)})
}

type indexPage struct {
	Params  node.ListParams
	Filters url.Values
	Page    *node.Page
	Next    string
}

func (h *Handler) index(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p, err := node.ParseListParams(q.Get)
	if err != nil {
		h.fail(w, err)
		return
	}
	page, err := h.n.List(r.Context(), p)
	if err != nil {
		h.fail(w, err)
		return
	}
	next := ""
	if page.NextCursor != "" {
		nq := url.Values{}
		for k, v := range q {
			nq[k] = v
		}
		nq.Set("cursor", page.NextCursor)
		next = "/ui/?" + nq.Encode()
	}
	h.render(w, r, "index.html", "Crates", indexPage{Params: p, Filters: q, Page: page, Next: next})
}

type cratePage struct {
	Release  *node.Release
	Reports  []node.ReportWithDetail
	Latest   *node.ReportWithDetail
	Versions []*node.Release
	Jobs     int
	Charts   crateCharts
	Badge    badgeSnippets
	// Confirmation compares the authorized testers' reports.
	Confirmation *node.Confirmation
}

// badgeSnippets are what a crate's README embeds to show its badge.
type badgeSnippets struct {
	SVG, Page, Markdown, HTML string
}

func badgesFor(r *http.Request, name string) badgeSnippets {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	base := scheme + "://" + r.Host
	svg := base + "/badges/" + url.PathEscape(name) + ".svg"
	page := base + "/ui/crates/" + url.PathEscape(name)
	return badgeSnippets{SVG: "/badges/" + url.PathEscape(name) + ".svg", Page: page,
		Markdown: "[![wasm](" + svg + ")](" + page + ")",
		HTML:     `<a href="` + page + `"><img alt="wasm" src="` + svg + `"></a>`}
}

func (h *Handler) crate(w http.ResponseWriter, r *http.Request) {
	tests, err := h.n.TestsFor(r.Context(), r.PathValue("id"))
	if err != nil {
		h.fail(w, err)
		return
	}
	versions, err := h.n.Versions(r.Context(), tests.Release.Name)
	if err != nil {
		h.fail(w, err)
		return
	}
	conf, err := h.n.Confirmation(r.Context(), tests.Release.Subject)
	if err != nil {
		h.fail(w, err)
		return
	}
	cp := cratePage{Release: tests.Release, Reports: tests.Reports, Versions: versions, Jobs: len(tests.Jobs), Confirmation: conf,
		Badge: badgesFor(r, tests.Release.Name)}
	for i := range tests.Reports {
		if tests.Reports[i].Trusted && tests.Reports[i].Current {
			cp.Latest = &tests.Reports[i]
			break
		}
	}
	if cp.Latest == nil && len(tests.Reports) > 0 {
		cp.Latest = &tests.Reports[0]
	}
	if cp.Latest != nil {
		cp.Charts = reportCharts(cp.Latest.Body)
	}
	cp.Charts.Score = scoreChart(versions)
	if cp.Charts.Matrix, err = h.matrix(r.Context(), versions); err != nil {
		h.fail(w, err)
		return
	}
	h.render(w, r, "crate.html", tests.Release.Subject, cp)
}

func (h *Handler) peers(w http.ResponseWriter, r *http.Request) {
	peers, err := h.n.Peers(r.Context())
	if err != nil {
		h.fail(w, err)
		return
	}
	claims, err := h.untrustedClaims(r)
	if err != nil {
		h.fail(w, err)
		return
	}
	h.render(w, r, "peers.html", "Federation", peersPage{Peers: peers, Scores: peerScores(peers), Claims: claims, ClaimsOf: claimWindow})
}

// claimWindow is how many of the newest releases the federation page
// looks through for untrusted claims, so that the page costs the same at
// any size of store.
const claimWindow = 200

// claimWarning is a release that keys this node does not trust tried to
// take: an untrusted release in its place, or a conflicting claim.
type claimWarning struct {
	Release *node.Release
	Claims  []node.ClaimInfo // the untrusted or backdated ones
}

// untrustedClaims lists, among the newest releases, those with a claim by
// a key this node does not trust, or a backdated one.
func (h *Handler) untrustedClaims(r *http.Request) ([]claimWarning, error) {
	page, err := h.n.List(r.Context(), node.ListParams{Limit: claimWindow})
	if err != nil {
		return nil, err
	}
	var out []claimWarning
	for _, rel := range page.Crates {
		var cw claimWarning
		for _, c := range rel.Claims {
			if !c.Authorized || c.Backdated {
				cw.Claims = append(cw.Claims, c)
			}
		}
		if rel.Unauthorized || len(cw.Claims) > 0 {
			cw.Release = rel
			out = append(out, cw)
		}
	}
	return out, nil
}

type peersPage struct {
	Peers    []rest.PeerInfo
	Scores   template.HTML
	Claims   []claimWarning
	ClaimsOf int
}

// peerScores draws each peer's score; gossipsub grays out and this node
// bans a peer whose score falls far below zero.
func peerScores(peers []rest.PeerInfo) template.HTML {
	if len(peers) == 0 {
		return ""
	}
	groups := make([]chart.Group, len(peers))
	for i, p := range peers {
		label := p.ID
		if len(label) > 20 {
			label = label[:8] + "…" + label[len(label)-6:]
		}
		groups[i] = chart.Group{Label: label, Values: []float64{max(0, p.Score)}}
	}
	return chart.Bars("Peer scores (below zero drawn as zero; the table has the exact value)", []chart.Series{{Name: "score"}}, groups, func(v float64) string { return fmt.Sprintf("%.2f", v) })
}

func humanBytes(n uint64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// fmtTime formats a time or a non-nil *time.Time for the dashboard.
func fmtTime(v any) string {
	switch t := v.(type) {
	case time.Time:
		return t.UTC().Format("2006-01-02 15:04 UTC")
	case *time.Time:
		if t != nil {
			return t.UTC().Format("2006-01-02 15:04 UTC")
		}
	}
	return ""
}
