package api_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/federation"
	"github.com/wasmrust/wasm-crates-registry/internal/testkit"
	"github.com/wasmrust/wasm-crates-registry/node"
	"github.com/wasmrust/wasm-crates-registry/node/api"
	"github.com/wasmrust/wasm-crates-registry/node/cargo"
	"github.com/wasmrust/wasm-crates-registry/node/web"
)

// logBuffer collects a node's slog output for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// errors returns the log lines at level ERROR.
func (l *logBuffer) errors() []string {
	var out []string
	for _, line := range strings.Split(l.String(), "\n") {
		if strings.Contains(line, "level=ERROR") {
			out = append(out, line)
		}
	}
	return out
}

// server is a node served as the daemon serves it: the REST API with the
// Cargo protocols and the dashboard mounted, every log line captured.
type server struct {
	n     *node.Node
	url   string
	addr  string
	token string
	log   *logBuffer
}

func newServer(t testing.TB, cfg node.Config, opt api.Options) *server {
	t.Helper()
	dir := t.TempDir()
	cfg.DataDir = dir
	cfg.Announce = io.Discard
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.Logger = log
	n, err := node.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	tok, err := os.ReadFile(filepath.Join(dir, node.AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	srv := api.NewWith(n, log, opt)
	ch, err := cargo.New(n, cargo.Config{Logger: log, AuthRequired: opt.AuthRequired})
	if err != nil {
		t.Fatal(err)
	}
	ch.Mount(srv.Mount)
	srv.Mount("/ui/", web.New(n, log))
	hs := httptest.NewUnstartedServer(srv)
	hs.Config.ReadHeaderTimeout = 10 * time.Second
	hs.Start()
	t.Cleanup(hs.Close)
	return &server{n: n, url: hs.URL, addr: hs.Listener.Addr().String(), token: strings.TrimSpace(string(tok)), log: logs}
}

// endpoint is a request that carries a body.
type endpoint struct {
	method, path string
	cargo        bool // Cargo's web API: raw token, Cargo's error JSON
	reads        bool // the endpoint reads the body before anything else
}

// bodyEndpoints are all the endpoints that take a request body, and some
// that ignore one.
var bodyEndpoints = []endpoint{
	{"POST", "/crates", false, true},
	{"PUT", "/crates/x@1.0.0", false, true},
	{"PUT", "/crates/x/owners", false, true},
	{"POST", "/records", false, true},
	{"PUT", "/registry", false, true},
	{"POST", "/registry/sync", false, true},
	{"POST", "/peers", false, true},
	{"POST", "/verify", false, true},
	{"PUT", "/api/v1/crates/new", true, true},
	{"PUT", "/wasm/api/v1/crates/new", true, true},
	{"PUT", "/api/v1/crates/x/owners", true, true},
	{"DELETE", "/api/v1/crates/x/owners", true, true},
	// These take no body; one sent anyway must not hold the connection.
	{"POST", "/tests/x@1.0.0", false, false},
	{"DELETE", "/crates/x@1.0.0", false, false},
	{"PUT", "/api/v1/crates/x/1.0.0/unyank", true, false},
}

func (s *server) authHeader(e endpoint) string {
	if e.cargo {
		return s.token
	}
	return "Bearer " + s.token
}

// outcome is what a raw request got: a response, or a closed connection.
type outcome struct {
	status int
	header http.Header
	body   []byte
	cut    bool
}

func (o outcome) String() string {
	if o.cut {
		return "connection cut"
	}
	return fmt.Sprintf("%d %s", o.status, bytes.TrimSpace(o.body))
}

// raw sends head and body on a fresh TCP connection from the local address
// local ("" for any), runs then (half-close, stall, trickle), and reads the
// answer. A connection the node neither answers nor closes within wait
// fails the test.
func raw(t *testing.T, addr, local, head string, body []byte, then func(c *net.TCPConn), wait time.Duration) outcome {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tc := c.(*net.TCPConn)
	if _, err := tc.Write(append([]byte(head), body...)); err != nil {
		t.Fatal(err)
	}
	if then != nil {
		then(tc)
	}
	tc.SetReadDeadline(time.Now().Add(wait))
	res, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the node neither answered nor closed the connection within %v", wait)
		}
		return outcome{cut: true}
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return outcome{status: res.StatusCode, header: res.Header, body: b}
}

func head(e endpoint, host, auth string, hdr ...string) string {
	h := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\nContent-Type: application/json\r\n", e.method, e.path, host, auth)
	for _, x := range hdr {
		h += x + "\r\n"
	}
	return h + "\r\n"
}

func halfClose(c *net.TCPConn) { c.CloseWrite() }

// checkRefused checks the answer to a broken body: 400 with the error JSON
// of the endpoint's protocol for an endpoint that reads it, never a 500.
func checkRefused(t *testing.T, e endpoint, what string, o outcome, allowCut bool) {
	t.Helper()
	switch {
	case o.cut && allowCut:
	case o.cut:
		t.Errorf("%s %s, %s: the connection was cut without an answer", e.method, e.path, what)
	case o.status == http.StatusInternalServerError:
		t.Errorf("%s %s, %s: 500 %s", e.method, e.path, what, o.body)
	case !e.reads:
	case o.status != http.StatusBadRequest:
		t.Errorf("%s %s, %s: %s; want 400", e.method, e.path, what, o)
	case e.cargo:
		var eb cargo.ErrorBody
		if json.Unmarshal(o.body, &eb) != nil || len(eb.Errors) != 1 || !strings.Contains(eb.Errors[0].Detail, "body") {
			t.Errorf("%s %s, %s: body %s is not Cargo's error JSON about the body", e.method, e.path, what, o.body)
		}
	default:
		var eb api.ErrorBody
		if json.Unmarshal(o.body, &eb) != nil || eb.Error.Code != "invalid" || !strings.Contains(eb.Error.Message, "body") {
			t.Errorf("%s %s, %s: body %s is not the invalid error JSON about the body", e.method, e.path, what, o.body)
		}
	}
}

// TestBrokenBodiesAre400: on every endpoint that takes a body, a body
// shorter than its Content-Length and a malformed chunked encoding are the
// client's fault: 400 with the usual error JSON, nothing logged at ERROR.
func TestBrokenBodiesAre400(t *testing.T) {
	s := newServer(t, node.Config{}, api.Options{})
	for _, e := range bodyEndpoints {
		h := head(e, s.addr, s.authHeader(e), "Content-Length: 1000")
		o := raw(t, s.addr, "", h, []byte(`{"a`), halfClose, 10*time.Second)
		checkRefused(t, e, "truncated body", o, false)

		h = head(e, s.addr, s.authHeader(e), "Transfer-Encoding: chunked")
		o = raw(t, s.addr, "", h, []byte("3\r\n{\"a\r\nzz-not-hex\r\n"), nil, 10*time.Second)
		checkRefused(t, e, "broken chunked encoding", o, false)
	}
	if errs := s.log.errors(); len(errs) > 0 {
		t.Errorf("broken bodies were logged as errors of the node:\n%s", strings.Join(errs, "\n"))
	}
}

// TestStalledBodyIsCut: a client that sends 3 of 1,000 declared bytes and
// stops is answered 400 or cut once the body's idle timeout passes, on
// every endpoint, with nothing logged at ERROR; so is a client that
// trickles a byte at a time, under the idle timeout but below the minimum
// rate once the grace period is over.
func TestStalledBodyIsCut(t *testing.T) {
	bt := api.BodyTimeouts{Idle: 200 * time.Millisecond, Grace: time.Second, MinRate: 4 << 10}
	s := newServer(t, node.Config{}, api.Options{Body: bt})
	for _, e := range bodyEndpoints {
		h := head(e, s.addr, s.authHeader(e), "Content-Length: 1000")
		o := raw(t, s.addr, "", h, []byte(`{"a`), nil, 10*time.Second)
		checkRefused(t, e, "stalled body", o, true)
	}
	e := bodyEndpoints[0]
	h := head(e, s.addr, s.authHeader(e), "Content-Length: 60000")
	trickle := func(c *net.TCPConn) {
		// 10 s at 20 bytes/s: ten times the grace period.
		for i := 0; i < 200; i++ {
			time.Sleep(bt.Idle / 4)
			if _, err := c.Write([]byte{' '}); err != nil {
				return // cut
			}
		}
		t.Errorf("a body trickling at 20 bytes/s was not cut in 10 s")
	}
	o := raw(t, s.addr, "", h, []byte(`{"a`), trickle, 10*time.Second)
	checkRefused(t, e, "trickled body", o, true)
	if errs := s.log.errors(); len(errs) > 0 {
		t.Errorf("stalled bodies were logged as errors of the node:\n%s", strings.Join(errs, "\n"))
	}
}

// TestSteadyUploadWithPausesIsServed: a body that takes several times the
// idle timeout, with pauses shorter than it, within the grace period, is
// not cut: the deadline follows progress.
func TestSteadyUploadWithPausesIsServed(t *testing.T) {
	bt := api.BodyTimeouts{Idle: time.Second, Grace: 30 * time.Second, MinRate: 4 << 10}
	s := newServer(t, node.Config{}, api.Options{Body: bt})
	body := []byte(`{"name": "renamed"}`)
	e := endpoint{"PUT", "/registry", false, true}
	h := head(e, s.addr, s.authHeader(e), "Content-Length: "+strconv.Itoa(len(body)))
	o := raw(t, s.addr, "", h, body[:5], func(c *net.TCPConn) {
		for _, b := range body[5:] {
			time.Sleep(bt.Idle / 5)
			c.Write([]byte{b})
		}
	}, 30*time.Second)
	if o.status != http.StatusOK {
		t.Fatalf("a slow, steady body: %s", o)
	}
}

// TestTooLargeIsNotAnError: a body over the endpoint's limit is 413 and is
// not logged at ERROR, with or without a Content-Length.
func TestTooLargeIsNotAnError(t *testing.T) {
	s := newServer(t, node.Config{MaxCrateSize: 4 << 10}, api.Options{})
	big := bytes.Repeat([]byte("x"), registry.MaxRecordSize+100<<10)
	for _, e := range []endpoint{{"POST", "/crates", false, true}, {"PUT", "/registry", false, true}, {"POST", "/records", false, true}, {"PUT", "/api/v1/crates/x/owners", true, true}} {
		h := head(e, s.addr, s.authHeader(e), "Transfer-Encoding: chunked")
		chunked := append([]byte(strconv.FormatInt(int64(len(big)), 16)+"\r\n"), big...)
		chunked = append(chunked, "\r\n0\r\n\r\n"...)
		o := raw(t, s.addr, "", h, chunked, nil, 10*time.Second)
		if o.status != http.StatusRequestEntityTooLarge {
			t.Errorf("%s %s with a %d-byte body: %s; want 413", e.method, e.path, len(big), o)
		}
	}
	if errs := s.log.errors(); len(errs) > 0 {
		t.Errorf("413s were logged as errors of the node:\n%s", strings.Join(errs, "\n"))
	}
}

// TestNoPeerIsTemporary: a federated node with no peer connected answers a
// sync with 503 and Retry-After (it may work later), while a node without
// federation says 501 (it never will, as configured).
func TestNoPeerIsTemporary(t *testing.T) {
	fed := newServer(t, node.Config{Network: node.Federation(federation.Config{
		Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Network: "hardening-test", SyncInterval: -1})}, api.Options{})
	e := endpoint{"POST", "/registry/sync", false, true}
	o := raw(t, fed.addr, "", head(e, fed.addr, fed.authHeader(e), "Content-Length: 0"), nil, nil, 30*time.Second)
	var eb api.ErrorBody
	json.Unmarshal(o.body, &eb)
	if o.status != http.StatusServiceUnavailable || o.header.Get("Retry-After") == "" || eb.Error.Code != "temporarily_unavailable" {
		t.Errorf("sync with no peer: %s, Retry-After %q; want 503 temporarily_unavailable with Retry-After", o, o.header.Get("Retry-After"))
	}
	alone := newServer(t, node.Config{}, api.Options{})
	o = raw(t, alone.addr, "", head(e, alone.addr, alone.authHeader(e), "Content-Length: 0"), nil, nil, 30*time.Second)
	if o.status != http.StatusNotImplemented || o.header.Get("Retry-After") != "" {
		t.Errorf("sync on a node without federation: %s, Retry-After %q; want 501 without Retry-After", o, o.header.Get("Retry-After"))
	}
}

// get sends a GET from the local address local with an optional
// Authorization header and returns the status, Retry-After and error code.
func get(t *testing.T, s *server, local, path, auth string) (int, string, string) {
	t.Helper()
	h := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", path, s.addr)
	if auth != "" {
		h += "Authorization: " + auth + "\r\n"
	}
	o := raw(t, s.addr, local, h+"\r\n", nil, nil, 10*time.Second)
	var code string
	if o.status == http.StatusTooManyRequests {
		var eb api.ErrorBody
		if err := json.Unmarshal(o.body, &eb); err != nil {
			t.Fatalf("429 without the error JSON: %s", o.body)
		}
		code = eb.Error.Code
	}
	return o.status, o.header.Get("Retry-After"), code
}

// TestRateLimitPerAddress: under a concurrent flood from one address, that
// address gets 429 with Retry-After and the busy error JSON once its burst
// is spent, while another address, asking at the same time, is served
// every time. Counted statuses, no timing: the refill rate is far below
// one request per test run.
func TestRateLimitPerAddress(t *testing.T) {
	const burst = 10
	s := newServer(t, node.Config{}, api.Options{Rate: api.RateLimits{PerAddr: 0.001, AddrBurst: burst}})
	var mu sync.Mutex
	counts := map[string]map[int]int{"127.0.0.1": {}, "127.0.0.2": {}}
	var wg sync.WaitGroup
	ask := func(ip string, n int) {
		defer wg.Done()
		for i := 0; i < n; i++ {
			st, ra, code := get(t, s, ip, "/crates", "")
			if st == http.StatusTooManyRequests {
				if n, err := strconv.Atoi(ra); err != nil || n < 1 {
					t.Errorf("429 with Retry-After %q, want whole seconds >= 1", ra)
				}
				if code != "busy" {
					t.Errorf("429 with error code %q, want busy", code)
				}
			}
			mu.Lock()
			counts[ip][st]++
			mu.Unlock()
		}
	}
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go ask("127.0.0.1", 5*burst)
	}
	wg.Add(1)
	go ask("127.0.0.2", burst)
	wg.Wait()
	if counts["127.0.0.1"][200] != burst || counts["127.0.0.1"][429] != 19*burst {
		t.Errorf("flooding client: %v; want %d × 200 and %d × 429", counts["127.0.0.1"], burst, 19*burst)
	}
	if counts["127.0.0.2"][200] != burst || len(counts["127.0.0.2"]) != 1 {
		t.Errorf("other client: %v; want every request served", counts["127.0.0.2"])
	}
}

