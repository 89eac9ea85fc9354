package cargo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/node"
)

var update = flag.Bool("update", false, "rewrite golden files")

// Index file paths, as the Cargo book's "Index files" section lays them out.
func TestIndexPath(t *testing.T) {
	for name, want := range map[string]string{
		"a": "1/a", "Z": "1/z", "ab": "2/ab", "abc": "3/a/abc", "Abc": "3/a/abc",
		"cargo": "ca/rg/cargo", "MyCrate": "my/cr/mycrate", "wcr-leaf": "wc/r-/wcr-leaf", "a_b_": "a_/b_/a_b_",
	} {
		if got := registry.IndexPath(name); got != want {
			t.Errorf("registry.IndexPath(%q) = %q, want %q", name, got, want)
		}
		if got := nameFromIndexPath(want); got != strings.ToLower(name) {
			t.Errorf("nameFromIndexPath(%q) = %q, want %q", want, got, strings.ToLower(name))
		}
	}
	for _, p := range []string{"", "a", "1/ab", "2/a", "3/b/abc", "3/abc", "ca/rg", "ca/rg/", "ca/rg/cargo/x", "cb/rg/cargo",
		"ca/rg/cxrgo", "../ca/rg/cargo", "1/-", "2/1a", "co/nf/config.json", "x/1/a"} {
		if got := nameFromIndexPath(p); got != "" {
			t.Errorf("nameFromIndexPath(%q) = %q, want no name", p, got)
		}
	}
}

// An index line carries every field Cargo reads, with the index's names
// and null/omission rules; features with "dep:" or "?/" go to features2
// with v: 2. The golden file is the exact bytes.
func TestIndexLineGolden(t *testing.T) {
	body := &registry.ReleaseBody{
		Name: "Golden-Crate", Version: "1.2.3-rc.1+build.5", Cksum: strings.Repeat("ab", 32),
		Links: "z", RustVersion: "1.70",
		Features: map[string][]string{
			"default": {"std"}, "std": {}, "serde": {"dep:serde", "chrono?/serde"}, "fast": {"simd/fast"}, "empty": nil,
		},
		Deps: []registry.Dep{
			{Name: "chrono", Req: "^0.4", Kind: registry.DepNormal, Optional: true, DefaultFeatures: false, Features: []string{"clock"}},
			{Name: "serde", Req: "1", Kind: registry.DepNormal, Optional: true, DefaultFeatures: true, Registry: "https://github.com/rust-lang/crates.io-index"},
			{Name: "simd", Req: "0.2", Kind: registry.DepNormal, DefaultFeatures: true, Package: "simd-impl", Registry: "sparse+http://registry.example/index/"},
			{Name: "winapi", Req: "0.3", Kind: registry.DepNormal, DefaultFeatures: true, Target: "cfg(windows)"},
			{Name: "cc", Req: "1.0", Kind: registry.DepBuild, DefaultFeatures: true},
			{Name: "quickcheck", Req: "<2, >=1", Kind: registry.DepDev, DefaultFeatures: true, Registry: "sparse+http://Registry.Example/wasm/index"},
		},
	}
	same := func(u string) bool {
		h := &Handler{same: map[string]bool{normalizeIndexURL("http://registry.example/index/"): true, normalizeIndexURL("http://registry.example/wasm/index/"): true}}
		return h.isSameRegistry(u)
	}
	var buf bytes.Buffer
	if err := appendLine(&buf, NewIndexLine(body, true, same)); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "index-line.golden")
	if *update {
		os.WriteFile(golden, buf.Bytes(), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("index line:\n%s\nwant:\n%s", buf.Bytes(), want)
	}
	// Spot checks that do not depend on the golden file being right.
	var m map[string]any
	json.Unmarshal(buf.Bytes(), &m)
	if m["v"] != 2.0 || m["features2"].(map[string]any)["serde"] == nil || m["features"].(map[string]any)["serde"] != nil {
		t.Errorf("features2 split: %v", m)
	}
	deps := m["deps"].([]any)
	if d := deps[0].(map[string]any); d["target"] != nil || d["registry"] != nil || d["default_features"] != false {
		t.Errorf("chrono: %v", d)
	}
	if d := deps[2].(map[string]any); d["registry"] != nil || d["package"] != "simd-impl" || d["name"] != "simd" {
		t.Errorf("simd (from this registry, renamed): %v", d)
	}
	if d := deps[1].(map[string]any); d["registry"] != "https://github.com/rust-lang/crates.io-index" {
		t.Errorf("serde (from crates.io): %v", d)
	}
	if d := deps[5].(map[string]any); d["registry"] != nil || d["features"] == nil {
		t.Errorf("quickcheck (this registry's wasm view, other spelling): %v", d)
	}
	if bytes.Contains(buf.Bytes(), []byte(`\u003c`)) {
		t.Errorf("the line escapes '<' as HTML: %s", buf.Bytes())
	}
}

