package registry

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math/bits"
)

// Fingerprint summarises a set of record IDs so that two sets can be compared
// by exchanging a few bytes: the sum modulo 2^256 of the IDs' sha-256 digests
// read as little-endian integers, and the number of IDs. Addition makes it
// incremental (add one ID in O(1)) and order-independent; range-based set
// reconciliation (DESIGN.md §3) compares fingerprints of ranges of (time, ID).
//
// Compatibility: the wire form (Sum) and the digest derivation are part of
// the reconciliation protocol; never change them.
type Fingerprint struct {
	sum   [4]uint64 // little-endian limbs
	Count uint64
}

// Add adds id to the set.
func (f *Fingerprint) Add(id ID) {
	var c uint64
	for i := 0; i < 4; i++ {
		limb := binary.LittleEndian.Uint64(id[2+8*i:])
		f.sum[i], c = bits.Add64(f.sum[i], limb, c)
	}
	f.Count++
}

// Merge adds the IDs summarised by o (the sets must be disjoint).
func (f *Fingerprint) Merge(o Fingerprint) {
	var c uint64
	for i := 0; i < 4; i++ {
		f.sum[i], c = bits.Add64(f.sum[i], o.sum[i], c)
	}
	f.Count += o.Count
}

// Sub removes the IDs summarised by o (o must be a subset).
func (f *Fingerprint) Sub(o Fingerprint) {
	var b uint64
	for i := 0; i < 4; i++ {
		f.sum[i], b = bits.Sub64(f.sum[i], o.sum[i], b)
	}
	f.Count -= o.Count
}

// Sum returns the 32-byte little-endian sum.
func (f Fingerprint) Sum() [32]byte {
	var out [32]byte
	for i := 0; i < 4; i++ {
		binary.LittleEndian.PutUint64(out[8*i:], f.sum[i])
	}
	return out
}

// Short returns the 16-byte fingerprint sent in reconciliation frames:
// sha256(sum ‖ count as uint64 little-endian)[:16].
func (f Fingerprint) Short() [16]byte {
	var out [16]byte
	d := f.digest()
	copy(out[:], d[:16])
	return out
}

// Digest returns the state digest shown by the REST API, hex of
// sha256(sum ‖ count). Two nodes are in sync exactly when digests match.
func (f Fingerprint) Digest() string {
	d := f.digest()
	return hex.EncodeToString(d[:])
}

func (f Fingerprint) digest() [32]byte {
	var buf [40]byte
	s := f.Sum()
	copy(buf[:], s[:])
	binary.LittleEndian.PutUint64(buf[32:], f.Count)
	return sha256.Sum256(buf[:])
}