// TestRateLimitPerToken: a token over its limit gets 429 on reads and
// writes, another token from the same address is unaffected, and a flood
// of bogus tokens is limited per address too.
func TestRateLimitPerToken(t *testing.T) {
	const burst = 5
	s := newServer(t, node.Config{}, api.Options{Rate: api.RateLimits{PerToken: 0.001, TokenBurst: burst}})
	// Reads are open, so any credential is served: the limit is on what is
	// presented, valid or not.
	other := "another-credential"
	counts := map[string]map[int]int{"admin": {}, "other": {}}
	for i := 0; i < 3*burst; i++ {
		st, ra, _ := get(t, s, "", "/crates", "Bearer "+s.token)
		counts["admin"][st]++
		if st == http.StatusTooManyRequests && ra == "" {
			t.Errorf("429 without Retry-After")
		}
		if i%3 == 0 {
			st, _, _ := get(t, s, "", "/crates", "Bearer "+other)
			counts["other"][st]++
		}
	}
	if counts["admin"][200] != burst || counts["admin"][429] != 2*burst {
		t.Errorf("flooding token: %v; want %d × 200 then %d × 429", counts["admin"], burst, 2*burst)
	}
	if counts["other"][200] != burst || len(counts["other"]) != 1 {
		t.Errorf("other token: %v; want every request served", counts["other"])
	}
	// The same token on the raw Cargo form is the same credential, and
	// Cargo's paths answer in Cargo's error format.
	h := fmt.Sprintf("GET /api/v1/crates?q=x HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\nConnection: close\r\n\r\n", s.addr, s.token)
	o := raw(t, s.addr, "", h, nil, nil, 10*time.Second)
	var eb cargo.ErrorBody
	if o.status != http.StatusTooManyRequests || o.header.Get("Retry-After") == "" || json.Unmarshal(o.body, &eb) != nil || len(eb.Errors) != 1 {
		t.Errorf("the exhausted token, sent as Cargo sends it: %s, Retry-After %q; want 429 in Cargo's error format", o, o.header.Get("Retry-After"))
	}
}

