package node

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/store"
)

const tokensKey = "tokens"

// tokenPrefix marks registry tokens so that they are easy to recognise (and
// to scan for in leaked logs).
const tokenPrefix = "wcr_"

// Token scopes, as crates.io names its endpoint scopes. ScopeAdmin implies
// every other scope on every crate.
const (
	ScopePublishNew    = "publish-new"    // publish the first version of a crate
	ScopePublishUpdate = "publish-update" // publish a new version of an existing crate
	ScopeYank          = "yank"           // yank and unyank
	ScopeOwners        = "owners"         // change a crate's owners
	ScopeReview        = "review"         // sign reviews (curation notes)
	ScopeTest          = "test"           // queue and cancel pipeline runs
	ScopeAdmin         = "admin"          // settings, peers, sync, imports, tokens of others, audit
)

// Scopes lists every scope a token may hold.
var Scopes = []string{ScopePublishNew, ScopePublishUpdate, ScopeYank, ScopeOwners, ScopeReview, ScopeTest, ScopeAdmin}

// Limits on what a token request may name.
const (
	maxTokens        = 10_000
	maxTokenPatterns = 32
	maxTokenName     = 64
)

// TokenInfo is what the store keeps of a token: never the token itself.
type TokenInfo struct {
	ID      string     `json:"id"` // the first 16 hex digits of Hash: names the token, safe to show
	Name    string     `json:"name"`
	Person  string     `json:"person"`
	Hash    string     `json:"hash,omitempty"` // hex sha256 of the token
	Created time.Time  `json:"created"`
	Expires *time.Time `json:"expires,omitempty"`
	Revoked *time.Time `json:"revoked,omitempty"`
	Scopes  []string   `json:"scopes"`
	// Crates are crate-name patterns the token is limited to (a name, or a
	// prefix followed by "*"); empty means every crate.
	Crates []string `json:"crates,omitempty"`
	// Admin marks tokens stored before scopes existed (the first-start
	// token): they hold ScopeAdmin.
	Admin bool `json:"admin,omitempty"`
}

func (t *TokenInfo) scopes() []string {
	if t.Admin && !slices.Contains(t.Scopes, ScopeAdmin) {
		return append(slices.Clone(t.Scopes), ScopeAdmin)
	}
	return t.Scopes
}

// Identity is who made a request: the person holding a token, and what
// the token lets them do.
type Identity struct {
	Person  string   `json:"person"`
	Token   string   `json:"token"`    // the token's name
	TokenID string   `json:"token_id"` // TokenInfo.ID
	Scopes  []string `json:"scopes"`
	Crates  []string `json:"crates,omitempty"`
}

// String names the identity in the audit log: "person (token name)".
func (id *Identity) String() string {
	if id == nil {
		return ""
	}
	return id.Person + " (token " + id.Token + ")"
}

// Allows reports whether the identity holds scope for crate ("" for an
// action that is about no crate). ScopeAdmin allows everything.
func (id *Identity) Allows(scope, crate string) bool {
	if slices.Contains(id.Scopes, ScopeAdmin) {
		return true
	}
	if !slices.Contains(id.Scopes, scope) {
		return false
	}
	return crate == "" || len(id.Crates) == 0 || slices.ContainsFunc(id.Crates, func(p string) bool { return matchCrate(p, crate) })
}

// matchCrate matches a crate-name pattern: the name itself, or a prefix
// followed by "*". Crate names compare as Cargo does (case-insensitive,
// '-' equal to '_').
func matchCrate(pattern, name string) bool {
	norm := func(s string) string { return strings.ReplaceAll(strings.ToLower(s), "-", "_") }
	if p, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(norm(name), norm(p))
	}
	return norm(pattern) == norm(name)
}

type identityKey struct{}

// WithIdentity returns ctx carrying the identity that authenticated a
// request. The node's write methods check scopes against it; a context
// without one is the node acting for itself (no limits).
func WithIdentity(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// IdentityFrom returns the identity of ctx, or nil.
func IdentityFrom(ctx context.Context) *Identity {
	id, _ := ctx.Value(identityKey{}).(*Identity)
	return id
}

// require returns EFORBIDDEN unless ctx's identity (if any) holds scope
// for crate.
func require(ctx context.Context, op, scope, crate string) error {
	id := IdentityFrom(ctx)
	if id == nil || id.Allows(scope, crate) {
		return nil
	}
	what := "this node"
	if crate != "" {
		what = "crate " + crate
	}
	return registry.Errorf(op, registry.EFORBIDDEN, "token %q of %s does not hold the %q scope for %s (it holds %s%s)",
		id.Token, id.Person, scope, what, strings.Join(id.Scopes, ", "), cratesNote(id.Crates))
}

func cratesNote(pats []string) string {
	if len(pats) == 0 {
		return ""
	}
	return " on crates " + strings.Join(pats, ", ")
}

// AdminTokenFile is the file, inside the data directory, that holds the
// admin token made on first start.
const AdminTokenFile = "admin-token"

func newToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", registry.E("node.newToken", registry.EINTERNAL, "no randomness", err)
	}
	return tokenPrefix + hex.EncodeToString(b[:]), nil
}

