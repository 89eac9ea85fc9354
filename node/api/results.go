package api

import (
	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/node"
	"github.com/wasmrust/wasm-crates-registry/node/webhook"
	"github.com/wasmrust/wasm-crates-registry/rest"
	"github.com/wasmrust/wasm-crates-registry/store"
)

// The answers of the endpoints that wrap a list or a few fields. Each is a
// named type so that the OpenAPI document (openapi.go) describes it.

// VersionsResult answers GET /crates/{name}/versions.
type VersionsResult struct {
	Versions []*node.Release `json:"versions"`
}

// OwnersResult answers GET and PUT /crates/{name}/owners.
type OwnersResult struct {
	Owners []string `json:"owners"`
}

// PeersResult answers GET /peers.
type PeersResult struct {
	Peers []rest.PeerInfo `json:"peers"`
}

// RemovedResult answers a DELETE that removes what it names.
type RemovedResult struct {
	Removed string `json:"removed"`
}

// AuditResult answers GET /audit.
type AuditResult struct {
	Entries []store.AuditEntry `json:"entries"`
}

// TokensResult answers GET /tokens.
type TokensResult struct {
	Tokens []node.TokenInfo `json:"tokens"`
}

// KeysResult answers GET /keys.
type KeysResult struct {
	Keys []node.KeyRequest `json:"keys"`
}

// SignedResult answers POST /records/signed.
type SignedResult struct {
	ID      registry.ID `json:"id"`
	Kind    string      `json:"kind"`
	Subject string      `json:"subject"`
}

// WebhooksResult answers GET /webhooks.
type WebhooksResult struct {
	Webhooks []webhook.Subscription `json:"webhooks"`
	Events   []string               `json:"events"`
}

// PingResult answers POST /webhooks/{id}/ping.
type PingResult struct {
	Delivery string `json:"delivery"`
}

// DeliveriesResult answers GET /webhooks/{id}/deliveries.
type DeliveriesResult struct {
	Deliveries []webhook.Delivery `json:"deliveries"`
}

// MirroredResult answers GET /upstream/crates/{name}.
type MirroredResult struct {
	Versions []*node.MirroredVersion `json:"versions"`
}
