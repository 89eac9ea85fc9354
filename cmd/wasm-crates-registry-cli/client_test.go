package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/wasmrust/wasm-crates-registry/node"
	"github.com/wasmrust/wasm-crates-registry/node/api"
)

// recorder is an HTTP server that records the Authorization header of
// every request it gets, by path.
type recorder struct {
	mu   sync.Mutex
	seen map[string][]string
	srv  *httptest.Server
}

func newRecorder(t *testing.T, ip string, h func(w http.ResponseWriter, r *http.Request)) *recorder {
	t.Helper()
	rec := &recorder{seen: map[string][]string{}}
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Skipf("cannot listen on %s: %v", ip, err)
	}
	rec.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.seen[r.URL.Path] = append(rec.seen[r.URL.Path], r.Header.Get("Authorization"))
		rec.mu.Unlock()
		h(w, r)
	}))
	rec.srv.Listener.Close()
	rec.srv.Listener = ln
	rec.srv.Start()
	t.Cleanup(rec.srv.Close)
	return rec
}

func (rec *recorder) auth(path string) []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]string(nil), rec.seen[path]...)
}

func okJSON(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{}`)
}

// TestTokenOnlyOnWritesOfAnOpenNode: on an open node, reads go without the
// token and writes carry it.
func TestTokenOnlyOnWritesOfAnOpenNode(t *testing.T) {
	rec := newRecorder(t, "127.0.0.1", okJSON)
	c, err := newClient(rec.srv.URL, "secret", 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.getJSON(ctx, "/read", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.sendJSON(ctx, "POST", "/write", map[string]string{}, nil); err != nil {
		t.Fatal(err)
	}
	if got := rec.auth("/read"); len(got) != 1 || got[0] != "" {
		t.Errorf("a read on an open node sent Authorization %q", got)
	}
	if got := rec.auth("/write"); len(got) != 1 || got[0] != "Bearer secret" {
		t.Errorf("a write sent Authorization %q, want the token", got)
	}
}

// TestTokenOnReadsOfAPrivateNode: a read refused with 401 and a challenge
// is sent again with the token, and later reads carry it at once.
func TestTokenOnReadsOfAPrivateNode(t *testing.T) {
	rec := newRecorder(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer secret" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="wasm-crates-registry"`)
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":{"code":"unauthorized","message":"private"}}`)
			return
		}
		okJSON(w, r)
	})
	c, err := newClient(rec.srv.URL, "secret", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/first", "/second"} {
		if err := c.getJSON(context.Background(), p, nil); err != nil {
			t.Fatalf("GET %s: %v", p, err)
		}
	}
	if got := rec.auth("/first"); strings.Join(got, ",") != ",Bearer secret" {
		t.Errorf("first read: Authorization %q, want none then the token", got)
	}
	if got := rec.auth("/second"); strings.Join(got, ",") != "Bearer secret" {
		t.Errorf("second read: Authorization %q, want the token at once", got)
	}
}

// TestTokenNotSentAcrossOrigins: a redirect to another origin (here the
// same host on another port) loses the token; a redirect within the
// API's origin keeps it.
func TestTokenNotSentAcrossOrigins(t *testing.T) {
	other := newRecorder(t, "127.0.0.1", okJSON)
	var api *recorder
	api = newRecorder(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/away":
			http.Redirect(w, r, other.srv.URL+"/landed", http.StatusTemporaryRedirect)
		case "/here":
			http.Redirect(w, r, "/landed", http.StatusTemporaryRedirect)
		default:
			okJSON(w, r)
		}
	})
	c, err := newClient(api.srv.URL, "secret", 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, p := range []string{"/away", "/here"} {
		if err := c.sendJSON(ctx, "POST", p, map[string]string{}, nil); err != nil {
			t.Fatalf("POST %s: %v", p, err)
		}
	}
	if got := other.auth("/landed"); len(got) != 1 || got[0] != "" {
		t.Errorf("the other origin got Authorization %q", got)
	}
	if got := api.auth("/landed"); len(got) != 1 || got[0] != "Bearer secret" {
		t.Errorf("a redirect within the API's origin: Authorization %q, want the token", got)
	}
}

// TestAdminTokenFileStaysLocal: the admin-token file of --data-dir is sent
// to an API on a loopback address, never to one elsewhere.
func TestAdminTokenFileStaysLocal(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "admin-token"), []byte("local-admin\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var ip string
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			ip = n.IP.String()
			break
		}
	}
	if ip == "" {
		t.Skip("no non-loopback IPv4 address on this machine to stand for a remote node")
	}
	remote := newRecorder(t, ip, okJSON)
	local := newRecorder(t, "127.0.0.1", okJSON)
	for _, r := range []*recorder{remote, local} {
		if code, _ := runCLI(t, "--api", r.srv.URL, "--data-dir", dir, "peers", "remove", "12D3KooWSomePeer"); code != 0 {
			t.Fatalf("peers remove against %s: exit %d", r.srv.URL, code)
		}
	}
	if got := remote.auth("/peers/12D3KooWSomePeer"); len(got) != 1 || got[0] != "" {
		t.Errorf("an API at %s got the local admin token: %q", ip, got)
	}
	if got := local.auth("/peers/12D3KooWSomePeer"); len(got) != 1 || got[0] != "Bearer local-admin" {
		t.Errorf("the local API got Authorization %q, want the admin token", got)
	}
}

// TestCLIAgainstPrivateNode: against a real private node, the CLI lists
// crates with a token and fails clearly without one.
func TestCLIAgainstPrivateNode(t *testing.T) {
	dir := t.TempDir()
	n, err := node.Open(context.Background(), node.Config{DataDir: dir, Announce: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	srv := httptest.NewServer(api.NewWith(n, nil, api.Options{AuthRequired: true}))
	defer srv.Close()
	tok, err := os.ReadFile(filepath.Join(dir, node.AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	if code, out := runCLI(t, "--api", srv.URL, "--data-dir", t.TempDir(), "--json", "list"); code == 0 {
		t.Errorf("list without a token on a private node succeeded: %s", out)
	}
	if code, out := runCLI(t, "--api", srv.URL, "--token", strings.TrimSpace(string(tok)), "--json", "list"); code != 0 {
		t.Errorf("list with the token on a private node: exit %d %s", code, out)
	}
}
