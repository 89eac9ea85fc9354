// Package rest is the contract of a node's REST API: the JSON shapes its
// answers have (docs/API.md, /openapi.json) and the error envelope. It
// imports only the root package, so that clients — the CLI among them —
// can use it without linking the store or the network. The node builds
// these values; node/api writes them; the CLI reads them.
//
// Compatibility: a field may be added; a field's name, type or meaning
// never changes within /v1 of the API, and none is removed.
package rest
