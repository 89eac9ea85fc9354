package federation

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/store"
)

// testReplica is one side of a reconciliation over a real in-memory store.
type testReplica struct {
	db  *store.DB
	rep *replica
}

func newTestReplica(t testing.TB, recs []*registry.Record) *testReplica {
	t.Helper()
	db := newStore(t, "")
	if _, err := db.PutRecords(recs); err != nil {
		t.Fatal(err)
	}
	idx := newIndex()
	for _, r := range recs {
		idx.add(keyOf(r))
	}
	p := defaultReconParams
	p.idle = 10 * time.Second
	p.session = 30 * time.Second
	return &testReplica{db: db, rep: &replica{
		idx:     idx,
		network: "test",
		params:  p,
		maxSkew: registry.DefaultMaxSkew,
		now:     time.Now,
		load: func(id registry.ID) ([]byte, error) {
			r, err := db.GetRecord(id)
			if err != nil {
				return nil, err
			}
			return r.Bytes(), nil
		},
		ingest: func(recs []*registry.Record) ([]*registry.Record, error) {
			added, err := db.PutRecords(recs)
			for _, r := range added {
				idx.add(keyOf(r))
			}
			return added, err
		},
	}}
}

// reconcilePair runs one session between a (initiator) and b (responder)
// over an in-process pipe.
func reconcilePair(t testing.TB, a, b *testReplica) (ra, rb sessionResult, errA, errB error) {
	t.Helper()
	ca, cb := net.Pipe()
	defer ca.Close()
	defer cb.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		rb, errB = newSession(b.rep, cb, false).respond(context.Background())
		cb.Close()
	}()
	ra, errA = newSession(a.rep, ca, true).initiate(context.Background())
	ca.Close()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("responder did not finish")
	}
	return ra, rb, errA, errB
}

// TestReconcileAgainstBruteForce reconciles random pairs of sets and checks
// the result against the set difference computed directly (DESIGN.md §3).
func TestReconcileAgainstBruteForce(t *testing.T) {
	all := recordPool(t, 6000)
	rng := rand.New(rand.NewPCG(11, 12))
	cases := []struct{ common, onlyA, onlyB int }{
		{0, 0, 0}, {0, 5, 0}, {0, 0, 5}, {3, 0, 0}, {100, 0, 0}, {0, 40, 0}, {0, 0, 40},
		{2000, 1, 0}, {2000, 0, 1}, {2000, 37, 51}, {0, 2500, 2500}, {3000, 300, 0},
		{10, 3000, 0}, {10, 0, 3000}, {500, 500, 500},
	}
	for range 6 {
		cases = append(cases, struct{ common, onlyA, onlyB int }{rng.IntN(2000), rng.IntN(300), rng.IntN(300)})
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("common%d_a%d_b%d", tc.common, tc.onlyA, tc.onlyB), func(t *testing.T) {
			perm := rng.Perm(len(all))
			pick := func(from, n int) []*registry.Record {
				out := make([]*registry.Record, n)
				for i := range n {
					out[i] = all[perm[from+i]]
				}
				return out
			}
			common := pick(0, tc.common)
			onlyA := pick(tc.common, tc.onlyA)
			onlyB := pick(tc.common+tc.onlyA, tc.onlyB)
			a := newTestReplica(t, append(append([]*registry.Record{}, common...), onlyA...))
			b := newTestReplica(t, append(append([]*registry.Record{}, common...), onlyB...))
			ra, rb, errA, errB := reconcilePair(t, a, b)
			if errA != nil || errB != nil {
				t.Fatalf("initiator: %v; responder: %v", errA, errB)
			}
			union := fingerprintOf(append(append(append([]*registry.Record{}, common...), onlyA...), onlyB...))
			if a.rep.idx.fingerprint() != union || b.rep.idx.fingerprint() != union {
				t.Fatalf("after reconciliation: a holds %d, b holds %d, the union is %d", a.rep.idx.count(), b.rep.idx.count(), union.Count)
			}
			if a.db.Fingerprint() != union || b.db.Fingerprint() != union {
				t.Fatalf("stores do not hold the union")
			}
			if ra.stats.RecordsIn != tc.onlyB || rb.stats.RecordsIn != tc.onlyA {
				t.Fatalf("records in: initiator %d (want %d), responder %d (want %d)", ra.stats.RecordsIn, tc.onlyB, rb.stats.RecordsIn, tc.onlyA)
			}
			if ra.stats.RecordsOut != tc.onlyA || rb.stats.RecordsOut != tc.onlyB {
				t.Fatalf("records out: initiator %d (want %d), responder %d (want %d): records were sent twice or not at all",
					ra.stats.RecordsOut, tc.onlyA, rb.stats.RecordsOut, tc.onlyB)
			}
			if ra.stats.BytesOut != rb.stats.BytesIn || ra.stats.BytesIn != rb.stats.BytesOut {
				t.Fatalf("byte counts disagree: %+v vs %+v", ra.stats, rb.stats)
			}
		})
	}
}

