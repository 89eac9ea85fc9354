package api

import (
	"net/http"
	"strconv"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/node"
	"github.com/wasmrust/wasm-crates-registry/node/webhook"
)

// Webhooks (docs/API.md, "Webhooks"): subscriptions are managed with an
// admin token, since a subscription makes the node send requests where it
// says.
func (s *Server) webhookRoutes() {
	s.route("/webhooks", methods{"GET": s.auth(s.listWebhooks), "POST": s.auth(s.addWebhook)})
	s.route("/webhooks/{id}", methods{"DELETE": s.auth(s.removeWebhook)})
	s.route("/webhooks/{id}/ping", methods{"POST": s.auth(s.pingWebhook)})
	s.route("/webhooks/{id}/deliveries", methods{"GET": s.auth(s.webhookDeliveries)})
}

// WebhookRequest is the body of POST /webhooks.
type WebhookRequest struct {
	URL    string   `json:"url"`
	Events []string `json:"events,omitempty"` // default: every event type
}

func requireAdmin(r *http.Request, op string) error {
	if !node.IdentityFrom(r.Context()).Allows(node.ScopeAdmin, "") {
		return registry.Errorf(op, registry.EFORBIDDEN, "managing webhooks needs a token with the admin scope")
	}
	return nil
}

func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request) (int, any, error) {
	if err := requireAdmin(r, "api.webhooks"); err != nil {
		return 0, nil, err
	}
	return 200, WebhooksResult{Webhooks: s.n.Webhooks().Subscriptions(), Events: webhook.Types}, nil
}

func (s *Server) addWebhook(w http.ResponseWriter, r *http.Request) (int, any, error) {
	if err := requireAdmin(r, "api.webhooks"); err != nil {
		return 0, nil, err
	}
	var req WebhookRequest
	if err := readJSON(w, r, &req, false); err != nil {
		return 0, nil, err
	}
	sub, err := s.n.Webhooks().Subscribe(r.Context(), req.URL, req.Events, actor(r))
	if err != nil {
		return 0, nil, err
	}
	w.Header().Set("Location", "/webhooks/"+sub.ID)
	return http.StatusCreated, sub, nil
}

func (s *Server) removeWebhook(w http.ResponseWriter, r *http.Request) (int, any, error) {
	if err := requireAdmin(r, "api.webhooks"); err != nil {
		return 0, nil, err
	}
	if err := s.n.Webhooks().Unsubscribe(r.Context(), r.PathValue("id")); err != nil {
		return 0, nil, err
	}
	return 200, RemovedResult{Removed: r.PathValue("id")}, nil
}

func (s *Server) pingWebhook(w http.ResponseWriter, r *http.Request) (int, any, error) {
	if err := requireAdmin(r, "api.webhooks"); err != nil {
		return 0, nil, err
	}
	id, err := s.n.Webhooks().Ping(r.Context(), r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusAccepted, PingResult{Delivery: id}, nil
}

func (s *Server) webhookDeliveries(w http.ResponseWriter, r *http.Request) (int, any, error) {
	if err := requireAdmin(r, "api.webhooks"); err != nil {
		return 0, nil, err
	}
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	id := r.PathValue("id")
	found := false
	for _, sub := range s.n.Webhooks().Subscriptions() {
		found = found || sub.ID == id
	}
	if !found {
		return 0, nil, registry.Errorf("api.webhooks", registry.ENOTFOUND, "no webhook %q", id[:min(len(id), 40)])
	}
	d := s.n.Webhooks().Deliveries(id, limit)
	if d == nil {
		d = []webhook.Delivery{}
	}
	return 200, DeliveriesResult{Deliveries: d}, nil
}
