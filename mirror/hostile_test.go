package mirror

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// fakeIndex is a real HTTP server playing an upstream index; each test
// sets what it answers. (httptest is a real server on 127.0.0.1; the
// hostile answers are the point, so no stock server can play them.)
type fakeIndex struct {
	srv      *httptest.Server
	requests atomic.Int64
	handler  http.HandlerFunc
}

func newFakeIndex(t *testing.T, h http.HandlerFunc) *fakeIndex {
	t.Helper()
	f := &fakeIndex{handler: h}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.requests.Add(1)
		f.handler(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeIndex) upstream(t *testing.T, cfg Config) *Upstream {
	t.Helper()
	cfg.URL = f.srv.URL + "/index/"
	u, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func cksumOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func line(name, vers, cksum string) string {
	return fmt.Sprintf(`{"name":%q,"vers":%q,"deps":[],"cksum":%q,"features":{},"yanked":false}`, name, vers, cksum)
}

func wantKind(t *testing.T, err error, kind registry.ErrorKind, contains string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want %s", kind)
	}
	if registry.KindOf(err) != kind {
		t.Fatalf("error kind %s (%v); want %s", registry.KindOf(err), err, kind)
	}
	if contains != "" && !strings.Contains(err.Error(), contains) {
		t.Fatalf("error %q does not say %q", err, contains)
	}
}

var zeroSum = strings.Repeat("0", 64)

func TestHostileIndexFiles(t *testing.T) {
	good := line("itoa", "1.0.1", zeroSum)
	cases := []struct {
		name, body, want string
	}{
		{"not json", good + "\n{\"name\":\"itoa\",\n", "not a JSON object"},
		{"array line", "[1,2]\n", "not a JSON object"},
		{"duplicate key", `{"name":"itoa","name":"itoa","vers":"1.0.1","deps":[],"cksum":"` + zeroSum + `","features":{},"yanked":false}`, "appears twice"},
		{"not utf-8", `{"name":"itoa","vers":"1.0.1","deps":[],"cksum":"` + zeroSum + `","features":{"` + "\xff" + `":[]},"yanked":false}`, "not UTF-8"},
		{"other crate", line("serde", "1.0.0", zeroSum), "names crate"},
		{"traversal name", line("../../etc/passwd", "1.0.0", zeroSum), "names crate"},
		{"two spellings", good + "\n" + line("Itoa", "1.0.2", zeroSum), "spells the crate"},
		{"bad version", line("itoa", "1.0", zeroSum), "not a semantic version"},
		{"duplicate version", good + "\n" + good, "appears twice"},
		{"bad cksum", line("itoa", "1.0.1", "abc"), "cksum"},
		{"uppercase cksum", line("itoa", "1.0.1", strings.Repeat("A", 64)), "cksum"},
		{"no yanked", `{"name":"itoa","vers":"1.0.1","deps":[],"cksum":"` + zeroSum + `","features":{}}`, "yanked"},
		{"wrong type", `{"name":"itoa","vers":1,"cksum":"` + zeroSum + `","yanked":false}`, "wrong type"},
		{"bad dep", `{"name":"itoa","vers":"1.0.1","deps":[{"name":"../x","req":"1"}],"cksum":"` + zeroSum + `","features":{},"yanked":false}`, "not a crate name"},
		{"empty", "\n\n", "no lines"},
		{"huge line", `{"name":"itoa","vers":"1.0.1","cksum":"` + zeroSum + `","yanked":false,"x":"` + strings.Repeat("a", registry.MaxUpstreamLine) + `"}`, "bytes long"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeIndex(t, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/index/it/oa/itoa" {
					http.NotFound(w, r)
					return
				}
				fmt.Fprint(w, c.body)
			})
			_, err := f.upstream(t, Config{}).Index(context.Background(), "itoa", Validators{})
			wantKind(t, err, registry.EINVALID, c.want)
		})
	}
	// The same server with a good file: the cases above fail for their
	// content alone.
	f := newFakeIndex(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, good+"\n") })
	idx, err := f.upstream(t, Config{}).Index(context.Background(), "itoa", Validators{})
	if err != nil || len(idx.Lines) != 1 || idx.Lines[0].Raw != good {
		t.Fatalf("good file: %+v, %v", idx, err)
	}
}

