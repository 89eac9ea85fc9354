package federation

import (
	"sync"
	"time"

	"github.com/fxamacker/cbor/v2"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// Bundles (docs/FEDERATION.md §3): a gossip message carries one record
// (its canonical bytes, a CBOR map) or a bundle of several, a CBOR array
// of 2 to maxBundleRecords byte strings, each a record's canonical bytes,
// at most maxBundleBytes in all. The message ID is the hash of the message
// either way. A node bundles the records it publishes within bundleFlush
// of each other; a validator checks a bundle's signatures in one batch and
// accepts or rejects it whole.
const (
	maxBundleRecords = 64
	maxBundleBytes   = 16 << 10
	bundleFlush      = time.Millisecond
	// bundleOverhead bounds the CBOR framing of a bundle (array and byte
	// string heads).
	bundleOverhead = 9 + maxBundleRecords*5
)

// isBundle reports whether a gossip message is a bundle: a CBOR array.
func isBundle(data []byte) bool { return len(data) > 0 && data[0]>>5 == 4 }

var bundleEnc = func() cbor.EncMode {
	m, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	return m
}()

var bundleDec = mustDecMode(cbor.DecOptions{
	MaxArrayElements: maxBundleRecords,
	MaxNestedLevels:  4,
	IndefLength:      cbor.IndefLengthForbidden,
	TagsMd:           cbor.TagsForbidden,
})

func mustDecMode(o cbor.DecOptions) cbor.DecMode {
	m, err := o.DecMode()
	if err != nil {
		panic(err)
	}
	return m
}

func encodeBundle(recs []*registry.Record) ([]byte, error) {
	raw := make([][]byte, len(recs))
	for i, r := range recs {
		raw[i] = r.Bytes()
	}
	return bundleEnc.Marshal(raw)
}

// decodeBundle returns a bundle's records' bytes, refusing anything but a
// definite array of 2 to maxBundleRecords byte strings within the size
// limit, in its one canonical encoding.
func decodeBundle(data []byte) ([][]byte, error) {
	const op = "federation.bundle"
	if len(data) > maxBundleBytes+bundleOverhead {
		return nil, registry.Errorf(op, registry.ETOOLARGE, "a bundle of %d bytes; at most %d", len(data), maxBundleBytes+bundleOverhead)
	}
	var raw [][]byte
	if err := bundleDec.Unmarshal(data, &raw); err != nil {
		return nil, registry.E(op, registry.EINVALID, "not a bundle", err)
	}
	if len(raw) < 2 {
		return nil, registry.Errorf(op, registry.EINVALID, "a bundle holds 2 to %d records, not %d", maxBundleRecords, len(raw))
	}
	total := 0
	for _, r := range raw {
		total += len(r)
	}
	if total > maxBundleBytes {
		return nil, registry.Errorf(op, registry.ETOOLARGE, "a bundle's records hold %d bytes; at most %d", total, maxBundleBytes)
	}
	if again, err := bundleEnc.Marshal(raw); err != nil || string(again) != string(data) {
		return nil, registry.Errorf(op, registry.EINVALID, "a bundle is not in its canonical encoding")
	}
	return raw, nil
}

// bundler gathers the records this node publishes and gossips them in
// bundles: at most maxBundleRecords and maxBundleBytes each, sent
// bundleFlush after the first record arrived (or as soon as full). A
// record that finds the bundler idle (nothing sent for bundleFlush) goes
// at once, so a lone record waits for nothing; a record too large to
// share a bundle goes alone at once.
type bundler struct {
	n     *Node
	mu    sync.Mutex
	recs  []*registry.Record
	bytes int
	timer *time.Timer
	last  time.Time // when something was last sent
}

func (b *bundler) add(rec *registry.Record) {
	size := len(rec.Bytes())
	if size > maxBundleBytes/2 {
		b.n.send([]*registry.Record{rec})
		return
	}
	b.mu.Lock()
	if len(b.recs) == 0 && time.Since(b.last) > bundleFlush {
		b.last = time.Now()
		b.mu.Unlock()
		b.n.send([]*registry.Record{rec})
		return
	}
	if b.bytes+size > maxBundleBytes {
		b.flushLocked()
	}
	b.recs = append(b.recs, rec)
	b.bytes += size
	if len(b.recs) == maxBundleRecords {
		b.flushLocked()
	} else if b.timer == nil {
		b.timer = time.AfterFunc(bundleFlush, b.flush)
	}
	b.mu.Unlock()
}

func (b *bundler) flush() {
	b.mu.Lock()
	b.flushLocked()
	b.mu.Unlock()
}

// flushLocked sends what is gathered; b.mu is held.
func (b *bundler) flushLocked() {
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	if len(b.recs) == 0 {
		return
	}
	recs := b.recs
	b.recs, b.bytes, b.last = nil, 0, time.Now()
	b.n.send(recs)
}

// send gossips one record, or a bundle of several.
func (n *Node) send(recs []*registry.Record) {
	var data []byte
	var vd any
	if len(recs) == 1 {
		data, vd = recs[0].Bytes(), recs[0]
	} else {
		var err error
		if data, err = encodeBundle(recs); err != nil {
			n.log.Error("cannot encode a bundle; reconciliation will carry its records", "records", len(recs), "err", err)
			return
		}
		vd = recs
	}
	if err := n.topic.Publish(n.ctx, data, pubsub.WithValidatorData(vd)); err != nil && n.ctx.Err() == nil {
		n.log.Warn("cannot gossip records (they are stored and will reach peers by reconciliation)", "records", len(recs), "err", err)
	}
}

// validateBundle is the validator's rule for bundles: Reject (the sender
// is penalised) for a malformed bundle or any record that does not verify
// — its good records remain obtainable by reconciliation; Ignore when
// nothing in it is new or any of its new records is over a quota (the
// bundle is not relayed); Accept otherwise, with its new records as the
// message's data for readGossip.
func (n *Node) validateBundle(from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	raws, err := decodeBundle(msg.Data)
	if err != nil {
		n.stats.gossipRejected.Add(1)
		n.log.Debug("gossip: rejected bundle", "peer", from.String(), "err", err)
		return pubsub.ValidationReject
	}
	recs, bad, err := registry.DecodeBatch(raws)
	if err != nil {
		n.stats.gossipRejected.Add(1)
		n.log.Debug("gossip: rejected bundle with a bad record", "peer", from.String(), "index", bad, "err", err)
		return pubsub.ValidationReject
	}
	now := n.cfg.Now()
	fresh := recs[:0]
	for _, r := range recs {
		switch {
		case !registry.Applicable(r, now, n.cfg.MaxSkew):
			n.stats.gossipFuture.Add(1)
		case n.idx.has(keyOf(r)):
			n.stats.gossipHeld.Add(1)
		default:
			fresh = append(fresh, r)
		}
	}
	if len(fresh) == 0 {
		return pubsub.ValidationIgnore
	}
	useful := false
	for _, r := range fresh {
		ok, u := n.admit(r, from)
		if !ok {
			n.stats.gossipOverQuota.Add(1)
			return pubsub.ValidationIgnore
		}
		useful = useful || u
	}
	if useful {
		n.creditDelivery(from)
	}
	msg.ValidatorData = fresh
	n.stats.gossipAccepted.Add(uint64(len(fresh)))
	n.stats.gossipBundles.Add(1)
	return pubsub.ValidationAccept
}
