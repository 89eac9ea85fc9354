package web

import (
	"net/http"

	"github.com/wasmrust/wasm-crates-registry/node"
)

type corpusPage struct {
	Runs          []node.RunInfo
	Report        *node.CorpusReport
	Regressions   *node.Regressions
	Confirmations *node.Confirmations
}

// corpus serves /ui/corpus: the runs, one run's report (?run=, default
// the newest), the regressions between two runs (?from=&to=) and the
// confirmed verdicts with the testers' agreement rates.
func (h *Handler) corpus(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := r.URL.Query()
	var p corpusPage
	var err error
	if p.Runs, err = h.n.CorpusRuns(ctx); err != nil {
		h.fail(w, err)
		return
	}
	if len(p.Runs) > 0 || q.Get("run") != "" {
		if p.Report, err = h.n.CorpusReport(ctx, q.Get("run")); err != nil {
			h.fail(w, err)
			return
		}
	}
	if q.Get("from") != "" || q.Get("to") != "" {
		if p.Regressions, err = h.n.CorpusRegressions(ctx, q.Get("from"), q.Get("to")); err != nil {
			h.fail(w, err)
			return
		}
	}
	if p.Confirmations, err = h.n.AllConfirmations(ctx); err != nil {
		h.fail(w, err)
		return
	}
	h.render(w, r, "corpus.html", "Corpus", p)
}
