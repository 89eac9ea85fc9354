package node

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/mirror"
	"github.com/wasmrust/wasm-crates-registry/store"
)

// Upstream is an upstream sparse index the node mirrors (*mirror.Upstream).
type Upstream interface {
	URL() string
	Index(ctx context.Context, name string, since mirror.Validators) (*mirror.IndexFile, error)
	Crate(ctx context.Context, name, version, cksum string) ([]byte, error)
}

var _ Upstream = (*mirror.Upstream)(nil)

// DefaultUpstreamRefresh is how long a crate's mirrored index file is
// served from the node's records before the upstream is asked again.
const DefaultUpstreamRefresh = time.Minute

// UpstreamConfig configures the pull-through mirror (docs/MIRROR.md).
type UpstreamConfig struct {
	// Upstreams are the indexes mirrored, in order of precedence.
	Upstreams []Upstream
	// Refresh is how long a crate's index file is served from records
	// before it is revalidated upstream (default DefaultUpstreamRefresh;
	// negative: on every request).
	Refresh time.Duration
	// LocalFirst lets a local publish take a name an upstream has; by
	// default such a publish is refused.
	LocalFirst bool
	// FetchTimeout bounds fetching an archive from peers before the
	// upstreams are asked (default 15 s).
	FetchTimeout time.Duration
}

// upstreams is the node's mirror state: when each crate was last checked
// upstream, with the validators of the answer. Everything else (what was
// observed) is in the records.
type upstreams struct {
	cfg      UpstreamConfig
	checked  *lru.Cache[string, upstreamCheck]
	rendered *lru.Cache[string, *mirroredFile]

	mu      sync.Mutex
	flights map[string]*upstreamFlight
}

type upstreamCheck struct {
	at      time.Time
	since   mirror.Validators
	missing bool
	err     error // the upstream failed at at: not asked again before Refresh
}

type upstreamFlight struct {
	done chan struct{}
	err  error
}

func newUpstreams(cfg UpstreamConfig) *upstreams {
	if cfg.Refresh == 0 {
		cfg.Refresh = DefaultUpstreamRefresh
	}
	if cfg.FetchTimeout <= 0 {
		cfg.FetchTimeout = 15 * time.Second
	}
	c, _ := lru.New[string, upstreamCheck](100_000)
	r, _ := lru.New[string, *mirroredFile](10_000)
	return &upstreams{cfg: cfg, checked: c, rendered: r, flights: map[string]*upstreamFlight{}}
}

// Observation is one upstream record as the node weighs it.
type Observation struct {
	Record   string    `json:"record"`
	Author   string    `json:"author"`
	Time     time.Time `json:"time"`
	Upstream string    `json:"upstream"`
	Cksum    string    `json:"cksum"`
	Yanked   bool      `json:"yanked"`
	Line     string    `json:"line"`

	key  string
	rec  *registry.Record
	body *registry.UpstreamBody
}

// MirroredVersion is what the node serves for one upstream name@version:
// the first trusted observation (Served), its yank state from the newest
// observation of the same content, and every trusted observation whose
// content differs (Changed): evidence that an upstream changed a
// published version.
type MirroredVersion struct {
	Name    string         `json:"name"`
	Version string         `json:"vers"`
	Served  *Observation   `json:"served"`
	Yanked  bool           `json:"yanked"`
	Changed []*Observation `json:"changed,omitempty"`
}

// upstreamObservations returns the trusted observations of crate lower by
// version: those by this node's roots and admins (the keys whose
// checkpoints witness time), ordered by (time, ID), leaving out any dated
// more than MaxSkew ahead of the node's clock.
func (n *Node) upstreamObservations(lower string, trust *TrustSet) (map[string][]*Observation, error) {
	recs, err := n.db.RecordsBySubject(lower)
	if err != nil {
		return nil, err
	}
	out := map[string][]*Observation{}
	now := n.cfg.Now()
	for _, r := range recs {
		if r.Kind != registry.KindUpstream || !trust.Witness(r.Author) || !registry.Applicable(r, now, n.cfg.MaxSkew) {
			continue
		}
		bv, err := r.DecodeBody()
		if err != nil {
			continue
		}
		b := bv.(*registry.UpstreamBody)
		key, err := registry.UpstreamLineKey(b.Line)
		if err != nil {
			continue
		}
		out[b.Version] = append(out[b.Version], &Observation{
			Record: r.ID().String(), Author: r.Author.PeerID(), Time: ms(r.Time), Upstream: b.Upstream,
			Cksum: b.Cksum, Yanked: b.Yanked, Line: b.Line, key: key, rec: r, body: b,
		})
	}
	for _, obs := range out {
		slices.SortFunc(obs, func(a, b *Observation) int {
			if c := cmp.Compare(a.rec.Time, b.rec.Time); c != 0 {
				return c
			}
			return a.rec.ID().Compare(b.rec.ID())
		})
	}
	return out, nil
}

