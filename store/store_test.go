package store

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/internal/testkit"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func key(t testing.TB, seed byte) registry.PrivateKey {
	t.Helper()
	return testkit.Key(seed)
}

func release(t testing.TB, k registry.PrivateKey, name, version string, at time.Time, blob []byte) *registry.Record {
	t.Helper()
	id := registry.Sum(blob)
	body := &registry.ReleaseBody{Name: name, Version: version, Cksum: id.Hex(), Blob: id.Bytes(), Size: uint64(len(blob))}
	r, err := registry.Sign(k, registry.KindRelease, registry.ReleaseSubject(name, version), body, at)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func sign(t testing.TB, k registry.PrivateKey, kind registry.Kind, subject string, body any, at time.Time) *registry.Record {
	t.Helper()
	r, err := registry.Sign(k, kind, subject, body, at)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// stores runs a test against an in-memory and an on-disk store.
func stores(t *testing.T, fn func(t *testing.T, db *DB)) {
	for _, mem := range []bool{true, false} {
		t.Run(fmt.Sprintf("inmemory=%v", mem), func(t *testing.T) {
			db, err := Open(t.TempDir(), Options{InMemory: mem, Now: func() time.Time { return t0.Add(time.Hour) }})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			if _, err := db.SetAuthority(registry.TrustEveryone()); err != nil {
				t.Fatal(err)
			}
			fn(t, db)
		})
	}
}

func TestRecordsAndIndexes(t *testing.T) {
	stores(t, func(t *testing.T, db *DB) {
		a, b := key(t, 1), key(t, 2)
		r1 := release(t, a, "foo", "1.0.0", t0, []byte("one"))
		r2 := release(t, a, "foo", "1.1.0", t0.Add(time.Second), []byte("two"))
		r3 := release(t, b, "bar", "0.1.0", t0.Add(-time.Second), []byte("three"))
		y := sign(t, a, registry.KindYank, "foo@1.0.0", &registry.YankBody{Yanked: true, Reason: "broken"}, t0.Add(2*time.Second))

		added, err := db.PutRecords([]*registry.Record{r1, r2, r3, y, r1})
		if err != nil {
			t.Fatal(err)
		}
		if len(added) != 4 {
			t.Fatalf("added %d records, want 4 (the duplicate is skipped)", len(added))
		}
		again, err := db.PutRecords([]*registry.Record{r1, r2})
		if err != nil || len(again) != 0 {
			t.Fatalf("re-put added %d, err %v; want 0, nil", len(again), err)
		}
		got, err := db.GetRecord(r2.ID())
		if err != nil || !bytes.Equal(got.Bytes(), r2.Bytes()) {
			t.Fatalf("GetRecord: %v", err)
		}
		if _, err := db.GetRecord(registry.Sum([]byte("nope"))); registry.KindOf(err) != registry.ENOTFOUND {
			t.Fatalf("GetRecord of a missing ID: kind %q, want not_found", registry.KindOf(err))
		}
		if ok, _ := db.HasRecord(y.ID()); !ok {
			t.Fatal("HasRecord(yank) = false")
		}

		ids := func(rs []*registry.Record) []registry.ID {
			var out []registry.ID
			for _, r := range rs {
				out = append(out, r.ID())
			}
			slices.SortFunc(out, registry.ID.Compare)
			return out
		}
		want := ids([]*registry.Record{r1, r2, y})
		byName, _ := db.RecordsByName("foo")
		if !slices.Equal(ids(byName), want) {
			t.Fatalf("RecordsByName(foo) = %v, want %v", ids(byName), want)
		}
		bySubject, _ := db.RecordsBySubject("foo@1.0.0")
		if !slices.Equal(ids(bySubject), ids([]*registry.Record{r1, y})) {
			t.Fatalf("RecordsBySubject wrong: %v", ids(bySubject))
		}
		byKind, _ := db.RecordsByKind(registry.KindRelease)
		if !slices.Equal(ids(byKind), ids([]*registry.Record{r1, r2, r3})) {
			t.Fatalf("RecordsByKind wrong")
		}
		byAuthor, _ := db.RecordsByAuthor(b.Public())
		if !slices.Equal(ids(byAuthor), ids([]*registry.Record{r3})) {
			t.Fatalf("RecordsByAuthor wrong")
		}

		var order []registry.ID
		var fp registry.Fingerprint
		db.ScanTimeIndex(func(ts int64, id registry.ID) error { order = append(order, id); fp.Add(id); return nil })
		wantOrder := []registry.ID{r3.ID(), r1.ID(), r2.ID(), y.ID()}
		if !slices.Equal(order, wantOrder) {
			t.Fatalf("time order = %v, want %v", order, wantOrder)
		}
		if db.Fingerprint() != fp {
			t.Fatal("incremental fingerprint differs from a full scan")
		}
		if n, _ := db.Counts(); n != 4 {
			t.Fatalf("Counts records = %d, want 4", n)
		}

		v, err := db.GetView("foo", "1.0.0")
		if err != nil {
			t.Fatal(err)
		}
		if !v.Yanked || v.YankReason != "broken" || v.Release != r1.ID() || v.Yank == nil || v.Yank.ID != y.ID() {
			t.Fatalf("view of foo@1.0.0 = %+v; want yanked by %s", v, y.ID())
		}
		if v2, _ := db.GetView("foo", "1.1.0"); v2 == nil || v2.Yanked {
			t.Fatal("foo@1.1.0 should exist and not be yanked")
		}
		if _, err := db.GetView("foo", "9.9.9"); registry.KindOf(err) != registry.ENOTFOUND {
			t.Fatalf("missing view: %v", err)
		}
	})
}

func TestConflictingReleaseIsKeptAsEvidence(t *testing.T) {
	stores(t, func(t *testing.T, db *DB) {
		a := key(t, 1)
		first := release(t, a, "foo", "1.0.0", t0, []byte("first"))
		second := release(t, a, "foo", "1.0.0", t0.Add(time.Minute), []byte("second"))
		// Deliver the later one first: the first by (time, ID) still wins.
		for _, r := range []*registry.Record{second, first} {
			if _, err := db.PutRecords([]*registry.Record{r}); err != nil {
				t.Fatal(err)
			}
		}
		v, err := db.GetView("foo", "1.0.0")
		if err != nil {
			t.Fatal(err)
		}
		if v.Release != first.ID() || len(v.Claims) != 1 || v.Claims[0].ID != second.ID() || !v.Claims[0].Authorized {
			t.Fatalf("winner %s claims %+v; want %s with an authorized claim %s", v.Release, v.Claims, first.ID(), second.ID())
		}
	})
}

func TestListViewsPaginationAndFilter(t *testing.T) {
	stores(t, func(t *testing.T, db *DB) {
		a := key(t, 1)
		var recs []*registry.Record
		for i := 0; i < 25; i++ {
			recs = append(recs, release(t, a, fmt.Sprintf("crate%02d", i), "1.0.0", t0.Add(time.Duration(i)*time.Second), []byte{byte(i)}))
		}
		recs = append(recs, release(t, a, "crate00", "2.0.0", t0.Add(time.Hour), []byte("v2")))
		if _, err := db.PutRecords(recs); err != nil {
			t.Fatal(err)
		}
		var all []string
		cursor := ""
		for pages := 0; ; pages++ {
			if pages > 10 {
				t.Fatal("pagination does not end")
			}
			page, next, err := db.ListViews(ListQuery{After: cursor, Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range page {
				all = append(all, v.Subject())
			}
			if next == "" {
				break
			}
			cursor = next
		}
		if len(all) != 26 || all[0] != "crate00@1.0.0" || all[1] != "crate00@2.0.0" || all[25] != "crate24@1.0.0" {
			t.Fatalf("pages gave %d items: %v", len(all), all)
		}
		if !slices.IsSorted(all) {
			t.Fatalf("order not stable: %v", all)
		}
		odd, _, err := db.ListViews(ListQuery{Match: func(v *ReleaseView) bool { return v.Body.Name[len(v.Body.Name)-1]%2 == 1 }})
		if err != nil {
			t.Fatal(err)
		}
		if len(odd) != 12 {
			t.Fatalf("filter kept %d, want 12", len(odd))
		}
		exact, _ := db.ViewsByName("crate00")
		if len(exact) != 2 {
			t.Fatalf("ViewsByName(crate00) = %d views, want 2", len(exact))
		}
		pre, _, _ := db.ListViews(ListQuery{Prefix: "crate1"})
		if len(pre) != 10 {
			t.Fatalf("prefix crate1 gave %d, want 10", len(pre))
		}
	})
}

func TestReindexRebuildsTheSameState(t *testing.T) {
	stores(t, func(t *testing.T, db *DB) {
		a, b := key(t, 1), key(t, 2)
		recs := []*registry.Record{
			release(t, a, "foo", "1.0.0", t0, []byte("x")),
			release(t, b, "foo", "1.0.0", t0.Add(time.Second), []byte("y")),
			sign(t, a, registry.KindYank, "foo@1.0.0", &registry.YankBody{Yanked: true}, t0.Add(2*time.Second)),
			sign(t, b, registry.KindReview, "foo@1.0.0", &registry.ReviewBody{Verdict: "flag", Comment: "dup"}, t0.Add(3*time.Second)),
		}
		if _, err := db.PutRecords(recs); err != nil {
			t.Fatal(err)
		}
		before, _ := db.GetView("foo", "1.0.0")
		fp := db.Fingerprint()
		n, err := db.Reindex()
		if err != nil || n != 4 {
			t.Fatalf("Reindex = %d, %v", n, err)
		}
		after, err := db.GetView("foo", "1.0.0")
		if err != nil {
			t.Fatal(err)
		}
		b1, _ := registry.Marshal(before)
		b2, _ := registry.Marshal(after)
		if !bytes.Equal(b1, b2) || db.Fingerprint() != fp {
			t.Fatal("reindex changed the state")
		}
		byName, _ := db.RecordsByName("foo")
		if len(byName) != 4 {
			t.Fatalf("name index after reindex has %d records", len(byName))
		}
	})
}

func TestBlobs(t *testing.T) {
	stores(t, func(t *testing.T, db *DB) {
		data := bytes.Repeat([]byte("crate"), 1000)
		id, err := db.PutBlob(data)
		if err != nil || id != registry.Sum(data) {
			t.Fatalf("PutBlob = %s, %v", id, err)
		}
		db.PutBlob(data)
		if _, n := db.Counts(); n != 1 {
			t.Fatalf("blob count %d, want 1", n)
		}
		got, err := db.GetBlob(id)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatal("GetBlob returned other bytes")
		}
		if _, err := db.GetBlob(registry.Sum([]byte("x"))); registry.KindOf(err) != registry.ENOTFOUND {
			t.Fatalf("missing blob: %v", err)
		}
	})
}

func TestJobs(t *testing.T) {
	stores(t, func(t *testing.T, db *DB) {
		rel := registry.Sum([]byte("release"))
		j1, created, err := db.EnqueueJob("foo@1.0.0", rel)
		if err != nil || !created {
			t.Fatal(err)
		}
		j2, created, _ := db.EnqueueJob("foo@1.0.0", rel)
		if created || j2.ID != j1.ID {
			t.Fatal("a second enqueue of an active release made a new job")
		}
		other, _, _ := db.EnqueueJob("bar@1.0.0", registry.Sum([]byte("other")))
		c, err := db.ClaimJob()
		if err != nil || c.ID != j1.ID || c.State != JobRunning || c.Attempts != 1 {
			t.Fatalf("ClaimJob = %+v, %v", c, err)
		}
		n, err := db.RequeueInterrupted()
		if err != nil || n != 1 {
			t.Fatalf("RequeueInterrupted = %d, %v", n, err)
		}
		c, _ = db.ClaimJob()
		if c.ID != j1.ID || c.Attempts != 2 {
			t.Fatalf("requeued job not claimed first: %+v", c)
		}
		done, err := db.UpdateJob(c.ID, func(j *Job) error { j.State = JobDone; j.Outcome = "test-pass"; return nil })
		if err != nil || done.State != JobDone {
			t.Fatal(err)
		}
		c, _ = db.ClaimJob()
		if c.ID != other.ID {
			t.Fatalf("next claim = %d, want %d", c.ID, other.ID)
		}
		if c, _ := db.ClaimJob(); c != nil {
			t.Fatalf("claimed %d from an empty queue", c.ID)
		}
		list, _ := db.ListJobs(0, nil)
		if len(list) != 2 || list[0].ID != other.ID {
			t.Fatalf("ListJobs newest first: %v", list)
		}
	})
}

func TestLocalAndAudit(t *testing.T) {
	stores(t, func(t *testing.T, db *DB) {
		if _, err := db.GetLocal("x"); registry.KindOf(err) != registry.ENOTFOUND {
			t.Fatal("unset local value should be not_found")
		}
		db.PutLocal("x", []byte("1"))
		if v, _ := db.GetLocal("x"); string(v) != "1" {
			t.Fatal("GetLocal after PutLocal")
		}
		for i := 0; i < 5; i++ {
			db.Audit(AuditEntry{Action: "submit", Subject: fmt.Sprint(i)})
		}
		log, _ := db.AuditLog(0, 3)
		if len(log) != 3 || log[0].Subject != "4" || log[2].Subject != "2" {
			t.Fatalf("audit log = %+v", log)
		}
		older, _ := db.AuditLog(log[2].Seq, 10)
		if len(older) != 2 || older[0].Subject != "1" {
			t.Fatalf("audit log page 2 = %+v", older)
		}
	})
}

func TestReopenKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	a := key(t, 1)
	r := release(t, a, "foo", "1.0.0", t0, []byte("x"))
	if _, err := db.PutRecords([]*registry.Record{r}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.PutBlob([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{}); err == nil {
		t.Fatal("a second Open of a directory in use succeeded")
	}
	fp := db.Fingerprint()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db2, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if db2.Fingerprint() != fp {
		t.Fatal("fingerprint changed across reopen")
	}
	if recs, blobs := db2.Counts(); recs != 1 || blobs != 1 {
		t.Fatalf("counts after reopen = %d records, %d blobs", recs, blobs)
	}
	if v, err := db2.GetView("foo", "1.0.0"); err != nil || v.Release != r.ID() {
		t.Fatalf("view after reopen: %v", err)
	}
}
