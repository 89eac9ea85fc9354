package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/wasmrust/wasm-crates-registry/node"
	"github.com/wasmrust/wasm-crates-registry/node/api"
)

func (s *server) request(t *testing.T, method, path, auth string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, s.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, b
}

// privateReads are reads an open node serves to anyone.
var privateReads = []string{
	"/crates", "/crates/x@1.0.0", "/crates/x@1.0.0/versions", "/crates/x@1.0.0/download", "/crates/x/owners",
	"/registry", "/registry/state", "/peers", "/tests/x@1.0.0", "/log/checkpoint", "/log/entries", "/verify",
	"/records/bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", "/ui/", "/", "/no-such-endpoint",
}

// TestPrivateNodeRefusesAnonymousReads: with AuthRequired every read of
// the REST API and the dashboard needs a valid token: 401 with a Bearer
// challenge and the usual error JSON; GET and HEAD /health stay open for
// monitors; with the token the node answers as an open one would.
func TestPrivateNodeRefusesAnonymousReads(t *testing.T) {
	s := newServer(t, node.Config{}, api.Options{AuthRequired: true})
	open := newServer(t, node.Config{}, api.Options{})
	for _, p := range privateReads {
		for _, auth := range []string{"", "Bearer wrong-token", "wrong-token"} {
			st, h, b := s.request(t, "GET", p, auth, nil)
			var eb api.ErrorBody
			if st != http.StatusUnauthorized || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") ||
				json.Unmarshal(b, &eb) != nil || eb.Error.Code != "unauthorized" {
				t.Errorf("GET %s with Authorization %q on a private node: %d %q %s; want 401 with a Bearer challenge", p, auth, st, h.Get("WWW-Authenticate"), b)
			}
		}
		want, _, _ := open.request(t, "GET", p, "", nil)
		if st, _, b := s.request(t, "GET", p, "Bearer "+s.token, nil); st != want {
			t.Errorf("GET %s with the token on a private node: %d %s; an open node answers %d", p, st, b, want)
		}
	}
	for _, m := range []string{"GET", "HEAD"} {
		if st, _, _ := s.request(t, m, "/health", "", nil); st != http.StatusOK {
			t.Errorf("anonymous %s /health on a private node: %d, want 200", m, st)
		}
	}
	// /health is open only to reads.
	if st, _, _ := s.request(t, "POST", "/health", "", nil); st != http.StatusUnauthorized {
		t.Errorf("anonymous POST /health on a private node: %d, want 401", st)
	}
	// Writes are as before: a token is needed, and enough.
	if st, _, b := s.request(t, "PUT", "/registry", "Bearer "+s.token, []byte(`{"name":"private"}`)); st != http.StatusOK {
		t.Errorf("PUT /registry with the token on a private node: %d %s", st, b)
	}
	if st, _, _ := s.request(t, "PUT", "/registry", "", []byte(`{"name":"x"}`)); st != http.StatusUnauthorized {
		t.Errorf("anonymous PUT /registry on a private node: %d", st)
	}
}