// weigh decides what is served for one version from its ordered
// observations.
func weigh(obs []*Observation) *MirroredVersion {
	first := obs[0]
	mv := &MirroredVersion{Name: first.body.Name, Version: first.body.Version, Served: first, Yanked: first.Yanked}
	for _, o := range obs[1:] {
		if o.key == first.key {
			mv.Yanked = o.Yanked // newest observation of the served content
		} else {
			mv.Changed = append(mv.Changed, o)
		}
	}
	return mv
}

// Mirrored returns what the node serves for the upstream crate lower (its
// name in lowercase), by SemVer order, after asking the upstreams when
// the node's knowledge is older than UpstreamConfig.Refresh. ENOTFOUND
// when neither the node's trusted records nor any upstream has the crate;
// when an upstream fails and no record has it, the upstream's error.
func (n *Node) Mirrored(ctx context.Context, lower string) ([]*MirroredVersion, error) {
	f, err := n.mirroredFile(ctx, lower)
	if err != nil {
		return nil, err
	}
	return f.versions, nil
}

// MirroredIndexFile renders the index file of upstream crate lower: each
// version's first trusted line, with its current yank state. It returns
// the file and a digest of it (hex, for an ETag). The caller must not
// modify the file.
func (n *Node) MirroredIndexFile(ctx context.Context, lower string) ([]byte, string, error) {
	f, err := n.mirroredFile(ctx, lower)
	if err != nil {
		return nil, "", err
	}
	return f.body, f.digest, nil
}

// mirroredFile is a rendered mirrored crate, valid for the record set fp
// under the trust set trust.
type mirroredFile struct {
	fp       registry.Fingerprint
	trust    string
	versions []*MirroredVersion
	body     []byte
	digest   string
}

func (n *Node) mirroredFile(ctx context.Context, lower string) (*mirroredFile, error) {
	const op = "node.Mirrored"
	if err := registry.ValidateCrateName(lower); err != nil {
		return nil, err
	}
	lower = strings.ToLower(lower)
	rerr := n.refreshUpstream(ctx, lower)
	fp := n.db.Fingerprint() // before the records: the file is never older than fp
	trust := n.Trust()
	if f, ok := n.up.rendered.Get(lower); ok && f.fp == fp && f.trust == trust.Key() {
		return f, nil
	}
	obs, err := n.upstreamObservations(lower, trust)
	if err != nil {
		return nil, err
	}
	if len(obs) == 0 {
		if rerr != nil {
			return nil, rerr
		}
		return nil, registry.Errorf(op, registry.ENOTFOUND, "no crate named %s on this registry or its upstreams", lower)
	}
	f := &mirroredFile{fp: fp, trust: trust.Key(), versions: make([]*MirroredVersion, 0, len(obs))}
	for _, o := range obs {
		f.versions = append(f.versions, weigh(o))
	}
	slices.SortFunc(f.versions, func(a, b *MirroredVersion) int { return registry.CompareVersions(a.Version, b.Version) })
	var buf bytes.Buffer
	for _, v := range f.versions {
		l, err := registry.UpstreamLineYanked(v.Served.Line, v.Yanked)
		if err != nil {
			return nil, registry.E(op, registry.EINTERNAL, "a stored upstream line does not parse", err)
		}
		buf.WriteString(l)
		buf.WriteByte('\n')
	}
	f.body = buf.Bytes()
	sum := sha256.Sum256(f.body)
	f.digest = hex.EncodeToString(sum[:16])
	n.up.rendered.Add(lower, f)
	return f, nil
}

// refreshUpstream asks the upstreams about crate lower when the node's
// last answer is older than Refresh; concurrent requests for one crate
// share one refresh. It returns the error of the last upstream that failed
// (nil when one answered, or none was due).
func (n *Node) refreshUpstream(ctx context.Context, lower string) error {
	u := n.up
	if u == nil || len(u.cfg.Upstreams) == 0 {
		return nil
	}
	u.mu.Lock()
	if f, ok := u.flights[lower]; ok {
		u.mu.Unlock()
		select {
		case <-f.done:
			return f.err
		case <-ctx.Done():
			return registry.E("node.refreshUpstream", registry.ECANCELED, "", ctx.Err())
		}
	}
	f := &upstreamFlight{done: make(chan struct{})}
	u.flights[lower] = f
	u.mu.Unlock()
	// The refresh is shared: one client going away must not cancel it for
	// the others. Each upstream request is bounded by its own timeout.
	f.err = n.refreshNow(context.WithoutCancel(ctx), lower)
	u.mu.Lock()
	delete(u.flights, lower)
	u.mu.Unlock()
	close(f.done)
	return f.err
}

