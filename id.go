package registry

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/multiformats/go-multibase"
	"github.com/multiformats/go-multihash"
)

// ID is the content address of a record or a blob: the multihash (sha2-256,
// code 0x12, length 32) of its bytes. The zero ID is invalid.
//
// Compatibility: IDs are compared bytewise, and that order is part of the
// conflict rules (DESIGN.md §2). Never change the hash function of existing IDs.
type ID [idLen]byte

const (
	idLen      = 34
	mhSHA256   = 0x12
	sha256Size = 32
)

// Sum returns the ID of b.
func Sum(b []byte) ID {
	d := sha256.Sum256(b)
	return idFromDigest(d)
}

func idFromDigest(d [sha256Size]byte) ID {
	var id ID
	id[0], id[1] = mhSHA256, sha256Size
	copy(id[2:], d[:])
	return id
}

// IDFromDigest returns the ID for a raw sha-256 digest, as Cargo's cksum is.
func IDFromDigest(d [32]byte) ID { return idFromDigest(d) }

// IDFromBytes checks that b is a sha2-256 multihash and returns it as an ID.
func IDFromBytes(b []byte) (ID, error) {
	const op = "registry.IDFromBytes"
	var id ID
	if len(b) != idLen || b[0] != mhSHA256 || b[1] != sha256Size {
		if dm, err := multihash.Decode(b); err == nil {
			return id, Errorf(op, EINVALID, "unsupported multihash %s; only sha2-256 is accepted", dm.Name)
		}
		return id, Errorf(op, EINVALID, "not a sha2-256 multihash (%d bytes)", len(b))
	}
	copy(id[:], b)
	return id, nil
}

// ParseID parses a multibase-encoded ID. Base32 (prefix "b", the canonical
// form) and base58btc (prefix "z", or a bare "Qm…"-style string) are accepted.
func ParseID(s string) (ID, error) {
	const op = "registry.ParseID"
	var id ID
	s = strings.TrimSpace(s)
	if s == "" {
		return id, Errorf(op, EINVALID, "empty record ID")
	}
	var raw []byte
	var err error
	if strings.HasPrefix(s, "Qm") {
		// Bare base58btc, as IPFS prints sha2-256 multihashes.
		var mh multihash.Multihash
		mh, err = multihash.FromB58String(s)
		raw = mh
	} else {
		var enc multibase.Encoding
		enc, raw, err = multibase.Decode(s)
		if err == nil && enc != multibase.Base32 && enc != multibase.Base58BTC && enc != multibase.Base32Upper {
			return id, Errorf(op, EINVALID, "record ID %q uses an unsupported multibase; use base32 (b…) or base58btc (z…)", s)
		}
	}
	if err != nil {
		return id, Errorf(op, EINVALID, "%q is not a record ID (multibase base32 \"b…\" or base58btc \"z…\")", s)
	}
	id, err = IDFromBytes(raw)
	if err != nil {
		return id, E(op, EINVALID, "record ID "+quoteShort(s), err)
	}
	return id, nil
}

// String returns the canonical base32 multibase form ("b…").
func (id ID) String() string {
	s, _ := multibase.Encode(multibase.Base32, id[:])
	return s
}

// Base58 returns the base58btc multibase form ("z…").
func (id ID) Base58() string {
	s, _ := multibase.Encode(multibase.Base58BTC, id[:])
	return s
}

// Bytes returns the multihash bytes.
func (id ID) Bytes() []byte { return append([]byte(nil), id[:]...) }

// Digest returns the raw sha-256 digest.
func (id ID) Digest() [32]byte {
	var d [32]byte
	copy(d[:], id[2:])
	return d
}

// Hex returns the hex sha-256 digest, the form Cargo calls "cksum".
func (id ID) Hex() string { return hex.EncodeToString(id[2:]) }

// IsZero reports whether id is the zero value.
func (id ID) IsZero() bool { return id == ID{} }

// Compare orders IDs bytewise.
func (id ID) Compare(o ID) int { return bytes.Compare(id[:], o[:]) }

// MarshalText implements encoding.TextMarshaler (JSON uses the base32 form).
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

func quoteShort(s string) string {
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return `"` + s + `"`
}
