package registry

import (
	"crypto/ed25519"

	"bytes"
	"fmt"
	"github.com/hdevalence/ed25519consensus"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// Kind names what a record is. Kinds are lowercase ASCII words; unknown kinds
// are stored and relayed but not applied (DESIGN.md §2).
type Kind string

// The v1 kinds. Never rename one: the string is signed.
const (
	KindRelease Kind = "release"
	KindYank    Kind = "yank"
	KindReport  Kind = "report"
	KindReview  Kind = "review"
	KindOwners  Kind = "owners"
	KindKey     Kind = "key"
	// KindCheckpoint is a node's signed log head (checkpoint.go).
	KindCheckpoint Kind = "checkpoint"
	// KindClaim is a tester's lease on a release (claim.go).
	KindClaim Kind = "claim"
)

// Known reports whether this implementation applies records of kind k.
func (k Kind) Known() bool {
	switch k {
	case KindRelease, KindYank, KindReport, KindReview, KindOwners, KindKey, KindCheckpoint,
		KindUpstream, KindClaim:
		return true
	}
	return false
}

// Limits on records. A record larger than MaxRecordSize is rejected
// everywhere: by the API, by the gossip validator and by reconciliation.
const (
	MaxRecordSize  = 512 << 10
	MaxSubjectLen  = 256
	maxKindLen     = 32
	maxNestedLevel = 16
)

// DefaultMaxSkew is how far ahead of the receiver's clock a record's time may
// be before the receiver holds it back.
const DefaultMaxSkew = 2 * time.Minute

// SignDomain prefixes the bytes that are signed, so that a record signature
// can never be mistaken for a signature of anything else.
const SignDomain = "wcr-record-v1\n"

// Record is a signed envelope. Values are created only by Sign and
// DecodeRecord, which fill in the canonical bytes and the ID; treat the fields
// as read-only.
//
// Wire format (never reorder or renumber): a CBOR map with integer keys
//
//	1 kind (text) 2 subject (text) 3 body (any CBOR item, canonical)
//	4 author (bytes, libp2p ed25519 key) 5 time (int, Unix ms) 6 sig (bytes)
//
// in RFC 8949 §4.2.1 core deterministic encoding, with no floating-point
// values anywhere.
type Record struct {
	Kind    Kind
	Subject string
	Body    []byte // canonical CBOR of the body
	Author  PublicKey
	Time    int64 // Unix milliseconds, UTC
	Sig     []byte

	raw []byte
	id  ID
}

type wireRecord struct {
	Kind    string          `cbor:"1,keyasint"`
	Subject string          `cbor:"2,keyasint"`
	Body    cbor.RawMessage `cbor:"3,keyasint"`
	Author  []byte          `cbor:"4,keyasint"`
	Time    int64           `cbor:"5,keyasint"`
	Sig     []byte          `cbor:"6,keyasint,omitempty"`
}

var (
	encMode cbor.EncMode
	decMode cbor.DecMode // strict: structs
	anyMode cbor.DecMode // generic values, for canonical checks of unknown bodies
)

func init() {
	var err error
	encMode, err = cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	strict := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		MaxNestedLevels:   maxNestedLevel,
		UTF8:              cbor.UTF8RejectInvalid,
		IntDec:            cbor.IntDecConvertSignedOrFail,
	}
	decMode, err = strict.DecMode()
	if err != nil {
		panic(err)
	}
	strict.ExtraReturnErrors = cbor.ExtraDecErrorNone
	anyMode, err = strict.DecMode()
	if err != nil {
		panic(err)
	}
}

// Marshal encodes v in the canonical form used for everything signed.
func Marshal(v any) ([]byte, error) {
	b, err := encMode.Marshal(v)
	if err != nil {
		return nil, E("registry.Marshal", EINTERNAL, "cannot encode CBOR", err)
	}
	return b, nil
}