func TestHostileNamesMakeNoRequest(t *testing.T) {
	f := newFakeIndex(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "{}") })
	u := f.upstream(t, Config{})
	for _, name := range []string{"../config.json", "a/b", "..", "%2e%2e", "itoa?x=1", "", strings.Repeat("a", 65), "ит"} {
		_, err := u.Index(context.Background(), name, Validators{})
		wantKind(t, err, registry.EINVALID, "")
		_, err = u.Crate(context.Background(), name, "1.0.0", zeroSum)
		wantKind(t, err, registry.EINVALID, "")
	}
	for _, v := range []string{"../../x", "1.0.0/../../x", "1.0"} {
		_, err := u.Crate(context.Background(), "itoa", v, zeroSum)
		wantKind(t, err, registry.EINVALID, "")
	}
	_, err := u.Crate(context.Background(), "itoa", "1.0.0", "../"+zeroSum[3:])
	wantKind(t, err, registry.EINVALID, "")
	if n := f.requests.Load(); n != 0 {
		t.Fatalf("%d requests reached the upstream", n)
	}
}

func TestHugeAnswersAreCut(t *testing.T) {
	big := strings.Repeat(line("itoa", "1.0.1", zeroSum)+"\n", 1) + strings.Repeat(" ", 4096)
	for _, chunked := range []bool{false, true} {
		f := newFakeIndex(t, func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "config.json") {
				fmt.Fprintf(w, `{"dl":"http://%s/dl"}`, r.Host)
				return
			}
			if chunked {
				w.(http.Flusher).Flush() // no Content-Length
			}
			fmt.Fprint(w, big)
		})
		u := f.upstream(t, Config{MaxIndexBytes: 1024, MaxCrateBytes: 1024})
		_, err := u.Index(context.Background(), "itoa", Validators{})
		wantKind(t, err, registry.ETOOLARGE, "1024")
		_, err = u.Crate(context.Background(), "itoa", "1.0.1", cksumOf([]byte(big)))
		wantKind(t, err, registry.ETOOLARGE, "1024")
		// Within the caps the same answers pass.
		u = f.upstream(t, Config{})
		if _, err := u.Index(context.Background(), "itoa", Validators{}); err != nil {
			t.Fatal(err)
		}
		if _, err := u.Crate(context.Background(), "itoa", "1.0.1", cksumOf([]byte(big))); err != nil {
			t.Fatal(err)
		}
	}
}

func TestTooManyVersionsAreRefused(t *testing.T) {
	var b strings.Builder
	for i := range 11 {
		b.WriteString(line("itoa", fmt.Sprintf("1.0.%d", i), zeroSum) + "\n")
	}
	f := newFakeIndex(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, b.String()) })
	_, err := f.upstream(t, Config{MaxVersions: 10}).Index(context.Background(), "itoa", Validators{})
	wantKind(t, err, registry.ETOOLARGE, "more than 10 versions")
	if idx, err := f.upstream(t, Config{MaxVersions: 11}).Index(context.Background(), "itoa", Validators{}); err != nil || len(idx.Lines) != 11 {
		t.Fatalf("11 versions with a cap of 11: %v", err)
	}
}

func TestSlowUpstreamTimesOut(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	for _, stage := range []string{"headers", "body"} {
		f := newFakeIndex(t, func(w http.ResponseWriter, r *http.Request) {
			if stage == "body" {
				w.Header().Set("Content-Length", "1000")
				w.WriteHeader(200)
				fmt.Fprint(w, "{")
				w.(http.Flusher).Flush()
			}
			select {
			case <-release:
			case <-r.Context().Done():
			}
		})
		_, err := f.upstream(t, Config{Timeout: 200 * time.Millisecond}).Index(context.Background(), "itoa", Validators{})
		wantKind(t, err, registry.ETIMEOUT, "")
	}
}

