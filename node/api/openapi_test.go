package api

import (
	"bytes"
	"context"
	"mime"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

var (
	specOnceT sync.Once
	specDoc   *openapi3.T
	specRtr   routers.Router
	specErr   error
)

// spec loads the served document with kin-openapi and validates it.
func spec(t testing.TB) (*openapi3.T, routers.Router) {
	t.Helper()
	specOnceT.Do(func() {
		loader := openapi3.NewLoader()
		specDoc, specErr = loader.LoadFromData(OpenAPI())
		if specErr != nil {
			return
		}
		if specErr = specDoc.Validate(context.Background()); specErr != nil {
			return
		}
		specRtr, specErr = gorillamux.NewRouter(specDoc)
	})
	if specErr != nil {
		t.Fatalf("the OpenAPI document: %v", specErr)
	}
	return specDoc, specRtr
}

// capture records what a handler answered.
type capture struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (c *capture) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *capture) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = 200
	}
	if c.body.Len() < 1<<20 {
		c.body.Write(b)
	}
	return c.ResponseWriter.Write(b)
}

func (c *capture) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (c *capture) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// validated serves h and checks every answer against the OpenAPI document:
// its path and method are documented, its status is, and a JSON body
// matches the documented schema (objects closed to undocumented fields).
// Mounted protocols (the Cargo registry, the dashboard) are not the REST
// API's and are left out.
func validated(t *testing.T, h http.Handler) http.Handler {
	_, router := spec(t)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := &capture{ResponseWriter: w}
		h.ServeHTTP(c, r)
		if strings.HasPrefix(r.URL.Path, "/index/") || strings.HasPrefix(r.URL.Path, "/api/v1/") || strings.HasPrefix(r.URL.Path, "/ui/") {
			return
		}
		route, params, err := router.FindRoute(r)
		if err != nil {
			// Only an error answer may come from a path or method the
			// document does not list (404, 405).
			if c.status < 400 {
				t.Errorf("OpenAPI: %s %s answered %d but is not documented: %v", r.Method, r.URL.Path, c.status, err)
			}
			return
		}
		ct, _, _ := mime.ParseMediaType(c.Header().Get("Content-Type"))
		in := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route,
				Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}},
			Status: c.status, Header: c.Header(),
			Options: &openapi3filter.Options{IncludeResponseStatus: true, ExcludeResponseBody: ct != "application/json"},
		}
		in.SetBodyBytes(c.body.Bytes())
		if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
			t.Errorf("OpenAPI: %s %s answered %d (%s) against the document: %v\n%s", r.Method, r.URL.Path, c.status, ct, err, truncateBody(c.body.Bytes()))
		}
	})
}

func truncateBody(b []byte) string {
	if len(b) > 600 {
		return string(b[:600]) + "…"
	}
	return string(b)
}

// TestOpenAPIDocumentsEveryRoute: the document is valid OpenAPI 3.1 and
// lists exactly the routes the API serves, method by method; it is served
// at /openapi.json.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	doc, _ := spec(t)
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi %q", doc.OpenAPI)
	}
	f := newFixture(t)
	srv := New(f.n, nil)
	var documented []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, method+" "+path)
		}
	}
	served := srv.Routes()
	slices.Sort(documented)
	slices.Sort(served)
	for _, r := range served {
		if !slices.Contains(documented, r) {
			t.Errorf("%s is served but not in the OpenAPI document", r)
		}
	}
	for _, d := range documented {
		if !slices.Contains(served, d) {
			t.Errorf("%s is in the OpenAPI document but not served", d)
		}
	}
	r := f.do("GET", "/openapi.json", nil, false)
	if r.status != 200 || !bytes.Equal(r.body, OpenAPI()) {
		t.Errorf("GET /openapi.json: %d, %d bytes", r.status, len(r.body))
	}
}