func TestIndexServing(t *testing.T) {
	tn := newTestNode(t, node.Config{}, Config{})
	tn.mustPublish("wcr-one", "0.2.0", simpleCrate(t, "wcr-one", "0.2.0", ""))
	tn.mustPublish("wcr-one", "0.10.0", simpleCrate(t, "wcr-one", "0.10.0", ""))
	tn.mustPublish("wcr-one", "0.9.0-alpha", simpleCrate(t, "wcr-one", "0.9.0-alpha", ""))

	// config.json of both views.
	for prefix, api := range map[string]string{"/index/": tn.url, "/wasm/index/": tn.url + "/wasm"} {
		r := tn.do("GET", prefix+"config.json", nil)
		var c map[string]string
		if r.status != 200 || json.Unmarshal(r.body, &c) != nil {
			t.Fatalf("%sconfig.json: %d %s", prefix, r.status, r.body)
		}
		if c["dl"] != tn.url+"/api/v1/crates/{crate}/{version}/download" || c["api"] != api {
			t.Errorf("%sconfig.json = %v", prefix, c)
		}
	}

	// With a public URL, config.json names it whatever the request's Host.
	h, err := New(tn.n, Config{PublicURL: "https://registry.example/"})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "http://127.0.0.1/wasm/index/config.json", nil))
	if want := `{"dl":"https://registry.example/api/v1/crates/{crate}/{version}/download","api":"https://registry.example/wasm"}` + "\n"; rec.Body.String() != want {
		t.Errorf("config.json with a public URL: %s", rec.Body)
	}

	lines, r := tn.indexLines("/index/", "wcr-one")
	if r.status != 200 || versions(lines) != "0.2.0 0.9.0-alpha 0.10.0" {
		t.Fatalf("index file: %d %q", r.status, versions(lines))
	}
	etag := r.header.Get("ETag")
	sum := sha256.Sum256(r.body)
	if etag != `"`+hex.EncodeToString(sum[:16])+`"` || r.header.Get("Content-Length") != fmt.Sprint(len(r.body)) {
		t.Fatalf("headers: %v", r.header)
	}
	if lines[0].Cksum == "" || lines[0].Name != "wcr-one" || lines[0].Deps == nil || lines[0].Features == nil {
		t.Fatalf("line: %+v", lines[0])
	}

	// Conditional GET, HEAD, and a changed ETag after a yank.
	if r := tn.do("GET", "/index/wc/r-/wcr-one", nil, "If-None-Match", etag); r.status != 304 || len(r.body) != 0 {
		t.Fatalf("If-None-Match with the current ETag: %d %q", r.status, r.body)
	}
	if r := tn.do("GET", "/index/wc/r-/wcr-one", nil, "If-None-Match", `"other", W/`+etag); r.status != 304 {
		t.Fatalf("If-None-Match with a list holding the weak ETag: %d", r.status)
	}
	if r := tn.do("HEAD", "/index/wc/r-/wcr-one", nil); r.status != 200 || len(r.body) != 0 || r.header.Get("ETag") != etag {
		t.Fatalf("HEAD: %d %v", r.status, r.header)
	}
	if r := tn.do("DELETE", "/api/v1/crates/wcr-one/0.10.0/yank", nil, "Authorization", tn.token); r.status != 200 || string(r.body) != "{\"ok\":true}\n" {
		t.Fatalf("yank: %d %s", r.status, r.body)
	}
	r = tn.do("GET", "/index/wc/r-/wcr-one", nil, "If-None-Match", etag)
	if r.status != 200 || r.header.Get("ETag") == etag || !strings.Contains(string(r.body), `"vers":"0.10.0","deps":[],"cksum":"`) {
		t.Fatalf("after a yank, the old ETag still matches or the content is stale: %d %s", r.status, r.body)
	}
	if lines, _ := tn.indexLines("/index/", "wcr-one"); versions(lines) != "0.2.0 0.9.0-alpha 0.10.0(yanked)" {
		t.Fatalf("after a yank: %q", versions(lines))
	}

	// Unknown crates and paths: 404 with Cargo's error JSON.
	for _, p := range []string{"/index/wc/r-/wcr-two", "/index/1/x", "/index/wc/r-/wcr-on", "/index/xx/r-/wcr-one", "/index/wc/r-", "/index/"} {
		if r := tn.do("GET", p, nil); r.status != 404 || detail(t, r) == "" {
			t.Errorf("GET %s: %d %s", p, r.status, r.body)
		}
	}
	if r := tn.do("POST", "/index/wc/r-/wcr-one", nil); r.status != 405 || r.header.Get("Allow") != "GET, HEAD" || detail(t, r) == "" {
		t.Errorf("POST on an index file: %d %v %s", r.status, r.header, r.body)
	}
}

