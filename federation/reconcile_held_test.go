package federation

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// withHeld makes a test replica skip records its store holds, as a node's
// replica does.
func withHeld(r *testReplica) *testReplica {
	r.rep.held = func(id registry.ID) bool {
		ok, err := r.db.HasRecord(id)
		return ok && err == nil
	}
	return r
}

// TestReconcileSkipsRecordsThatArrivedMeanwhile: records that reach a node
// by another path (gossip, another session) after it asked for them are
// dropped on arrival without being verified again, and the session ends
// with the union of both sets.
func TestReconcileSkipsRecordsThatArrivedMeanwhile(t *testing.T) {
	recs := recordPool(t, 300)
	common, extra := recs[:200], recs[200:]
	a := withHeld(newTestReplica(t, common))
	b := newTestReplica(t, recs)
	// When a learns which records it lacks, "gossip" delivers half of them.
	meanwhile := map[registry.ID]*registry.Record{}
	for i, r := range extra {
		if i%2 == 0 {
			meanwhile[r.ID()] = r
		}
	}
	injected := 0
	a.rep.refused = func(id registry.ID) bool {
		if r, ok := meanwhile[id]; ok {
			added, err := a.db.PutRecords([]*registry.Record{r})
			if err != nil {
				t.Error(err)
			}
			injected += len(added)
		}
		return false
	}
	ra, _, errA, errB := reconcilePair(t, a, b)
	if errA != nil || errB != nil {
		t.Fatalf("initiator: %v; responder: %v", errA, errB)
	}
	if a.db.Fingerprint() != fingerprintOf(recs) {
		t.Fatal("the initiator does not hold the union")
	}
	// Records in ranges the initiator listed are pushed without a WANT, so
	// not every one of meanwhile went through the hook.
	if injected < len(meanwhile)/2 || ra.duplicates != injected || ra.added != len(extra)-injected {
		t.Fatalf("%d records arrived meanwhile; the session skipped %d held records and added %d; want %d and %d",
			injected, ra.duplicates, ra.added, injected, len(extra)-injected)
	}
}

// TestReconcileBatchVerificationRejectsOneForgery: a responder pushing many
// records, one of them forged (a held record's bytes with a flipped
// signature bit, or a new record's), is a protocol violation wherever the
// forgery sits among the signature batches, and nothing it sent is stored.
func TestReconcileBatchVerificationRejectsOneForgery(t *testing.T) {
	recs := recordPool(t, 400)
	held := recs[:4] // few: the opening turn is an ID list, so every record is solicited
	pushed := recs[100:300]
	for name, forge := range map[string]*registry.Record{
		"copy of a held record": held[1],
		"new record":            recs[350],
	} {
		for _, at := range []int{0, verifyChunk - 1, verifyChunk + 5, len(pushed)} {
			forged := append([]byte(nil), forge.Bytes()...)
			forged[len(forged)-3] ^= 0x01 // inside the signature
			a := withHeld(newTestReplica(t, held))
			_, err := scriptedWith(t, a, func(fw *frameWriter) {
				for i, r := range pushed {
					if i == at {
						fw.write(frameRecord, forged)
					}
					fw.write(frameRecord, r.Bytes())
				}
				if at == len(pushed) {
					fw.write(frameRecord, forged)
				}
				fw.write(frameEnd, nil)
			})
			if !errors.Is(err, errViolation) {
				t.Fatalf("%s at %d: session error = %v, want a protocol violation", name, at, err)
			}
			if a.db.Fingerprint() != fingerprintOf(held) {
				t.Fatalf("%s at %d: the hostile session stored records", name, at)
			}
		}
	}
}

// scriptedWith is scripted over a given initiator.
func scriptedWith(t *testing.T, a *testReplica, reply func(fw *frameWriter)) (sessionResult, error) {
	t.Helper()
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
	return newSession(a.rep, ca, true).initiate(context.Background())
}
