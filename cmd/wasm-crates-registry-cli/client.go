package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/wasmrust/wasm-crates-registry/rest"
)

// client speaks the node's REST API. It sends its token only to the API's
// own origin (scheme, host and port; never across a redirect to another),
// and on reads only once the node has answered a read with 401, which a
// private node does: a token is not spent where it is not needed.
type client struct {
	base  string
	token string
	http  *http.Client

	mu      sync.Mutex
	private bool // the node refused an anonymous read
}

// apiError is an error answer from the node.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string { return e.Message }

func newClient(base, token string, timeout time.Duration) (*client, error) {
	u, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--api %q is not an http(s) URL like http://127.0.0.1:8080", base)
	}
	c := &client{base: u.String(), token: token}
	home := origin(u)
	c.http = &http.Client{Timeout: timeout, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		if origin(req.URL) != home {
			req.Header.Del("Authorization")
		}
		return nil
	}}
	return c, nil
}

// origin is a URL's scheme://host:port, with the scheme's default port.
func origin(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[strings.ToLower(u.Scheme)]
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Hostname()) + ":" + port
}

// isRead reports whether a request only reads: it carries the token only
// on a private node.
func isRead(method string) bool { return method == http.MethodGet || method == http.MethodHead }

// send sends a request and returns the answer's status and body (at most
// 64 MiB). A read refused with 401 is sent again with the token, and later
// reads carry it from the start.
func (c *client) send(ctx context.Context, method, path string, body io.Reader, contentType, accept string, extra http.Header) (int, []byte, error) {
	c.mu.Lock()
	withToken := c.token != "" && (!isRead(method) || c.private)
	c.mu.Unlock()
	for {
		status, hdr, data, err := c.once(ctx, method, path, body, contentType, accept, extra, withToken)
		if err != nil {
			return 0, nil, err
		}
		if status == http.StatusUnauthorized && !withToken && c.token != "" && isRead(method) && hdr.Get("WWW-Authenticate") != "" {
			c.mu.Lock()
			c.private = true
			c.mu.Unlock()
			withToken = true
			continue
		}
		return status, data, nil
	}
}

func (c *client) once(ctx context.Context, method, path string, body io.Reader, contentType, accept string, extra http.Header, withToken bool) (int, http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return 0, nil, nil, err
	}
	if s, ok := body.(interface{ Size() int64 }); ok {
		req.ContentLength = s.Size() // an upload drawn as a progress bar keeps its length
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	for k, v := range extra {
		req.Header[k] = v
	}
	if withToken {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) && ue.Timeout() {
			return 0, nil, nil, fmt.Errorf("the node at %s did not answer in time", c.base)
		}
		return 0, nil, nil, fmt.Errorf("cannot reach the node at %s (is it running? set --api or REGISTRY_URL): %v", c.base, rootCause(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("reading the node's answer: %w", err)
	}
	return resp.StatusCode, resp.Header, data, nil
}

// do sends a request and decodes a JSON answer into out (when non-nil).
func (c *client) do(ctx context.Context, method, path string, body io.Reader, contentType string, out any) error {
	return c.doWith(ctx, method, path, body, contentType, nil, out)
}

// doWith is do with extra request headers.
func (c *client) doWith(ctx context.Context, method, path string, body io.Reader, contentType string, extra http.Header, out any) error {
	status, data, err := c.send(ctx, method, path, body, contentType, "application/json", extra)
	if err != nil {
		return err
	}
	if status >= 400 {
		return errorOf(status, data)
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = data
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("the node's answer is not the JSON expected: %w", err)
	}
	return nil
}

// getRaw reads path without asking for JSON (a record's canonical bytes).
func (c *client) getRaw(ctx context.Context, path string) ([]byte, error) {
	status, data, err := c.send(ctx, http.MethodGet, path, nil, "", "", nil)
	if err != nil {
		return nil, err
	}
	if status >= 400 {
		return nil, errorOf(status, data)
	}
	return data, nil
}

// errorOf is the error of an error answer.
func errorOf(status int, data []byte) error {
	var eb rest.ErrorBody
	if json.Unmarshal(data, &eb) == nil && eb.Error.Message != "" {
		return &apiError{Status: status, Code: eb.Error.Code, Message: eb.Error.Message}
	}
	return &apiError{Status: status, Code: "http", Message: fmt.Sprintf("the node answered %d %s", status, http.StatusText(status))}
}

func (c *client) getJSON(ctx context.Context, path string, out any) error {
	return c.do(ctx, http.MethodGet, path, nil, "", out)
}

func (c *client) sendJSON(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	return c.do(ctx, method, path, body, "application/json", out)
}

func rootCause(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}
