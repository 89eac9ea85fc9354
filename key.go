package registry

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"github.com/hdevalence/ed25519consensus"
	"io"

	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"github.com/mr-tron/base58"
	"strings"
)

// PublicKey is an ed25519 public key in libp2p's key encoding: the protobuf
// message PublicKey{Type: Ed25519 (1), Data: 32 bytes}, which is always the 36
// bytes 0x08 0x01 0x12 0x20 ‖ key. A node's key is its libp2p identity, so the
// author of a node's records and its peer ID name the same key.
type PublicKey []byte

// PrivateKey is an ed25519 private key (64 bytes: seed ‖ public key).
type PrivateKey ed25519.PrivateKey

var libp2pEd25519Prefix = []byte{0x08, 0x01, 0x12, 0x20}

const publicKeyLen = 4 + ed25519.PublicKeySize

// GenerateKey returns a new private key read from r (crypto/rand when nil).
func GenerateKey(r io.Reader) (PrivateKey, error) {
	if r == nil {
		r = rand.Reader
	}
	_, priv, err := ed25519.GenerateKey(r)
	if err != nil {
		return nil, E("registry.GenerateKey", EINTERNAL, "cannot generate an ed25519 key", err)
	}
	return PrivateKey(priv), nil
}

// KeyFromSeed derives the private key for a 32-byte ed25519 seed.
func KeyFromSeed(seed []byte) (PrivateKey, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, Errorf("registry.KeyFromSeed", EINVALID, "an ed25519 seed is %d bytes, got %d", ed25519.SeedSize, len(seed))
	}
	return PrivateKey(ed25519.NewKeyFromSeed(seed)), nil
}

// Public returns the public half in libp2p encoding.
func (k PrivateKey) Public() PublicKey {
	pub := ed25519.PrivateKey(k).Public().(ed25519.PublicKey)
	return EncodePublicKey(pub)
}

// Seed returns the 32-byte seed the key derives from.
func (k PrivateKey) Seed() []byte { return ed25519.PrivateKey(k).Seed() }

// Sign signs msg.
func (k PrivateKey) Sign(msg []byte) []byte { return ed25519.Sign(ed25519.PrivateKey(k), msg) }

// EncodePublicKey wraps a raw ed25519 key in libp2p's encoding.
func EncodePublicKey(pub ed25519.PublicKey) PublicKey {
	out := make([]byte, 0, publicKeyLen)
	out = append(out, libp2pEd25519Prefix...)
	return append(out, pub...)
}

// Validate checks that k is a libp2p-encoded ed25519 public key.
func (k PublicKey) Validate() error {
	if len(k) != publicKeyLen || !bytes.Equal(k[:4], libp2pEd25519Prefix) {
		return Errorf("registry.PublicKey", EINVALID, "author is not a libp2p ed25519 public key (%d bytes)", len(k))
	}
	return nil
}

// Ed25519 returns the raw 32-byte key. It panics if k is not valid.
func (k PublicKey) Ed25519() ed25519.PublicKey { return ed25519.PublicKey(k[4:]) }

// Verify reports whether sig is k's signature of msg.
func (k PublicKey) Verify(msg, sig []byte) bool {
	if k.Validate() != nil || len(sig) != ed25519.SignatureSize {
		return false
	}
	return ed25519consensus.Verify(k.Ed25519(), msg, sig)
}

// PeerID returns the libp2p peer ID of the key ("12D3Koo…"): base58btc of the
// identity multihash of the encoded key.
func (k PublicKey) PeerID() string {
	mh := make([]byte, 0, 2+len(k))
	mh = append(mh, 0x00, byte(len(k)))
	mh = append(mh, k...)
	return base58.Encode(mh)
}

