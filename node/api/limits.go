package api

import (
	"crypto/sha256"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// Options are a Server's access rules and protections. The zero value is an
// open node without rate limits, with the default body and response
// timeouts.
type Options struct {
	// AuthRequired makes the node private: every request but GET /health
	// needs a valid token, and an anonymous one is answered 401 with a
	// WWW-Authenticate challenge.
	AuthRequired bool
	// Rate limits requests per client address and per presented token.
	Rate RateLimits
	// Body bounds how long a client may take to send a request body.
	Body BodyTimeouts
}

// RateLimits are token buckets per client address and per presented
// credential. A zero rate turns that limit off.
//
// Every request is charged to its client address (the connection's IP;
// IPv6 addresses by their /64, since one host commonly holds a whole /64).
// A request that carries an Authorization header is charged to that
// credential too, keyed by its SHA-256: the raw token is never kept.
// Forwarding headers (X-Forwarded-For) are not trusted, so behind a reverse
// proxy the proxy is one client: limit there instead.
type RateLimits struct {
	PerAddr    rate.Limit // requests per second per client address
	AddrBurst  int        // requests a client address may send at once
	PerToken   rate.Limit // requests per second per credential
	TokenBurst int        // requests a credential may send at once
	// MaxEntries bounds each table of buckets (default 65,536). Buckets
	// that have refilled are dropped first: they are the same as new ones.
	MaxEntries int
}

// Default rate limits: generous enough for cargo fetching hundreds of
// index files at once and for scripted use, low enough that one client
// cannot monopolise a node.
const (
	DefaultAddrRate   = 100
	DefaultAddrBurst  = 1000
	DefaultTokenRate  = 100
	DefaultTokenBurst = 1000
	DefaultMaxEntries = 65536
)

// BodyTimeouts bound the time a client takes to send a request body and
// to take the response. They are per request deadlines on the connection
// (http.ResponseController), so a large upload or download at a normal
// speed is never cut, while a stalled or trickling one is.
type BodyTimeouts struct {
	// Idle is how long a body read or a response write may wait for
	// progress (default 30s).
	Idle time.Duration
	// Grace is the time a body may take regardless of its size
	// (default 60s). After it, the body must keep arriving at MinRate on
	// average since the request began, or the request is cut.
	Grace time.Duration
	// MinRate in bytes per second (default 4 KiB/s) also extends a
	// response write's deadline by its size.
	MinRate int64
}

// Default body timeouts.
const (
	DefaultBodyIdle    = 30 * time.Second
	DefaultBodyGrace   = 60 * time.Second
	DefaultBodyMinRate = 4 << 10
)

func (b *BodyTimeouts) defaults() {
	if b.Idle <= 0 {
		b.Idle = DefaultBodyIdle
	}
	if b.Grace <= 0 {
		b.Grace = DefaultBodyGrace
	}
	if b.MinRate <= 0 {
		b.MinRate = DefaultBodyMinRate
	}
}

// deadlineBody is a request body whose every read has a deadline on the
// connection: at most Idle from now, and never later than Grace plus the
// bytes read so far at MinRate after the request began. A read error is
// the client's fault (a stall, a broken chunked encoding, a body shorter
// than its Content-Length), so it is EINVALID: 400, never 500.
type deadlineBody struct {
	io.ReadCloser
	rc    *http.ResponseController
	t     BodyTimeouts
	start time.Time
	read  int64
	done  bool
}

func newDeadlineBody(rc *http.ResponseController, r *http.Request, t BodyTimeouts) *deadlineBody {
	b := &deadlineBody{ReadCloser: r.Body, rc: rc, t: t, start: time.Now()}
	// Bound also the draining of a body the handler never reads.
	b.setDeadline()
	return b
}

func (b *deadlineBody) setDeadline() {
	now := time.Now()
	d := now.Add(b.t.Idle)
	limit := b.start.Add(b.t.Grace + time.Duration(float64(b.read)/float64(b.t.MinRate)*float64(time.Second)))
	if limit.Before(d) {
		d = limit
	}
	_ = b.rc.SetReadDeadline(d)
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	if b.done {
		return b.ReadCloser.Read(p)
	}
	b.setDeadline()
	n, err := b.ReadCloser.Read(p)
	b.read += int64(n)
	if err == io.EOF {
		// The whole body is in: a deadline left behind would cut the
		// connection's background read while the handler works.
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
		return n, err
	}
	if err != nil {
		const op = "api.body"
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
		case errors.Is(err, os.ErrDeadlineExceeded):
			err = registry.E(op, registry.EINVALID, "the request body stopped arriving (the node waits "+b.t.Idle.String()+
				" for progress and needs at least "+strconv.FormatInt(b.t.MinRate, 10)+" bytes/s after "+b.t.Grace.String()+")", err)
		default:
			err = registry.E(op, registry.EINVALID, "the request body is broken: shorter than its Content-Length, or a malformed chunked encoding", err)
		}
	}
	return n, err
}