func hashToken(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:])
}

// initAdminToken makes the admin token on first start: it is written to
// <data dir>/admin-token with mode 0600, only its hash is stored, and the
// announcement says where it is (never the token itself, which would end
// up in logs).
func (n *Node) initAdminToken() error {
	var toks []TokenInfo
	err := n.db.GetLocalJSON(tokensKey, &toks)
	if err == nil && len(toks) > 0 {
		return nil
	}
	if err != nil && registry.KindOf(err) != registry.ENOTFOUND {
		return err
	}
	tok, err := newToken()
	if err != nil {
		return err
	}
	path := filepath.Join(n.cfg.DataDir, AdminTokenFile)
	if err := writeFileAtomic(path, []byte(tok+"\n"), 0o600); err != nil {
		return registry.E("node.initAdminToken", registry.EINTERNAL, "cannot write "+path, err)
	}
	h := hashToken(tok)
	toks = []TokenInfo{{ID: h[:16], Name: "admin", Person: "admin", Hash: h, Created: n.cfg.Now().UTC(), Scopes: []string{ScopeAdmin}}}
	if err := n.db.PutLocalJSON(tokensKey, toks); err != nil {
		return err
	}
	fmt.Fprintf(n.cfg.Announce, "\nAdmin token written to %s (mode 0600); it is not shown here.\n\n", path)
	return nil
}

// Authenticate returns the audit name of the token's identity, or
// EUNAUTHORIZED. It accepts the raw token or "Bearer <token>".
func (n *Node) Authenticate(header string) (string, error) {
	id, err := n.AuthenticateIdentity(header)
	if err != nil {
		return "", err
	}
	return id.String(), nil
}

// AuthenticateIdentity returns the identity of a token (raw or "Bearer
// <token>"): EUNAUTHORIZED when it is missing, unknown, expired or
// revoked.
func (n *Node) AuthenticateIdentity(header string) (*Identity, error) {
	const op = "node.Authenticate"
	tok := strings.TrimSpace(header)
	if t, ok := strings.CutPrefix(tok, "Bearer "); ok {
		tok = strings.TrimSpace(t)
	}
	if tok == "" {
		return nil, registry.Errorf(op, registry.EUNAUTHORIZED, "this request needs a token: pass --token or set REGISTRY_TOKEN (the admin token is in the node's data directory, file %s; `wasm-crates-registry-cli tokens create` makes one per person)", AdminTokenFile)
	}
	toks, err := n.tokens()
	if err != nil {
		return nil, err
	}
	want := []byte(hashToken(tok))
	for _, t := range toks {
		if subtle.ConstantTimeCompare([]byte(t.Hash), want) != 1 {
			continue
		}
		now := n.cfg.Now()
		switch {
		case t.Revoked != nil:
			return nil, registry.Errorf(op, registry.EUNAUTHORIZED, "token %q (%s) was revoked on %s", t.Name, t.ID, t.Revoked.Format(time.RFC3339))
		case t.Expires != nil && !now.Before(*t.Expires):
			return nil, registry.Errorf(op, registry.EUNAUTHORIZED, "token %q (%s) expired on %s; make a new one with `wasm-crates-registry-cli tokens create`", t.Name, t.ID, t.Expires.Format(time.RFC3339))
		}
		return &Identity{Person: t.Person, Token: t.Name, TokenID: t.ID, Scopes: t.scopes(), Crates: t.Crates}, nil
	}
	return nil, registry.Errorf(op, registry.EUNAUTHORIZED, "the token is not valid on this node")
}

func (n *Node) tokens() ([]TokenInfo, error) {
	var toks []TokenInfo
	err := n.db.GetLocalJSON(tokensKey, &toks)
	if registry.KindOf(err) == registry.ENOTFOUND {
		return nil, nil
	}
	for i := range toks {
		if toks[i].ID == "" && len(toks[i].Hash) >= 16 {
			toks[i].ID = toks[i].Hash[:16]
		}
		if toks[i].Person == "" {
			toks[i].Person = toks[i].Name
		}
	}
	return toks, err
}

// TokenRequest asks for a new token.
type TokenRequest struct {
	Name   string   `json:"name"`
	Person string   `json:"person,omitempty"` // default: the requester's own person
	Scopes []string `json:"scopes"`
	Crates []string `json:"crates,omitempty"`
	// ExpiresIn is a duration ("90d", "12h", "30m"); empty: no expiry.
	ExpiresIn string `json:"expires_in,omitempty"`
}

