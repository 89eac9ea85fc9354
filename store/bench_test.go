package store

import (
	"fmt"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// signedReleases makes n release records of distinct crates, as a peer would
// send them: canonical bytes.
func signedReleases(b testing.TB, n int) [][]byte {
	k := key(b, 7)
	out := make([][]byte, n)
	for i := range out {
		blob := []byte(fmt.Sprintf("crate-%d", i))
		out[i] = release(b, k, fmt.Sprintf("bench-%06d", i), "1.0.0", t0.Add(time.Duration(i)*time.Millisecond), blob).Bytes()
	}
	return out
}

// BenchmarkIngest measures the ingest path for records from peers: decode and
// verify every record (canonical CBOR, signature, schema) on all CPUs, then
// store them in
// batches of 1,000 with their indexes and release views, synced to disk.
// Reports verified records per second.
func BenchmarkIngest(b *testing.B) {
	const n = 20000
	raw := signedReleases(b, n)
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		b.StopTimer()
		db, err := Open(b.TempDir(), Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		for i := 0; i < n; i += 1000 {
			batch, errs := registry.DecodeRecords(raw[i:min(i+1000, n)])
			for _, err := range errs {
				if err != nil {
					b.Fatal(err)
				}
			}
			if _, err := db.PutRecords(batch); err != nil {
				b.Fatal(err)
			}
		}
		el := time.Since(start)
		b.StopTimer()
		b.ReportMetric(float64(n)/el.Seconds(), "records/s")
		db.Close()
		b.StartTimer()
	}
}

// BenchmarkSign and BenchmarkVerify split the ingest cost.
func BenchmarkSign(b *testing.B) {
	k := key(b, 7)
	blob := registry.Sum([]byte("x"))
	body := &registry.ReleaseBody{Name: "bench", Version: "1.0.0", Cksum: blob.Hex(), Blob: blob.Bytes(), Size: 1}
	for i := 0; i < b.N; i++ {
		if _, err := registry.Sign(k, registry.KindRelease, "bench@1.0.0", body, t0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	raw := signedReleases(b, 1)[0]
	for i := 0; i < b.N; i++ {
		if _, err := registry.DecodeRecord(raw); err != nil {
			b.Fatal(err)
		}
	}
}