// deadlineWriter gives each response write a deadline: Idle plus the
// write's size at MinRate, so a client that stops reading its answer is cut
// while a slow one still gets a large download.
type deadlineWriter struct {
	*statusWriter
	rc *http.ResponseController
	t  BodyTimeouts
}

func (w *deadlineWriter) arm(n int) {
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.t.Idle + time.Duration(float64(n)/float64(w.t.MinRate)*float64(time.Second))))
}

func (w *deadlineWriter) WriteHeader(code int) {
	w.arm(0)
	w.statusWriter.WriteHeader(code)
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	w.arm(len(p))
	return w.statusWriter.Write(p)
}

func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.statusWriter }

// limiter is a bounded table of token buckets.
type limiter struct {
	rate  rate.Limit
	burst int
	max   int
	full  time.Duration // time for an empty bucket to refill

	mu        sync.Mutex
	m         map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
}

func newLimiter(r rate.Limit, burst, max int) *limiter {
	if r <= 0 {
		return nil
	}
	if burst <= 0 {
		burst = int(math.Ceil(float64(r)))
	}
	if max <= 0 {
		max = DefaultMaxEntries
	}
	full := time.Duration(float64(burst) / float64(r) * float64(time.Second))
	return &limiter{rate: r, burst: burst, max: max, full: full, m: make(map[string]*bucket)}
}

// allow takes one token from key's bucket. When there is none it returns
// how long until there is.
func (l *limiter) allow(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.m[key]
	if b == nil {
		if len(l.m) >= l.max {
			l.evict(now)
		}
		b = &bucket{lim: rate.NewLimiter(l.rate, l.burst)}
		l.m[key] = b
	}
	b.last = now
	res := b.lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

// evict makes room for one bucket: it drops every bucket idle long enough
// to have refilled (at most one such sweep a second), and otherwise, of a
// few buckets sampled by map order, the one holding the most tokens (the
// least recently used among equals), so that a flood of new keys costs
// O(1) each, never grows the table, and never hands a client that is
// being limited (an empty bucket) a fresh one while fuller buckets exist.
func (l *limiter) evict(now time.Time) {
	if now.Sub(l.lastSweep) >= time.Second {
		l.lastSweep = now
		for k, b := range l.m {
			if now.Sub(b.last) >= l.full {
				delete(l.m, k)
			}
		}
		if len(l.m) < l.max {
			return
		}
	}
	var oldK string
	var oldT time.Time
	oldTokens := -1.0
	i := 0
	for k, b := range l.m {
		tok := b.lim.TokensAt(now)
		if i == 0 || tok > oldTokens || (tok == oldTokens && b.last.Before(oldT)) {
			oldK, oldT, oldTokens = k, b.last, tok
		}
		if i++; i == 8 {
			break
		}
	}
	delete(l.m, oldK)
}

func (l *limiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}

// addrKey is the rate-limit key of a client: its IP, or an IPv6 /64.
func addrKey(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return "a:" + host
	}
	if v4 := ip.To4(); v4 != nil {
		return "a:" + v4.String()
	}
	return "a:" + ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// credentialKey is the rate-limit key of a presented credential: a hash,
// so the table never holds a token.
func credentialKey(header string) string {
	tok := strings.TrimSpace(header)
	if t, ok := strings.CutPrefix(tok, "Bearer "); ok {
		tok = strings.TrimSpace(t)
	}
	sum := sha256.Sum256([]byte(tok))
	return string(sum[:16])
}

// rateLimit charges the request to its address and credential. It returns
// an EBUSY error and sets Retry-After when either is over its limit.
func (s *Server) rateLimit(w http.ResponseWriter, r *http.Request) error {
	now := time.Now()
	var wait time.Duration
	var who string
	if s.byAddr != nil {
		if ok, d := s.byAddr.allow(addrKey(r.RemoteAddr), now); !ok {
			wait, who = d, "this client address"
		}
	}
	if h := r.Header.Get("Authorization"); h != "" && s.byToken != nil && wait == 0 {
		if ok, d := s.byToken.allow(credentialKey(h), now); !ok {
			wait, who = d, "this token"
		}
	}
	if wait == 0 {
		return nil
	}
	secs := int(math.Ceil(wait.Seconds()))
	if secs < 1 {
		secs = 1
	}
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	return registry.Errorf("api.rateLimit", registry.EBUSY, "too many requests from %s; retry after %d s", who, secs)
}

func (w *deadlineWriter) Flush() {
	w.arm(4 << 10)
	w.statusWriter.Flush()
}
