package registry

import (
	"bytes"
	"encoding/hex"
	"slices"
	"strings"
)

// Record bodies of the v1 kinds. Each is encoded as a CBOR map with integer
// keys; the numbers are the wire format. Never renumber a field, never reuse a
// number; add new fields with new numbers. Empty optional fields are omitted,
// so decoding then re-encoding a valid body gives the same bytes.

// ReleaseBody is the body of a release record (subject "name@version"). It
// carries what Cargo's index needs plus the descriptive metadata.
type ReleaseBody struct {
	Name          string              `cbor:"1,keyasint" json:"name"`
	Version       string              `cbor:"2,keyasint" json:"vers"`
	Cksum         string              `cbor:"3,keyasint" json:"cksum"`
	Blob          []byte              `cbor:"4,keyasint" json:"-"`
	Size          uint64              `cbor:"5,keyasint" json:"size"`
	Deps          []Dep               `cbor:"6,keyasint,omitempty" json:"deps"`
	Features      map[string][]string `cbor:"7,keyasint,omitempty" json:"features"`
	Links         string              `cbor:"8,keyasint,omitempty" json:"links,omitempty"`
	RustVersion   string              `cbor:"9,keyasint,omitempty" json:"rust_version,omitempty"`
	Edition       string              `cbor:"10,keyasint,omitempty" json:"edition,omitempty"`
	Description   string              `cbor:"11,keyasint,omitempty" json:"description,omitempty"`
	License       string              `cbor:"12,keyasint,omitempty" json:"license,omitempty"`
	LicenseFile   string              `cbor:"13,keyasint,omitempty" json:"license_file,omitempty"`
	Repository    string              `cbor:"14,keyasint,omitempty" json:"repository,omitempty"`
	Homepage      string              `cbor:"15,keyasint,omitempty" json:"homepage,omitempty"`
	Documentation string              `cbor:"16,keyasint,omitempty" json:"documentation,omitempty"`
	Keywords      []string            `cbor:"17,keyasint,omitempty" json:"keywords,omitempty"`
	Categories    []string            `cbor:"18,keyasint,omitempty" json:"categories,omitempty"`
	Authors       []string            `cbor:"19,keyasint,omitempty" json:"authors,omitempty"`
	Readme        string              `cbor:"20,keyasint,omitempty" json:"readme,omitempty"`
}

// Dependency kinds as Cargo's index names them.
const (
	DepNormal = "normal"
	DepDev    = "dev"
	DepBuild  = "build"
)

// Dep is one dependency of a release, in Cargo's index terms: Name is the
// name the crate uses for it; Package, when set, is the real crate name of a
// renamed dependency.
type Dep struct {
	Name            string   `cbor:"1,keyasint" json:"name"`
	Req             string   `cbor:"2,keyasint" json:"req"`
	Kind            string   `cbor:"3,keyasint" json:"kind"`
	Target          string   `cbor:"4,keyasint,omitempty" json:"target,omitempty"`
	Optional        bool     `cbor:"5,keyasint,omitempty" json:"optional"`
	DefaultFeatures bool     `cbor:"6,keyasint" json:"default_features"`
	Features        []string `cbor:"7,keyasint,omitempty" json:"features"`
	Package         string   `cbor:"8,keyasint,omitempty" json:"package,omitempty"`
	Registry        string   `cbor:"9,keyasint,omitempty" json:"registry,omitempty"`
}

// CrateName returns the real name of the depended-on crate.
func (d Dep) CrateName() string {
	if d.Package != "" {
		return d.Package
	}
	return d.Name
}

// BlobID returns the multihash of the release's .crate archive.
func (b *ReleaseBody) BlobID() ID {
	id, _ := IDFromBytes(b.Blob)
	return id
}

// YankBody is the body of a yank record (subject "name@version").
type YankBody struct {
	Yanked bool   `cbor:"1,keyasint" json:"yanked"`
	Reason string `cbor:"2,keyasint,omitempty" json:"reason,omitempty"`
}

// Review verdicts.
const (
	VerdictApprove = "approve"
	VerdictReject  = "reject"
	VerdictFlag    = "flag"
)

// ReviewBody is the body of a review record (subject "name@version").
type ReviewBody struct {
	Verdict string `cbor:"1,keyasint" json:"verdict"`
	Comment string `cbor:"2,keyasint,omitempty" json:"comment,omitempty"`
}

