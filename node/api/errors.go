package api

import (
	"encoding/json"
	"errors"
	"net/http"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// StatusOf maps an error kind to its HTTP status. This is the only place
// where kinds become status codes.
func StatusOf(kind registry.ErrorKind) int {
	switch kind {
	case registry.EINVALID:
		return http.StatusBadRequest
	case registry.EUNAUTHORIZED:
		return http.StatusUnauthorized
	case registry.EFORBIDDEN:
		return http.StatusForbidden
	case registry.ENOTFOUND:
		return http.StatusNotFound
	case registry.ECONFLICT, registry.ECANCELED:
		return http.StatusConflict
	case registry.ETOOLARGE:
		return http.StatusRequestEntityTooLarge
	case registry.EUNSUPPORTED:
		return http.StatusUnsupportedMediaType
	case registry.EBUSY:
		return http.StatusTooManyRequests
	case registry.EUNAVAILABLE:
		return http.StatusNotImplemented
	case registry.ETIMEOUT:
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

// ErrorBody is the JSON of every error response.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail carries a stable code (an error kind) and a sentence.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, r *http.Request, err error) {
	kind := registry.KindOf(err)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		kind = registry.ETOOLARGE
		err = registry.Errorf("api", kind, "the request body is larger than %d bytes", mbe.Limit)
	}
	msg := registry.MessageOf(err)
	if kind == registry.EINTERNAL {
		msg = "internal error on this node; its log has the details"
	}
	if kind == registry.EUNAUTHORIZED {
		w.Header().Set("WWW-Authenticate", `Bearer realm="wasm-crates-registry"`)
	}
	writeJSON(w, StatusOf(kind), ErrorBody{Error: ErrorDetail{Code: string(kind), Message: msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
