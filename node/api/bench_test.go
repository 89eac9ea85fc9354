package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/node"
)

// BenchmarkListCrates100k measures GET /crates?limit=50 over HTTP on
// loopback against a node holding 100,000 releases: pages from the start
// and from random cursors, as a client paging through the registry would.
// It reports p50 and p99 latency in milliseconds, and fails unless every
// page holds exactly the releases it should.
func BenchmarkListCrates100k(b *testing.B) {
	const n = 100_000
	nd, err := node.Open(context.Background(), node.Config{DataDir: b.TempDir(), Announce: io.Discard})
	if err != nil {
		b.Fatal(err)
	}
	defer nd.Close()
	k, _ := registry.KeyFromSeed(make([]byte, 32))
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	recs := make([]*registry.Record, n)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += 4 {
				blob := registry.Sum([]byte(fmt.Sprint(i)))
				body := &registry.ReleaseBody{Name: fmt.Sprintf("crate-%06d", i), Version: "1.0.0", Cksum: blob.Hex(), Blob: blob.Bytes(), Size: 100,
					Description: "a benchmark crate with a description of ordinary length", Keywords: []string{"wasm", "bench"}}
				r, err := registry.Sign(k, registry.KindRelease, registry.ReleaseSubject(body.Name, body.Version), body, t0.Add(time.Duration(i)*time.Millisecond))
				if err != nil {
					panic(err)
				}
				recs[i] = r
			}
		}(w)
	}
	wg.Wait()
	for i := 0; i < n; i += 2000 {
		if _, err := nd.Store().PutRecords(recs[i:min(i+2000, n)]); err != nil {
			b.Fatal(err)
		}
	}
	srv := httptest.NewServer(New(nd, nil))
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	rng := rand.New(rand.NewSource(1))
	get := func(path string) (time.Duration, []byte) {
		start := time.Now()
		resp, err := client.Get(srv.URL + path)
		if err != nil {
			b.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		took := time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		if resp.StatusCode != 200 {
			b.Fatalf("GET %s: status %d: %.200s", path, resp.StatusCode, body)
		}
		return took, body
	}
	// check fails the benchmark unless body is the page of releases from
	// index from on, in order, with the cursor of its last release when
	// more follow: a fast wrong answer must not pass for a fast one.
	check := func(path string, body []byte, from int) {
		var page struct {
			Crates []struct {
				Name    string `json:"name"`
				Version string `json:"version"`
			} `json:"crates"`
			NextCursor string `json:"next_cursor"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			b.Fatalf("GET %s: %v", path, err)
		}
		want := min(50, n-from)
		if len(page.Crates) != want {
			b.Fatalf("GET %s: %d releases, want %d", path, len(page.Crates), want)
		}
		for j, c := range page.Crates {
			if name := fmt.Sprintf("crate-%06d", from+j); c.Name != name || c.Version != "1.0.0" {
				b.Fatalf("GET %s: release %d is %s@%s, want %s@1.0.0", path, j, c.Name, c.Version, name)
			}
		}
		next := ""
		if from+want < n {
			next = base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf("crate-%06d@1.0.0", from+want-1)))
		}
		if page.NextCursor != next {
			b.Fatalf("GET %s: next_cursor %q, want %q", path, page.NextCursor, next)
		}
	}
	for i := 0; i < 50; i++ { // warm up connections and caches
		_, body := get("/crates?limit=50")
		check("/crates?limit=50", body, 0)
	}
	b.ResetTimer()
	var lat []time.Duration
	for it := 0; it < b.N; it++ {
		for i := 0; i < 1000; i++ {
			path, from := "/crates?limit=50", 0
			if i%2 == 1 {
				after := rng.Intn(n)
				at := fmt.Sprintf("crate-%06d@1.0.0", after)
				path += "&cursor=" + base64.RawURLEncoding.EncodeToString([]byte(at))
				from = after + 1
			}
			took, body := get(path)
			lat = append(lat, took)
			check(path, body, from)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
	// A filter no release matches scans every view: the worst case.
	var scan []time.Duration
	for i := 0; i < 20; i++ {
		took, body := get("/crates?limit=50&wasm=compatible")
		var page struct {
			Crates     []json.RawMessage `json:"crates"`
			NextCursor string            `json:"next_cursor"`
		}
		if err := json.Unmarshal(body, &page); err != nil || len(page.Crates) != 0 || page.NextCursor != "" {
			b.Fatalf("a filter no release matches answered %.200s (%v)", body, err)
		}
		scan = append(scan, took)
	}
	slices.Sort(scan)
	b.ReportMetric(ms(scan[len(scan)/2]), "fullscan-p50-ms")
	b.ReportMetric(0, "ns/op")
}