func (n *Node) refreshNow(ctx context.Context, lower string) error {
	u := n.up
	var lastErr error
	for _, up := range u.cfg.Upstreams {
		k := up.URL() + "\x00" + lower
		st, ok := u.checked.Get(k)
		if ok && u.cfg.Refresh > 0 && time.Since(st.at) < u.cfg.Refresh {
			switch {
			case st.err != nil:
				lastErr = st.err
				continue
			case st.missing:
				continue
			}
			return nil
		}
		idx, err := up.Index(ctx, lower, st.since)
		switch {
		case registry.KindOf(err) == registry.ENOTFOUND:
			u.checked.Add(k, upstreamCheck{at: time.Now(), missing: true})
			continue
		case err != nil:
			n.log.Warn("upstream index refresh failed; serving what this node recorded", "upstream", up.URL(), "crate", lower, "err", err)
			lastErr = registry.E("node.upstream", upstreamKind(err), "", err)
			u.checked.Add(k, upstreamCheck{at: time.Now(), since: st.since, err: lastErr})
			continue
		}
		if !idx.NotModified {
			if err := n.observe(ctx, up.URL(), lower, idx.Lines); err != nil {
				return err
			}
		}
		u.checked.Add(k, upstreamCheck{at: time.Now(), since: idx.Validators})
		return nil
	}
	return lastErr
}

// upstreamKind is the kind an upstream's failure is answered with: a
// timeout stays one, everything else the upstream did wrong is temporary
// for this node's clients (503 with Retry-After), never their bad input.
func upstreamKind(err error) registry.ErrorKind {
	switch k := registry.KindOf(err); k {
	case registry.ETIMEOUT, registry.ENOTFOUND, registry.ECANCELED:
		return k
	}
	return registry.ETEMPORARY
}

// observe signs what upstream just served for crate lower that the node's
// trusted records do not say yet: new versions, yank changes, and changed
// content for a published version, which is logged as evidence (the first
// observation keeps being served).
func (n *Node) observe(ctx context.Context, upstream, lower string, lines []mirror.Line) error {
	have, err := n.upstreamObservations(lower, n.Trust())
	if err != nil {
		return err
	}
	self := n.key.Public()
	var bodies []*registry.UpstreamBody
	for _, l := range lines {
		obs := have[l.Vers]
		if len(obs) > 0 {
			mv := weigh(obs)
			if mv.Served.key == l.Key {
				if mv.Yanked == l.Yanked {
					continue
				}
			} else {
				if slices.ContainsFunc(obs, func(o *Observation) bool {
					return o.key == l.Key && o.Yanked == l.Yanked && o.rec.Author.Equal(self)
				}) {
					continue // this node recorded this very change already
				}
				n.log.Warn("an upstream changed a published version; the first observation keeps being served",
					"upstream", upstream, "crate", l.Name, "version", l.Vers,
					"served_cksum", mv.Served.Cksum, "served_by", mv.Served.Upstream, "new_cksum", l.Cksum)
			}
		}
		b, err := registry.NewUpstreamBody(upstream, l.Raw)
		if err != nil {
			n.log.Warn("an upstream line cannot be recorded", "upstream", upstream, "crate", lower, "version", l.Vers, "err", err)
			continue
		}
		bodies = append(bodies, b)
	}
	if len(bodies) == 0 {
		return nil
	}
	recs, err := n.signObservations(lower, bodies)
	if err != nil {
		return err
	}
	return n.storeAndPublishUnaudited(ctx, recs...)
}

