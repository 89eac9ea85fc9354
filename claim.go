package registry

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"time"
)

// ClaimBody is the body of a claim record (subject "name@version"): a
// tester's lease on testing one release, so that testers sharing work do
// not test it twice. A claim is a last-writer-wins record per (subject,
// author): the tester renews its lease with a newer claim and gives it up
// with one whose Until is not after its time. Its report on the release
// supersedes its lease.
//
// Wire format (never renumber): 1 release (bytes, the release record's ID)
// 2 until (int, Unix ms).
type ClaimBody struct {
	Release []byte `cbor:"1,keyasint" json:"release"`
	Until   int64  `cbor:"2,keyasint" json:"until"`
}

// ReleaseID returns the ID of the claimed release record.
func (b *ClaimBody) ReleaseID() ID {
	id, _ := IDFromBytes(b.Release)
	return id
}

func (b *ClaimBody) validate(subject string) error {
	const op = "registry.ClaimBody"
	if _, _, err := ParseReleaseSubject(subject); err != nil {
		return E(op, EINVALID, "a claim's subject", err)
	}
	if _, err := IDFromBytes(b.Release); err != nil {
		return E(op, EINVALID, "claimed release", err)
	}
	if b.Until < 0 {
		return Errorf(op, EINVALID, "a claim's until must not be negative")
	}
	return nil
}

// Lease lengths. A claim states its lease as Until - Time, but neither
// number is trusted: the receiver starts the lease when it received the
// claim, by its own clock, and caps its length at the receiver's maximum
// (DefaultMaxLease unless configured), so neither a far-future Until nor a
// backdated Time can block a release for long.
const (
	DefaultLease    = 2 * time.Minute
	DefaultMaxLease = 10 * time.Minute
)

// SeenClaim is a claim record with its decoded body and the time the
// judging node first received it, by its own clock.
type SeenClaim struct {
	Record   *Record
	Body     *ClaimBody
	Received time.Time
}

// LeaseEnd is when c's lease ends as the receiver judges it: Received plus
// the length the claim states (Until - Time, at least 0), capped at max.
func LeaseEnd(c SeenClaim, max time.Duration) time.Time {
	if c.Body.Until <= c.Record.Time {
		return c.Received
	}
	ms := uint64(c.Body.Until) - uint64(c.Record.Time) // Until > Time: no wrap
	if max < 0 {
		max = 0
	}
	if ms > uint64(max.Milliseconds()) {
		return c.Received.Add(max)
	}
	return c.Received.Add(time.Duration(ms) * time.Millisecond)
}

// ActiveLeases returns the leases on release that hold at now, first come
// first: for every author that may test (the judging node's policy), its
// live claim about release's subject (the greatest time, author, ID of its
// claims) when that claim names release, the author has not reported on
// release (reported), and LeaseEnd(claim, max) is after now. Claims by
// other authors are kept by the store but never count here. The order is
// (claim time, author, ID), so nodes that received the same claims agree
// which leases come first whatever their clocks.
func ActiveLeases(claims []SeenClaim, release ID, now time.Time, max time.Duration, may, reported func(PublicKey) bool) []SeenClaim {
	live := map[string]SeenClaim{}
	for _, c := range claims {
		if c.Record == nil || c.Body == nil || c.Record.Kind != KindClaim {
			continue
		}
		k := string(c.Record.Author)
		if old, ok := live[k]; !ok || CompareNewest(c.Record, old.Record) > 0 {
			live[k] = c
		}
	}
	var out []SeenClaim
	for _, c := range live {
		if c.Body.ReleaseID() != release || !may(c.Record.Author) || reported(c.Record.Author) {
			continue
		}
		if !LeaseEnd(c, max).After(now) {
			continue
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b SeenClaim) int {
		if c := cmp.Compare(a.Record.Time, b.Record.Time); c != 0 {
			return c
		}
		if c := bytes.Compare(a.Record.Author, b.Record.Author); c != 0 {
			return c
		}
		return a.Record.ID().Compare(b.Record.ID())
	})
	return out
}

// DefaultConfirmPerMille is the share of releases, in thousandths, that a
// second independent tester confirms (10%).
const DefaultConfirmPerMille = 100

// InConfirmationShare reports whether release is among the perMille
// thousandths of releases chosen for confirmation. The choice depends on
// the release record's ID alone (the first 8 bytes of sha256 of its
// bytes, big-endian, modulo 1000), so every node agrees on it.
func InConfirmationShare(release ID, perMille uint64) bool {
	h := sha256.Sum256(release[:])
	return binary.BigEndian.Uint64(h[:8])%1000 < perMille
}
