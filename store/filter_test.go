package store

import (
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// filterCases are every filter the index serves, with values no view has.
func filterCases() []Filter {
	var out []Filter
	for _, v := range []string{registry.WasmCompatible, registry.WasmBuilds, registry.WasmPartial, registry.WasmIncompatible, registry.WasmUntested, unknownWasm, "nothing", ""} {
		out = append(out, Filter{FilterWasm, v})
	}
	for _, f := range []FilterField{FilterYanked, FilterGCReady, FilterDual} {
		out = append(out, Filter{f, "true"}, Filter{f, "false"}, Filter{f, "maybe"})
	}
	// A value with the key separator in it must not act as a name prefix.
	return append(out, Filter{'?', "true"}, Filter{FilterYanked, "false\x00c1"}, Filter{FilterWasm, "untested\x00"})
}

// refMatch is the filter as GET /crates states it (node.List), written
// out independently of the index's own code.
func refMatch(v *ReleaseView, f Filter, auth registry.Authority) bool {
	tr := v.TrustedReport(func(k registry.PublicKey) bool { return auth.May(k, registry.RoleTester, v.Name) })
	switch f.Field {
	case FilterYanked:
		return fmt.Sprint(v.Yanked) == f.Value
	case FilterWasm:
		if tr == nil {
			return f.Value == registry.WasmUntested
		}
		return tr.Wasm == f.Value
	case FilterGCReady:
		return fmt.Sprint(tr != nil && tr.GCReady) == f.Value
	case FilterDual:
		return fmt.Sprint(tr != nil && tr.Dual) == f.Value
	}
	return false
}

// listAll pages through ListViews with q until the end.
func listAll(t *testing.T, db *DB, q ListQuery) []string {
	t.Helper()
	var out []string
	for pages := 0; ; pages++ {
		vs, next, err := db.ListViews(q)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			out = append(out, v.Subject())
		}
		if next == "" {
			return out
		}
		if pages > 10000 {
			t.Fatal("ListViews never ends")
		}
		q.After = next
	}
}

// checkFilters compares every filtered listing through the index with a
// scan that tests every view, whole and in pages, for all names and for
// one crate, and checks that the index holds exactly one entry per view
// and field.
func checkFilters(t *testing.T, db *DB, when string) (matched int) {
	t.Helper()
	auth := db.authority()
	views := 0
	for _, f := range filterCases() {
		for _, base := range []ListQuery{{}, {Limit: 7}, {Prefix: "c1", ExactName: true, Limit: 2}, {Prefix: "c1"}, {After: "c2@"}, {After: "c3@1.0.0", Limit: 3}} {
			q := base
			q.Filter = &f
			got := listAll(t, db, q)
			scan := base
			scan.Match = func(v *ReleaseView) bool { return refMatch(v, f, auth) }
			want := listAll(t, db, scan)
			if !slices.Equal(got, want) {
				t.Fatalf("%s: filter %c=%q with %+v lists %d views through the index, %d by a scan\nindex %v\nscan  %v",
					when, f.Field, f.Value, base, len(got), len(want), got, want)
			}
			matched += len(got)
		}
	}
	views = len(listAll(t, db, ListQuery{}))
	if n := countPrefix(t, db, pFilter); n != views*len(filterFields) {
		t.Fatalf("%s: the filter index holds %d entries for %d views, want %d", when, n, views, views*len(filterFields))
	}
	return matched
}

