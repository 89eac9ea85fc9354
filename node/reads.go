package node

import (
	"context"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/store"
)

// Reads of the store for the packages that serve the node's data directly
// (the Cargo protocol, the REST API) and for the daemon's maintenance: the
// node is their only way to the store.

// Fingerprint is the digest of the record set now; the views read after it
// are never older.
func (n *Node) Fingerprint() registry.Fingerprint { return n.db.Fingerprint() }

// View is the release view of name@version (ENOTFOUND when none).
func (n *Node) View(name, version string) (*store.ReleaseView, error) {
	return n.db.GetView(name, version)
}

// ViewsByName are the release views of the crate named exactly name.
func (n *Node) ViewsByName(name string) ([]*store.ReleaseView, error) {
	return n.db.ViewsByName(name)
}

// ListViews pages through release views in name order.
func (n *Node) ListViews(q store.ListQuery) ([]*store.ReleaseView, string, error) {
	return n.db.ListViews(q)
}

// AuditLog reads the audit log, newest first, before sequence number
// before (0: from the newest); it needs an admin identity.
func (n *Node) AuditLog(ctx context.Context, before uint64, limit int) ([]store.AuditEntry, error) {
	if err := require(ctx, "node.AuditLog", ScopeAdmin, ""); err != nil {
		return nil, err
	}
	return n.db.AuditLog(before, limit)
}

// Reindex rebuilds every index from the records (the daemon's --reindex)
// and returns how many records it read.
func (n *Node) Reindex() (int, error) { return n.db.Reindex() }
