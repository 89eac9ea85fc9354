package cargo

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wasmrust/wasm-crates-registry/mirror"
	"github.com/wasmrust/wasm-crates-registry/node"
)

// BenchmarkMirroredIndex serves one upstream crate's index file of 300
// versions over loopback HTTP: from nginx serving the file itself
// ("upstream-nginx"), and from a node mirroring it ("node-cached": within
// --upstream-refresh; "node-revalidate": every request revalidated
// upstream with If-None-Match, answered 304). Needs nginx.
func BenchmarkMirroredIndex(b *testing.B) {
	p, err := lookNginx()
	if err != nil {
		b.Skip("SKIPPING: capability nginx: ", err)
	}
	dir := b.TempDir()
	var file strings.Builder
	for i := range 300 {
		fmt.Fprintf(&file, `{"name":"bench","vers":"1.0.%d","deps":[{"name":"serde","req":"^1","features":[],"optional":false,"default_features":true,"target":null,"kind":"normal"}],"cksum":"%064x","features":{"std":[]},"yanked":false}`+"\n", i, i)
	}
	ng := startNginxOn(b, p, dir, map[string]string{"index/config.json": `{"dl":"http://127.0.0.1/dl"}`, "index/be/nc/bench": file.String()})
	get := func(b *testing.B, url string) {
		res, err := http.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || n != int64(file.Len()) {
			b.Fatalf("%s: %d, %d bytes", url, res.StatusCode, n)
		}
	}
	b.Run("upstream-nginx", func(b *testing.B) {
		for b.Loop() {
			get(b, ng+"/index/be/nc/bench")
		}
	})
	for _, c := range []struct {
		name    string
		refresh time.Duration
	}{{"node-cached", time.Hour}, {"node-revalidate", -1}} {
		b.Run(c.name, func(b *testing.B) {
			m, err := mirror.New(mirror.Config{URL: ng + "/index/"})
			if err != nil {
				b.Fatal(err)
			}
			tn := newTestNode(b, node.Config{Upstream: node.UpstreamConfig{Upstreams: []node.Upstream{m}, Refresh: c.refresh}}, Config{})
			get(b, tn.url+"/index/be/nc/bench")
			for b.Loop() {
				get(b, tn.url+"/index/be/nc/bench")
			}
		})
	}
}
