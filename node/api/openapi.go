package api

import (
	"encoding"
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/node"
	"github.com/wasmrust/wasm-crates-registry/node/webhook"
	"github.com/wasmrust/wasm-crates-registry/rest"
	"github.com/wasmrust/wasm-crates-registry/store"
)

// The OpenAPI 3.1 document of the REST API, served at /openapi.json. The
// operations are listed below by hand (method, path, what they take and
// answer); every schema is derived from the Go type the handler encodes, so
// the document cannot drift from the code's JSON: a field added to a type
// appears in it, and the API's tests check every response they get against
// it (openapi_test.go) with objects closed to fields it does not list.

// operation is one method on one path.
type operation struct {
	method, path string
	summary      string
	token        bool     // needs a token (always on a private node)
	query        []string // query parameters, "name: what"
	body         any      // the JSON request body's type, nil for none
	bodyType     string   // a non-JSON request body's media type
	ok           int      // the success status
	answer       any      // the success answer's type (JSON), nil for none
	answerType   string   // a non-JSON answer's media type (with answer nil)
	extra        map[int]any
}

// errorAnswer marks an error status that answers with ErrorBody.
type errorAnswer struct{}

func operations() []operation {
	release := &node.Release{}
	return []operation{
		{method: "GET", path: "/health", summary: "The node: name, version, peer ID, addresses, counts, state digest, log head, equivocation evidence.", ok: 200, answer: node.Health{}},
		{method: "GET", path: "/crates", summary: "Releases, newest first, filtered.", query: []string{"q: a substring of the name, description or keywords", "name: an exact crate name", "yanked: true or false", "wasm: compatible, builds, partial, incompatible or untested", "gc_ready: true", "dual: true", "limit: 1 to 1000 (default 50)", "cursor: from next_cursor"}, ok: 200, answer: node.Page{}},
		{method: "POST", path: "/crates", summary: "Publish a .crate archive (the body); 200 when the same archive is there already.", token: true, bodyType: "application/gzip", ok: 201, answer: SubmitResult{}, extra: map[int]any{200: SubmitResult{}}},
		{method: "GET", path: "/crates/{id}", summary: "A release: name@version, a crate name (its newest version) or a record ID.", ok: 200, answer: release},
		{method: "PUT", path: "/crates/{id}", summary: "Yank or unyank, and/or review, a release.", token: true, body: CrateUpdate{}, ok: 200, answer: release},
		{method: "DELETE", path: "/crates/{id}", summary: "Yank a release (it stays downloadable).", token: true, query: []string{"reason: why"}, ok: 200, answer: release},
		{method: "GET", path: "/crates/{id}/download", summary: "The verified .crate archive.", ok: 200, answerType: "application/gzip"},
		{method: "GET", path: "/crates/{id}/versions", summary: "Every version of a crate, oldest first.", ok: 200, answer: VersionsResult{}},
		{method: "GET", path: "/crates/{id}/owners", summary: "The keys that may publish and yank a crate.", ok: 200, answer: OwnersResult{}},
		{method: "PUT", path: "/crates/{id}/owners", summary: "Set a crate's owners.", token: true, body: OwnersResult{}, ok: 200, answer: OwnersResult{}},
		{method: "POST", path: "/records", summary: "Import a record signed elsewhere, verified like a peer's; 200 when held already.", token: true, bodyType: "application/cbor", ok: 201, answer: RecordResult{}, extra: map[int]any{200: RecordResult{}}},
		{method: "GET", path: "/records/{id}", summary: "A record's canonical signed bytes (CBOR), or JSON with ?format=json or Accept: application/json.", query: []string{"format: json"}, ok: 200, answer: RecordJSON{}, answerType: "application/cbor"},
		{method: "POST", path: "/records/signed", summary: "Store a release, yank or owners record a developer signed.", token: true, bodyType: "application/cbor", ok: 201, answer: SignedResult{}},
		{method: "GET", path: "/registry", summary: "The node's settings: name, gates, trust, auto-test.", ok: 200, answer: registry.Settings{}},
		{method: "PUT", path: "/registry", summary: "Change settings (a JSON merge patch).", token: true, body: map[string]any{}, ok: 200, answer: registry.Settings{}},
		{method: "GET", path: "/registry/state", summary: "Record count and state digest.", ok: 200, answer: node.State{}},
		{method: "POST", path: "/registry/sync", summary: "Reconcile now with one peer or all.", token: true, body: struct {
			Peer string `json:"peer,omitempty"`
		}{}, ok: 200, answer: rest.SyncReport{}},
		{method: "GET", path: "/peers", summary: "Remembered, connected and banned peers.", ok: 200, answer: PeersResult{}},
		{method: "POST", path: "/peers", summary: "Join a peer by its full multiaddr.", token: true, body: struct {
			Addr  string `json:"addr"`
			Trust *bool  `json:"trust,omitempty"`
		}{}, ok: 201, answer: rest.PeerInfo{}},
		{method: "DELETE", path: "/peers/{id}", summary: "Forget a peer.", token: true, ok: 200, answer: RemovedResult{}},
		{method: "GET", path: "/tests/{id}", summary: "Every report on a release and this node's jobs.", ok: 200, answer: node.Tests{}},
		{method: "POST", path: "/tests/{id}", summary: "Queue a pipeline run.", token: true, ok: 202, answer: rest.Job{}},
		{method: "GET", path: "/tests/{id}/confirmation", summary: "How far the testers of a release agree.", ok: 200, answer: node.Confirmation{}},
		{method: "GET", path: "/tests/{id}/work", summary: "A release's reports needed and leases.", ok: 200, answer: node.WorkState{}},
		{method: "GET", path: "/jobs/{id}", summary: "A job; with wait, answered when it changes.", query: []string{"wait: up to 2m", "events: events already seen", "state: the state already seen"}, ok: 200, answer: rest.Job{}},
		{method: "DELETE", path: "/jobs/{id}", summary: "Cancel a job.", token: true, ok: 200, answer: rest.Job{}},
		{method: "GET", path: "/audit", summary: "The audit log, newest first (admin).", token: true, query: []string{"before: a sequence number", "limit: 1 to 1000"}, ok: 200, answer: AuditResult{}},
		{method: "GET", path: "/audit/verify", summary: "Check the audit log's chain (admin).", token: true, ok: 200, answer: store.AuditCheck{}},
		{method: "GET", path: "/me", summary: "The identity of the token.", token: true, ok: 200, answer: node.Identity{}},
		{method: "GET", path: "/tokens", summary: "Tokens (all for an admin, one's own otherwise), never their secrets.", token: true, ok: 200, answer: TokensResult{}},
		{method: "POST", path: "/tokens", summary: "Make a token; its secret is shown only here.", token: true, body: node.TokenRequest{}, ok: 201, answer: node.NewToken{}},
		{method: "DELETE", path: "/tokens/{id}", summary: "Revoke a token.", token: true, ok: 200, answer: node.TokenInfo{}},
		{method: "GET", path: "/keys", summary: "Developer keys and requests.", token: true, ok: 200, answer: KeysResult{}},
		{method: "POST", path: "/keys", summary: "Ask to register a developer key.", token: true, body: node.KeyRegistration{}, ok: 202, answer: node.KeyRequest{}},
		{method: "PUT", path: "/keys/{key}", summary: "Approve a developer key (admin).", token: true, ok: 200, answer: node.KeyRequest{}},
		{method: "DELETE", path: "/keys/{key}", summary: "Revoke a developer key (admin).", token: true, ok: 200, answer: node.KeyRequest{}},
		{method: "GET", path: "/verify", summary: "The last re-verification of the store.", ok: 200, answer: node.VerifyReport{}},
		{method: "POST", path: "/verify", summary: "Re-verify every record and archive now.", token: true, ok: 200, answer: node.VerifyReport{}},
		{method: "GET", path: "/log/checkpoint", summary: "The latest signed checkpoint of the node's log (or of author).", query: []string{"author: a peer ID"}, ok: 200, answer: LogCheckpointResult{}},
		{method: "GET", path: "/log/entries", summary: "Entries of the log.", query: []string{"start: first index", "limit: at most 1000"}, ok: 200, answer: LogEntriesResult{}},
		{method: "GET", path: "/log/proof/inclusion", summary: "An inclusion proof of a record.", query: []string{"id: a record ID", "size: a tree size"}, ok: 200, answer: InclusionResult{}},
		{method: "GET", path: "/log/proof/consistency", summary: "A consistency proof between two tree sizes.", query: []string{"first: a tree size", "second: a tree size"}, ok: 200, answer: ConsistencyResult{}},
		{method: "GET", path: "/log/evidence", summary: "Checkpoints that equivocate.", ok: 200, answer: EvidenceResult{}},
		{method: "GET", path: "/log/witness", summary: "When a record was first witnessed.", query: []string{"id: a record ID"}, ok: 200, answer: WitnessResult{}},
		{method: "GET", path: "/corpus/runs", summary: "Corpus runs (one per toolchain).", ok: 200, answer: CorpusRunsResult{}},
		{method: "GET", path: "/corpus/report", summary: "A corpus run's report.", query: []string{"run: a run ID"}, ok: 200, answer: node.CorpusReport{}},
		{method: "GET", path: "/corpus/regressions", summary: "Regressions between two runs.", query: []string{"from: a run ID", "to: a run ID"}, ok: 200, answer: node.Regressions{}},
		{method: "GET", path: "/corpus/confirmations", summary: "Confirmed verdicts and testers' agreement.", ok: 200, answer: node.Confirmations{}},
		{method: "GET", path: "/upstream", summary: "The mirror's upstreams and the evidence of changed versions.", ok: 200, answer: node.UpstreamStatus{}},
		{method: "GET", path: "/upstream/crates/{name}", summary: "What the node serves of a mirrored crate.", ok: 200, answer: MirroredResult{}},
		{method: "GET", path: "/webhooks", summary: "Webhook subscriptions, without secrets (admin).", token: true, ok: 200, answer: WebhooksResult{}},
		{method: "POST", path: "/webhooks", summary: "Subscribe a URL; its secret is shown only here (admin).", token: true, body: WebhookRequest{}, ok: 201, answer: webhook.Subscription{}},
		{method: "DELETE", path: "/webhooks/{id}", summary: "Remove a subscription (admin).", token: true, ok: 200, answer: RemovedResult{}},
		{method: "POST", path: "/webhooks/{id}/ping", summary: "Queue a test delivery (admin).", token: true, ok: 202, answer: PingResult{}},
		{method: "GET", path: "/webhooks/{id}/deliveries", summary: "A subscription's delivery log, newest first (admin).", token: true, query: []string{"limit: 1 to 1000"}, ok: 200, answer: DeliveriesResult{}},
		{method: "GET", path: "/badges/{file}", summary: "A README badge: {crate}.svg or {crate}.json (shields.io's endpoint format); a badge also for a crate not found.", query: []string{"version: a version"}, ok: 200, answer: shieldsBadge{}, answerType: "image/svg+xml", extra: map[int]any{400: shieldsBadge{}, 404: []any{shieldsBadge{}, ErrorBody{}}}},
		{method: "GET", path: "/metrics", summary: "Prometheus metrics (text format).", ok: 200, answerType: "text/plain"},
		{method: "GET", path: "/openapi.json", summary: "This document.", ok: 200, answer: map[string]any{}},
	}
}

