package api

import (
	"testing"
)

// TestVerifyEndpoint: GET /verify says not_found until a verification ran;
// POST /verify needs a token, refuses a body that is not JSON with 400,
// and answers the report, which GET /verify and /health then show.
func TestVerifyEndpoint(t *testing.T) {
	f := newFixture(t)
	if r := f.do("POST", "/crates", crate(t, "checked", "1.0.0", ""), true); r.status != 201 {
		t.Fatalf("submit: %d %s", r.status, r.body)
	}
	if r := f.do("GET", "/verify", nil, false); r.status != 404 || r.errCode(t) != "not_found" {
		t.Fatalf("GET /verify before any verification: %d %s", r.status, r.body)
	}
	if r := f.do("POST", "/verify", nil, false); r.status != 401 {
		t.Fatalf("POST /verify without a token: %d %s", r.status, r.body)
	}
	for _, junk := range []string{"{", "[]", `{"x":1}`, "\x00\xff"} {
		if r := f.do("POST", "/verify", []byte(junk), true); r.status != 400 {
			t.Fatalf("POST /verify with body %q: %d %s", junk, r.status, r.body)
		}
	}
	var rep struct {
		Records  int64 `json:"records_checked"`
		Blobs    int64 `json:"blobs_checked"`
		Complete bool  `json:"complete"`
		Trigger  string
		Damaged  []any `json:"damaged"`
	}
	r := f.do("POST", "/verify", nil, true)
	if r.status != 200 {
		t.Fatalf("POST /verify: %d %s", r.status, r.body)
	}
	r.json(t, &rep)
	if rep.Records != 1 || rep.Blobs != 1 || !rep.Complete || rep.Damaged == nil || len(rep.Damaged) != 0 || rep.Trigger != "api" {
		t.Fatalf("report = %s", r.body)
	}
	if r := f.do("GET", "/verify", nil, false); r.status != 200 {
		t.Fatalf("GET /verify: %d %s", r.status, r.body)
	}
	var h struct {
		Scrub *struct {
			Records int64 `json:"records_checked"`
			Damaged int   `json:"damaged"`
		} `json:"scrub"`
	}
	f.do("GET", "/health", nil, false).json(t, &h)
	if h.Scrub == nil || h.Scrub.Records != 1 || h.Scrub.Damaged != 0 {
		t.Fatalf("health scrub = %+v", h.Scrub)
	}
}