// Unmarshal decodes canonical CBOR strictly into v: duplicate keys, unknown
// fields, indefinite lengths, tags and non-canonical encodings are errors.
func Unmarshal(b []byte, v any) error {
	const op = "registry.Unmarshal"
	if err := decMode.Unmarshal(b, v); err != nil {
		return E(op, EINVALID, "malformed CBOR", err)
	}
	again, err := encMode.Marshal(v)
	if err != nil {
		return E(op, EINVALID, "malformed CBOR", err)
	}
	if !bytes.Equal(again, b) {
		return Errorf(op, EINVALID, "CBOR is not in canonical (core deterministic) form")
	}
	return nil
}

// checkCanonicalAny checks that b is one canonical CBOR item without floats.
func checkCanonicalAny(b []byte) error {
	const op = "registry.checkCanonical"
	var v any
	if err := anyMode.Unmarshal(b, &v); err != nil {
		return E(op, EINVALID, "malformed CBOR body", err)
	}
	if hasFloat(v) {
		return Errorf(op, EINVALID, "signed data must not contain floating-point numbers")
	}
	again, err := encMode.Marshal(v)
	if err != nil || !bytes.Equal(again, b) {
		return Errorf(op, EINVALID, "body is not in canonical (core deterministic) CBOR form")
	}
	return nil
}

func hasFloat(v any) bool {
	switch x := v.(type) {
	case float32, float64:
		return true
	case []any:
		for _, e := range x {
			if hasFloat(e) {
				return true
			}
		}
	case map[any]any:
		for k, e := range x {
			if hasFloat(k) || hasFloat(e) {
				return true
			}
		}
	}
	return false
}

// signingBytes returns SignDomain ‖ canonical(kind, subject, body, author, time).
func signingBytes(w *wireRecord) ([]byte, error) {
	u := *w
	u.Sig = nil
	b, err := encMode.Marshal(&u)
	if err != nil {
		return nil, E("registry.signingBytes", EINTERNAL, "cannot encode record", err)
	}
	out := make([]byte, 0, len(SignDomain)+len(b))
	out = append(out, SignDomain...)
	return append(out, b...), nil
}

// sigFieldLen is the encoded length of the envelope's last entry: key 6
// (0x06) and a 64-byte byte string (0x58 0x40 ‖ sig).
const sigFieldLen = 1 + 2 + 64

// signingBytesOf derives the signed bytes from a canonical envelope with
// its six entries: in core deterministic order the signature (key 6) is the
// last entry, so canonical(keys 1–5) is the envelope with header 0xa5
// instead of 0xa6 and without its last sigFieldLen bytes. The caller must
// have checked that b is canonical and that Sig is 64 bytes.
func signingBytesOf(b []byte) []byte {
	body := b[1 : len(b)-sigFieldLen]
	out := make([]byte, 0, len(SignDomain)+1+len(body))
	out = append(out, SignDomain...)
	out = append(out, 0xa5)
	return append(out, body...)
}

// Sign builds and signs a record. body is encoded canonically; t is
// truncated to milliseconds.
func Sign(key PrivateKey, kind Kind, subject string, body any, t time.Time) (*Record, error) {
	const op = "registry.Sign"
	bb, err := Marshal(body)
	if err != nil {
		return nil, E(op, EINTERNAL, "cannot encode body", err)
	}
	w := &wireRecord{
		Kind:    string(kind),
		Subject: subject,
		Body:    bb,
		Author:  key.Public(),
		Time:    t.UnixMilli(),
	}
	msg, err := signingBytes(w)
	if err != nil {
		return nil, err
	}
	w.Sig = key.Sign(msg)
	raw, err := encMode.Marshal(w)
	if err != nil {
		return nil, E(op, EINTERNAL, "cannot encode record", err)
	}
	// Decode what we made: the same checks as for a record from a peer, so a
	// node can never sign something its peers would reject.
	r, err := DecodeRecord(raw)
	if err != nil {
		return nil, E(op, KindOf(err), "refusing to sign an invalid record", err)
	}
	return r, nil
}

