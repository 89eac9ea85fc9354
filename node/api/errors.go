package api

import (
	"errors"
	"net/http"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/rest"
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
	case registry.ETEMPORARY:
		return http.StatusServiceUnavailable
	case registry.ETIMEOUT:
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

// ErrorBody is the JSON of every error response (the contract's).
type ErrorBody = rest.ErrorBody

// ErrorDetail carries a stable code (an error kind) and a sentence.
type ErrorDetail = rest.ErrorDetail

// Classify returns the kind an error is answered with, and the error to
// show: a request body over its limit (http.MaxBytesError, wherever it is
// in the chain) is ETOOLARGE with a message naming the limit. Everything
// that writes an error response classifies it first, so that what is logged
// as a failure of this node (EINTERNAL) is exactly what is answered 500.
func Classify(err error) (registry.ErrorKind, error) {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return registry.ETOOLARGE, registry.Errorf("api", registry.ETOOLARGE, "the request body is larger than %d bytes, the most this endpoint accepts", mbe.Limit)
	}
	return registry.KindOf(err), err
}

// RetryAfter sets a Retry-After header on answers whose kind says "try
// again later" (EBUSY: 429, ETEMPORARY: 503), unless the handler set a more
// precise one already.
func RetryAfter(h http.Header, kind registry.ErrorKind) {
	if h.Get("Retry-After") != "" {
		return
	}
	switch kind {
	case registry.EBUSY:
		h.Set("Retry-After", "1")
	case registry.ETEMPORARY:
		h.Set("Retry-After", "10")
	}
}

func writeError(w http.ResponseWriter, r *http.Request, err error) {
	kind, err := Classify(err)
	RetryAfter(w.Header(), kind)
	msg := registry.MessageOf(err)
	if kind == registry.EINTERNAL {
		msg = "internal error on this node; its log has the details"
	}
	if kind == registry.EUNAUTHORIZED {
		w.Header().Set("WWW-Authenticate", `Bearer realm="wasm-crates-registry"`)
	}
	writeJSON(w, StatusOf(kind), ErrorBody{Error: ErrorDetail{Code: string(kind), Message: msg}})
}

// apiFailure is the answer when an answer cannot be encoded.
var apiFailure = []byte(`{"error":{"code":"internal","message":"internal error on this node; its log has the details"}}` + "\n")

func writeJSON(w http.ResponseWriter, status int, v any) {
	rest.WriteJSON(w, status, v, true, apiFailure)
}