// TestRateLimitPerAddressCatchesBogusTokens: fresh bogus tokens get fresh
// token buckets, but every request is charged to its address too.
func TestRateLimitPerAddressCatchesBogusTokens(t *testing.T) {
	s := newServer(t, node.Config{}, api.Options{Rate: api.RateLimits{PerAddr: 0.001, AddrBurst: 5, PerToken: 100, TokenBurst: 100}})
	limited := 0
	for i := 0; i < 20; i++ {
		st, _, _ := get(t, s, "", "/crates", fmt.Sprintf("Bearer bogus-%d", i))
		if st == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited != 15 {
		t.Errorf("20 requests with fresh bogus tokens from one address: %d limited, want 15", limited)
	}
}

// BenchmarkRateLimitUnderLoad: 8 connections from 127.0.0.1 flood GET
// /crates as fast as they can, while one client on 127.0.0.2 asks once per
// 10 ms; with a limit of 200 requests/s per address, and without limits
// for comparison. It reports the share of the flood refused with 429, the
// polite client's share of 200s and its 99th-percentile latency.
func BenchmarkRateLimitUnderLoad(b *testing.B) {
	b.Run("limit-200/s", func(b *testing.B) { benchFlood(b, api.RateLimits{PerAddr: 200, AddrBurst: 200}) })
	b.Run("no-limit", func(b *testing.B) { benchFlood(b, api.RateLimits{}) })
}

func benchFlood(b *testing.B, rl api.RateLimits) {
	s := newServer(b, node.Config{}, api.Options{Rate: rl})
	client := func(local string) *http.Client {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 16}}
	}
	flood, polite := client("127.0.0.1"), client("127.0.0.2")
	var mu sync.Mutex
	counts := map[int]int{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				res, err := flood.Get(s.url + "/crates")
				if err != nil {
					continue
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				mu.Lock()
				counts[res.StatusCode]++
				mu.Unlock()
			}
		}()
	}
	var lat []time.Duration
	ok := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		res, err := polite.Get(s.url + "/crates")
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		lat = append(lat, time.Since(start))
		if res.StatusCode == 200 {
			ok++
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.StopTimer()
	close(stop)
	wg.Wait()
	slices.Sort(lat)
	total := counts[200] + counts[429]
	b.ReportMetric(float64(counts[429])/float64(max(total, 1)), "flood-429-share")
	b.ReportMetric(float64(total), "flood-requests")
	b.ReportMetric(float64(ok)/float64(b.N), "polite-200-share")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "polite-p99-ms")
}