// DecodeRecord decodes and fully verifies a record: size, canonical form,
// field syntax, signature, and for known kinds the body schema and its
// agreement with the subject. The returned record's ID is computed from b.
// Signatures follow ZIP-215 (ed25519consensus), so that a batch of them
// (DecodeBatch) is valid exactly when each one is.
func DecodeRecord(b []byte) (*Record, error) {
	const op = "registry.DecodeRecord"
	r, err := decodeUnsigned(b)
	if err != nil {
		return nil, err
	}
	if !r.Author.Verify(signingBytesOf(b), r.Sig) {
		return nil, Errorf(op, EINVALID, "bad signature on %s record for %q", r.Kind, r.Subject)
	}
	return r, nil
}

// decodeUnsigned is DecodeRecord without the signature check.
func decodeUnsigned(b []byte) (*Record, error) {
	const op = "registry.DecodeRecord"
	if len(b) > MaxRecordSize {
		return nil, Errorf(op, ETOOLARGE, "record is %d bytes; the limit is %d", len(b), MaxRecordSize)
	}
	if len(b) == 0 {
		return nil, Errorf(op, EINVALID, "empty record")
	}
	var w wireRecord
	if err := Unmarshal(b, &w); err != nil {
		return nil, E(op, EINVALID, "malformed record", err)
	}
	r := w.record(append([]byte(nil), b...))
	if err := r.checkFields(); err != nil {
		return nil, E(op, EINVALID, "", err)
	}
	if b[0] != 0xa6 {
		return nil, Errorf(op, EINVALID, "a record is a map of exactly six entries")
	}
	if err := r.Author.Validate(); err != nil || len(r.Sig) != ed25519.SignatureSize {
		return nil, Errorf(op, EINVALID, "bad signature on %s record for %q", r.Kind, r.Subject)
	}
	if r.Kind.Known() {
		if _, err := r.DecodeBody(); err != nil {
			return nil, E(op, EINVALID, "", err)
		}
	} else if err := checkCanonicalAny(r.Body); err != nil {
		return nil, E(op, EINVALID, "", err)
	}
	return r, nil
}

// DecodeRecordWithID decodes b and checks that it hashes to want.
func DecodeRecordWithID(b []byte, want ID) (*Record, error) {
	if got := Sum(b); got != want {
		return nil, Errorf("registry.DecodeRecordWithID", EINVALID, "record bytes hash to %s, not to the requested %s", got, want)
	}
	return DecodeRecord(b)
}

func (r *Record) checkFields() error {
	const op = "registry.Record"
	if err := validKind(r.Kind); err != nil {
		return err
	}
	if r.Subject == "" || len(r.Subject) > MaxSubjectLen {
		return Errorf(op, EINVALID, "subject must be 1 to %d bytes", MaxSubjectLen)
	}
	for _, c := range r.Subject {
		if c < 0x20 || c == 0x7f {
			return Errorf(op, EINVALID, "subject must not contain control characters")
		}
	}
	if err := r.Author.Validate(); err != nil {
		return err
	}
	if r.Time <= 0 || r.Time > math.MaxInt64/2 {
		return Errorf(op, EINVALID, "time %d is not a Unix millisecond timestamp", r.Time)
	}
	if len(r.Sig) != 64 {
		return Errorf(op, EINVALID, "signature must be 64 bytes, got %d", len(r.Sig))
	}
	return nil
}

func validKind(k Kind) error {
	if len(k) == 0 || len(k) > maxKindLen {
		return Errorf("registry.Kind", EINVALID, "kind must be 1 to %d lowercase letters", maxKindLen)
	}
	for _, c := range []byte(k) {
		if !(c >= 'a' && c <= 'z' || c == '-' || c == '_' || c >= '0' && c <= '9') {
			return Errorf("registry.Kind", EINVALID, "kind %q has a character outside [a-z0-9_-]", string(k))
		}
	}
	return nil
}

// ID returns the record's content address.
func (r *Record) ID() ID { return r.id }

