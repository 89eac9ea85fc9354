// Package mirror talks to an upstream sparse index (crates.io's
// https://index.crates.io/ in production) safely: every answer is bounded
// in bytes and time, redirects never leave the host asked, index files are
// parsed strictly, and a .crate archive is returned only once its bytes
// hash to the checksum its index line states. docs/MIRROR.md is the guide.
//
// The package does no storage and signs nothing: the node decides what to
// keep and record.
package mirror

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// Defaults of Config.
const (
	DefaultTimeout       = 30 * time.Second
	DefaultMaxIndexBytes = 16 << 20
	DefaultMaxCrateBytes = registry.DefaultMaxCrateSize
	DefaultMaxVersions   = 20_000
	maxConfigBytes       = 64 << 10
	maxRedirects         = 3
	configTTL            = 10 * time.Minute
)

// Config configures one upstream.
type Config struct {
	// URL is the index URL, such as "https://index.crates.io/" (a
	// "sparse+" prefix is accepted and dropped; a trailing slash is added).
	URL string
	// Timeout bounds each request, body included (default DefaultTimeout).
	Timeout time.Duration
	// MaxIndexBytes bounds an index file (default DefaultMaxIndexBytes).
	MaxIndexBytes int64
	// MaxCrateBytes bounds a .crate archive (default DefaultMaxCrateBytes).
	MaxCrateBytes int64
	// MaxVersions bounds the lines of an index file (default
	// DefaultMaxVersions): each new one becomes a signed record.
	MaxVersions int
	// UserAgent is sent with every request (default "wasm-crates-registry").
	UserAgent string
	// Transport carries the requests (default: a clone of
	// http.DefaultTransport, which honours HTTPS_PROXY and NO_PROXY).
	Transport http.RoundTripper
}

// Upstream is one upstream sparse index. It is safe for concurrent use.
type Upstream struct {
	cfg    Config
	base   *url.URL
	client *http.Client

	mu       sync.Mutex
	dl       string
	dlAt     time.Time
	dlFailed error
}

// New checks cfg and returns its upstream. It makes no request.
func New(cfg Config) (*Upstream, error) {
	const op = "mirror.New"
	u := strings.TrimPrefix(strings.TrimSpace(cfg.URL), "sparse+")
	if !strings.HasSuffix(u, "/") {
		u += "/"
	}
	if err := registry.ValidateUpstreamURL(u); err != nil {
		return nil, registry.E(op, registry.EINVALID, "upstream "+cfg.URL, err)
	}
	base, err := url.Parse(u)
	if err != nil || base.Host == "" || base.User != nil || base.RawQuery != "" || base.Fragment != "" {
		return nil, registry.Errorf(op, registry.EINVALID, "upstream %q is not an index URL like https://index.crates.io/ (no user, query or fragment)", cfg.URL)
	}
	cfg.URL = u
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxIndexBytes <= 0 {
		cfg.MaxIndexBytes = DefaultMaxIndexBytes
	}
	if cfg.MaxCrateBytes <= 0 {
		cfg.MaxCrateBytes = DefaultMaxCrateBytes
	}
	if cfg.MaxVersions <= 0 {
		cfg.MaxVersions = DefaultMaxVersions
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "wasm-crates-registry"
	}
	if cfg.Transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.ResponseHeaderTimeout = cfg.Timeout
		cfg.Transport = t
	}
	up := &Upstream{cfg: cfg, base: base}
	up.client = &http.Client{Transport: cfg.Transport, Timeout: cfg.Timeout, CheckRedirect: sameOrigin}
	return up, nil
}

// sameOrigin lets a redirect through only to the scheme, host and port of
// the request that started it, and at most maxRedirects times.
func sameOrigin(req *http.Request, via []*http.Request) error {
	first := via[0].URL
	if req.URL.Scheme != first.Scheme || !strings.EqualFold(req.URL.Host, first.Host) {
		return registry.Errorf("mirror.redirect", registry.EFORBIDDEN, "the upstream redirected %s to %s, another origin; a mirror follows redirects only within the host it asked", first.Redacted(), req.URL.Redacted())
	}
	if len(via) > maxRedirects {
		return registry.Errorf("mirror.redirect", registry.EFORBIDDEN, "the upstream redirected %s more than %d times", first.Redacted(), maxRedirects)
	}
	return nil
}

