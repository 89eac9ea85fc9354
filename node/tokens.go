package node

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
)

const tokensKey = "tokens"

// tokenPrefix marks registry tokens so that they are easy to recognise (and
// to scan for in leaked logs).
const tokenPrefix = "wcr_"

// TokenInfo is what the store keeps of a token: never the token itself.
type TokenInfo struct {
	Name    string    `json:"name"`
	Hash    string    `json:"hash"` // hex sha256 of the token
	Created time.Time `json:"created"`
	Admin   bool      `json:"admin"`
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

// initAdminToken makes the admin token on first start: it is printed once,
// written to <data dir>/admin-token with mode 0600, and only its hash is
// stored.
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
	toks = []TokenInfo{{Name: "admin", Hash: hashToken(tok), Created: n.cfg.Now().UTC(), Admin: true}}
	if err := n.db.PutLocalJSON(tokensKey, toks); err != nil {
		return err
	}
	fmt.Fprintf(n.cfg.Announce, "\nAdmin token (shown once; also saved to %s, mode 0600):\n\n    %s\n\n", path, tok)
	return nil
}

// Authenticate returns the name of the token, or EUNAUTHORIZED. It accepts
// the raw token or "Bearer <token>".
func (n *Node) Authenticate(header string) (string, error) {
	const op = "node.Authenticate"
	tok := strings.TrimSpace(header)
	if t, ok := strings.CutPrefix(tok, "Bearer "); ok {
		tok = strings.TrimSpace(t)
	}
	if tok == "" {
		return "", registry.Errorf(op, registry.EUNAUTHORIZED, "this request needs a token: pass --token or set REGISTRY_TOKEN (the admin token is in the node's data directory, file %s)", AdminTokenFile)
	}
	var toks []TokenInfo
	if err := n.db.GetLocalJSON(tokensKey, &toks); err != nil {
		return "", err
	}
	want := []byte(hashToken(tok))
	for _, t := range toks {
		if subtle.ConstantTimeCompare([]byte(t.Hash), want) == 1 {
			return t.Name, nil
		}
	}
	return "", registry.Errorf(op, registry.EUNAUTHORIZED, "the token is not valid on this node")
}
