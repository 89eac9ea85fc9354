package node

import (
	"context"
	"fmt"
	"slices"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/node/metrics"
	"github.com/wasmrust/wasm-crates-registry/store"
)

// sign signs a record as this node. For a subject on which the node already
// has records by keys it trusts, the time is moved past the newest of them,
// so that the node's later action always comes later (two actions in the
// same millisecond would otherwise be ordered by ID): its yank after the
// release, its newer yank after the older. Records by other keys are not
// considered: a stranger's record dated up to MaxSkew ahead must not push
// the node's own records toward the edge of what its peers accept.
func (n *Node) sign(kind registry.Kind, subject string, body any) (*registry.Record, error) {
	n.signMu.Lock()
	defer n.signMu.Unlock()
	now := n.cfg.Now()
	if kind != registry.KindRelease {
		var err error
		if now, err = n.nextTime(subject); err != nil {
			return nil, err
		}
	}
	return registry.Sign(n.key, kind, subject, body, now)
}

// nextTime is the time of the node's next record about subject: now, or
// just after the newest record about it by a key this node trusts (its own
// included), so that the node's later action orders after its earlier one.
// The caller holds signMu.
func (n *Node) nextTime(subject string) (time.Time, error) {
	now := n.cfg.Now()
	recs, err := n.db.RecordsBySubject(subject)
	if err != nil {
		return now, err
	}
	trust := n.Trust()
	for _, r := range recs {
		if r.Time >= now.UnixMilli() && (r.Author.Equal(n.key.Public()) || trust.Trusted(r.Author)) {
			now = ms(r.Time + 1)
		}
	}
	return now, nil
}

// storeAndPublishUnaudited writes records the node makes on its own (its
// checkpoints) and gossips them.
func (n *Node) storeAndPublishUnaudited(ctx context.Context, recs ...*registry.Record) error {
	added, err := n.db.PutRecords(recs)
	if err != nil {
		return err
	}
	n.publish(ctx, added, metrics.OriginLocal)
	return nil
}

// storeAndPublish writes records made by this node, with the audit entry
// of the action in the same transaction, and gossips them.
func (n *Node) storeAndPublish(ctx context.Context, entry store.AuditEntry, recs ...*registry.Record) error {
	added, err := n.db.PutRecordsAudited(recs, func(added []*registry.Record) []store.AuditEntry {
		if len(added) == 0 {
			return nil
		}
		e := entry
		if e.Record == "" {
			e.Record = added[0].ID().String()
		}
		return []store.AuditEntry{e}
	})
	if err != nil {
		return err
	}
	n.publish(ctx, added, metrics.OriginLocal)
	return nil
}

// publish hands records just stored to the federation, which indexes them
// for reconciliation and gossips them. A failed publish loses nothing: the
// record is stored and reconciliation carries it.
func (n *Node) publish(ctx context.Context, recs []*registry.Record, origin string) {
	n.stored(recs, origin)
	if n.net == nil {
		return
	}
	for _, r := range recs {
		if err := n.net.Publish(ctx, r); err != nil {
			n.log.Warn("gossip publish failed", "record", r.ID(), "err", err)
		}
	}
}

func (n *Node) audit(e store.AuditEntry) {
	if err := n.db.Audit(e); err != nil {
		n.log.Warn("audit log", "err", err)
	}
}

// Submit validates a .crate archive, stores it and signs its release.
// Re-submitting the same bytes returns the existing release with created
// false; different bytes for an existing name@version are ECONFLICT.
func (n *Node) Submit(ctx context.Context, actor string, crate []byte) (*Release, bool, error) {
	return n.SubmitWith(ctx, actor, crate, nil)
}