func TestRedirectsStayOnTheHost(t *testing.T) {
	elsewhere := newFakeIndex(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, line("itoa", "1.0.1", zeroSum)) })
	f := newFakeIndex(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/index/it/oa/itoa":
			http.Redirect(w, r, elsewhere.srv.URL+r.URL.Path, http.StatusFound)
		case "/index/3/r/rel":
			http.Redirect(w, r, "/moved/rel", http.StatusMovedPermanently)
		case "/moved/rel":
			fmt.Fprint(w, line("rel", "1.0.0", zeroSum))
		case "/index/lo/op/loop":
			http.Redirect(w, r, r.URL.Path, http.StatusFound)
		}
	})
	u := f.upstream(t, Config{})
	_, err := u.Index(context.Background(), "itoa", Validators{})
	wantKind(t, err, registry.EFORBIDDEN, "another origin")
	if elsewhere.requests.Load() != 0 {
		t.Fatal("the redirect to another host was followed")
	}
	_, err = u.Index(context.Background(), "loop", Validators{})
	wantKind(t, err, registry.EFORBIDDEN, "more than")
	idx, err := u.Index(context.Background(), "rel", Validators{})
	if err != nil || len(idx.Lines) != 1 {
		t.Fatalf("same-host redirect: %v", err)
	}
}

func TestWrongChecksumIsRefused(t *testing.T) {
	archive := []byte("the archive's bytes")
	var dl string
	f := newFakeIndex(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/index/config.json":
			fmt.Fprint(w, dl)
		case "/crates/itoa/itoa-1.0.1.crate", "/api/itoa/1.0.1/download":
			w.Write(archive)
		default:
			http.NotFound(w, r)
		}
	})
	dl = `{"dl":"` + f.srv.URL + `/crates/{crate}/{crate}-{version}.crate"}`
	u := f.upstream(t, Config{})
	_, err := u.Crate(context.Background(), "itoa", "1.0.1", cksumOf([]byte("other bytes")))
	wantKind(t, err, registry.EINVALID, "not the index's cksum")
	b, err := u.Crate(context.Background(), "itoa", "1.0.1", cksumOf(archive))
	if err != nil || string(b) != string(archive) {
		t.Fatalf("right checksum: %q, %v", b, err)
	}
	_, err = u.Crate(context.Background(), "itoa", "9.9.9", cksumOf(archive))
	wantKind(t, err, registry.ENOTFOUND, "")

	// A dl without markers gets Cargo's default suffix.
	dl = `{"dl":"` + f.srv.URL + `/api"}`
	u = f.upstream(t, Config{})
	if _, err := u.Crate(context.Background(), "itoa", "1.0.1", cksumOf(archive)); err != nil {
		t.Fatal(err)
	}
	// dl that is not an http(s) URL, auth-required and garbage are refused.
	for c, want := range map[string]registry.ErrorKind{
		`{"dl":"file:///etc/passwd"}`:                         registry.ETEMPORARY,
		`{"dl":"javascript:alert(1)"}`:                        registry.ETEMPORARY,
		`{"dl":"http://u:p@example.org/"}`:                    registry.ETEMPORARY,
		`{"dl":"` + f.srv.URL + `/api","auth-required":true}`: registry.EUNSUPPORTED,
		`not json`: registry.ETEMPORARY,
	} {
		dl = c
		_, err := f.upstream(t, Config{}).Crate(context.Background(), "itoa", "1.0.1", cksumOf(archive))
		wantKind(t, err, want, "")
	}
}

func TestConditionalRefresh(t *testing.T) {
	body := line("itoa", "1.0.1", zeroSum) + "\n"
	f := newFakeIndex(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Last-Modified", "Mon, 02 Jan 2006 15:04:05 GMT")
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprint(w, body)
	})
	u := f.upstream(t, Config{})
	idx, err := u.Index(context.Background(), "itoa", Validators{})
	if err != nil || idx.NotModified || idx.Validators.ETag != `"v1"` {
		t.Fatalf("%+v %v", idx, err)
	}
	again, err := u.Index(context.Background(), "itoa", idx.Validators)
	if err != nil || !again.NotModified || len(again.Lines) != 0 {
		t.Fatalf("%+v %v", again, err)
	}
	// 304 to an unconditional request is the upstream's error.
	f.handler = func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNotModified) }
	_, err = u.Index(context.Background(), "itoa", Validators{})
	wantKind(t, err, registry.ETEMPORARY, "unconditional")
	f.handler = func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", 500) }
	_, err = u.Index(context.Background(), "itoa", Validators{})
	wantKind(t, err, registry.ETEMPORARY, "500")
	f.handler = http.NotFound
	_, err = u.Index(context.Background(), "itoa", Validators{})
	wantKind(t, err, registry.ENOTFOUND, "")
}