// TestFilterIndexEqualsAScan: on random crates (releases by a publisher
// and by strangers, yanks, reports by a tester and by strangers with every
// verdict), stored in random batches, every
// filter through the index lists what a scan of every view lists; and
// still after a restart, a Reindex, and a change of Authority that takes
// the tester role away (the entries it made must go).
func TestFilterIndexEqualsAScan(t *testing.T) {
	publisher, tester := key(t, 1), key(t, 2)
	var strangers []registry.PrivateKey
	for i := range 5 {
		strangers = append(strangers, key(t, byte(50+i)))
	}
	verdicts := []string{registry.WasmCompatible, registry.WasmBuilds, registry.WasmPartial, registry.WasmIncompatible}
	for seed := int64(0); seed < 4; seed++ {
		rng := rand.New(rand.NewSource(seed))
		dir := t.TempDir()
		now := func() time.Time { return t0.Add(time.Hour) }
		db, err := Open(dir, Options{Now: now, GCInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		both := registry.NewTrust([]registry.PublicKey{publisher.Public(), tester.Public()}, nil, t0, time.Minute)
		if _, err := db.SetAuthority(both); err != nil {
			t.Fatal(err)
		}
		var recs, releases []*registry.Record
		for c := range 12 {
			name := fmt.Sprintf("c%d", c)
			if c == 11 {
				name = "c1-lookalike"
			}
			for v := range 1 + rng.Intn(4) {
				k := publisher
				if rng.Intn(3) == 0 {
					k = strangers[rng.Intn(len(strangers))]
				}
				r := release(t, k, name, fmt.Sprintf("1.%d.0", v), t0.Add(time.Duration(rng.Intn(600))*time.Second), []byte{byte(seed), byte(c), byte(v)})
				recs, releases = append(recs, r), append(releases, r)
			}
		}
		for i := range 300 {
			rel := releases[rng.Intn(len(releases))]
			at := t0.Add(time.Duration(rng.Intn(3000)) * time.Second)
			k := tester
			if rng.Intn(3) == 0 {
				k = strangers[rng.Intn(len(strangers))]
			}
			if rng.Intn(6) == 0 {
				recs = append(recs, sign(t, publisher, registry.KindYank, rel.Subject, &registry.YankBody{Yanked: rng.Intn(2) == 0}, at))
				continue
			}
			body := &registry.ReportBody{
				Release: rel.ID().Bytes(), Outcome: registry.OutcomeTestPass, Wasm: verdicts[rng.Intn(len(verdicts))],
				GCReady: rng.Intn(2) == 0, Dual: rng.Intn(2) == 0, Score: uint64(i % 101), Gate: registry.GateNeedsReview}
			if body.Wasm == registry.WasmBuilds {
				body.Reason = "no test runner"
			}
			recs = append(recs, sign(t, k, registry.KindReport, rel.Subject, body, at))
		}
		rng.Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
		for rest := recs; len(rest) > 0; {
			n := min(len(rest), 1+rng.Intn(20))
			if _, err := db.PutRecords(rest[:n]); err != nil {
				t.Fatal(err)
			}
			rest = rest[n:]
		}
		if checkFilters(t, db, "after ingest") == 0 {
			t.Fatal("no filter matched anything")
		}
		db.Close()
		if db, err = Open(dir, Options{Now: now, GCInterval: -1}); err != nil {
			t.Fatal(err)
		}
		if n, err := db.SetAuthority(both); err != nil || n != 0 {
			t.Fatalf("SetAuthority after a restart: %d, %v; want nothing derived again", n, err)
		}
		checkFilters(t, db, "after a restart")
		if _, err := db.Reindex(); err != nil {
			t.Fatal(err)
		}
		checkFilters(t, db, "after Reindex")
		if _, err := db.SetAuthority(registry.NewTrust([]registry.PublicKey{publisher.Public()}, nil, t0, time.Minute)); err != nil {
			t.Fatal(err)
		}
		checkFilters(t, db, "after the tester lost its role")
		if vs, _, _ := db.ListViews(ListQuery{Filter: &Filter{FilterWasm, registry.WasmUntested}}); len(vs) != len(listAll(t, db, ListQuery{})) {
			t.Fatalf("with no trusted tester every view is untested; %d of them are listed", len(vs))
		}
		db.Close()
	}
}

// TestFilterIndexHostileCursors: cursors and prefixes that are not ones
// the store gave out (empty parts, separators, bytes past any name) list
// the same through the index as by a scan, and never fail.
func TestFilterIndexHostileCursors(t *testing.T) {
	stores(t, func(t *testing.T, db *DB) {
		k := key(t, 1)
		var recs []*registry.Record
		for i, name := range []string{"a", "a-b", "ab", "b", "zz"} {
			recs = append(recs, release(t, k, name, "1.0.0", t0, []byte{byte(i)}), release(t, k, name, "2.0.0", t0, []byte{byte(i), 2}))
		}
		recs = append(recs, sign(t, k, registry.KindYank, "a@1.0.0", &registry.YankBody{Yanked: true}, t0.Add(time.Second)))
		if _, err := db.PutRecords(recs); err != nil {
			t.Fatal(err)
		}
		auth := db.authority()
		for _, after := range []string{"@", "a", "a@", "a@1.0.0", "a\x00@x", "\xff\xff@", "a@" + strings.Repeat("9", 300), "zz@2.0.0", "@@@"} {
			for _, prefix := range []string{"", "a", "a\x00", "\xff"} {
				for _, f := range []Filter{{FilterYanked, "false"}, {FilterYanked, "true"}, {FilterWasm, registry.WasmUntested}} {
					q := ListQuery{After: after, Prefix: prefix, Limit: 2, Filter: &f}
					got := listAll(t, db, q)
					q.Filter, q.Match = nil, func(v *ReleaseView) bool { return refMatch(v, f, auth) }
					if want := listAll(t, db, q); !slices.Equal(got, want) {
						t.Fatalf("after %q prefix %q filter %q: index %v, scan %v", after, prefix, f.Value, got, want)
					}
				}
			}
		}
	})
}

// TestFilterIndexBuiltForAnOlderDatabase: a database from before the
// filter index answers filters by a scan until SetAuthority derives its
// views again, which builds the index.
func TestFilterIndexBuiltForAnOlderDatabase(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	trust := registry.TrustEveryone()
	if _, err := db.SetAuthority(trust); err != nil {
		t.Fatal(err)
	}
	k := key(t, 1)
	var recs []*registry.Record
	for i := range 20 {
		recs = append(recs, release(t, k, fmt.Sprintf("old%02d", i), "1.0.0", t0, []byte{byte(i)}))
	}
	recs = append(recs, sign(t, k, registry.KindYank, "old03@1.0.0", &registry.YankBody{Yanked: true}, t0.Add(time.Second)))
	if _, err := db.PutRecords(recs); err != nil {
		t.Fatal(err)
	}
	// What an older version left: no index and no marker.
	if err := db.bdb.DropPrefix([]byte{pFilter}); err != nil {
		t.Fatal(err)
	}
	if err := db.bdb.Update(func(txn *badger.Txn) error { return txn.Delete(filtersKey) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if db, err = Open(dir, Options{GCInterval: -1}); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	yanked := &Filter{FilterYanked, "true"}
	if vs, _, err := db.ListViews(ListQuery{Filter: yanked}); err != nil || len(vs) != 1 || vs[0].Name != "old03" {
		t.Fatalf("before the index is built: %d views (%v), want old03's", len(vs), err)
	}
	n, err := db.SetAuthority(trust)
	if err != nil || n != 20 {
		t.Fatalf("SetAuthority derived %d crates (%v), want all 20", n, err)
	}
	if countPrefix(t, db, pFilter) != 20*len(filterFields) {
		t.Fatalf("the index holds %d entries, want %d", countPrefix(t, db, pFilter), 20*len(filterFields))
	}
	checkFilters(t, db, "after the upgrade")
}