// OwnersBody is the body of an owners record (subject: a crate name). Owners
// are libp2p-encoded public keys, sorted bytewise, without duplicates, at
// least one.
type OwnersBody struct {
	Owners [][]byte `cbor:"1,keyasint" json:"owners"`
}

// Keys returns the owners as PublicKeys.
func (b *OwnersBody) Keys() []PublicKey {
	out := make([]PublicKey, len(b.Owners))
	for i, o := range b.Owners {
		out[i] = PublicKey(o)
	}
	return out
}

// NewOwnersBody builds a body from keys, sorting and de-duplicating them.
func NewOwnersBody(keys []PublicKey) *OwnersBody {
	var out [][]byte
	for _, k := range keys {
		out = append(out, []byte(k))
	}
	slices.SortFunc(out, bytes.Compare)
	out = slices.CompactFunc(out, bytes.Equal)
	return &OwnersBody{Owners: out}
}

// Roles a key record may grant.
const (
	RoleAdmin     = "admin"     // may sign key records (delegate trust); witnesses time with its checkpoints
	RolePublisher = "publisher" // may found crates, publish, yank and change owners of crates it owns
	RoleReviewer  = "reviewer"  // its reviews count
	RoleTester    = "tester"    // its reports count towards verdicts
)

// Roles lists every role, in the order they are documented.
var Roles = []string{RoleAdmin, RolePublisher, RoleReviewer, RoleTester}

// maxScopes bounds the crate-name patterns of one key record.
const maxScopes = 64

// KeyBody is the body of a key record (subject: the key's peer ID). It
// registers a developer's or node's key with a display name and roles.
type KeyBody struct {
	Key     []byte   `cbor:"1,keyasint" json:"key"`
	Name    string   `cbor:"2,keyasint" json:"name"`
	Roles   []string `cbor:"3,keyasint,omitempty" json:"roles,omitempty"`
	Revoked bool     `cbor:"4,keyasint,omitempty" json:"revoked,omitempty"`
	// Scopes, when present, limit the crate-related roles (publisher,
	// reviewer, tester) to crate names matching one of these patterns: a
	// name, or a prefix followed by "*". Admin is never scoped.
	Scopes []string `cbor:"5,keyasint,omitempty" json:"scopes,omitempty"`
}

// DecodeBody decodes the body of a known kind into its Go type (*ReleaseBody,
// *YankBody, *ReportBody, *ReviewBody, *OwnersBody, *KeyBody, *CheckpointBody)
// and checks it
// against the schema and the subject. Unknown kinds return EUNSUPPORTED.
func (r *Record) DecodeBody() (any, error) {
	const op = "registry.DecodeBody"
	var body interface{ validate(subject string) error }
	switch r.Kind {
	case KindRelease:
		body = new(ReleaseBody)
	case KindYank:
		body = new(YankBody)
	case KindReport:
		body = new(ReportBody)
	case KindReview:
		body = new(ReviewBody)
	case KindOwners:
		body = new(OwnersBody)
	case KindKey:
		body = new(KeyBody)
	case KindCheckpoint:
		body = new(CheckpointBody)
	case KindUpstream:
		body = new(UpstreamBody)
	case KindClaim:
		body = new(ClaimBody)
	default:
		return nil, Errorf(op, EUNSUPPORTED, "records of kind %q are relayed but not applied by this node", r.Kind)
	}
	if err := Unmarshal(r.Body, body); err != nil {
		return nil, E(op, EINVALID, string(r.Kind)+" body", err)
	}
	if err := body.validate(r.Subject); err != nil {
		return nil, E(op, EINVALID, string(r.Kind)+" body", err)
	}
	if r.Kind == KindCheckpoint && r.Subject != r.Author.PeerID() {
		return nil, Errorf(op, EINVALID, "a checkpoint's subject must be its author's peer ID %s, not %q", r.Author.PeerID(), r.Subject)
	}
	return body, nil
}