// Index file names are lowercase; crate names keep their case. One file
// serves every crate whose name folds to it.
func TestIndexCaseFolding(t *testing.T) {
	tn := newTestNode(t, node.Config{}, Config{})
	for _, name := range []string{"MyCrate", "mycrate", "myCrate", "mycrates", "Mz"} {
		tn.mustPublish(name, "1.0.0", simpleCrate(t, name, "1.0.0", ""))
	}
	tn.mustPublish("MyCrate", "0.5.0", simpleCrate(t, "MyCrate", "0.5.0", ""))
	lines, r := tn.indexLines("/index/", "mycrate")
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	var got []string
	for _, l := range lines {
		got = append(got, l.Name+"@"+l.Vers)
	}
	if want := "MyCrate@0.5.0 MyCrate@1.0.0 myCrate@1.0.0 mycrate@1.0.0"; strings.Join(got, " ") != want {
		t.Fatalf("my/cr/mycrate holds %q, want %q", strings.Join(got, " "), want)
	}
	if r := tn.do("GET", "/index/My/Cr/MyCrate", nil); r.status != 200 || !strings.Contains(string(r.body), `"name":"myCrate"`) {
		t.Fatalf("a {prefix}-style path: %d", r.status)
	}
	if lines, _ := tn.indexLines("/index/", "Mz"); len(lines) != 1 || lines[0].Name != "Mz" {
		t.Fatalf("2/mz: %+v", lines)
	}
	if r := tn.do("GET", "/index/my/cr/mycrat", nil); r.status != 404 {
		t.Fatalf("a prefix of a crate name is not a crate: %d", r.status)
	}
}