// NewToken is a token as made: the secret is shown once.
type NewToken struct {
	Token string    `json:"token"`
	Info  TokenInfo `json:"info"`
}

// ParseExpiry parses a token lifetime: a Go duration or a number of days
// ("90d").
func ParseExpiry(s string) (time.Duration, error) {
	const op = "node.ParseExpiry"
	if d, ok := strings.CutSuffix(s, "d"); ok {
		var days int
		if _, err := fmt.Sscanf(d, "%d", &days); err != nil || days <= 0 || days > 3650 || fmt.Sprint(days) != d {
			return 0, registry.Errorf(op, registry.EINVALID, "expiry %q: use a number of days from 1 to 3650, like 90d, or a duration like 12h", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	dur, err := time.ParseDuration(s)
	if err != nil || dur <= 0 || dur > 3650*24*time.Hour {
		return 0, registry.Errorf(op, registry.EINVALID, "expiry %q: use a number of days like 90d or a duration like 12h", s)
	}
	return dur, nil
}

func validCratePattern(p string) bool {
	name := strings.TrimSuffix(p, "*")
	if name == "" {
		return p == "*"
	}
	return registry.ValidateCrateName(name) == nil || (strings.HasSuffix(p, "*") && validNamePrefix(name))
}

func validNamePrefix(s string) bool {
	for i, c := range s {
		ok := c == '-' || c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !ok || i >= 64 {
			return false
		}
	}
	return true
}

// CreateToken makes a token. The requester (ctx's identity) may make
// tokens for its own person with a subset of its own scopes and crates;
// ScopeAdmin may make any.
func (n *Node) CreateToken(ctx context.Context, req TokenRequest) (*NewToken, error) {
	const op = "node.CreateToken"
	caller := IdentityFrom(ctx)
	req.Name, req.Person = strings.TrimSpace(req.Name), strings.TrimSpace(req.Person)
	if req.Name == "" || len(req.Name) > maxTokenName || !printable(req.Name) {
		return nil, registry.Errorf(op, registry.EINVALID, "a token needs a name of 1 to %d printable characters", maxTokenName)
	}
	if req.Person == "" && caller != nil {
		req.Person = caller.Person
	}
	if req.Person == "" || len(req.Person) > maxTokenName || !printable(req.Person) {
		return nil, registry.Errorf(op, registry.EINVALID, "a token needs the person it belongs to: 1 to %d printable characters", maxTokenName)
	}
	if len(req.Scopes) == 0 {
		return nil, registry.Errorf(op, registry.EINVALID, "a token needs at least one scope (%s)", strings.Join(Scopes, ", "))
	}
	for _, s := range req.Scopes {
		if !slices.Contains(Scopes, s) {
			return nil, registry.Errorf(op, registry.EINVALID, "unknown scope %q; scopes are %s", s, strings.Join(Scopes, ", "))
		}
	}
	if len(req.Crates) > maxTokenPatterns {
		return nil, registry.Errorf(op, registry.EINVALID, "at most %d crate patterns", maxTokenPatterns)
	}
	for _, p := range req.Crates {
		if !validCratePattern(p) {
			return nil, registry.Errorf(op, registry.EINVALID, "crate pattern %q: use a crate name, or a prefix of one followed by *", p)
		}
	}
	if caller != nil && !caller.Allows(ScopeAdmin, "") {
		if req.Person != caller.Person {
			return nil, registry.Errorf(op, registry.EFORBIDDEN, "only an admin token makes tokens for another person (%s asked for %s)", caller.Person, req.Person)
		}
		for _, s := range req.Scopes {
			if !slices.Contains(caller.Scopes, s) {
				return nil, registry.Errorf(op, registry.EFORBIDDEN, "a token can only pass on scopes it holds: %q is not among %s", s, strings.Join(caller.Scopes, ", "))
			}
		}
		if len(caller.Crates) > 0 {
			if len(req.Crates) == 0 {
				return nil, registry.Errorf(op, registry.EFORBIDDEN, "this token is limited to crates %s, so the new one must be too", strings.Join(caller.Crates, ", "))
			}
			for _, p := range req.Crates {
				if !slices.ContainsFunc(caller.Crates, func(c string) bool { return patternWithin(p, c) }) {
					return nil, registry.Errorf(op, registry.EFORBIDDEN, "crate pattern %q is not within this token's %s", p, strings.Join(caller.Crates, ", "))
				}
			}
		}
	}
	now := n.cfg.Now().UTC()
	info := TokenInfo{Name: req.Name, Person: req.Person, Created: now, Scopes: slices.Compact(slices.Sorted(slices.Values(req.Scopes))), Crates: req.Crates}
	if req.ExpiresIn != "" {
		d, err := ParseExpiry(req.ExpiresIn)
		if err != nil {
			return nil, err
		}
		exp := now.Add(d)
		info.Expires = &exp
	}
	tok, err := newToken()
	if err != nil {
		return nil, err
	}
	info.Hash = hashToken(tok)
	info.ID = info.Hash[:16]
	n.tokenMu.Lock()
	defer n.tokenMu.Unlock()
	toks, err := n.tokens()
	if err != nil {
		return nil, err
	}
	if len(toks) >= maxTokens {
		return nil, registry.Errorf(op, registry.ETOOLARGE, "this node holds %d tokens, its maximum; revoke unused ones", len(toks))
	}
	toks = append(toks, info)
	entry := store.AuditEntry{Action: "token-create", Actor: caller.String(), Subject: info.Person,
		Detail: fmt.Sprintf("token %s %q scopes %s%s", info.ID, info.Name, strings.Join(info.Scopes, ","), cratesNote(info.Crates))}
	if err := n.db.PutLocalJSONAudited(tokensKey, toks, entry); err != nil {
		return nil, err
	}
	info.Hash = ""
	return &NewToken{Token: tok, Info: info}, nil
}

// patternWithin reports whether every name p matches is matched by c.
func patternWithin(p, c string) bool {
	if !strings.HasSuffix(c, "*") {
		return !strings.HasSuffix(p, "*") && matchCrate(c, p)
	}
	return matchCrate(c, strings.TrimSuffix(p, "*"))
}

func printable(s string) bool {
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// Tokens lists tokens without their hashes: every token for an admin, the
// caller's own person's otherwise.
func (n *Node) Tokens(ctx context.Context) ([]TokenInfo, error) {
	toks, err := n.tokens()
	if err != nil {
		return nil, err
	}
	caller := IdentityFrom(ctx)
	out := []TokenInfo{}
	for _, t := range toks {
		if caller != nil && !caller.Allows(ScopeAdmin, "") && t.Person != caller.Person {
			continue
		}
		t.Hash, t.Scopes = "", t.scopes()
		t.Admin = false
		out = append(out, t)
	}
	return out, nil
}

// RevokeToken revokes a token by its ID (a unique prefix of at least 8
// hex digits is enough). An admin may revoke any; others their person's.
func (n *Node) RevokeToken(ctx context.Context, id string) (*TokenInfo, error) {
	const op = "node.RevokeToken"
	if len(id) < 8 || len(id) > 16 || !isHex(id) {
		return nil, registry.Errorf(op, registry.EINVALID, "token ID %q: give 8 to 16 hex digits of the ID `tokens list` shows", truncate(id, 40))
	}
	caller := IdentityFrom(ctx)
	n.tokenMu.Lock()
	defer n.tokenMu.Unlock()
	toks, err := n.tokens()
	if err != nil {
		return nil, err
	}
	found := -1
	for i, t := range toks {
		if strings.HasPrefix(t.ID, id) {
			if found >= 0 {
				return nil, registry.Errorf(op, registry.EINVALID, "token ID %q names more than one token; give more digits", id)
			}
			found = i
		}
	}
	if found < 0 {
		return nil, registry.Errorf(op, registry.ENOTFOUND, "no token %q on this node", id)
	}
	t := &toks[found]
	if caller != nil && !caller.Allows(ScopeAdmin, "") && t.Person != caller.Person {
		return nil, registry.Errorf(op, registry.EFORBIDDEN, "only an admin token revokes another person's tokens")
	}
	if t.Revoked == nil {
		now := n.cfg.Now().UTC()
		t.Revoked = &now
		entry := store.AuditEntry{Action: "token-revoke", Actor: caller.String(), Subject: t.Person, Detail: fmt.Sprintf("token %s %q", t.ID, t.Name)}
		if err := n.db.PutLocalJSONAudited(tokensKey, toks, entry); err != nil {
			return nil, err
		}
	}
	out := *t
	out.Hash, out.Scopes, out.Admin = "", out.scopes(), false
	return &out, nil
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s + strings.Repeat("0", len(s)%2))
	return err == nil
}

// VerifyAudit checks the audit log's chain (store.VerifyAudit), pinning it
// to the audit heads of this node's own checkpoints. It needs the admin
// scope.
func (n *Node) VerifyAudit(ctx context.Context) (*store.AuditCheck, error) {
	if err := require(ctx, "node.VerifyAudit", ScopeAdmin, ""); err != nil {
		return nil, err
	}
	pins, err := n.auditPins()
	if err != nil {
		return nil, err
	}
	return n.db.VerifyAudit(pins)
}