func (b *ReleaseBody) validate(subject string) error {
	const op = "registry.ReleaseBody"
	if err := ValidateCrateName(b.Name); err != nil {
		return err
	}
	if err := ValidateVersion(b.Version); err != nil {
		return err
	}
	if subject != ReleaseSubject(b.Name, b.Version) {
		return Errorf(op, EINVALID, "subject %q does not match the release %s@%s", subject, b.Name, b.Version)
	}
	blob, err := IDFromBytes(b.Blob)
	if err != nil {
		return E(op, EINVALID, "blob", err)
	}
	if b.Cksum != blob.Hex() {
		return Errorf(op, EINVALID, "cksum %q is not the sha256 of the blob (%s)", b.Cksum, blob.Hex())
	}
	if _, err := hex.DecodeString(b.Cksum); err != nil {
		return Errorf(op, EINVALID, "cksum is not hex")
	}
	if b.Size == 0 {
		return Errorf(op, EINVALID, "a release needs a non-empty archive")
	}
	for _, d := range b.Deps {
		if err := ValidateCrateName(d.CrateName()); err != nil {
			return E(op, EINVALID, "dependency", err)
		}
		if d.Name != d.CrateName() {
			if err := ValidateCrateName(d.Name); err != nil {
				return E(op, EINVALID, "dependency", err)
			}
		}
		switch d.Kind {
		case DepNormal, DepDev, DepBuild:
		default:
			return Errorf(op, EINVALID, "dependency %s has kind %q; want normal, dev or build", d.Name, d.Kind)
		}
	}
	return nil
}

func (b *YankBody) validate(subject string) error {
	_, _, err := ParseReleaseSubject(subject)
	return err
}

func (b *ReviewBody) validate(subject string) error {
	if _, _, err := ParseReleaseSubject(subject); err != nil {
		return err
	}
	switch b.Verdict {
	case VerdictApprove, VerdictReject, VerdictFlag:
		return nil
	}
	return Errorf("registry.ReviewBody", EINVALID, "review verdict %q is not approve, reject or flag", b.Verdict)
}

func (b *OwnersBody) validate(subject string) error {
	const op = "registry.OwnersBody"
	if err := ValidateCrateName(subject); err != nil {
		return err
	}
	if len(b.Owners) == 0 {
		return Errorf(op, EINVALID, "a crate needs at least one owner")
	}
	for i, o := range b.Owners {
		if err := PublicKey(o).Validate(); err != nil {
			return err
		}
		if i > 0 && bytes.Compare(b.Owners[i-1], o) >= 0 {
			return Errorf(op, EINVALID, "owners must be sorted and unique")
		}
	}
	return nil
}

func (b *KeyBody) validate(subject string) error {
	const op = "registry.KeyBody"
	k := PublicKey(b.Key)
	if err := k.Validate(); err != nil {
		return err
	}
	if subject != k.KeyID() {
		return Errorf(op, EINVALID, "key record subject %q is not the key's ID %s", subject, k.KeyID())
	}
	if strings.TrimSpace(b.Name) == "" || len(b.Name) > 128 {
		return Errorf(op, EINVALID, "a key needs a display name of 1 to 128 bytes")
	}
	for _, role := range b.Roles {
		if !slices.Contains(Roles, role) {
			return Errorf(op, EINVALID, "unknown role %q; roles are %s", role, strings.Join(Roles, ", "))
		}
	}
	if len(b.Scopes) > maxScopes {
		return Errorf(op, EINVALID, "a key record has at most %d scopes", maxScopes)
	}
	for _, sc := range b.Scopes {
		if err := validScope(sc); err != nil {
			return err
		}
	}
	return nil
}

// validScope checks a crate-name pattern: a crate name, or a prefix of one
// followed by "*" ("*" alone matches every crate).
func validScope(sc string) error {
	name := strings.TrimSuffix(sc, "*")
	if name == "" && sc == "*" {
		return nil
	}
	if err := ValidateCrateName(name); err != nil && !(strings.HasSuffix(sc, "*") && validNamePrefix(name)) {
		return Errorf("registry.KeyBody", EINVALID, "scope %q is neither a crate name nor a name prefix followed by *", sc)
	}
	return nil
}

func validNamePrefix(p string) bool {
	if p == "" || len(p) > 64 {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Covers reports whether the key body's scopes allow crate (no scopes:
// every crate). Names compare case-insensitively, as Cargo's index does.
func (b *KeyBody) Covers(crate string) bool {
	if len(b.Scopes) == 0 {
		return true
	}
	c := strings.ToLower(crate)
	for _, sc := range b.Scopes {
		sc = strings.ToLower(sc)
		if p, ok := strings.CutSuffix(sc, "*"); ok {
			if strings.HasPrefix(c, p) {
				return true
			}
		} else if c == sc {
			return true
		}
	}
	return false
}

// HasRole reports whether the key body grants role and is not revoked.
func (b *KeyBody) HasRole(role string) bool {
	return !b.Revoked && slices.Contains(b.Roles, role)
}