// Bytes returns the canonical encoding (the bytes the ID hashes). The caller
// must not modify the slice.
func (r *Record) Bytes() []byte { return r.raw }

// When returns the record's time.
func (r *Record) When() time.Time { return time.UnixMilli(r.Time).UTC() }

// String describes the record for logs.
func (r *Record) String() string {
	return fmt.Sprintf("%s %s %q by %s at %d", r.id, r.Kind, r.Subject, r.Author.PeerID(), r.Time)
}

// Applicable reports whether r may be applied (and relayed) at now: its time
// is at most maxSkew ahead of now (DESIGN.md §2).
func Applicable(r *Record, now time.Time, maxSkew time.Duration) bool {
	return r.Time <= now.Add(maxSkew).UnixMilli()
}

// DecodeStored decodes bytes that were fully verified by DecodeRecord before
// they were stored. It checks the structure but not the signature, so it must
// never be used on bytes from a peer or a client.
func DecodeStored(b []byte) (*Record, error) {
	const op = "registry.DecodeStored"
	var w wireRecord
	if err := decMode.Unmarshal(b, &w); err != nil {
		return nil, E(op, EINTERNAL, "stored record is corrupt", err)
	}
	return w.record(b), nil
}

// record makes the Record whose canonical bytes are raw (which the Record
// keeps) from its decoded envelope.
func (w *wireRecord) record(raw []byte) *Record {
	return &Record{
		Kind:    Kind(w.Kind),
		Subject: w.Subject,
		Body:    []byte(w.Body),
		Author:  PublicKey(w.Author),
		Time:    w.Time,
		Sig:     w.Sig,
		raw:     raw,
		id:      Sum(raw),
	}
}

// DecodeRecords decodes and verifies many records on all CPUs. It returns
// the records in input order and, for each input that failed, its error at
// the same index (nil where the record is fine).
func DecodeRecords(raw [][]byte) ([]*Record, []error) {
	recs := make([]*Record, len(raw))
	errs := make([]error, len(raw))
	workers := runtime.GOMAXPROCS(0)
	if workers > len(raw) {
		workers = len(raw)
	}
	var wg sync.WaitGroup
	var next atomic.Int64
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(raw) {
					return
				}
				recs[i], errs[i] = DecodeRecord(raw[i])
			}
		}()
	}
	wg.Wait()
	return recs, errs
}

// DecodeBatch decodes and fully verifies records, checking their
// signatures together in one batch (several times cheaper per signature
// than one by one). It is all or nothing: on the first bad record it
// returns that record's index and error, found by checking the batch's
// signatures one by one when the batch fails.
func DecodeBatch(raw [][]byte) ([]*Record, int, error) {
	const op = "registry.DecodeBatch"
	recs := make([]*Record, len(raw))
	for i, b := range raw {
		r, err := decodeUnsigned(b)
		if err != nil {
			return nil, i, err
		}
		recs[i] = r
	}
	if len(recs) == 0 {
		return recs, 0, nil
	}
	if len(recs) == 1 {
		r := recs[0]
		if !r.Author.Verify(signingBytesOf(r.raw), r.Sig) {
			return nil, 0, Errorf(op, EINVALID, "bad signature on %s record for %q", r.Kind, r.Subject)
		}
		return recs, 0, nil
	}
	bv := ed25519consensus.NewPreallocatedBatchVerifier(len(recs))
	for _, r := range recs {
		bv.Add(r.Author.Ed25519(), signingBytesOf(r.raw), r.Sig)
	}
	if bv.Verify() {
		return recs, 0, nil
	}
	for i, r := range recs {
		if !r.Author.Verify(signingBytesOf(r.raw), r.Sig) {
			return nil, i, Errorf(op, EINVALID, "bad signature on %s record for %q", r.Kind, r.Subject)
		}
	}
	return nil, 0, Errorf(op, EINTERNAL, "a signature batch failed while each signature verifies")
}
