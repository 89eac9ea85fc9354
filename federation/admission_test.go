package federation

import (
	"context"
	"crypto/rand"
	"runtime"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// liveHeap returns the bytes of live objects on the Go heap, after a
// collection: what the process holds, not what it has yet to collect.
func liveHeap() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// TestReconcileOfferOfAMillionIDs (docs/FEDERATION.md §8.3): a peer that
// opens reconciliations and offers about a million IDs it never sends
// cannot make the node remember more than Limits.SessionWants of them:
// the node's heap stays within the per-session bound while it is offered
// them all, and an honest peer still reconciles with it afterwards.
func TestReconcileOfferOfAMillionIDs(t *testing.T) {
	if testing.Short() {
		t.Skip("flood test")
	}
	const perRange = 1900 // IDs per RANGES frame: one ID list fills a frame
	lim := Limits{SessionWants: 4096, SessionBuffer: 1 << 20}
	a := startNode(t, "", nil, func(c *Config) { c.Limits = lim })
	x := newHostile(t)
	ctx := context.Background()
	if err := x.h.Connect(ctx, peer.AddrInfo{ID: a.host.ID(), Addrs: a.host.Addrs()}); err != nil {
		t.Fatal(err)
	}

	base := liveHeap()
	var peak int64
	offered := 0
	ids := make([]registry.ID, perRange)
	for sessions := 0; offered < 1_000_000 && sessions < 4; sessions++ {
		s, err := x.h.NewStream(ctx, a.host.ID(), ReconcileProtocol)
		if err != nil {
			t.Fatal(err)
		}
		fr := newFrameReader(s, 10*time.Second, time.Time{})
		fw := newFrameWriter(s, 10*time.Second, time.Time{})
		fw.write(frameHello, helloPayload("test"))
	turns:
		for turn := 0; offered < 1_000_000; turn++ {
			rw := &rangeWriter{}
			for f := range maxRangeFrames {
				for i := range ids {
					rand.Read(ids[i][2:])
					ids[i][0], ids[i][1] = 0x12, 0x20
				}
				upper := key{t: int64(f+1) << 20}
				if f == maxRangeFrames-1 {
					upper = infKey
				}
				rw.add(wireRange{upper: upper, mode: modeIDList, ids: ids})
				offered += perRange
			}
			for _, p := range rw.payloads() {
				if err := fw.write(frameRanges, p); err != nil {
					break turns
				}
			}
			if fw.write(frameEnd, nil) != nil || fw.flush() != nil {
				break
			}
			for {
				ty, _, err := fr.read()
				if err != nil || ty == frameError {
					break turns
				}
				if ty == frameEnd {
					break
				}
			}
			// Mid-session, with everything offered so far in the node's
			// hands: what does it hold?
			peak = max(peak, liveHeap())
		}
		s.Reset()
	}
	grew := peak - base
	perSession := 4*int64(lim.SessionBuffer+registry.MaxRecordSize) + int64(lim.SessionWants)*160 + 4*maxRangeFrames*MaxRangesFrame
	t.Logf("offered %d IDs; live heap: base %d MiB, peak %d MiB, growth %.1f MiB; per-session bound %.1f MiB",
		offered, base>>20, peak>>20, float64(grew)/(1<<20), float64(perSession)/(1<<20))
	if offered < 900_000 {
		t.Fatalf("only %d IDs were offered", offered)
	}
	if grew > perSession {
		t.Errorf("the heap grew by %.1f MiB while a peer offered %d IDs; the bound is %.1f MiB",
			float64(grew)/(1<<20), offered, float64(perSession)/(1<<20))
	}

	b := startNode(t, "", nil, nil)
	b.write(recordPool(t, 10)...)
	if _, err := b.Sync(ctx, a.addr()); err != nil {
		t.Fatalf("honest sync after the offer flood: %v", err)
	}
	if !converged(a, b)() {
		t.Fatal("honest peer did not converge")
	}
}
