package node

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/store"
)

// Developer keys (DESIGN.md §7): a person's ed25519 key lives on their
// machine; the CLI signs releases, yanks and owners records with it. A key
// counts once a trust root signs a `key` record for it: the developer asks
// (with proof that they hold the key), an admin of the node approves, and
// the node signs the record, which federates like any other, so every node
// that trusts this one accepts the key.

const keyRequestsKey = "key-requests"

const maxKeyRequests = 1000

// Key request states.
const (
	KeyPending    = "pending"
	KeyRegistered = "registered"
	KeyRevoked    = "revoked"
)

// KeyRequest is a developer's request to have a key registered.
type KeyRequest struct {
	Key    string    `json:"key"` // peer ID
	Name   string    `json:"name"`
	Roles  []string  `json:"roles"`
	Crates []string  `json:"crates,omitempty"` // crate-name patterns the roles are limited to
	Person string    `json:"person"`           // who asked
	Asked  time.Time `json:"asked"`
	State  string    `json:"state"`
	Record string    `json:"record,omitempty"` // the key record the node signed
}

// KeyRegistration is the body of POST /keys.
type KeyRegistration struct {
	Key    string   `json:"key"`
	Name   string   `json:"name"`
	Roles  []string `json:"roles,omitempty"` // default: publisher
	Crates []string `json:"crates,omitempty"`
	// Proof is the key's signature (standard base64) of
	// registry.KeyProofMessage(node's peer ID, key, name).
	Proof string `json:"proof"`
}

func (n *Node) keyRequests() ([]KeyRequest, error) {
	var out []KeyRequest
	err := n.db.GetLocalJSON(keyRequestsKey, &out)
	if registry.KindOf(err) == registry.ENOTFOUND {
		return nil, nil
	}
	return out, err
}

// RequestKey records a developer's request to register a key, after
// checking the proof. Any token may ask; the request names its person.
func (n *Node) RequestKey(ctx context.Context, reg KeyRegistration) (*KeyRequest, error) {
	const op = "node.RequestKey"
	k, err := registry.ParsePublicKey(reg.Key)
	if err != nil {
		return nil, err
	}
	reg.Name = strings.TrimSpace(reg.Name)
	if reg.Name == "" || len(reg.Name) > maxTokenName || !printable(reg.Name) {
		return nil, registry.Errorf(op, registry.EINVALID, "a key needs a name of 1 to %d printable characters", maxTokenName)
	}
	if len(reg.Roles) == 0 {
		reg.Roles = []string{registry.RolePublisher}
	}
	for _, r := range reg.Roles {
		if !slices.Contains(registry.Roles, r) || r == registry.RoleAdmin {
			return nil, registry.Errorf(op, registry.EINVALID, "role %q: a developer key may ask for publisher, reviewer or tester", r)
		}
	}
	if len(reg.Crates) > maxTokenPatterns {
		return nil, registry.Errorf(op, registry.EINVALID, "at most %d crate patterns", maxTokenPatterns)
	}
	for _, p := range reg.Crates {
		if !validCratePattern(p) {
			return nil, registry.Errorf(op, registry.EINVALID, "crate pattern %q: use a crate name, or a prefix of one followed by *", p)
		}
	}
	sig, err := base64.StdEncoding.DecodeString(reg.Proof)
	if err != nil || !k.Verify(registry.KeyProofMessage(n.PeerID(), k.PeerID(), reg.Name), sig) {
		return nil, registry.Errorf(op, registry.EFORBIDDEN, "the proof is not the key's signature of the registration message for this node (%s); use `wasm-crates-registry-cli keys register`", n.PeerID())
	}
	person := "node"
	if id := IdentityFrom(ctx); id != nil {
		person = id.Person
	}
	req := KeyRequest{Key: k.PeerID(), Name: reg.Name, Roles: slices.Sorted(slices.Values(reg.Roles)), Crates: reg.Crates,
		Person: person, Asked: n.cfg.Now().UTC(), State: KeyPending}
	n.tokenMu.Lock()
	defer n.tokenMu.Unlock()
	reqs, err := n.keyRequests()
	if err != nil {
		return nil, err
	}
	for i, r := range reqs {
		if r.Key == req.Key {
			if r.State == KeyRegistered {
				return nil, registry.Errorf(op, registry.ECONFLICT, "key %s is already registered as %q", r.Key, r.Name)
			}
			reqs = slices.Delete(reqs, i, i+1)
			break
		}
	}
	if len(reqs) >= maxKeyRequests {
		return nil, registry.Errorf(op, registry.ETOOLARGE, "this node holds %d key requests; an admin must approve or revoke some first", len(reqs))
	}
	reqs = append(reqs, req)
	entry := store.AuditEntry{Action: "key-request", Actor: IdentityFrom(ctx).String(), Subject: req.Key,
		Detail: fmt.Sprintf("%q roles %s%s", req.Name, strings.Join(req.Roles, ","), cratesNote(req.Crates))}
	if err := n.db.PutLocalJSONAudited(keyRequestsKey, reqs, entry); err != nil {
		return nil, err
	}
	return &req, nil
}

