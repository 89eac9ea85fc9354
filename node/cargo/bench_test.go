package cargo

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/node"
)

// benchNode holds n crates of three versions each, written straight to the
// store.
func benchNode(b *testing.B, n int) *testNode {
	tn := newTestNode(b, node.Config{}, Config{})
	k := testKey(b, 5)
	t0 := time.Now().Add(-time.Hour)
	var recs []*registry.Record
	for i := 0; i < n; i++ {
		for v := 0; v < 3; v++ {
			name, version := fmt.Sprintf("bench-crate-%05d", i), fmt.Sprintf("1.%d.0", v)
			blob := registry.Sum([]byte(name + version))
			body := &registry.ReleaseBody{Name: name, Version: version, Cksum: blob.Hex(), Blob: blob.Bytes(), Size: 100,
				Deps: []registry.Dep{{Name: "serde", Req: "^1", Kind: registry.DepNormal, DefaultFeatures: true}}}
			r, err := registry.Sign(k, registry.KindRelease, name+"@"+version, body, t0.Add(time.Duration(i*3+v)*time.Millisecond))
			if err != nil {
				b.Fatal(err)
			}
			recs = append(recs, r)
		}
	}
	if _, err := tn.n.Store().PutRecords(recs); err != nil {
		b.Fatal(err)
	}
	return tn
}

// BenchmarkIndexFileCold renders index files with an empty cache: the cost
// of the first request for a file after the record set changed.
func BenchmarkIndexFileCold(b *testing.B) {
	const n = 10_000
	tn := benchNode(b, n)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tn.h.index.mu.Lock()
		clear(tn.h.index.files)
		tn.h.index.mu.Unlock()
		if _, err := tn.h.index.file(viewFull, fmt.Sprintf("bench-crate-%05d", i%n)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIndexFileHot serves cached index files without a network: the
// Cargo handler alone ("handler"), and behind the REST API's server and mux
// as the daemon mounts it ("api"). This is the node's own share of a
// request; the rest is net/http and the kernel.
func BenchmarkIndexFileHot(b *testing.B) {
	const n = 1000
	tn := benchNode(b, n)
	reqs := make([]*http.Request, n)
	for i := range reqs {
		reqs[i] = httptest.NewRequest("GET", "/index/"+registry.IndexPath(fmt.Sprintf("bench-crate-%05d", i)), nil)
	}
	for _, c := range []struct {
		name string
		h    http.Handler
	}{{"handler", tn.h}, {"api", tn.srv.Config.Handler}} {
		b.Run(c.name, func(b *testing.B) {
			w := &discardWriter{h: http.Header{}}
			for _, r := range reqs {
				c.h.ServeHTTP(w, r)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				clear(w.h)
				c.h.ServeHTTP(w, reqs[i%n])
				if w.status != http.StatusOK {
					b.Fatalf("status %d", w.status)
				}
			}
		})
	}
}

// discardWriter is a ResponseWriter that keeps only the status.
type discardWriter struct {
	h      http.Header
	status int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(s int)           { d.status = s }
