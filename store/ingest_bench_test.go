package store

import (
	"fmt"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// signedReviews makes n review records about crates spread over the
// given number of names, on all cores, as wcr-fedbench's writer does.
func signedReviews(b testing.TB, n, crates int) []*registry.Record {
	k := key(b, 9)
	out := make([]*registry.Record, n)
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				out[i] = sign(b, k, registry.KindReview, fmt.Sprintf("crate%d@1.%d.0", i%crates, i),
					&registry.ReviewBody{Verdict: registry.VerdictApprove, Comment: fmt.Sprintf("review %d", i)},
					t0.Add(time.Duration(i)*time.Millisecond))
			}
		}()
	}
	wg.Wait()
	return out
}

// processCPU is the CPU time (user and system) the process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPutBundles measures the store's share of a gossip receiver's
// work: 20,000 verified review records stored in synced batches of 64 (a
// gossip bundle), as federation's ingest does. It reports records per
// second and the process CPU per record, Badger's background work
// (memtable flushes, compactions) during the run included.
func BenchmarkPutBundles(b *testing.B) {
	const n, batch = 20000, 64
	recs := signedReviews(b, n, 1000)
	for b.Loop() {
		b.StopTimer()
		db, err := Open(b.TempDir(), Options{GCInterval: -1})
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		cpu0, start := processCPU(), time.Now()
		b.StartTimer()
		for i := 0; i < n; i += batch {
			if _, err := db.PutRecords(recs[i:min(i+batch, n)]); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		el, cpu := time.Since(start), processCPU()-cpu0
		b.ReportMetric(float64(n)/el.Seconds(), "records/s")
		b.ReportMetric(float64(cpu.Microseconds())/n, "cpu-µs/record")
		db.Close()
		b.StartTimer()
	}
}