// KeyRequests lists registration requests: all of them for an admin, the
// caller's person's otherwise.
func (n *Node) KeyRequests(ctx context.Context) ([]KeyRequest, error) {
	reqs, err := n.keyRequests()
	if err != nil {
		return nil, err
	}
	caller := IdentityFrom(ctx)
	out := []KeyRequest{}
	for _, r := range reqs {
		if caller == nil || caller.Allows(ScopeAdmin, "") || r.Person == caller.Person {
			out = append(out, r)
		}
	}
	return out, nil
}

// SetKey approves (register true) or revokes a developer key: the node
// signs a key record granting the requested roles, or revoking them. It
// needs the admin scope.
func (n *Node) SetKey(ctx context.Context, key string, register bool) (*KeyRequest, error) {
	const op = "node.SetKey"
	if err := require(ctx, op, ScopeAdmin, ""); err != nil {
		return nil, err
	}
	k, err := registry.ParsePublicKey(key)
	if err != nil {
		return nil, err
	}
	n.tokenMu.Lock()
	defer n.tokenMu.Unlock()
	reqs, err := n.keyRequests()
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(reqs, func(r KeyRequest) bool { return r.Key == k.PeerID() })
	if i < 0 {
		if register {
			return nil, registry.Errorf(op, registry.ENOTFOUND, "no registration request for key %s; the developer runs `wasm-crates-registry-cli keys register` first", k.PeerID())
		}
		reqs = append(reqs, KeyRequest{Key: k.PeerID(), Name: "revoked key", Asked: n.cfg.Now().UTC()})
		i = len(reqs) - 1
	}
	req := &reqs[i]
	body := &registry.KeyBody{Key: k, Name: req.Name, Roles: req.Roles, Scopes: req.Crates}
	action, state := "key-register", KeyRegistered
	if !register {
		body = &registry.KeyBody{Key: k, Name: req.Name, Revoked: true}
		action, state = "key-revoke", KeyRevoked
	}
	if req.State == state {
		return req, nil
	}
	rec, err := n.sign(registry.KindKey, k.KeyID(), body)
	if err != nil {
		return nil, err
	}
	if err := n.storeAndPublish(ctx, store.AuditEntry{Action: action, Actor: IdentityFrom(ctx).String(), Subject: k.PeerID(),
		Detail: fmt.Sprintf("%q roles %s%s", req.Name, strings.Join(req.Roles, ","), cratesNote(req.Crates))}, rec); err != nil {
		return nil, err
	}
	req.State, req.Record = state, rec.ID().String()
	if err := n.db.PutLocalJSON(keyRequestsKey, reqs); err != nil {
		return nil, err
	}
	n.trustChanged()
	out := *req
	return &out, nil
}