// ParsePeerID is the inverse of PeerID for ed25519 keys.
func ParsePeerID(s string) (PublicKey, error) {
	const op = "registry.ParsePeerID"
	b, err := base58.Decode(s)
	if err != nil || len(b) != 2+publicKeyLen || b[0] != 0x00 || int(b[1]) != publicKeyLen {
		return nil, Errorf(op, EINVALID, "%s is not an ed25519 peer ID (12D3Koo…)", quoteShort(s))
	}
	k := PublicKey(b[2:])
	if err := k.Validate(); err != nil {
		return nil, E(op, EINVALID, "", err)
	}
	return k, nil
}

// KeyID is the short, stable name of a key used as the subject of key
// records and in owners lists: its peer ID.
func (k PublicKey) KeyID() string { return k.PeerID() }

// String returns the peer ID form.
func (k PublicKey) String() string { return k.PeerID() }

// Hex returns the hex form of the encoded key.
func (k PublicKey) Hex() string { return hex.EncodeToString(k) }

// Equal reports whether two keys are the same.
func (k PublicKey) Equal(o PublicKey) bool { return bytes.Equal(k, o) }

// MarshalText renders the key as its peer ID in JSON.
func (k PublicKey) MarshalText() ([]byte, error) { return []byte(k.PeerID()), nil }

// UnmarshalText parses a peer ID.
func (k *PublicKey) UnmarshalText(b []byte) error {
	v, err := ParsePeerID(string(b))
	if err != nil {
		return err
	}
	*k = v
	return nil
}

// ParsePublicKey reads an ed25519 public key in any of the encodings an
// operator is likely to have at hand: a peer ID ("12D3Koo…", what the CLI's
// `keys show` prints), 64 hex digits or standard base64 of the raw 32-byte
// key (optionally prefixed "ed25519:"), the hex of libp2p's 36-byte
// encoding, or a PEM "PUBLIC KEY" block (PKIX, as `openssl pkey -pubout`
// writes).
func ParsePublicKey(s string) (PublicKey, error) {
	const op = "registry.ParsePublicKey"
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "-----BEGIN") {
		blk, _ := pem.Decode([]byte(s))
		if blk == nil || blk.Type != "PUBLIC KEY" {
			return nil, Errorf(op, EINVALID, "a PEM key must be one \"PUBLIC KEY\" block")
		}
		pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, E(op, EINVALID, "the PEM block is not a public key", err)
		}
		ek, ok := pub.(ed25519.PublicKey)
		if !ok {
			return nil, Errorf(op, EINVALID, "the PEM key is a %T, not ed25519", pub)
		}
		return EncodePublicKey(ek), nil
	}
	if strings.HasPrefix(s, "12D3Koo") {
		return ParsePeerID(s)
	}
	raw := strings.TrimPrefix(s, "ed25519:")
	if b, err := hex.DecodeString(raw); err == nil {
		switch len(b) {
		case ed25519.PublicKeySize:
			return EncodePublicKey(b), nil
		case publicKeyLen:
			k := PublicKey(b)
			return k, k.Validate()
		}
	}
	if b, err := base64.StdEncoding.DecodeString(raw); err == nil && len(b) == ed25519.PublicKeySize {
		return EncodePublicKey(b), nil
	}
	return nil, Errorf(op, EINVALID, "%s is not an ed25519 public key: give a peer ID (12D3Koo…), 64 hex digits or base64 of the 32-byte key, or a PEM PUBLIC KEY block", quoteShort(s))
}

// KeyProofMessage is what a developer key signs to show that whoever asks
// a node to register it holds it: bound to one node and one name, so a
// proof cannot be replayed elsewhere.
func KeyProofMessage(nodePeerID, keyPeerID, name string) []byte {
	return []byte("wasm-crates-registry key registration\n" + nodePeerID + "\n" + keyPeerID + "\n" + name + "\n")
}

// SignedRecordHeader is the HTTP header that carries a developer-signed
// release record (standard base64 of its canonical bytes) on POST /crates.
const SignedRecordHeader = "Wcr-Signed-Record"
