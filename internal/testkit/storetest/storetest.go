// Package storetest is the contract every federation.Store must keep, as a
// suite of tests to run against each implementation. Only tests import it.
package storetest

import (
	"bytes"
	"errors"
	"slices"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/federation"
	"github.com/wasmrust/wasm-crates-registry/internal/testkit"
)

// Run runs the federation.Store contract against the stores open returns;
// open is called once per subtest and must return an empty store that
// lives until the subtest ends.
func Run(t *testing.T, open func(t *testing.T) federation.Store) {
	t.Run("PutRecordsReportsOnlyNew", func(t *testing.T) { putRecordsReportsOnlyNew(t, open(t)) })
	t.Run("GetRecordReturnsTheSameBytes", func(t *testing.T) { getRecordReturnsTheSameBytes(t, open(t)) })
	t.Run("ScanTimeIndexOrder", func(t *testing.T) { scanTimeIndexOrder(t, open(t)) })
	t.Run("Blobs", func(t *testing.T) { blobs(t, open(t)) })
	t.Run("Local", func(t *testing.T) { local(t, open(t)) })
}

// records signs n yank records at times base+i%3 (so several share a time).
func records(t *testing.T, n int, base int64) []*registry.Record {
	t.Helper()
	var out []*registry.Record
	for i := 0; i < n; i++ {
		r, err := registry.Sign(testkit.Key(byte(1+i%5)), registry.KindYank, "contract@1.0.0", &registry.YankBody{Yanked: i%2 == 0, Reason: string(rune('a' + i))}, time.UnixMilli(base+int64(i%3)))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func ids(rs []*registry.Record) []registry.ID {
	var out []registry.ID
	for _, r := range rs {
		out = append(out, r.ID())
	}
	slices.SortFunc(out, registry.ID.Compare)
	return out
}

func notFound(t *testing.T, what string, err error) {
	t.Helper()
	if registry.KindOf(err) != registry.ENOTFOUND {
		t.Errorf("%s: error %v (kind %v), want kind %v", what, err, registry.KindOf(err), registry.ENOTFOUND)
	}
}

// putRecordsReportsOnlyNew: PutRecords returns each record not held
// before, once, even when a batch repeats it; records held before are not
// returned again.
func putRecordsReportsOnlyNew(t *testing.T, s federation.Store) {
	rs := records(t, 6, 1_700_000_000_000)
	added, err := s.PutRecords(rs[:4])
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(added), ids(rs[:4])) {
		t.Fatalf("first batch: added %d records, want the 4 new ones", len(added))
	}
	added, err = s.PutRecords([]*registry.Record{rs[2], rs[4], rs[4], rs[3], rs[5]})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(added), ids(rs[4:])) {
		t.Fatalf("second batch: added %d records, want rs[4] and rs[5] once each", len(added))
	}
	added, err = s.PutRecords(rs)
	if err != nil {
		t.Fatal(err)
	}
	if len(added) != 0 {
		t.Fatalf("a batch of held records added %d", len(added))
	}
}

// getRecordReturnsTheSameBytes: a held record comes back byte for byte;
// an unknown ID is ENOTFOUND.
func getRecordReturnsTheSameBytes(t *testing.T, s federation.Store) {
	rs := records(t, 3, 1_700_000_000_000)
	if _, err := s.PutRecords(rs[:2]); err != nil {
		t.Fatal(err)
	}
	for _, r := range rs[:2] {
		got, err := s.GetRecord(r.ID())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), r.Bytes()) || got.ID() != r.ID() {
			t.Fatalf("GetRecord(%s) returned other bytes", r.ID())
		}
	}
	_, err := s.GetRecord(rs[2].ID())
	notFound(t, "GetRecord of a record never put", err)
}

// scanTimeIndexOrder: ScanTimeIndex visits every held record once, in
// (time, ID) order, and stops with fn's error.
func scanTimeIndexOrder(t *testing.T, s federation.Store) {
	rs := append(records(t, 7, 1_700_000_000_000), records(t, 4, 1_600_000_000_000)...)
	for _, r := range rs {
		if _, err := s.PutRecords([]*registry.Record{r}); err != nil {
			t.Fatal(err)
		}
	}
	type entry struct {
		t  int64
		id registry.ID
	}
	var want []entry
	for _, r := range rs {
		want = append(want, entry{r.Time, r.ID()})
	}
	slices.SortFunc(want, func(a, b entry) int {
		if a.t != b.t {
			if a.t < b.t {
				return -1
			}
			return 1
		}
		return a.id.Compare(b.id)
	})
	var got []entry
	if err := s.ScanTimeIndex(func(t int64, id registry.ID) error { got = append(got, entry{t, id}); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("scan gave %d entries in this order:\n%v\nwant %d:\n%v", len(got), got, len(want), want)
	}
	stop := errors.New("stop")
	n := 0
	err := s.ScanTimeIndex(func(int64, registry.ID) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("a scan whose fn fails returned %v after %d calls, want fn's error after 1", err, n)
	}
}

// blobs: PutBlob addresses a blob by the multihash of its bytes, GetBlob
// and HasBlob find it, and an unknown blob is ENOTFOUND and not held.
func blobs(t *testing.T, s federation.Store) {
	b := testkit.Crate("contract", "1.0.0", nil)
	id, err := s.PutBlob(b)
	if err != nil {
		t.Fatal(err)
	}
	if id != registry.Sum(b) {
		t.Fatalf("PutBlob returned %s, want the multihash of the bytes %s", id, registry.Sum(b))
	}
	got, err := s.GetBlob(id)
	if err != nil || !bytes.Equal(got, b) {
		t.Fatalf("GetBlob: %v, same bytes %t", err, bytes.Equal(got, b))
	}
	if ok, err := s.HasBlob(id); err != nil || !ok {
		t.Fatalf("HasBlob of a held blob: %t, %v", ok, err)
	}
	if again, err := s.PutBlob(b); err != nil || again != id {
		t.Fatalf("putting a held blob again: %s, %v", again, err)
	}
	other := registry.Sum([]byte("never stored"))
	if ok, err := s.HasBlob(other); err != nil || ok {
		t.Fatalf("HasBlob of an unknown blob: %t, %v", ok, err)
	}
	_, err = s.GetBlob(other)
	notFound(t, "GetBlob of a blob never put", err)
}

// local: an unset key is ENOTFOUND; PutLocal sets and overwrites; the
// value returned does not alias the caller's slice.
func local(t *testing.T, s federation.Store) {
	_, err := s.GetLocal(federation.PeerBookKey)
	notFound(t, "GetLocal of an unset key", err)
	v := []byte(`["one"]`)
	if err := s.PutLocal(federation.PeerBookKey, v); err != nil {
		t.Fatal(err)
	}
	v[2] = 'X'
	got, err := s.GetLocal(federation.PeerBookKey)
	if err != nil || string(got) != `["one"]` {
		t.Fatalf("GetLocal after PutLocal: %q, %v", got, err)
	}
	if err := s.PutLocal(federation.PeerBookKey, []byte(`["two"]`)); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetLocal(federation.PeerBookKey); err != nil || string(got) != `["two"]` {
		t.Fatalf("GetLocal after an overwrite: %q, %v", got, err)
	}
	if _, err := s.GetLocal("other"); registry.KindOf(err) != registry.ENOTFOUND {
		t.Fatalf("a second key reads the first's value: %v", err)
	}
}