var (
	specOnce sync.Once
	specJSON []byte
)

// OpenAPI returns the document as JSON.
func OpenAPI() []byte {
	specOnce.Do(func() {
		b, err := json.MarshalIndent(buildSpec(), "", "  ")
		if err != nil {
			panic("openapi: " + err.Error())
		}
		specJSON = b
	})
	return specJSON
}

func (s *Server) openapi(w http.ResponseWriter, r *http.Request) (int, any, error) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.WriteHeader(200)
	if r.Method != http.MethodHead {
		w.Write(OpenAPI())
	}
	return 0, nil, nil
}

var pathParam = regexp.MustCompile(`\{([a-z_]+)\}`)

func buildSpec() map[string]any {
	g := &schemaGen{defs: map[string]any{}, names: map[reflect.Type]string{}}
	errRef := g.of(reflect.TypeOf(ErrorBody{}))
	paths := map[string]any{}
	for _, op := range operations() {
		item, _ := paths[op.path].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[op.path] = item
		}
		var params []any
		for _, m := range pathParam.FindAllStringSubmatch(op.path, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		for _, q := range op.query {
			name, desc, _ := strings.Cut(q, ": ")
			params = append(params, map[string]any{"name": name, "in": "query", "description": desc, "schema": map[string]any{"type": "string"}})
		}
		o := map[string]any{"summary": op.summary, "operationId": strings.ToLower(op.method) + opName(op.path)}
		if len(params) > 0 {
			o["parameters"] = params
		}
		if op.token {
			o["security"] = []any{map[string]any{"token": []any{}}}
		}
		switch {
		case op.body != nil:
			o["requestBody"] = map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": g.of(reflect.TypeOf(op.body))}}}
		case op.bodyType != "":
			o["requestBody"] = map[string]any{"required": true, "content": map[string]any{op.bodyType: map[string]any{"schema": map[string]any{"type": "string", "contentMediaType": op.bodyType}}}}
		}
		responses := map[string]any{}
		content := map[string]any{}
		if op.answer != nil {
			content["application/json"] = map[string]any{"schema": g.of(reflect.TypeOf(op.answer))}
		}
		if op.answerType != "" {
			content[op.answerType] = map[string]any{"schema": map[string]any{"type": "string"}}
		}
		success := map[string]any{"description": http.StatusText(op.ok)}
		if len(content) > 0 {
			success["content"] = content
		}
		responses[strconv.Itoa(op.ok)] = success
		codes := make([]int, 0, len(op.extra))
		for c := range op.extra {
			codes = append(codes, c)
		}
		sort.Ints(codes)
		for _, c := range codes {
			var schema map[string]any
			if alts, ok := op.extra[c].([]any); ok {
				var options []any
				for _, a := range alts {
					options = append(options, g.of(reflect.TypeOf(a)))
				}
				schema = map[string]any{"anyOf": options}
			} else {
				schema = g.of(reflect.TypeOf(op.extra[c]))
			}
			ct := map[string]any{"application/json": map[string]any{"schema": schema}}
			if op.answerType != "" && c != 200 {
				ct[op.answerType] = map[string]any{"schema": map[string]any{"type": "string"}}
			}
			responses[strconv.Itoa(c)] = map[string]any{"description": http.StatusText(c), "content": ct}
		}
		responses["default"] = map[string]any{"description": "An error: a stable code (the error kind) and a sentence; 4xx for bad input, 401 with WWW-Authenticate, 429 and 503 with Retry-After.",
			"content": map[string]any{"application/json": map[string]any{"schema": errRef}}}
		o["responses"] = responses
		item[strings.ToLower(op.method)] = o
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{"title": "wasm-crates-registry REST API", "version": "1",
			"description": "A registry node's REST API (docs/API.md). The Cargo registry protocol (/index/, /api/v1/crates) and the dashboard (/ui/) are documented in docs/CARGO.md and are not part of this document."},
		"paths":      paths,
		"components": map[string]any{"schemas": g.defs, "securitySchemes": map[string]any{"token": map[string]any{"type": "http", "scheme": "bearer", "description": "A token of the node (tokens create), or the admin token of its data directory."}}},
	}
}