// SubmitWith is Submit with a hook for the Cargo publish endpoint: adjust is
// called with the release body parsed from the archive, before the body is
// checked against the store or anything is written. It may refuse the upload
// (its error is returned unchanged) or set the fields that the archive alone
// cannot decide: today, each dependency's Registry, which Cargo's publish
// metadata states in the index's terms ("" = this registry). It must not
// change the name, version, checksum, blob or size; a hook that does gets an
// EINTERNAL error and nothing is stored. With a nil hook, SubmitWith is
// Submit.
func (n *Node) SubmitWith(ctx context.Context, actor string, crate []byte, adjust func(*registry.ReleaseBody) error) (*Release, bool, error) {
	const op = "node.Submit"
	if int64(len(crate)) > n.cfg.MaxCrateSize {
		return nil, false, registry.Errorf(op, registry.ETOOLARGE, "the .crate archive is %d bytes; this registry accepts at most %d", len(crate), n.cfg.MaxCrateSize)
	}
	body, err := registry.ParseCrate(crate, n.cfg.MaxCrateSize)
	if err != nil {
		return nil, false, err
	}
	if adjust != nil {
		before := *body
		if err := adjust(body); err != nil {
			return nil, false, err
		}
		if body.Name != before.Name || body.Version != before.Version || body.Cksum != before.Cksum ||
			body.Size != before.Size || string(body.Blob) != string(before.Blob) {
			return nil, false, registry.Errorf(op, registry.EINTERNAL, "a submit hook changed the identity of %s@%s", before.Name, before.Version)
		}
	}
	if err := n.checkUpstreamName(ctx, body.Name); err != nil {
		return nil, false, err
	}
	n.submitMu.Lock()
	defer n.submitMu.Unlock()

	subject := registry.ReleaseSubject(body.Name, body.Version)
	existing, err := n.db.ViewsByName(body.Name)
	if err != nil {
		return nil, false, err
	}
	scope := ScopePublishNew
	if len(existing) > 0 {
		scope = ScopePublishUpdate
	}
	if err := require(ctx, op, scope, body.Name); err != nil {
		return nil, false, err
	}
	for _, v := range existing {
		if v.Version != body.Version {
			continue
		}
		if v.Body.Cksum != body.Cksum {
			return nil, false, registry.Errorf(op, registry.ECONFLICT,
				"%s already exists as release %s with a different archive (cksum %s); published versions never change: bump the version",
				subject, v.Release, v.Body.Cksum)
		}
		if _, err := n.db.PutBlob(crate); err != nil {
			return nil, false, err
		}
		return releaseFromView(v, n.Trust(), n.Settings().Gates), false, nil
	}
	if len(existing) > 0 {
		owners := existing[0].Owners
		if len(owners) > 0 && !slices.ContainsFunc(owners, n.key.Public().Equal) {
			return nil, false, registry.Errorf(op, registry.EFORBIDDEN,
				"crate %s belongs to other keys (%s); this node (%s) is not an owner: ask an owner to add it",
				body.Name, peerIDs(owners), n.PeerID())
		}
	}

	if _, err := n.db.PutBlob(crate); err != nil {
		return nil, false, err
	}
	rec, err := n.sign(registry.KindRelease, subject, body)
	if err != nil {
		return nil, false, err
	}
	if err := n.storeAndPublish(ctx, store.AuditEntry{Action: "submit", Actor: actor, Subject: subject}, rec); err != nil {
		return nil, false, err
	}
	v, err := n.db.GetView(body.Name, body.Version)
	if err != nil {
		return nil, false, err
	}
	if n.AutoTests() {
		if _, err := n.QueueTest(ctx, actor, subject); err != nil {
			n.log.Warn("queueing the pipeline for a new release", "release", subject, "err", err)
		}
	}
	return releaseFromView(v, n.Trust(), n.Settings().Gates), true, nil
}

func peerIDs(keys []registry.PublicKey) string {
	s := ""
	for i, k := range keys {
		if i > 0 {
			s += ", "
		}
		s += k.PeerID()
	}
	return s
}

