package node

import (
	"sync"
	"sync/atomic"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/federation"
	"github.com/wasmrust/wasm-crates-registry/store"
)

// Quotas bound what untrusted authors and peers can make this node store
// (DESIGN.md §2 "Bounded by design", docs/FEDERATION.md §8). Each limit is
// on records held and their canonical bytes; a zero field takes the default
// named beside it, a negative one removes the limit. Records signed by this
// node or by one of its trust roots are exempt and not counted.
type Quotas struct {
	AuthorCount int64 // per author (default 10,000)
	AuthorBytes int64 // per author (default 64 MiB)
	PeerCount   int64 // per sending peer (default 100,000)
	PeerBytes   int64 // per sending peer (default 512 MiB)
	KindCount   int64 // per known kind (default 1,000,000)
	KindBytes   int64 // per known kind (default 4 GiB)
	// UnknownCount and UnknownBytes bound all records of kinds this node
	// does not apply, together (default 1,000 records, 8 MiB).
	UnknownCount int64
	UnknownBytes int64
}

// DefaultQuotas are the quotas of a node with no configuration.
var DefaultQuotas = Quotas{
	AuthorCount: 10_000, AuthorBytes: 64 << 20,
	PeerCount: 100_000, PeerBytes: 512 << 20,
	KindCount: 1_000_000, KindBytes: 4 << 30,
	UnknownCount: 1_000, UnknownBytes: 8 << 20,
}

func (q *Quotas) fill() {
	d := DefaultQuotas
	for _, f := range []struct{ v, d *int64 }{
		{&q.AuthorCount, &d.AuthorCount}, {&q.AuthorBytes, &d.AuthorBytes},
		{&q.PeerCount, &d.PeerCount}, {&q.PeerBytes, &d.PeerBytes},
		{&q.KindCount, &d.KindCount}, {&q.KindBytes, &d.KindBytes},
		{&q.UnknownCount, &d.UnknownCount}, {&q.UnknownBytes, &d.UnknownBytes},
	} {
		if *f.v == 0 {
			*f.v = *f.d
		}
	}
}

// Usage account names, persisted in the store: never change them.
const (
	acctAuthor  = "author/"  // + author peer ID
	acctPeer    = "peer/"    // + sending peer ID
	acctKind    = "kind/"    // + kind
	acctUnknown = "unknown/" // all kinds not applied, together
)

// admission decides whether a record that arrived from a peer or through
// the API may be stored and relayed, and counts what it admits. Usage is
// kept in memory and persisted on every charge, before the records are
// stored, so a crash can only over-count.
type admission struct {
	db    *store.DB
	q     Quotas
	self  registry.PublicKey
	trust func() *TrustSet
	// ready is set once the node's network is wired: the trust set reads
	// the peers it was told to join. Until then only the node's own key is
	// exempt.
	ready atomic.Bool

	persistMu sync.Mutex // serialises writes of usage, which always write the latest values

	mu      sync.Mutex
	usage   map[string]store.Usage
	trusted *TrustSet
	trustAt time.Time
}

// admissionTrustTTL bounds how often the trust set is asked for: it is
// computed from the key records, which a flood keeps changing.
const admissionTrustTTL = time.Second

func newAdmission(db *store.DB, q Quotas, self registry.PublicKey, trust func() *TrustSet) (*admission, error) {
	q.fill()
	u, err := db.LoadUsage()
	if err != nil {
		return nil, err
	}
	return &admission{db: db, q: q, self: self, trust: trust, usage: u}, nil
}

// exempt reports whether rec's author is this node, a trust root or a key they gave a role.
// a.mu must be held.
func (a *admission) exempt(rec *registry.Record) bool {
	if rec.Author.Equal(a.self) {
		return true
	}
	if !a.ready.Load() {
		return false
	}
	if a.trusted == nil || time.Since(a.trustAt) > admissionTrustTTL {
		a.trusted, a.trustAt = a.trust(), time.Now()
	}
	return a.trusted.Trusted(rec.Author)
}

// accounts returns the accounts rec is charged to with their limits.
func (a *admission) accounts(rec *registry.Record, from string) []account {
	acc := []account{{acctAuthor + rec.Author.PeerID(), a.q.AuthorCount, a.q.AuthorBytes}}
	if from != "" {
		acc = append(acc, account{acctPeer + from, a.q.PeerCount, a.q.PeerBytes})
	}
	if rec.Kind.Known() {
		acc = append(acc, account{acctKind + string(rec.Kind), a.q.KindCount, a.q.KindBytes})
	} else {
		acc = append(acc, account{acctUnknown, a.q.UnknownCount, a.q.UnknownBytes})
	}
	return acc
}