// PublishSigned stores releases, yanks and owners records that a
// developer signed with their own key (crate is the archive of a release,
// nil otherwise). The node checks what it would check of its own: the
// record is valid and due, its author holds publisher for the crate here,
// is an owner of an existing crate, and the token holds the matching
// scope; a release's body must be exactly what the archive says. Then
// the records are stored, audited and gossiped. A record the node would
// only show as an untrusted claim is refused with the reason instead.
func (n *Node) PublishSigned(ctx context.Context, actor string, raw []byte, crate []byte) (*registry.Record, error) {
	const op = "node.PublishSigned"
	rec, err := registry.DecodeRecord(raw)
	if err != nil {
		return nil, err
	}
	if !registry.Applicable(rec, n.cfg.Now(), n.cfg.MaxSkew) {
		return nil, registry.Errorf(op, registry.EINVALID, "record %s is dated %s, more than %s ahead of this node's clock", rec.ID(), rec.When(), n.cfg.MaxSkew)
	}
	name := rec.SubjectName()
	var scope string
	switch rec.Kind {
	case registry.KindRelease:
		if crate == nil {
			return nil, registry.Errorf(op, registry.EINVALID, "a signed release comes with its .crate archive (POST /crates with the record in the %s header)", registry.SignedRecordHeader)
		}
		if int64(len(crate)) > n.cfg.MaxCrateSize {
			return nil, registry.Errorf(op, registry.ETOOLARGE, "the .crate archive is %d bytes; this registry accepts at most %d", len(crate), n.cfg.MaxCrateSize)
		}
		body, err := registry.ParseCrate(crate, n.cfg.MaxCrateSize)
		if err != nil {
			return nil, err
		}
		want, err := registry.Marshal(body)
		if err != nil {
			return nil, registry.E(op, registry.EINTERNAL, "encoding a release body", err)
		}
		if !bytes.Equal(want, rec.Body) || rec.Subject != registry.ReleaseSubject(body.Name, body.Version) {
			return nil, registry.Errorf(op, registry.EINVALID, "the signed release does not describe this archive (%s@%s, cksum %s): sign the body the archive gives", body.Name, body.Version, body.Cksum)
		}
		scope = ScopePublishUpdate
	case registry.KindYank:
		scope = ScopeYank
	case registry.KindOwners:
		scope = ScopeOwners
	default:
		return nil, registry.Errorf(op, registry.EINVALID, "a developer signs releases, yanks and owners records here, not %s records", rec.Kind)
	}
	n.submitMu.Lock()
	defer n.submitMu.Unlock()
	views, err := n.db.ViewsByName(name)
	if err != nil {
		return nil, err
	}
	if rec.Kind == registry.KindRelease && len(views) == 0 {
		scope = ScopePublishNew
	}
	if err := require(ctx, op, scope, name); err != nil {
		return nil, err
	}
	author := rec.Author.PeerID()
	if !n.Trust().May(rec.Author, registry.RolePublisher, name) {
		return nil, registry.Errorf(op, registry.EFORBIDDEN, "key %s is not registered as a publisher of %s on this node: run `wasm-crates-registry-cli keys register` and have an admin approve it", author, name)
	}
	if rec.Kind != registry.KindRelease && len(views) == 0 {
		return nil, registry.Errorf(op, registry.ENOTFOUND, "no crate %s here", name)
	}
	if len(views) > 0 {
		owners := views[0].Owners
		if len(owners) > 0 && !slices.ContainsFunc(owners, rec.Author.Equal) {
			return nil, registry.Errorf(op, registry.EFORBIDDEN, "key %s is not an owner of %s (its owners are %s)", author, name, peerIDs(owners))
		}
		if rec.Kind == registry.KindRelease {
			for _, v := range views {
				if v.Subject() == rec.Subject && v.Release != rec.ID() && !v.Unauthorized {
					return nil, registry.Errorf(op, registry.ECONFLICT, "%s already exists as release %s; published versions never change: bump the version", rec.Subject, v.Release)
				}
			}
		}
	}
	if rec.Kind == registry.KindRelease {
		if _, err := n.db.PutBlob(crate); err != nil {
			return nil, err
		}
	}
	action := map[registry.Kind]string{registry.KindRelease: "submit", registry.KindYank: "yank", registry.KindOwners: "owners"}[rec.Kind]
	if err := n.storeAndPublish(ctx, store.AuditEntry{Action: action, Actor: actor, Subject: rec.Subject, Detail: "signed by " + author}, rec); err != nil {
		return nil, err
	}
	if rec.Kind == registry.KindRelease && n.AutoTests() {
		if _, err := n.QueueTest(context.WithoutCancel(ctx), actor, rec.Subject); err != nil && registry.KindOf(err) != registry.EFORBIDDEN {
			n.log.Warn("queueing the pipeline for a new release", "release", rec.Subject, "err", err)
		}
	}
	return rec, nil
}