func TestUnreachableUpstream(t *testing.T) {
	f := newFakeIndex(t, http.NotFound)
	u := f.upstream(t, Config{})
	f.srv.Close()
	_, err := u.Index(context.Background(), "itoa", Validators{})
	wantKind(t, err, registry.ETEMPORARY, "cannot be reached")
}

func TestNewRefusesBadURLs(t *testing.T) {
	for _, s := range []string{"", "ftp://x/", "http://", "http://u:p@x/", "http://x/?q=1", "http://x/#f", "http://x y/", "/index/"} {
		if _, err := New(Config{URL: s}); registry.KindOf(err) != registry.EINVALID {
			t.Errorf("New(%q): %v", s, err)
		}
	}
	u, err := New(Config{URL: "sparse+https://index.crates.io"})
	if err != nil || u.URL() != "https://index.crates.io/" {
		t.Fatalf("%v %v", u, err)
	}
}

func TestDownloadURL(t *testing.T) {
	for _, c := range [][2]string{
		{"https://static.crates.io/crates", "https://static.crates.io/crates/Serde/1.0.0/download"},
		{"https://x/{prefix}/{lowerprefix}/{crate}-{version}.crate?s={sha256-checksum}", "https://x/Se/rd/se/rd/Serde-1.0.0.crate?s=" + zeroSum},
	} {
		if got := downloadURL(c[0], "Serde", "1.0.0", zeroSum); got != c[1] {
			t.Errorf("%s: %s", c[0], got)
		}
	}
}

var fuzzKey, _ = registry.KeyFromSeed(make([]byte, 32))

func FuzzParseIndexFile(f *testing.F) {
	f.Add("itoa", []byte(line("itoa", "1.0.1", zeroSum)+"\n"))
	f.Add("a", []byte(`{"name":"A","vers":"0.1.0-rc.1+b","cksum":"`+zeroSum+`","yanked":true,"deps":[{"name":"b","package":"c"}]}`))
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		lines, err := ParseIndexFile(name, data)
		if err != nil {
			return
		}
		for _, l := range lines {
			b, err := registry.NewUpstreamBody("https://index.crates.io/", l.Raw)
			if err != nil {
				t.Fatalf("a line ParseIndexFile accepts makes no upstream record: %v", err)
			}
			if _, err := registry.Sign(fuzzKey, registry.KindUpstream, strings.ToLower(b.Name), b, time.Now()); err != nil {
				t.Fatalf("a line ParseIndexFile accepts cannot be signed: %v", err)
			}
		}
	})
}

func TestCompressedAnswersAreCutDecompressed(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(line("itoa", "1.0.1", zeroSum) + "\n"))
	zw.Write(bytes.Repeat([]byte(" "), 8<<20)) // a few KiB compressed, 8 MiB inflated
	zw.Close()
	f := newFakeIndex(t, func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			t.Errorf("the client does not accept gzip")
		}
		w.Header().Set("Content-Encoding", "gzip")
		w.Write(gz.Bytes())
	})
	_, err := f.upstream(t, Config{MaxIndexBytes: 1 << 20}).Index(context.Background(), "itoa", Validators{})
	wantKind(t, err, registry.ETOOLARGE, "")
	if idx, err := f.upstream(t, Config{MaxIndexBytes: 16 << 20}).Index(context.Background(), "itoa", Validators{}); err != nil || len(idx.Lines) != 1 {
		t.Fatalf("within the cap: %v", err)
	}
}