// TestReconcileBytesFollowDifference checks that the bytes exchanged grow
// with the difference and not with the size of the sets.
func TestReconcileBytesFollowDifference(t *testing.T) {
	all := recordPool(t, 6000)
	var diffBytes int
	for _, r := range all[5900:] {
		diffBytes += len(r.Bytes())
	}
	var totalBytes int
	for _, r := range all {
		totalBytes += len(r.Bytes())
	}
	a := newTestReplica(t, all[:5900])
	b := newTestReplica(t, all)
	ra, _, errA, errB := reconcilePair(t, a, b)
	if errA != nil || errB != nil {
		t.Fatalf("initiator: %v; responder: %v", errA, errB)
	}
	moved := ra.stats.BytesIn + ra.stats.BytesOut
	t.Logf("100 of 6000 records (%d of %d bytes): %d bytes exchanged in %d round trips", diffBytes, totalBytes, moved, ra.stats.RoundTrips)
	if moved > int64(2*diffBytes+64<<10) {
		t.Fatalf("%d bytes exchanged for a difference of %d bytes; want at most 2×difference + 64 KiB", moved, diffBytes)
	}
	if ra.stats.RoundTrips > 8 {
		t.Fatalf("%d round trips for 100 missing records", ra.stats.RoundTrips)
	}

	// Equal sets: one round trip of a fingerprint.
	ra, _, errA, errB = reconcilePair(t, a, b)
	if errA != nil || errB != nil {
		t.Fatalf("initiator: %v; responder: %v", errA, errB)
	}
	if moved := ra.stats.BytesIn + ra.stats.BytesOut; moved > 200 || ra.stats.RecordsIn+ra.stats.RecordsOut != 0 {
		t.Fatalf("equal sets exchanged %d bytes and %d records", moved, ra.stats.RecordsIn+ra.stats.RecordsOut)
	}
}