type account struct {
	name         string
	count, bytes int64
}

// fits reports whether one more record of size bytes fits every account.
// a.mu must be held.
func (a *admission) fits(acc []account, size int64) bool {
	for _, c := range acc {
		u := a.usage[c.name]
		if c.count >= 0 && u.Count+1 > c.count || c.bytes >= 0 && u.Bytes+size > c.bytes {
			return false
		}
	}
	return true
}

// Admit reports whether rec, from peer from ("" for the API), may be stored
// and relayed now, without counting it; and whether it is useful: signed
// by this node or a trust root, so that relaying it earns the sender credit.
func (a *admission) Admit(rec *registry.Record, from string) (ok, useful bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.exempt(rec) {
		return true, true
	}
	return a.fits(a.accounts(rec, from), int64(len(rec.Bytes()))), false
}

// Charge counts the records that fit their quotas and persists the new
// usage before it returns; it reports, for each record, whether it may be
// stored. The caller
// stores only those, and only records it does not hold yet must be passed.
func (a *admission) Charge(recs []*registry.Record, from []string) ([]bool, error) {
	ok, changed := a.charge(recs, from)
	if err := a.persist(changed); err != nil {
		return nil, err
	}
	return ok, nil
}

// charge counts in memory and returns the accounts it changed.
func (a *admission) charge(recs []*registry.Record, from []string) ([]bool, map[string]bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ok := make([]bool, len(recs))
	changed := map[string]bool{}
	for i, r := range recs {
		if a.exempt(r) {
			ok[i] = true
			continue
		}
		var f string
		if i < len(from) {
			f = from[i]
		}
		acc := a.accounts(r, f)
		size := int64(len(r.Bytes()))
		if !a.fits(acc, size) {
			continue
		}
		ok[i] = true
		for _, c := range acc {
			u := a.usage[c.name]
			u.Count++
			u.Bytes += size
			a.usage[c.name] = u
			changed[c.name] = true
		}
	}
	return ok, changed
}

// persist writes the current usage of the named accounts. Admit is not
// held up by the synced write, and since every write takes the values of
// the moment under persistMu, the stored usage never goes backwards.
func (a *admission) persist(names map[string]bool) error {
	if len(names) == 0 {
		return nil
	}
	a.persistMu.Lock()
	defer a.persistMu.Unlock()
	a.mu.Lock()
	snap := make(map[string]store.Usage, len(names))
	for name := range names {
		snap[name] = a.usage[name]
	}
	a.mu.Unlock()
	return a.db.PutUsage(snap)
}

// Usage returns the usage of one account ("author/<peer ID>",
// "peer/<peer ID>", "kind/<kind>" or "unknown/").
func (a *admission) Usage(name string) store.Usage {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.usage[name]
}

var _ federation.Admission = netStore{}

// Admit is the federation's admission check (federation.Admission).
func (s netStore) Admit(rec *registry.Record, from string) (bool, bool) {
	return s.n.adm.Admit(rec, from)
}

// Charge is the federation's admission charge (federation.Admission).
func (s netStore) Charge(recs []*registry.Record, from []string) ([]bool, error) {
	return s.n.adm.Charge(recs, from)
}

// admitImport applies the quotas to records imported through the API
// (Ingest): records already held pass uncounted; if any new record is over
// a quota, the whole batch is refused and nothing is counted.
func (n *Node) admitImport(recs []*registry.Record) ([]*registry.Record, error) {
	const op = "node.Ingest"
	var fresh []*registry.Record
	for _, r := range recs {
		held, err := n.db.HasRecord(r.ID())
		if err != nil {
			return nil, err
		}
		if held {
			continue
		}
		if ok, _ := n.adm.Admit(r, ""); !ok {
			return nil, registry.Errorf(op, registry.ETOOLARGE, "record %s (%s by %s) is over this node's quota for its author or kind; nothing was imported", r.ID(), r.Kind, r.Author.PeerID())
		}
		fresh = append(fresh, r)
	}
	ok, err := n.adm.Charge(fresh, nil)
	if err != nil {
		return nil, err
	}
	out := fresh[:0]
	for i, r := range fresh {
		if ok[i] {
			out = append(out, r)
		}
	}
	return out, nil
}