// SetYank yanks or unyanks a release by signing a yank record. Only an owner
// of the crate may; a request that changes nothing writes nothing.
func (n *Node) SetYank(ctx context.Context, actor, id string, yanked bool, reason string) (*Release, error) {
	const op = "node.SetYank"
	if len(reason) > 1024 {
		return nil, registry.Errorf(op, registry.EINVALID, "the reason is longer than 1024 characters")
	}
	v, err := n.ResolveView(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := require(ctx, op, ScopeYank, v.Name); err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(v.Owners, n.key.Public().Equal) {
		return nil, registry.Errorf(op, registry.EFORBIDDEN,
			"only an owner of %s may yank it; its owners are %s and this node is %s", v.Name, peerIDs(v.Owners), n.PeerID())
	}
	if v.Yanked == yanked && (v.Yank != nil || !yanked) && (reason == "" || reason == v.YankReason) {
		return releaseFromView(v, n.Trust(), n.Settings().Gates), nil
	}
	rec, err := n.sign(registry.KindYank, v.Subject(), &registry.YankBody{Yanked: yanked, Reason: reason})
	if err != nil {
		return nil, err
	}
	action := "unyank"
	if yanked {
		action = "yank"
	}
	if err := n.storeAndPublish(ctx, store.AuditEntry{Action: action, Actor: actor, Subject: v.Subject(), Detail: reason}, rec); err != nil {
		return nil, err
	}
	return n.Release(ctx, v.Subject())
}

// Review signs this node's review of a release (its curation note).
func (n *Node) Review(ctx context.Context, actor, id, verdict, comment string) (*Release, error) {
	const op = "node.Review"
	if len(comment) > 4096 {
		return nil, registry.Errorf(op, registry.EINVALID, "the comment is longer than 4096 characters")
	}
	v, err := n.ResolveView(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := require(ctx, op, ScopeReview, v.Name); err != nil {
		return nil, err
	}
	rec, err := n.sign(registry.KindReview, v.Subject(), &registry.ReviewBody{Verdict: verdict, Comment: comment})
	if err != nil {
		return nil, registry.E(op, registry.KindOf(err), "", err)
	}
	if err := n.storeAndPublish(ctx, store.AuditEntry{Action: "review", Actor: actor, Subject: v.Subject(), Detail: verdict}, rec); err != nil {
		return nil, err
	}
	return n.Release(ctx, v.Subject())
}

// SetOwners replaces a crate's owners with keys (peer IDs). This node must
// be an owner.
func (n *Node) SetOwners(ctx context.Context, actor, name string, owners []string) ([]string, error) {
	const op = "node.SetOwners"
	views, err := n.crateViews(op, name)
	if err != nil {
		return nil, err
	}
	if err := require(ctx, op, ScopeOwners, name); err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(views[0].Owners, n.key.Public().Equal) {
		return nil, registry.Errorf(op, registry.EFORBIDDEN, "this node (%s) is not an owner of %s", n.PeerID(), name)
	}
	var keys []registry.PublicKey
	for _, o := range owners {
		k, err := registry.ParsePeerID(o)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, registry.Errorf(op, registry.EINVALID, "a crate needs at least one owner")
	}
	rec, err := n.sign(registry.KindOwners, name, registry.NewOwnersBody(keys))
	if err != nil {
		return nil, err
	}
	if err := n.storeAndPublish(ctx, store.AuditEntry{Action: "owners", Actor: actor, Subject: name, Detail: fmt.Sprint(owners)}, rec); err != nil {
		return nil, err
	}
	return n.Owners(ctx, name)
}

// Owners returns the current owners of a crate as peer IDs.
func (n *Node) Owners(ctx context.Context, name string) ([]string, error) {
	views, err := n.crateViews("node.Owners", name)
	if err != nil {
		return nil, err
	}
	out := []string{}
	for _, k := range views[0].Owners {
		out = append(out, k.PeerID())
	}
	return out, nil
}

// Ingest stores records signed elsewhere and imported through the API,
// after verifying them on all CPUs, and gossips the new ones; it returns
// them. One bad record refuses the whole batch, and nothing is stored.
// (Records from peers arrive through the federation, which verifies them
// itself.)
func (n *Node) Ingest(ctx context.Context, actor string, raw [][]byte) ([]*registry.Record, error) {
	if err := require(ctx, "node.Ingest", ScopeAdmin, ""); err != nil {
		return nil, err
	}
	recs, errs := registry.DecodeRecords(raw)
	now := n.cfg.Now()
	for i, err := range errs {
		if err != nil {
			return nil, err
		}
		if r := recs[i]; !registry.Applicable(r, now, n.cfg.MaxSkew) {
			return nil, registry.Errorf("node.Ingest", registry.EINVALID, "record %s is dated %s, more than %s ahead of this node's clock", r.ID(), r.When(), n.cfg.MaxSkew)
		}
	}
	recs, err := n.admitImport(recs)
	if err != nil {
		return nil, err
	}
	added, err := n.db.PutRecordsAudited(recs, func(added []*registry.Record) []store.AuditEntry {
		out := make([]store.AuditEntry, len(added))
		for i, r := range added {
			out[i] = store.AuditEntry{Action: "import", Actor: actor, Subject: r.Subject, Record: r.ID().String(), Detail: string(r.Kind) + " by " + r.Author.PeerID()}
		}
		return out
	})
	if err != nil {
		return nil, err
	}
	n.publish(ctx, added, metrics.OriginImport)
	return added, nil
}