// URL is the upstream's index URL, ending in a slash.
func (u *Upstream) URL() string { return u.cfg.URL }

// Validators are what a conditional request sends back: the ETag and
// Last-Modified of the previous answer.
type Validators struct {
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
}

// IndexFile is an upstream's answer for a crate's index file.
type IndexFile struct {
	// NotModified is true when the upstream answered 304 to the
	// validators given: Lines is then empty.
	NotModified bool
	// Lines are the file's lines, in the upstream's order, each checked.
	Lines []Line
	// Validators are the answer's, for the next request.
	Validators Validators
}

// Line is one checked line of an index file.
type Line struct {
	Name   string
	Vers   string
	Cksum  string
	Yanked bool
	// Raw is the line exactly as served, without its newline.
	Raw string
	// Key identifies the line's content without its yanked flag
	// (registry.UpstreamLineKey).
	Key string
}

// lineFields are the parts of an index line that are checked.
type lineFields struct {
	Name  string `json:"name"`
	Vers  string `json:"vers"`
	Cksum string `json:"cksum"`
	Deps  []struct {
		Name    string `json:"name"`
		Package string `json:"package"`
	} `json:"deps"`
	Yanked *bool `json:"yanked"`
}

// ParseIndexFile checks an index file served for the crate lower (its name
// in lowercase) and returns its lines. Every line must be a JSON object of
// at most registry.MaxUpstreamLine bytes naming the crate (in any case, the
// same in every line), a SemVer version no other line has, a lowercase hex
// sha256 cksum, a yanked flag, and valid crate names for its dependencies.
// One bad line refuses the whole file: an upstream that serves garbage is
// not mirrored in part. A file of more than DefaultMaxVersions lines is
// ETOOLARGE.
func ParseIndexFile(lower string, data []byte) ([]Line, error) {
	return parseIndexFile(lower, data, DefaultMaxVersions)
}

func parseIndexFile(lower string, data []byte, maxLines int) ([]Line, error) {
	const op = "mirror.ParseIndexFile"
	bad := func(n int, format string, args ...any) error {
		return registry.Errorf(op, registry.EINVALID, "index file of %s, line %d: %s", lower, n, fmt.Sprintf(format, args...))
	}
	var out []Line
	seen := map[string]bool{}
	spelling := ""
	n := 0
	for len(data) > 0 {
		n++
		raw := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			raw, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		raw = bytes.TrimSuffix(raw, []byte("\r"))
		if len(bytes.TrimSpace(raw)) == 0 {
			continue
		}
		if len(out) >= maxLines {
			return nil, registry.Errorf(op, registry.ETOOLARGE, "index file of %s has more than %d versions, the most accepted", lower, maxLines)
		}
		if len(raw) > registry.MaxUpstreamLine {
			return nil, bad(n, "%d bytes long; at most %d are accepted", len(raw), registry.MaxUpstreamLine)
		}
		if !utf8.Valid(raw) {
			return nil, bad(n, "not UTF-8")
		}
		if !json.Valid(raw) || raw[0] != '{' {
			return nil, bad(n, "not a JSON object")
		}
		if k := duplicateKey(raw); k != "" {
			return nil, bad(n, "key %q appears twice", short(k))
		}
		var f lineFields
		if err := json.Unmarshal(raw, &f); err != nil {
			return nil, bad(n, "a field has the wrong type (%v)", err)
		}
		if err := registry.ValidateCrateName(f.Name); err != nil || strings.ToLower(f.Name) != lower {
			return nil, bad(n, "it names crate %q, not %s", short(f.Name), lower)
		}
		if spelling == "" {
			spelling = f.Name
		} else if f.Name != spelling {
			return nil, bad(n, "it spells the crate %s, an earlier line %s", f.Name, spelling)
		}
		if err := registry.ValidateVersion(f.Vers); err != nil {
			return nil, bad(n, "%s", registry.MessageOf(err))
		}
		if seen[f.Vers] {
			return nil, bad(n, "version %s appears twice", f.Vers)
		}
		seen[f.Vers] = true
		if err := registry.ValidateCksum(f.Cksum); err != nil {
			return nil, bad(n, "%s", registry.MessageOf(err))
		}
		if f.Yanked == nil {
			return nil, bad(n, `it has no "yanked"`)
		}
		for _, d := range f.Deps {
			if registry.ValidateCrateName(d.Name) != nil || d.Package != "" && registry.ValidateCrateName(d.Package) != nil {
				return nil, bad(n, "dependency %q is not a crate name", short(d.Name+" "+d.Package))
			}
		}
		key, err := registry.UpstreamLineKey(string(raw))
		if err != nil {
			return nil, bad(n, "%s", registry.MessageOf(err))
		}
		out = append(out, Line{Name: f.Name, Vers: f.Vers, Cksum: f.Cksum, Yanked: *f.Yanked, Raw: string(raw), Key: key})
	}
	if len(out) == 0 {
		return nil, registry.Errorf(op, registry.EINVALID, "index file of %s has no lines", lower)
	}
	return out, nil
}