// bigCrate is a valid .crate of about size bytes that gzip cannot shrink.
func bigCrate(t testing.TB, name string, size int) []byte {
	t.Helper()
	noise := make([]byte, size)
	rand.Read(noise)
	return testkit.Crate(name, "1.0.0", map[string]string{"src/lib.rs": "pub fn f() {}\n", "noise.bin": string(noise)},
		testkit.Description("large"))
}

// TestStalledReaderIsCut: a client that asks for a large download and
// stops reading is cut once the write has made no progress for the idle
// timeout (plus its size at the minimum rate), instead of holding the
// connection and its buffers forever; a client that reads gets it whole.
func TestStalledReaderIsCut(t *testing.T) {
	const size = 24 << 20
	bt := api.BodyTimeouts{Idle: 300 * time.Millisecond, Grace: 30 * time.Second, MinRate: 32 << 20}
	s := newServer(t, node.Config{MaxCrateSize: 32 << 20}, api.Options{Body: bt})
	crate := bigCrate(t, "big", size)
	if st, _, b := s.request(t, "POST", "/crates", "Bearer "+s.token, crate); st != http.StatusCreated {
		t.Fatalf("publishing the large crate: %d %s", st, b)
	}
	fetch := func(stall time.Duration) (int, error) {
		c, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "GET /crates/big@1.0.0/download HTTP/1.1\r\nHost: x\r\n\r\n")
		time.Sleep(stall)
		c.SetReadDeadline(time.Now().Add(15 * time.Second))
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return 0, err
		}
		defer res.Body.Close()
		n, err := io.Copy(io.Discard, res.Body)
		return int(n), err
	}
	if n, err := fetch(0); err != nil || n != len(crate) {
		t.Fatalf("a reading client got %d of %d bytes: %v", n, len(crate), err)
	}
	// The socket buffers take ~10 MiB; the rest waits on the client.
	n, err := fetch(5 * time.Second)
	if err == nil && n == len(crate) {
		t.Fatalf("a client that stopped reading for 5 s still got all %d bytes: the write was never cut", n)
	}
	t.Logf("the stalled reader got %d of %d bytes, then: %v", n, len(crate), err)
}