// A release whose publisher was not an owner is in the store (as evidence)
// but never in the index, and not downloadable.
func TestIndexSkipsUnauthorizedReleases(t *testing.T) {
	tn := newTestNode(t, node.Config{}, Config{})
	tn.mustPublish("owned", "1.0.0", simpleCrate(t, "owned", "1.0.0", ""))
	intruder := testKey(t, 9)
	crate := simpleCrate(t, "owned", "2.0.0", "")
	body, err := registry.ParseCrate(crate, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A second after the owner's: at the same millisecond the smaller ID
	// would make the intruder the founder (DESIGN.md §2 first-release rule).
	rec, err := registry.Sign(intruder, registry.KindRelease, "owned@2.0.0", body, time.Now().Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tn.n.Store().PutRecords([]*registry.Record{rec}); err != nil {
		t.Fatal(err)
	}
	tn.n.Store().PutBlob(crate)
	if v, err := tn.n.Store().GetView("owned", "2.0.0"); err != nil || !v.Unauthorized {
		t.Fatalf("the intruder's release should be stored as unauthorized: %v", err)
	}
	if lines, _ := tn.indexLines("/index/", "owned"); versions(lines) != "1.0.0" {
		t.Fatalf("index: %q", versions(lines))
	}
	if r := tn.do("GET", "/api/v1/crates/owned/2.0.0/download", nil); r.status != 404 || !strings.Contains(detail(t, r), "not an owner") {
		t.Fatalf("download of an unauthorized release: %d %s", r.status, r.body)
	}
}

// The wasm view serves a release exactly when the newest trusted report
// about it passes the policy; its ETag changes as reports and trust change.
func TestWasmView(t *testing.T) {
	tn := newTestNode(t, node.Config{}, Config{})
	tester, stranger := testKey(t, 1), testKey(t, 2)
	trustKey(t, tn, tester)
	for _, v := range []string{"1.0.0", "1.1.0", "1.2.0", "1.3.0"} {
		tn.mustPublish("wasmy", v, simpleCrate(t, "wasmy", v, ""))
	}
	if r := tn.do("GET", "/wasm/index/wa/sm/wasmy", nil); r.status != 404 || !strings.Contains(detail(t, r), "wasm gates") {
		t.Fatalf("with no reports the wasm view has no wasmy: %d %s", r.status, r.body)
	}
	tn.report(tester, "wasmy", "1.0.0", registry.GateCurated, registry.WasmCompatible)
	tn.report(tester, "wasmy", "1.1.0", registry.GateNeedsReview, registry.WasmPartial)
	tn.report(tester, "wasmy", "1.2.0", registry.GateRejected, registry.WasmIncompatible)
	tn.report(stranger, "wasmy", "1.3.0", registry.GateCurated, registry.WasmCompatible)
	lines, r := tn.indexLines("/wasm/index/", "wasmy")
	if r.status != 200 || versions(lines) != "1.0.0" {
		t.Fatalf("wasm view: %d %q", r.status, versions(lines))
	}
	if lines, _ := tn.indexLines("/index/", "wasmy"); versions(lines) != "1.0.0 1.1.0 1.2.0 1.3.0" {
		t.Fatalf("full view: %q", versions(lines))
	}
	etag := r.header.Get("ETag")

	// A newer trusted report replaces the older one: 1.0.0 drops out.
	time.Sleep(2 * time.Millisecond)
	tn.report(tester, "wasmy", "1.0.0", registry.GateRejected, registry.WasmIncompatible)
	tn.report(tester, "wasmy", "1.3.0", registry.GateCurated, registry.WasmCompatible)
	lines, r = tn.indexLines("/wasm/index/", "wasmy")
	if versions(lines) != "1.3.0" || r.header.Get("ETag") == etag {
		t.Fatalf("after new reports: %q, ETag %s (was %s)", versions(lines), r.header.Get("ETag"), etag)
	}

	// Withdrawing trust from the tester empties the view at once, though no
	// record changed.
	if _, err := tn.n.UpdateSettings(context.Background(), "test", []byte(`{"trust": {"keys": []}}`)); err != nil {
		t.Fatal(err)
	}
	if r := tn.do("GET", "/wasm/index/wa/sm/wasmy", nil); r.status != 404 {
		t.Fatalf("the wasm view still serves wasmy after trust was withdrawn: %d %s", r.status, r.body)
	}
}

// The policy decides which gates and verdicts pass.
func TestWasmPolicy(t *testing.T) {
	tn := newTestNode(t, node.Config{}, Config{})
	tester := testKey(t, 1)
	trustKey(t, tn, tester)
	for _, v := range []string{"1.0.0", "1.1.0", "1.2.0", "1.3.0"} {
		tn.mustPublish("pol", v, simpleCrate(t, "pol", v, ""))
	}
	tn.report(tester, "pol", "1.0.0", registry.GateCurated, registry.WasmCompatible)
	tn.report(tester, "pol", "1.1.0", registry.GateNeedsReview, registry.WasmPartial)
	tn.report(tester, "pol", "1.2.0", registry.GateCurated, registry.WasmPartial)
	tn.report(tester, "pol", "1.3.0", registry.GateNeedsReview, registry.WasmBuilds)
	views, err := tn.n.Store().ViewsByName("pol")
	if err != nil {
		t.Fatal(err)
	}
	trust := tn.n.Trust()
	for _, c := range []struct {
		gates, verdicts string
		want            string
	}{
		{"", "", "1.0.0"},
		{"curated,needs-review", "", "1.0.0 1.1.0 1.2.0 1.3.0"},
		{"curated", "compatible", "1.0.0"},
		{"needs-review", "partial", "1.1.0 1.2.0"}, // the node's gates, not the report's own, decide: partial is not curated
		{"needs-review", "builds", "1.3.0"},
	} {
		p, err := ParseWasmPolicy(c.gates, c.verdicts)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, v := range views {
			if p.Passes(tn.n.Verdicts(v, trust)) {
				got = append(got, v.Version)
			}
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("policy %q/%q passes %q, want %q", c.gates, c.verdicts, got, c.want)
		}
	}
	for _, bad := range [][2]string{{"rejected", ""}, {"", "incompatible"}, {"curated", "untested"}, {"gold", ""}} {
		if _, err := ParseWasmPolicy(bad[0], bad[1]); registry.KindOf(err) != registry.EINVALID {
			t.Errorf("ParseWasmPolicy(%q, %q) = %v; want an invalid-input error", bad[0], bad[1], err)
		}
	}
	if _, err := New(tn.n, Config{Wasm: WasmPolicy{Gates: []string{"curated"}}}); registry.KindOf(err) != registry.EINVALID {
		t.Errorf("a policy without verdicts: %v", err)
	}
}

// Readers racing writers always get a file whose ETag is the digest of the
// body they got, and never an older file after a newer one.
func TestIndexConcurrentReadsAndWrites(t *testing.T) {
	tn := newTestNode(t, node.Config{}, Config{MaxCachedFiles: 4})
	tn.mustPublish("race", "0.0.1", simpleCrate(t, "race", "0.0.1", ""))
	const versionsN = 20
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 16)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			seen := 0
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, name := range []string{"race", "other-a", "other-b", "other-c", "other-d"} {
					f, err := tn.h.index.file(viewFull, name)
					if err != nil {
						errs <- err
						return
					}
					if f.body == nil {
						continue
					}
					sum := sha256.Sum256(f.body)
					if f.etag[0] != `"`+hex.EncodeToString(sum[:16])+`"` {
						errs <- fmt.Errorf("ETag %s is not the digest of the body", f.etag[0])
						return
					}
					if name == "race" {
						n := bytes.Count(f.body, []byte("\n"))
						if n < seen {
							errs <- fmt.Errorf("saw %d lines after %d", n, seen)
							return
						}
						seen = n
					}
				}
			}
		}()
	}
	for i := 1; i <= versionsN; i++ {
		v := fmt.Sprintf("0.1.%d", i)
		tn.mustPublish("race", v, simpleCrate(t, "race", v, ""))
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if lines, _ := tn.indexLines("/index/", "race"); len(lines) != versionsN+1 {
		t.Fatalf("%d lines, want %d", len(lines), versionsN+1)
	}
	tn.h.index.mu.RLock()
	n := len(tn.h.index.files)
	tn.h.index.mu.RUnlock()
	if n > 4 {
		t.Fatalf("the cache holds %d files; the bound is 4", n)
	}
}