// duplicateKey returns a key that the JSON object raw (already checked to
// be valid) has twice at its top level, or "": readers disagree on which
// of two values counts, so such a line is refused.
func duplicateKey(raw []byte) string {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil {
		return ""
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return ""
		}
		k, _ := t.(string)
		if seen[k] {
			return k
		}
		seen[k] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return ""
		}
	}
	return ""
}

func short(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// Index fetches and checks the index file of crate name. With validators
// from an earlier answer, the request is conditional (If-None-Match,
// If-Modified-Since) and a 304 gives NotModified. Errors: ENOTFOUND when
// the upstream has no such crate (404, 410, 451); EINVALID for a name
// that is not a crate name or a file that does not check (ParseIndexFile);
// ETOOLARGE over MaxIndexBytes; ETIMEOUT; ETEMPORARY when the upstream
// cannot be reached or answers anything else.
func (u *Upstream) Index(ctx context.Context, name string, since Validators) (*IndexFile, error) {
	const op = "mirror.Index"
	if err := registry.ValidateCrateName(name); err != nil {
		return nil, registry.E(op, registry.EINVALID, "", err)
	}
	lower := strings.ToLower(name)
	target := u.base.ResolveReference(&url.URL{Path: registry.IndexPath(lower)})
	hdr := http.Header{}
	if since.ETag != "" {
		hdr.Set("If-None-Match", since.ETag)
	}
	if since.LastModified != "" {
		hdr.Set("If-Modified-Since", since.LastModified)
	}
	resp, err := u.get(ctx, target, hdr)
	if err != nil {
		return nil, registry.E(op, registry.KindOf(err), "index file of "+lower, err)
	}
	defer resp.Body.Close()
	v := Validators{ETag: resp.Header.Get("ETag"), LastModified: resp.Header.Get("Last-Modified")}
	if len(v.ETag) > 256 || len(v.LastModified) > 64 {
		v = Validators{}
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotModified:
		if since == (Validators{}) {
			return nil, registry.Errorf(op, registry.ETEMPORARY, "upstream %s answered 304 Not Modified to an unconditional request for %s", u.cfg.URL, lower)
		}
		if v == (Validators{}) {
			v = since
		}
		return &IndexFile{NotModified: true, Validators: v}, nil
	case http.StatusNotFound, http.StatusGone, http.StatusUnavailableForLegalReasons:
		return nil, registry.Errorf(op, registry.ENOTFOUND, "upstream %s has no crate named %s", u.cfg.URL, lower)
	default:
		return nil, registry.Errorf(op, registry.ETEMPORARY, "upstream %s answered %s for the index file of %s", u.cfg.URL, resp.Status, lower)
	}
	body, err := readCapped(resp, u.cfg.MaxIndexBytes, "the index file of "+lower)
	if err != nil {
		return nil, registry.E(op, registry.KindOf(err), "upstream "+u.cfg.URL, err)
	}
	lines, err := parseIndexFile(lower, body, u.cfg.MaxVersions)
	if err != nil {
		return nil, registry.E(op, registry.KindOf(err), "upstream "+u.cfg.URL+" served a bad index file", err)
	}
	return &IndexFile{Lines: lines, Validators: v}, nil
}

// Crate downloads the .crate archive of name@version from the upstream's
// download URL (config.json's "dl") and returns it only when its sha256 is
// cksum. Errors: EINVALID for a bad name, version or cksum, or bytes that
// do not hash to cksum; ENOTFOUND when the upstream has no such archive;
// ETOOLARGE over MaxCrateBytes; ETIMEOUT; ETEMPORARY otherwise.
func (u *Upstream) Crate(ctx context.Context, name, version, cksum string) ([]byte, error) {
	const op = "mirror.Crate"
	if err := registry.ValidateCrateName(name); err != nil {
		return nil, registry.E(op, registry.EINVALID, "", err)
	}
	if err := registry.ValidateVersion(version); err != nil {
		return nil, registry.E(op, registry.EINVALID, "", err)
	}
	if err := registry.ValidateCksum(cksum); err != nil {
		return nil, registry.E(op, registry.EINVALID, "", err)
	}
	dl, err := u.downloadTemplate(ctx)
	if err != nil {
		return nil, err
	}
	target, err := url.Parse(downloadURL(dl, name, version, cksum))
	if err != nil {
		return nil, registry.E(op, registry.ETEMPORARY, "upstream "+u.cfg.URL+" has a download URL that does not parse", err)
	}
	resp, err := u.get(ctx, target, nil)
	if err != nil {
		return nil, registry.E(op, registry.KindOf(err), name+"@"+version, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound, http.StatusGone, http.StatusUnavailableForLegalReasons:
		return nil, registry.Errorf(op, registry.ENOTFOUND, "upstream %s has no archive of %s@%s", u.cfg.URL, name, version)
	default:
		return nil, registry.Errorf(op, registry.ETEMPORARY, "upstream %s answered %s for the archive of %s@%s", u.cfg.URL, resp.Status, name, version)
	}
	b, err := readCapped(resp, u.cfg.MaxCrateBytes, "the archive of "+name+"@"+version)
	if err != nil {
		return nil, registry.E(op, registry.KindOf(err), "upstream "+u.cfg.URL, err)
	}
	sum := sha256.Sum256(b)
	if got := hex.EncodeToString(sum[:]); got != cksum {
		return nil, registry.Errorf(op, registry.EINVALID, "upstream %s served an archive of %s@%s whose sha256 is %s, not the index's cksum %s; it was not kept", u.cfg.URL, name, version, got, cksum)
	}
	return b, nil
}

// downloadURL fills Cargo's download template (the Cargo book, "Index
// format"): with none of its markers, "/{crate}/{version}/download" is
// appended. Every value is a checked name, version or checksum, so none
// can change the URL's structure.
func downloadURL(dl, name, version, cksum string) string {
	markers := []string{"{crate}", "{version}", "{prefix}", "{lowerprefix}", "{sha256-checksum}"}
	has := false
	for _, m := range markers {
		if strings.Contains(dl, m) {
			has = true
		}
	}
	if !has {
		return strings.TrimRight(dl, "/") + "/" + name + "/" + version + "/download"
	}
	prefix := indexDir(name)
	r := strings.NewReplacer("{crate}", name, "{version}", version, "{prefix}", prefix,
		"{lowerprefix}", strings.ToLower(prefix), "{sha256-checksum}", cksum)
	return r.Replace(dl)
}

// indexDir is the directory part of a crate's index path, in the name's own
// case, as the {prefix} marker wants it.
func indexDir(name string) string {
	switch len(name) {
	case 1:
		return "1"
	case 2:
		return "2"
	case 3:
		return "3/" + name[:1]
	}
	return name[:2] + "/" + name[2:4]
}

// indexConfig is an upstream's config.json.
type indexConfig struct {
	DL           string `json:"dl"`
	AuthRequired bool   `json:"auth-required"`
}

// downloadTemplate returns the upstream's "dl", from config.json, read
// again after configTTL.
func (u *Upstream) downloadTemplate(ctx context.Context) (string, error) {
	const op = "mirror.config"
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.dl != "" && time.Since(u.dlAt) < configTTL {
		return u.dl, nil
	}
	dl, err := u.fetchConfig(ctx)
	if err != nil {
		if u.dl != "" {
			return u.dl, nil // the last good one, while the upstream is down
		}
		return "", registry.E(op, registry.KindOf(err), "", err)
	}
	u.dl, u.dlAt = dl, time.Now()
	return dl, nil
}

func (u *Upstream) fetchConfig(ctx context.Context) (string, error) {
	const op = "mirror.config"
	resp, err := u.get(ctx, u.base.ResolveReference(&url.URL{Path: "config.json"}), nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", registry.Errorf(op, registry.ETEMPORARY, "upstream %s answered %s for config.json", u.cfg.URL, resp.Status)
	}
	b, err := readCapped(resp, maxConfigBytes, "config.json")
	if err != nil {
		return "", err
	}
	var c indexConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return "", registry.E(op, registry.ETEMPORARY, "upstream "+u.cfg.URL+" serves a config.json that is not JSON", err)
	}
	if c.AuthRequired {
		return "", registry.Errorf(op, registry.EUNSUPPORTED, "upstream %s requires authentication; only public indexes can be mirrored", u.cfg.URL)
	}
	p, err := url.Parse(c.DL)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" || p.User != nil || registry.ValidateUpstreamURL(c.DL) != nil {
		return "", registry.Errorf(op, registry.ETEMPORARY, "upstream %s serves a config.json whose dl %q is not an http(s) URL", u.cfg.URL, short(c.DL))
	}
	return c.DL, nil
}

