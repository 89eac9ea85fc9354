package rest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
)

// WriteJSON answers with v as JSON and status; indent makes it readable
// (the REST API's answers are, the Cargo protocol's are compact). When v
// cannot be encoded the answer is 500 with failure, an error in the
// envelope of the caller's protocol, and nothing half-written.
func WriteJSON(w http.ResponseWriter, status int, v any, indent bool, failure []byte) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	if indent {
		enc.SetIndent("", "  ")
	}
	b := failure
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
	} else {
		b = buf.Bytes()
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(b)
}

// ErrorBody is the JSON of every error answer of the REST API.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail carries a stable code (an error kind) and a sentence.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}
