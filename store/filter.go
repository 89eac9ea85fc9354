package store

import (
	"bytes"
	"errors"
	"slices"
	"strings"

	"github.com/dgraph-io/badger/v4"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// pFilter is the filter index: for every release view, one key per
// FilterField naming the view's value of it, so that a list filtered on a
// value that few views have reads those views only, instead of decoding
// every view to test it.
//
//	x field(1) value 0x00 name 0x00 version → ""
//
// Its entries are derived with the views (in the same transaction, under
// the same Authority) and dropped and derived again with them.
const pFilter = 'x'

// FilterField names a derived property of a release view that the filter
// index serves. Never renumber these: the bytes are stored.
type FilterField byte

const (
	// FilterYanked: "true" or "false", the view's Yanked.
	FilterYanked FilterField = 'y'
	// FilterWasm: the Wasm verdict of the view's trusted report (the
	// newest report about the winning release by an author the Authority
	// lets test the crate), registry.WasmUntested when there is none. A
	// verdict that is not one of registry's known values is indexed as
	// "~", which no query names.
	FilterWasm FilterField = 'w'
	// FilterGCReady: "true" when the trusted report says GC-ready, else
	// "false".
	FilterGCReady FilterField = 'g'
	// FilterDual: "true" when the trusted report says it works natively
	// and in wasm, else "false".
	FilterDual FilterField = 'd'
)

// filterFields are the fields every view is indexed under, in key order.
var filterFields = [...]FilterField{FilterDual, FilterGCReady, FilterWasm, FilterYanked}

// Filter selects release views whose Field has Value.
type Filter struct {
	Field FilterField
	Value string
}

// unknownWasm stands for report verdicts outside registry's list.
const unknownWasm = "~"

func boolValue(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// filterValues returns v's value of every field of filterFields, as
// auth judges its reports.
func filterValues(v *ReleaseView, auth registry.Authority) [len(filterFields)]string {
	tr := v.TrustedReport(func(k registry.PublicKey) bool { return auth.May(k, registry.RoleTester, v.Name) })
	wasm := registry.WasmUntested
	if tr != nil {
		switch tr.Wasm {
		case registry.WasmCompatible, registry.WasmBuilds, registry.WasmPartial, registry.WasmIncompatible:
			wasm = tr.Wasm
		default:
			wasm = unknownWasm
		}
	}
	return [len(filterFields)]string{
		boolValue(tr != nil && tr.Dual),
		boolValue(tr != nil && tr.GCReady),
		wasm,
		boolValue(v.Yanked),
	}
}

// filterPrefix is the start of every filter key of (field, value).
func filterPrefix(f FilterField, value string) []byte {
	k := make([]byte, 0, 3+len(value))
	k = append(k, pFilter, byte(f))
	k = append(k, value...)
	return append(k, 0)
}

func filterKey(f FilterField, value, name, version string) []byte {
	k := filterPrefix(f, value)
	k = append(k, name...)
	k = append(k, 0)
	return append(k, version...)
}

// filterEntry is the value filter keys hold: none.
var filterEntry = []byte{}

// viewWas is the filter values of the view a write replaces, as that
// view was indexed (nil: there was none, or it predates the index).
type viewWas []string

// wasView returns the filter values stored view v was indexed under.
func wasView(v *ReleaseView) viewWas {
	if v == nil || len(v.Filters) != len(filterFields) {
		return nil
	}
	return slices.Clone(v.Filters)
}

// readWas reads the filter values of the stored view of name@version.
func readWas(txn *badger.Txn, name, version string) (viewWas, error) {
	it, err := txn.Get(viewKey(name, version))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, internal("store.putView", err)
	}
	var was viewWas
	err = it.Value(func(b []byte) error {
		old, derr := decodeView(b)
		was = wasView(old)
		return derr
	})
	return was, err
}

// putView writes view v with its filter values (as auth judges its
// reports) and brings the filter index in step: the entries of the view
// it replaces, whose values was holds, give way to v's. Deleting exactly
// the entries the old view recorded keeps the index right across changes
// of Authority.
func putView(txn *badger.Txn, v *ReleaseView, was viewWas, auth registry.Authority) error {
	const op = "store.putView"
	now := filterValues(v, auth)
	v.Filters = now[:]
	b, err := registry.Marshal(v)
	if err != nil {
		return registry.E(op, registry.EINTERNAL, "encoding a release view", err)
	}
	if err := txn.Set(viewKey(v.Name, v.Version), b); err != nil {
		return wrapTxn(op, err)
	}
	for i, f := range filterFields {
		if was != nil {
			if was[i] == now[i] {
				continue
			}
			if err := txn.Delete(filterKey(f, was[i], v.Name, v.Version)); err != nil {
				return wrapTxn(op, err)
			}
		}
		if err := txn.Set(filterKey(f, now[i], v.Name, v.Version), filterEntry); err != nil {
			return wrapTxn(op, err)
		}
	}
	return nil
}

// dropViews deletes every view of crate name and its filter index
// entries in txn.
func dropViews(txn *badger.Txn, name string) error {
	o := badger.DefaultIteratorOptions
	o.Prefix = viewKey(name, "")
	it := txn.NewIterator(o)
	var keys [][]byte
	for it.Rewind(); it.Valid(); it.Next() {
		err := it.Item().Value(func(b []byte) error {
			v, err := decodeView(b)
			if err != nil {
				return err
			}
			if was := wasView(v); was != nil {
				for i, f := range filterFields {
					keys = append(keys, filterKey(f, was[i], v.Name, v.Version))
				}
			}
			return nil
		})
		if err != nil {
			it.Close()
			return err
		}
		keys = append(keys, it.Item().KeyCopy(nil))
	}
	it.Close()
	for _, k := range keys {
		if err := txn.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// filtersKey marks a database whose filter index covers every view; a
// database from before the index gets it from the first SetAuthority,
// which derives every view again (and until then ListViews answers a
// Filter by testing every view).
var filtersKey = []byte{pMeta, 'f', 'i', 'l', 't', 'e', 'r', 's'}

// loadFiltersReady reads filtersKey.
func (db *DB) loadFiltersReady() error {
	return db.bdb.View(func(txn *badger.Txn) error {
		_, err := txn.Get(filtersKey)
		if errors.Is(err, badger.ErrKeyNotFound) {
			db.filtersReady.Store(false)
			return nil
		}
		if err != nil {
			return internal("store.Open", err)
		}
		db.filtersReady.Store(true)
		return nil
	})
}

// markFiltersReady records that the filter index covers every view; it
// is called after every view was derived again.
func (db *DB) markFiltersReady() error {
	if err := db.bdb.Update(func(txn *badger.Txn) error { return txn.Set(filtersKey, []byte("1")) }); err != nil {
		return internal("store.markFiltersReady", err)
	}
	db.filtersReady.Store(true)
	return nil
}

// matchFilter tests one view against f as the filter index would.
func matchFilter(v *ReleaseView, f Filter, auth registry.Authority) bool {
	vals := filterValues(v, auth)
	for i, ff := range filterFields {
		if ff == f.Field {
			return vals[i] == f.Value
		}
	}
	return false
}

// listFiltered is ListViews through the filter index: it reads the keys of
// q.Filter's value in (name, version) order from start and the views they
// name, until the page is full.
func (db *DB) listFiltered(txn *badger.Txn, q ListQuery) ([]*ReleaseView, string, error) {
	const op = "store.ListViews"
	if strings.IndexByte(q.Filter.Value, 0) >= 0 {
		return nil, "", nil // no view has such a value; it must not act as a name prefix
	}
	base := filterPrefix(q.Filter.Field, q.Filter.Value)
	prefix := append(append([]byte(nil), base...), q.Prefix...)
	if q.ExactName {
		prefix = append(prefix, 0)
	}
	start := prefix
	if q.After != "" {
		name, version, _ := strings.Cut(q.After, "@")
		start = append(append(append([]byte(nil), base...), name...), 0)
		start = append(append(start, version...), 0) // strictly after the cursor
		if bytes.Compare(start, prefix) < 0 {
			start = prefix
		}
	}
	o := badger.DefaultIteratorOptions
	o.PrefetchValues = false
	o.Prefix = prefix
	it := txn.NewIterator(o)
	defer it.Close()
	var out []*ReleaseView
	for it.Seek(start); it.Valid(); it.Next() {
		rest := it.Item().Key()[len(base):]
		i := bytes.IndexByte(rest, 0)
		if i < 0 {
			return nil, "", registry.Errorf(op, registry.EINTERNAL, "filter index key %q is malformed; run reindex", it.Item().Key())
		}
		vi, err := txn.Get(viewKey(string(rest[:i]), string(rest[i+1:])))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil, "", registry.Errorf(op, registry.EINTERNAL, "filter index names the missing view %s@%s; run reindex", rest[:i], rest[i+1:])
		}
		if err != nil {
			return nil, "", internal(op, err)
		}
		var v *ReleaseView
		if err := vi.Value(func(b []byte) error {
			var derr error
			v, derr = decodeView(b)
			return derr
		}); err != nil {
			return nil, "", err
		}
		if q.Match != nil && !q.Match(v) {
			continue
		}
		if q.Limit > 0 && len(out) == q.Limit {
			return out, out[len(out)-1].Subject(), nil
		}
		out = append(out, v)
	}
	return out, "", nil
}