// TestReconcileHoldsBackFutureRecords checks that a record too far ahead of
// the receiver's clock is not stored (DESIGN.md §2).
func TestReconcileHoldsBackFutureRecords(t *testing.T) {
	key, _ := registry.KeyFromSeed(bytes.Repeat([]byte{9}, 32))
	future, err := registry.Sign(key, registry.KindReview, "later@1.0.0", &registry.ReviewBody{Verdict: registry.VerdictFlag}, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	recs := recordPool(t, 50)
	a := newTestReplica(t, recs[:10])
	b := newTestReplica(t, append([]*registry.Record{future}, recs[10:]...))
	ra, _, errA, errB := reconcilePair(t, a, b)
	if errA != nil || errB != nil {
		t.Fatalf("initiator: %v; responder: %v", errA, errB)
	}
	if ra.stats.RecordsIn != 40 {
		t.Fatalf("initiator stored %d records, want the 40 applicable ones", ra.stats.RecordsIn)
	}
	if a.rep.idx.has(keyOf(future)) {
		t.Fatal("a far-future record was stored")
	}
}

// scripted answers an initiator's first turn with the given frames.
func scripted(t *testing.T, initiatorRecs []*registry.Record, reply func(fw *frameWriter)) (sessionResult, error, *testReplica) {
	t.Helper()
	a := newTestReplica(t, initiatorRecs)
	ca, cb := net.Pipe()
	defer ca.Close()
	go func() {
		defer cb.Close()
		fr := newFrameReader(cb, 5*time.Second, time.Time{})
		for {
			ty, _, err := fr.read()
			if err != nil || ty == frameEnd {
				break
			}
		}
		fw := newFrameWriter(cb, 5*time.Second, time.Time{})
		fw.write(frameHello, helloPayload("test"))
		reply(fw)
		fw.flush()
		io.Copy(io.Discard, cb)
	}()
	res, err := newSession(a.rep, ca, true).initiate(context.Background())
	return res, err, a
}

// TestReconcileRejectsHostileResponder checks that forged, unsolicited,
// truncated and oversized data from a peer ends the session as a protocol
// violation and stores nothing.
func TestReconcileRejectsHostileResponder(t *testing.T) {
	recs := recordPool(t, 200)
	held := recs[:100] // more than an ID list: the opening turn is a fingerprint
	other := recs[150]
	forged := append([]byte(nil), other.Bytes()...)
	forged[len(forged)-3] ^= 0x01 // inside the signature
	hdrTooBig := []byte{frameRecord, 0xff, 0xff, 0xff, 0x7f}

	for name, reply := range map[string]func(fw *frameWriter){
		"unsolicited record": func(fw *frameWriter) {
			fw.write(frameRecord, other.Bytes())
			fw.write(frameEnd, nil)
		},
		"forged signature": func(fw *frameWriter) {
			fw.write(frameRecord, forged)
			fw.write(frameEnd, nil)
		},
		"truncated CBOR": func(fw *frameWriter) {
			fw.write(frameRecord, other.Bytes()[:len(other.Bytes())/2])
			fw.write(frameEnd, nil)
		},
		"oversized frame": func(fw *frameWriter) {
			fw.w.Write(hdrTooBig)
		},
		"unknown frame": func(fw *frameWriter) {
			fw.w.Write([]byte{0x33, 0})
		},
		"malformed ranges": func(fw *frameWriter) {
			fw.write(frameRanges, []byte{5, 0, 0}) // ends without the infinite bound
			fw.write(frameEnd, nil)
		},
	} {
		t.Run(name, func(t *testing.T) {
			_, err, a := scripted(t, held, reply)
			if !errors.Is(err, errViolation) {
				t.Fatalf("session error = %v, want a protocol violation", err)
			}
			if a.rep.idx.count() != len(held) || a.db.Fingerprint() != fingerprintOf(held) {
				t.Fatalf("hostile session changed the store")
			}
		})
	}

	t.Run("wrong network", func(t *testing.T) {
		a := newTestReplica(t, held)
		b := newTestReplica(t, nil)
		b.rep.network = "other"
		_, _, errA, errB := reconcilePair(t, a, b)
		if errA == nil || errB == nil || errors.Is(errA, errViolation) {
			t.Fatalf("initiator: %v; responder: %v; want both to refuse, without blaming the peer", errA, errB)
		}
	})

	t.Run("silent peer", func(t *testing.T) {
		a := newTestReplica(t, held)
		a.rep.params.idle = 200 * time.Millisecond
		ca, cb := net.Pipe()
		defer ca.Close()
		defer cb.Close()
		go io.Copy(io.Discard, cb)
		_, err := newSession(a.rep, ca, true).initiate(context.Background())
		if registry.KindOf(err) != registry.ETIMEOUT {
			t.Fatalf("error = %v, want a timeout", err)
		}
	})
}

// discardConn is a streamConn that reads from a buffer and discards writes.
type discardConn struct{ io.Reader }

func (discardConn) Write(p []byte) (int, error)      { return len(p), nil }
func (discardConn) SetReadDeadline(time.Time) error  { return nil }
func (discardConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzResponder feeds arbitrary bytes to a responder: it must neither panic
// nor store anything that is not a valid record.
func FuzzResponder(f *testing.F) {
	recs := recordPool(f, 40)
	var w bytes.Buffer
	fw := newFrameWriter(discardConnW{&w}, time.Second, time.Time{})
	fw.write(frameHello, helloPayload("test"))
	rw := &rangeWriter{}
	rw.add(wireRange{upper: infKey, mode: modeIDList, ids: []registry.ID{recs[0].ID()}})
	fw.write(frameRanges, rw.buf)
	fw.write(frameWant, appendIDs(nil, []registry.ID{recs[1].ID()}))
	fw.write(frameEnd, nil)
	fw.write(frameDone, nil)
	fw.flush()
	f.Add(w.Bytes())
	f.Add([]byte{frameHello, 3, 1, 1, 'x'})
	rep := newTestReplica(f, recs[:20])
	f.Fuzz(func(t *testing.T, in []byte) {
		s := newSession(rep.rep, discardConn{bytes.NewReader(in)}, false)
		s.respond(context.Background())
		if rep.db.Fingerprint() != rep.rep.idx.fingerprint() {
			t.Fatal("store and index disagree")
		}
	})
}

type discardConnW struct{ w io.Writer }

func (c discardConnW) Read([]byte) (int, error)       { return 0, io.EOF }
func (c discardConnW) Write(p []byte) (int, error)    { return c.w.Write(p) }
func (discardConnW) SetReadDeadline(time.Time) error  { return nil }
func (discardConnW) SetWriteDeadline(time.Time) error { return nil }

// exchangeRanges runs the range phase of a reconciliation between two
// indexes without a network and returns the RANGES bytes, the half-rounds,
// and the keys each side learned it must send or ask for.
func exchangeRanges(t testing.TB, lag, full *index) (bytes, halfRounds, found int) {
	mk := func(x *index) *session {
		return &session{rep: &replica{idx: x}, p: defaultReconParams, ranges: &rangeWriter{},
			queued: map[registry.ID]struct{}{}, wanted: map[registry.ID]struct{}{}}
	}
	a, b := mk(lag), mk(full)
	a.respondFingerprint(minKey, infKey, [16]byte{}, true)
	cur, other := a, b
	for cur.ranges.open > 0 {
		var rs []wireRange
		for _, f := range cur.ranges.payloads() {
			if len(f) > MaxRangesFrame {
				t.Fatalf("RANGES frame of %d bytes", len(f))
			}
			bytes += len(f)
			prev := minKey
			if len(rs) > 0 {
				prev = rs[len(rs)-1].upper
			}
			more, err := parseRanges(f, maxIDsIn, prev)
			if err != nil {
				t.Fatal(err)
			}
			rs = append(rs, more...)
		}
		cur.ranges, other.ranges = &rangeWriter{}, &rangeWriter{}
		other.processRanges(rs)
		halfRounds++
		cur, other = other, cur
	}
	return bytes, halfRounds, len(a.wantQ) + len(b.wantQ) + len(a.outbox) + len(b.outbox)
}

// TestReconcileScalesWithDifference: on sets of 10,000 and 100,000 keys,
// the reconciliation bytes grow with the difference and barely with the
// size of the sets, and every difference is found.
func TestReconcileScalesWithDifference(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	byN := map[int]int{}
	for _, n := range []int{10000, 100000} {
		all := make([]key, n)
		for i := range all {
			all[i] = randomKey(rng, 1)
			all[i].t = baseTime.UnixMilli() + int64(i)/10
		}
		prevBytes := 0
		for _, d := range []int{10, 100, 1000} {
			full, lag := newIndex(), newIndex()
			for i, k := range all {
				full.add(k)
				if i%(n/d) != n/d/2 {
					lag.add(k)
				}
			}
			bytes, half, found := exchangeRanges(t, lag, full)
			t.Logf("n=%d d=%d: %d RANGES bytes in %d half-rounds", n, d, bytes, half)
			if found != d {
				t.Fatalf("n=%d d=%d: found %d differences", n, d, found)
			}
			// Range-based reconciliation costs O(d·log(n/d)) bytes.
			if limit := float64(d)*80*math.Log2(float64(n)/float64(d)) + 1000; float64(bytes) > limit || bytes <= prevBytes {
				t.Fatalf("n=%d d=%d: %d bytes; want at most %.0f and more than for fewer differences", n, d, bytes, limit)
			}
			if half > 10 {
				t.Fatalf("n=%d d=%d: %d half-rounds", n, d, half)
			}
			prevBytes = bytes
			if d == 100 {
				byN[n] = bytes
			}
		}
	}
	if byN[100000] > 2*byN[10000] {
		t.Fatalf("100 differences cost %d bytes in 100,000 keys and %d in 10,000: bytes follow the set size", byN[100000], byN[10000])
	}
}

// BenchmarkExchangeRanges measures the range phase of reconciling 100,000
// keys that differ by 100, in memory (CPU per session, both sides).
func BenchmarkExchangeRanges(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 6))
	full, lag := newIndex(), newIndex()
	for i := range 100000 {
		k := randomKey(rng, 1)
		k.t = baseTime.UnixMilli() + int64(i)/10
		full.add(k)
		if i%1000 != 500 {
			lag.add(k)
		}
	}
	b.ResetTimer()
	var bytes int
	for b.Loop() {
		bytes, _, _ = exchangeRanges(b, lag, full)
	}
	b.ReportMetric(float64(bytes), "bytes/session")
}
