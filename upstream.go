package registry

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// KindUpstream is a node's signed observation of an upstream sparse index
// (docs/MIRROR.md): which upstream served which index line, with which
// checksum, for one name@version, at the node's time.
const KindUpstream Kind = "upstream"

// Limits on upstream records.
const (
	// MaxUpstreamLine bounds one index line of an upstream record.
	MaxUpstreamLine = 128 << 10
	// MaxUpstreamURL bounds the upstream's URL in an upstream record.
	MaxUpstreamURL = 512
)

// UpstreamBody is the body of an upstream record. Its subject is the
// crate's name in lowercase (the name an index path is computed from), so
// every observation of a crate is found by one subject.
//
// Wire format (never renumber): 1 upstream 2 name 3 version 4 cksum 5 line
// 6 yanked (omitted when false).
type UpstreamBody struct {
	// Upstream is the index URL the line came from, as the node was
	// configured with it ("https://index.crates.io/").
	Upstream string `cbor:"1,keyasint" json:"upstream"`
	// Name and Version are the line's "name" and "vers".
	Name    string `cbor:"2,keyasint" json:"name"`
	Version string `cbor:"3,keyasint" json:"vers"`
	// Cksum is the line's "cksum": the hex sha256 of the .crate archive.
	Cksum string `cbor:"4,keyasint" json:"cksum"`
	// Line is the index line exactly as the upstream served it, without
	// its newline.
	Line string `cbor:"5,keyasint" json:"line"`
	// Yanked is the line's "yanked".
	Yanked bool `cbor:"6,keyasint,omitempty" json:"yanked"`
}

// BlobID returns the multihash of the .crate archive the line names, the
// address the archive is stored and exchanged under.
func (b *UpstreamBody) BlobID() ID {
	var d [32]byte
	hex.Decode(d[:], []byte(b.Cksum)) // validate checked it
	return IDFromDigest(d)
}

// upstreamLineFields are the fields of an index line an upstream record
// states separately.
type upstreamLineFields struct {
	Name   string `json:"name"`
	Vers   string `json:"vers"`
	Cksum  string `json:"cksum"`
	Yanked *bool  `json:"yanked"`
}

func (b *UpstreamBody) validate(subject string) error {
	const op = "registry.UpstreamBody"
	if err := ValidateCrateName(b.Name); err != nil {
		return err
	}
	if subject != strings.ToLower(b.Name) {
		return Errorf(op, EINVALID, "an upstream record's subject must be its crate's name in lowercase (%s), not %s", strings.ToLower(b.Name), quoteShort(subject))
	}
	if err := ValidateVersion(b.Version); err != nil {
		return err
	}
	if err := ValidateCksum(b.Cksum); err != nil {
		return err
	}
	if err := ValidateUpstreamURL(b.Upstream); err != nil {
		return err
	}
	if len(b.Line) > MaxUpstreamLine {
		return Errorf(op, EINVALID, "the index line is %d bytes; an upstream record holds at most %d", len(b.Line), MaxUpstreamLine)
	}
	f, err := parseUpstreamLine(b.Line)
	if err != nil {
		return err
	}
	if f.Name != b.Name || f.Vers != b.Version || f.Cksum != b.Cksum || *f.Yanked != b.Yanked {
		return Errorf(op, EINVALID, "the index line says %s %s cksum %s yanked %v, the record %s %s cksum %s yanked %v",
			quoteShort(f.Name), quoteShort(f.Vers), quoteShort(f.Cksum), *f.Yanked, b.Name, b.Version, b.Cksum, b.Yanked)
	}
	return nil
}

