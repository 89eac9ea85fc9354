package api

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// Hostile and empty inputs to the corpus endpoints: every answer is JSON
// with a 4xx code, never a 5xx, and nothing a client sends is echoed
// unbounded.
func TestCorpusEndpointsRefuseBadInput(t *testing.T) {
	f := newFixture(t)
	long := strings.Repeat("r", 100_000)
	for _, tc := range []struct {
		path   string
		status int
		code   string
	}{
		{"/corpus/runs", 200, ""},
		{"/corpus/report", 404, "not_found"},
		{"/corpus/report?run=" + url.QueryEscape("<script>"), 404, "not_found"},
		{"/corpus/report?run=" + long, 404, "not_found"},
		{"/corpus/regressions", 400, "invalid"},
		{"/corpus/regressions?from=a", 400, "invalid"},
		{"/corpus/regressions?from=a&to=b", 404, "not_found"},
		{"/corpus/confirmations", 200, ""},
		{"/tests/" + url.PathEscape("no@1.0.0") + "/confirmation", 404, "not_found"},
		{"/tests/" + url.PathEscape(long) + "/confirmation", 400, "invalid"},
		{"/tests/x@1.0.0/work", 501, "not_available"},
	} {
		resp, err := http.Get(f.srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%.60s: status %d, want %d: %.300s", tc.path, resp.StatusCode, tc.status, b)
			continue
		}
		if len(b) > 4096 {
			t.Errorf("%.60s: %d-byte answer", tc.path, len(b))
		}
		var e ErrorBody
		if tc.code != "" && (json.Unmarshal(b, &e) != nil || e.Error.Code != tc.code) {
			t.Errorf("%.60s: error %s, want code %s", tc.path, b, tc.code)
		}
	}
	resp, err := http.Post(f.srv.URL+"/corpus/runs", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Errorf("POST /corpus/runs: %d", resp.StatusCode)
	}
}
