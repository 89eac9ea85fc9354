package node

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// recTime is the time of the test's records: fixed, so that signing the
// same content twice makes the same record.
var recTime = time.Now().Add(-time.Hour).Truncate(time.Millisecond)

func reviewBy(t testing.TB, k registry.PrivateKey, subject, comment string) *registry.Record {
	t.Helper()
	r, err := registry.Sign(k, registry.KindReview, subject, &registry.ReviewBody{Verdict: registry.VerdictApprove, Comment: comment}, recTime)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func unknownBy(t testing.TB, k registry.PrivateKey, subject string, pad int) *registry.Record {
	t.Helper()
	r, err := registry.Sign(k, registry.Kind("futurekind"), subject, map[int]string{1: fmt.Sprintf("%0*d", pad, 0)}, recTime)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func importRecs(n *Node, recs ...*registry.Record) error {
	raw := make([][]byte, len(recs))
	for i, r := range recs {
		raw[i] = r.Bytes()
	}
	_, err := n.Ingest(context.Background(), "test", raw)
	return err
}

// TestQuotasHoldAcrossRestarts (DESIGN.md §2 "Bounded by design"): an
// untrusted author's records stop being stored at its count quota, unknown
// kinds at their own small budget, a restart does not reset either, and the
// node's trust roots are exempt.
func TestQuotasHoldAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	q := Quotas{AuthorCount: 3, UnknownCount: 2, UnknownBytes: 4 << 10}
	open := func() *Node {
		n, err := Open(context.Background(), Config{DataDir: dir, Announce: io.Discard, Quotas: q, ScrubInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	n := open()
	stranger, _ := registry.GenerateKey(nil)
	root, _ := registry.GenerateKey(nil)
	for i := range 3 {
		if err := importRecs(n, reviewBy(t, stranger, "q@1.0.0", fmt.Sprint(i))); err != nil {
			t.Fatalf("record %d within the quota: %v", i, err)
		}
	}
	over := reviewBy(t, stranger, "q@1.0.0", "one too many")
	if err := importRecs(n, over); registry.KindOf(err) != registry.ETOOLARGE {
		t.Fatalf("record over the author quota: %v, want too_large", err)
	}
	// Already held records pass uncounted.
	if err := importRecs(n, reviewBy(t, stranger, "q@1.0.0", "0")); err != nil {
		t.Fatalf("re-importing a held record: %v", err)
	}
	if err := importRecs(n, unknownBy(t, stranger, "u1", 10)); registry.KindOf(err) != registry.ETOOLARGE {
		t.Fatalf("unknown kind by an author over quota: %v", err)
	}
	other, _ := registry.GenerateKey(nil)
	if err := importRecs(n, unknownBy(t, other, "u1", 10), unknownBy(t, other, "u2", 10)); err != nil {
		t.Fatal(err)
	}
	third, _ := registry.GenerateKey(nil)
	if err := importRecs(n, unknownBy(t, third, "u3", 10)); registry.KindOf(err) != registry.ETOOLARGE {
		t.Fatalf("a third unknown-kind record with a budget of two: %v", err)
	}
	if _, err := n.UpdateSettings(context.Background(), "test", []byte(`{"trust":{"keys":["`+root.Public().PeerID()+`"]}}`)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(admissionTrustTTL + 100*time.Millisecond)
	for i := range 5 {
		if err := importRecs(n, reviewBy(t, root, "q@1.0.0", fmt.Sprint(i)), unknownBy(t, root, fmt.Sprint("r", i), 10)); err != nil {
			t.Fatalf("trust root's record %d: %v", i, err)
		}
	}
	n.Close()

	n = open()
	defer n.Close()
	if err := importRecs(n, over); registry.KindOf(err) != registry.ETOOLARGE {
		t.Fatalf("after a restart, the author quota was reset: %v", err)
	}
	if err := importRecs(n, unknownBy(t, third, "u3", 10)); registry.KindOf(err) != registry.ETOOLARGE {
		t.Fatalf("after a restart, the unknown-kind budget was reset: %v", err)
	}
	if u := n.adm.Usage(acctAuthor + stranger.Public().PeerID()); u.Count != 3 {
		t.Errorf("stranger's usage = %+v, want 3 records", u)
	}
	if u := n.adm.Usage(acctAuthor + root.Public().PeerID()); u.Count != 0 {
		t.Errorf("trust root's records were counted: %+v", u)
	}
}