// signObservations signs upstream records about crate lower, all dated
// by nextTime: after every record this node or a key it trusts signed
// about it, so that its later observation orders after its earlier one,
// while a stranger's record dated ahead does not move the date.
func (n *Node) signObservations(lower string, bodies []*registry.UpstreamBody) ([]*registry.Record, error) {
	n.signMu.Lock()
	defer n.signMu.Unlock()
	now, err := n.nextTime(lower)
	if err != nil {
		return nil, err
	}
	out := make([]*registry.Record, 0, len(bodies))
	for _, b := range bodies {
		r, err := registry.Sign(n.key, registry.KindUpstream, lower, b, now)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// MirroredDownload returns the verified .crate of upstream name@version:
// from the store, else from peers, else from the upstreams, checked
// against the first trusted observation's cksum and kept. Once kept it is
// served whatever the upstream does later.
func (n *Node) MirroredDownload(ctx context.Context, name, version string) ([]byte, *MirroredVersion, error) {
	const op = "node.MirroredDownload"
	if _, _, err := registry.ParseReleaseSubject(registry.ReleaseSubject(name, version)); err != nil {
		return nil, nil, err
	}
	lower := strings.ToLower(name)
	var mv *MirroredVersion
	find := func() error {
		obs, err := n.upstreamObservations(lower, n.Trust())
		if err != nil {
			return err
		}
		if o := obs[version]; len(o) > 0 {
			mv = weigh(o)
		}
		return nil
	}
	if err := find(); err != nil {
		return nil, nil, err
	}
	if mv == nil {
		rerr := n.refreshUpstream(ctx, lower)
		if err := find(); err != nil {
			return nil, nil, err
		}
		if mv == nil {
			if rerr != nil {
				return nil, nil, rerr
			}
			return nil, nil, registry.Errorf(op, registry.ENOTFOUND, "no release %s@%s on this registry or its upstreams", name, version)
		}
	}
	b := mv.Served.body
	id := b.BlobID()
	if blob, err := n.db.GetBlob(id); err == nil {
		return blob, mv, nil
	} else if registry.KindOf(err) != registry.ENOTFOUND {
		return nil, nil, err
	}
	var errs []error
	if n.net != nil {
		pctx, cancel := context.WithTimeout(ctx, n.up.cfg.FetchTimeout)
		blob, err := n.net.FetchBlob(pctx, id)
		cancel()
		if err == nil && registry.Sum(blob) == id {
			if _, err := n.db.PutBlob(blob); err != nil {
				return nil, nil, err
			}
			return blob, mv, nil
		}
		if err == nil {
			err = registry.Errorf(op, registry.EINVALID, "a peer returned wrong bytes for %s", id)
		}
		errs = append(errs, err)
	}
	if n.up != nil {
		ups := slices.Clone(n.up.cfg.Upstreams)
		// The upstream that served the line first, then the others: the
		// checksum decides, whoever serves the bytes.
		slices.SortStableFunc(ups, func(a, c Upstream) int {
			return cmp.Compare(boolInt(a.URL() != b.Upstream), boolInt(c.URL() != b.Upstream))
		})
		for _, up := range ups {
			blob, err := up.Crate(ctx, b.Name, b.Version, b.Cksum)
			if err != nil {
				n.log.Warn("fetching an archive upstream failed", "upstream", up.URL(), "release", b.Name+"@"+b.Version, "err", err)
				errs = append(errs, err)
				continue
			}
			if registry.Sum(blob) != id {
				return nil, nil, registry.Errorf(op, registry.EINTERNAL, "the mirror client returned bytes that do not hash to %s", b.Cksum)
			}
			if _, err := n.db.PutBlob(blob); err != nil {
				return nil, nil, err
			}
			return blob, mv, nil
		}
	}
	kind := registry.ETEMPORARY
	if len(errs) > 0 && registry.KindOf(errs[len(errs)-1]) == registry.ETIMEOUT {
		kind = registry.ETIMEOUT
	}
	return nil, nil, registry.E(op, kind, fmt.Sprintf("this node does not hold the archive of %s@%s yet, and neither its peers nor its upstreams supplied it", b.Name, b.Version), errors.Join(errs...))
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// checkUpstreamName refuses a local publish of a new crate name that an
// upstream has (or that trusted records say one had), unless the node is
// configured local-first. When no upstream can be asked, it refuses too:
// the namespace is the upstream's until it is known not to be.
func (n *Node) checkUpstreamName(ctx context.Context, name string) error {
	const op = "node.Submit"
	if n.up == nil || n.up.cfg.LocalFirst {
		return nil
	}
	if local, err := n.db.ViewsByName(name); err != nil || len(local) > 0 {
		return err // a crate this node holds already is its own
	}
	lower := strings.ToLower(name)
	rerr := n.refreshUpstream(ctx, lower)
	obs, err := n.upstreamObservations(lower, n.Trust())
	if err != nil {
		return err
	}
	if len(obs) > 0 {
		for _, o := range obs {
			return registry.Errorf(op, registry.ECONFLICT,
				"crate name %s belongs to upstream %s, which this registry mirrors; a local publish would shadow it, so pick another name "+
					"(or run the node with --upstream-local-first)", name, o[0].Upstream)
		}
	}
	if rerr != nil {
		return registry.E(op, upstreamKind(rerr),
			fmt.Sprintf("cannot tell whether an upstream already has the name %s, so it cannot be published yet; try again later", name), rerr)
	}
	return nil
}

// UpstreamStatus is the mirror as the API shows it.
type UpstreamStatus struct {
	Upstreams  []string `json:"upstreams"`
	LocalFirst bool     `json:"local_first"`
	// Changed lists every upstream name@version with trusted observations
	// that disagree: the served one first, then the others.
	Changed []*MirroredVersion `json:"changed"`
}

// Upstream returns the mirror's configuration and the evidence of changed
// upstream versions this node holds.
func (n *Node) Upstream(ctx context.Context) (*UpstreamStatus, error) {
	st := &UpstreamStatus{Upstreams: []string{}, Changed: []*MirroredVersion{}}
	if n.up != nil {
		for _, u := range n.up.cfg.Upstreams {
			st.Upstreams = append(st.Upstreams, u.URL())
		}
		st.LocalFirst = n.up.cfg.LocalFirst
	}
	recs, err := n.db.RecordsByKind(registry.KindUpstream)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, r := range recs {
		names[r.Subject] = true
	}
	for _, lower := range slices.Sorted(maps.Keys(names)) {
		obs, err := n.upstreamObservations(lower, n.Trust())
		if err != nil {
			return nil, err
		}
		for _, o := range obs {
			if mv := weigh(o); len(mv.Changed) > 0 {
				st.Changed = append(st.Changed, mv)
			}
		}
	}
	slices.SortFunc(st.Changed, func(a, b *MirroredVersion) int {
		if c := strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)); c != 0 {
			return c
		}
		return registry.CompareVersions(a.Version, b.Version)
	})
	return st, nil
}

// MirroredView is the view of a mirrored release that the node's verdict
// rules read (Verdicts): the served observation stands for the release
// record, with the live reports and reviews whose subject is its
// name@version (the newest of each author, newest first) and that are not
// dated beyond the allowed skew. A report counts only when it names the
// served observation's record as the release it tested.
func (n *Node) MirroredView(mv *MirroredVersion) (*store.ReleaseView, error) {
	subject := registry.ReleaseSubject(mv.Name, mv.Version)
	recs, err := n.db.RecordsBySubject(subject)
	if err != nil {
		return nil, err
	}
	now := n.cfg.Now()
	newest := map[registry.Kind]map[string]*registry.Record{registry.KindReport: {}, registry.KindReview: {}}
	for _, r := range recs {
		m, ok := newest[r.Kind]
		if !ok || !registry.Applicable(r, now, n.cfg.MaxSkew) {
			continue
		}
		if old := m[string(r.Author)]; old == nil || registry.CompareNewest(r, old) > 0 {
			m[string(r.Author)] = r
		}
	}
	v := &store.ReleaseView{Name: mv.Name, Version: mv.Version, Release: mv.Served.rec.ID(), Author: mv.Served.rec.Author, Time: mv.Served.rec.Time}
	for _, r := range sortedNewest(newest[registry.KindReport]) {
		bv, err := r.DecodeBody()
		if err != nil {
			continue
		}
		b := bv.(*registry.ReportBody)
		ratio, size, peak := b.Figures()
		v.Reports = append(v.Reports, store.ReportRef{
			RecordRef: store.RecordRef{ID: r.ID(), Author: r.Author, Time: r.Time}, Release: b.ReleaseID(),
			Outcome: b.Outcome, Wasm: b.Wasm, GCReady: b.GCReady, Dual: b.Dual, Score: b.Score, Gate: b.Gate, Reason: b.Reason,
			TimeRatio: ratio, WasmSize: size, PeakMemory: peak,
		})
	}
	for _, r := range sortedNewest(newest[registry.KindReview]) {
		bv, err := r.DecodeBody()
		if err != nil {
			continue
		}
		b := bv.(*registry.ReviewBody)
		v.Reviews = append(v.Reviews, store.ReviewRef{RecordRef: store.RecordRef{ID: r.ID(), Author: r.Author, Time: r.Time}, Verdict: b.Verdict, Comment: b.Comment})
	}
	return v, nil
}

func sortedNewest(m map[string]*registry.Record) []*registry.Record {
	out := slices.Collect(maps.Values(m))
	slices.SortFunc(out, func(a, b *registry.Record) int { return registry.CompareNewest(b, a) })
	return out
}