// parseUpstreamLine checks that line is one JSON object with a name, a
// vers, a cksum and a yanked flag, and returns them.
func parseUpstreamLine(line string) (*upstreamLineFields, error) {
	const op = "registry.UpstreamLine"
	if strings.ContainsAny(line, "\n\r") {
		return nil, Errorf(op, EINVALID, "an index line must not contain a line break")
	}
	if !utf8.ValidString(line) {
		return nil, Errorf(op, EINVALID, "an index line must be UTF-8")
	}
	if !json.Valid([]byte(line)) || !strings.HasPrefix(strings.TrimSpace(line), "{") {
		return nil, Errorf(op, EINVALID, "the index line is not a JSON object")
	}
	var f upstreamLineFields
	if err := json.Unmarshal([]byte(line), &f); err != nil {
		return nil, E(op, EINVALID, "the index line's name, vers, cksum or yanked has the wrong type", err)
	}
	if f.Yanked == nil {
		return nil, Errorf(op, EINVALID, "the index line has no \"yanked\"")
	}
	return &f, nil
}

// ValidateCksum checks that s is a sha256 digest in lowercase hex, as
// Cargo's index writes it.
func ValidateCksum(s string) error {
	if len(s) != 64 || strings.ToLower(s) != s {
		return Errorf("registry.ValidateCksum", EINVALID, "cksum %s is not 64 lowercase hex digits", quoteShort(s))
	}
	if _, err := hex.DecodeString(s); err != nil {
		return Errorf("registry.ValidateCksum", EINVALID, "cksum %s is not 64 lowercase hex digits", quoteShort(s))
	}
	return nil
}

// ValidateUpstreamURL checks that u can name an upstream index: an
// http:// or https:// URL of at most MaxUpstreamURL bytes without control
// characters or spaces.
func ValidateUpstreamURL(u string) error {
	const op = "registry.ValidateUpstreamURL"
	if len(u) > MaxUpstreamURL {
		return Errorf(op, EINVALID, "the upstream URL is longer than %d bytes", MaxUpstreamURL)
	}
	if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
		return Errorf(op, EINVALID, "upstream %s must be an http:// or https:// URL", quoteShort(u))
	}
	for _, c := range []byte(u) {
		if c <= 0x20 || c == 0x7f {
			return Errorf(op, EINVALID, "upstream %s contains a space or control character", quoteShort(u))
		}
	}
	return nil
}

// UpstreamLineKey returns what identifies an index line's content: the
// line without "yanked", as canonical JSON (object keys sorted, no
// insignificant space, numbers as written). Two observations of one
// name@version with different keys mean the upstream changed a published
// version; a different "yanked" alone is a yank.
func UpstreamLineKey(line string) (string, error) {
	dec := json.NewDecoder(strings.NewReader(line))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return "", E("registry.UpstreamLineKey", EINVALID, "the index line is not a JSON object", err)
	}
	delete(m, "yanked")
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return "", E("registry.UpstreamLineKey", EINVALID, "the index line cannot be re-encoded", err)
	}
	return strings.TrimSuffix(buf.String(), "\n"), nil
}

// UpstreamLineYanked returns line with its "yanked" set to yanked; the line
// itself when it already says so.
func UpstreamLineYanked(line string, yanked bool) (string, error) {
	f, err := parseUpstreamLine(line)
	if err != nil {
		return "", err
	}
	if *f.Yanked == yanked {
		return line, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		return "", E("registry.UpstreamLineYanked", EINVALID, "the index line is not a JSON object", err)
	}
	m["yanked"] = json.RawMessage("false")
	if yanked {
		m["yanked"] = json.RawMessage("true")
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return "", E("registry.UpstreamLineYanked", EINVALID, "the index line cannot be re-encoded", err)
	}
	return strings.TrimSuffix(buf.String(), "\n"), nil
}

// NewUpstreamBody makes the body of an observation of line, served by
// upstream, checking it as a peer would.
func NewUpstreamBody(upstream, line string) (*UpstreamBody, error) {
	f, err := parseUpstreamLine(line)
	if err != nil {
		return nil, err
	}
	b := &UpstreamBody{Upstream: upstream, Name: f.Name, Version: f.Vers, Cksum: f.Cksum, Line: line, Yanked: *f.Yanked}
	if err := b.validate(strings.ToLower(f.Name)); err != nil {
		return nil, err
	}
	return b, nil
}