// get makes one GET request; transport failures are classified as
// ETIMEOUT, EFORBIDDEN (a redirect elsewhere) or ETEMPORARY.
func (u *Upstream) get(ctx context.Context, target *url.URL, hdr http.Header) (*http.Response, error) {
	const op = "mirror.get"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
	if err != nil {
		return nil, registry.E(op, registry.EINTERNAL, "building a request", err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", u.cfg.UserAgent)
	resp, err := u.client.Do(req)
	if err != nil {
		return nil, classify(op, u.cfg.URL, err)
	}
	return resp, nil
}

func classify(op, upstream string, err error) error {
	var rerr *registry.Error
	if errors.As(err, &rerr) {
		return registry.E(op, rerr.Kind, "", err)
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return registry.E(op, registry.ETIMEOUT, "upstream "+upstream+" did not answer in time", err)
	}
	if errors.Is(err, context.Canceled) {
		return registry.E(op, registry.ECANCELED, "", err)
	}
	return registry.E(op, registry.ETEMPORARY, "upstream "+upstream+" cannot be reached", err)
}

// readCapped reads a response body of at most max bytes.
func readCapped(resp *http.Response, max int64, what string) ([]byte, error) {
	const op = "mirror.read"
	if resp.ContentLength > max {
		return nil, registry.Errorf(op, registry.ETOOLARGE, "%s is %d bytes; at most %d are accepted", what, resp.ContentLength, max)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, classify(op, "", err)
	}
	if int64(len(b)) > max {
		return nil, registry.Errorf(op, registry.ETOOLARGE, "%s is larger than %d bytes, the most accepted", what, max)
	}
	return b, nil
}