func opName(path string) string {
	var b strings.Builder
	for _, part := range strings.FieldsFunc(path, func(r rune) bool { return r == '/' || r == '{' || r == '}' || r == '.' || r == '_' }) {
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return b.String()
}

// schemaGen derives JSON Schemas from Go types as encoding/json encodes
// them.
type schemaGen struct {
	defs  map[string]any
	names map[reflect.Type]string
}

var (
	timeType      = reflect.TypeOf(time.Time{})
	rawType       = reflect.TypeOf(json.RawMessage{})
	textMarshaler = reflect.TypeOf((*encoding.TextMarshaler)(nil)).Elem()
)

// of is the schema of t; named structs become components.
func (g *schemaGen) of(t reflect.Type) map[string]any {
	switch {
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case t == rawType:
		return map[string]any{}
	case t.Implements(textMarshaler) && t.Kind() != reflect.Pointer:
		return map[string]any{"type": "string"}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return nullable(g.of(t.Elem()))
	case reflect.Interface:
		return map[string]any{}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return map[string]any{"type": "integer"}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer", "minimum": 0}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": []any{"string", "null"}, "contentEncoding": "base64"}
		}
		return map[string]any{"type": []any{"array", "null"}, "items": g.of(t.Elem())}
	case reflect.Array:
		return map[string]any{"type": "array", "items": g.of(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": []any{"object", "null"}, "additionalProperties": g.of(t.Elem())}
	case reflect.Struct:
		if t.Name() == "" {
			return g.object(t)
		}
		name, ok := g.names[t]
		if !ok {
			name = t.Name()
			for _, n := range g.names {
				if n == name {
					name = strings.ToUpper(path(t)[:1]) + path(t)[1:] + t.Name()
					break
				}
			}
			g.names[t] = name
			g.defs[name] = map[string]any{} // placeholder while recursing
			g.defs[name] = g.object(t)
		}
		return map[string]any{"$ref": "#/components/schemas/" + name}
	}
	return map[string]any{}
}

func path(t reflect.Type) string {
	p := t.PkgPath()
	return p[strings.LastIndex(p, "/")+1:]
}

// object is a struct's closed object schema: its JSON fields, embedded
// structs' fields inlined, required unless omitempty or omitzero.
func (g *schemaGen) object(t reflect.Type) map[string]any {
	props := map[string]any{}
	var required []string
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			if f.Anonymous && name == "" {
				ft := f.Type
				if ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if ft.Kind() == reflect.Struct {
					walk(ft)
					continue
				}
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			props[name] = g.of(f.Type)
			if !slices.Contains(strings.Split(opts, ","), "omitempty") && !slices.Contains(strings.Split(opts, ","), "omitzero") {
				required = append(required, name)
			}
		}
	}
	walk(t)
	o := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		sort.Strings(required)
		o["required"] = required
	}
	return o
}

// nullable lets s also be null.
func nullable(s map[string]any) map[string]any {
	if _, ok := s["$ref"]; ok {
		return map[string]any{"anyOf": []any{s, map[string]any{"type": "null"}}}
	}
	c := map[string]any{}
	for k, v := range s {
		c[k] = v
	}
	switch ty := s["type"].(type) {
	case string:
		c["type"] = []any{ty, "null"}
	case []any:
		if !slices.Contains(ty, any("null")) {
			c["type"] = append(slices.Clone(ty), "null")
		}
	default:
		return s // any value, null included
	}
	return c
}
