// Package webhook delivers a node's events (a publish, a yank, a new
// report, a change of verdict or gate) to the HTTP endpoints people
// subscribe: JSON payloads signed with HMAC-SHA256, retried with backoff,
// each attempt written to a delivery log.
//
// The contract a receiver relies on (docs/API.md, "Webhooks"):
//
//   - POST with Content-Type application/json; the body is an Event.
//   - Wcr-Event names the event type, Wcr-Delivery the delivery (the same
//     on every retry of it), Wcr-Timestamp the Unix seconds of the attempt.
//   - Wcr-Signature is "sha256=" and the lowercase hex HMAC-SHA256, keyed by
//     the subscription's secret, of Wcr-Timestamp, a ".", and the body. A
//     receiver recomputes it (Verify does) and refuses stale timestamps, so
//     a captured delivery cannot be replayed later.
//   - A 2xx answer ends the delivery. Anything else, or no answer within the
//     timeout, is retried after 1 s, 2 s, 4 s, … (doubling, at most 5 min)
//     up to MaxAttempts; then the delivery is dropped, and the log says so.
//   - Redirects are not followed: a receiver answers where it was asked.
//
// Pending deliveries are kept by the Store (saved within 100 ms of a
// change, and on Close), so a restart resumes them.
// Queues are bounded in count and bytes: an event that would exceed them is
// dropped for that subscription and logged, never held without limit.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// Event types.
const (
	EventPublish = "publish" // a release this node serves appeared (published here or by a trusted peer)
	EventYank    = "yank"    // a release was yanked or unyanked
	EventReport  = "report"  // a new trusted report on a release
	EventVerdict = "verdict" // a release's wasm verdict changed
	EventGate    = "gate"    // a release's gate changed
	EventPing    = "ping"    // a test delivery, sent on request
)

// Types lists the event types a subscription may ask for.
var Types = []string{EventPublish, EventYank, EventReport, EventVerdict, EventGate}

// Headers of a delivery.
const (
	HeaderEvent     = "Wcr-Event"
	HeaderDelivery  = "Wcr-Delivery"
	HeaderTimestamp = "Wcr-Timestamp"
	HeaderSignature = "Wcr-Signature"
)

// Limits.
const (
	MaxSubscriptions = 100
	MaxAttempts      = 8
	maxURLLen        = 2048
	maxPayload       = 64 << 10
	maxQueued        = 1000    // pending deliveries, all subscriptions
	maxQueuedBytes   = 8 << 20 // their payloads
	maxLog           = 1000    // delivery log entries kept
	maxResponseLog   = 512     // bytes of a response body kept in the log
	attemptTimeout   = 10 * time.Second
	firstBackoff     = time.Second
	maxBackoff       = 5 * time.Minute
)

// Event is the body of a delivery.
type Event struct {
	ID      string          `json:"id"`   // unique per event
	Type    string          `json:"type"` // one of the Event* constants
	Time    time.Time       `json:"time"` // when this node saw it
	Node    string          `json:"node"` // the peer ID of the node that sends it
	Subject string          `json:"subject,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"` // type-specific, documented in docs/API.md
}

// Subscription is an endpoint and the events it wants. Secret is shown once,
// when the subscription is created, and never listed.
type Subscription struct {
	ID      string    `json:"id"`
	URL     string    `json:"url"`
	Events  []string  `json:"events"`
	Created time.Time `json:"created"`
	By      string    `json:"by,omitempty"` // the identity that created it
	Secret  string    `json:"secret,omitempty"`
}

// Delivery is one attempt to deliver an event, as the log shows it.
type Delivery struct {
	ID           string    `json:"id"` // the delivery (shared by its attempts)
	Subscription string    `json:"subscription"`
	Event        string    `json:"event"`
	Type         string    `json:"type"`
	Attempt      int       `json:"attempt"`
	Time         time.Time `json:"time"`
	Status       int       `json:"status,omitempty"` // the HTTP status, 0 when there was no answer
	Error        string    `json:"error,omitempty"`
	Response     string    `json:"response,omitempty"` // the start of the answer's body
	DurationMS   int64     `json:"duration_ms"`
	Final        string    `json:"final,omitempty"` // "delivered" or "dropped" on the last attempt
}

// Pending is a delivery waiting for its next attempt.
type Pending struct {
	ID           string    `json:"id"`
	Subscription string    `json:"subscription"`
	Event        Event     `json:"event"`
	Attempt      int       `json:"attempt"` // attempts made so far
	Next         time.Time `json:"next"`
}

// Store keeps subscriptions, pending deliveries and the delivery log. It is
// called from one goroutine at a time.
type Store interface {
	LoadWebhooks(ctx context.Context) (subs []Subscription, pending []Pending, log []Delivery, err error)
	SaveWebhooks(ctx context.Context, subs []Subscription, pending []Pending, log []Delivery) error
}

// Sign is the value of HeaderSignature for body sent at ts.
func Sign(secret string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a delivery's signature and that its timestamp is within
// tolerance of now; it is what a receiver written in Go calls.
func Verify(secret string, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	ts, err := strconv.ParseInt(h.Get(HeaderTimestamp), 10, 64)
	if err != nil {
		return errors.New("webhook: no valid " + HeaderTimestamp + " header")
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("webhook: timestamp %d is %s away from now", ts, d.Round(time.Second))
	}
	want := Sign(secret, ts, body)
	if !hmac.Equal([]byte(want), []byte(h.Get(HeaderSignature))) {
		return errors.New("webhook: the signature does not match")
	}
	return nil
}

// Dispatcher holds the subscriptions and delivers events to them.
type Dispatcher struct {
	store   Store
	node    string
	log     *slog.Logger
	client  *http.Client
	now     func() time.Time
	backoff func(int) time.Duration
	tries   int
	onTry   func(string)

	mu      sync.Mutex
	subs    []Subscription
	pending []Pending
	dlog    []Delivery
	queued  int  // bytes of pending payloads
	dirty   bool // changed since the last save
	wake    chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{}
	flushed chan struct{}
}

// Options tune a Dispatcher; zero values take the defaults.
type Options struct {
	Client      *http.Client            // default: no redirects, attemptTimeout
	Now         func() time.Time        // default time.Now
	Backoff     func(int) time.Duration // default Backoff
	MaxAttempts int                     // default MaxAttempts
	Logger      *slog.Logger
	// OnAttempt, if set, is told the result of every attempt: delivered,
	// failed (to be retried) or dropped.
	OnAttempt func(result string)
}

// New loads the subscriptions and pending deliveries and starts delivering.
// Close stops it.
func New(ctx context.Context, st Store, nodeID string, opt Options) (*Dispatcher, error) {
	subs, pending, dlog, err := st.LoadWebhooks(ctx)
	if err != nil {
		return nil, registry.E("webhook.New", registry.EINTERNAL, "cannot load the webhook subscriptions", err)
	}
	d := &Dispatcher{store: st, node: nodeID, log: opt.Logger, client: opt.Client, now: opt.Now, backoff: opt.Backoff, tries: opt.MaxAttempts, onTry: opt.OnAttempt,
		subs: subs, pending: pending, dlog: dlog, wake: make(chan struct{}, 1), done: make(chan struct{})}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.now == nil {
		d.now = time.Now
	}
	if d.backoff == nil {
		d.backoff = Backoff
	}
	if d.tries <= 0 {
		d.tries = MaxAttempts
	}
	if d.client == nil {
		d.client = &http.Client{Timeout: attemptTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	d.recount()
	d.ctx, d.cancel = context.WithCancel(context.Background())
	d.flushed = make(chan struct{})
	go d.loop()
	go d.flusher()
	return d, nil
}

// Close stops delivering and saves what changed; pending deliveries stay
// in the store.
func (d *Dispatcher) Close() {
	d.cancel()
	<-d.done
	<-d.flushed
}

// flushInterval bounds how long a queued event or a logged attempt waits
// to be saved: a crash loses at most that much (an event queued in the last
// 100 ms, or the record of an attempt, which is then made again).
const flushInterval = 100 * time.Millisecond

// flusher saves the state when it changed, at most every flushInterval, so
// a burst of events costs one write, not one per event.
func (d *Dispatcher) flusher() {
	defer close(d.flushed)
	t := time.NewTicker(flushInterval)
	defer t.Stop()
	for {
		select {
		case <-d.ctx.Done():
			<-d.done // the loop has made its last change
			d.flush()
			return
		case <-t.C:
			d.flush()
		}
	}
}

func (d *Dispatcher) flush() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.dirty {
		return
	}
	if err := d.saveLocked(context.Background()); err != nil {
		d.log.Error("saving webhook deliveries", "err", err)
	}
}

// CheckURL refuses what cannot be an endpoint: not absolute http(s), with
// credentials, or too long.
func CheckURL(s string) error {
	const op = "webhook.CheckURL"
	if len(s) > maxURLLen {
		return registry.Errorf(op, registry.EINVALID, "the URL is longer than %d bytes", maxURLLen)
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return registry.Errorf(op, registry.EINVALID, "%q is not an absolute http or https URL", clip(s, 100))
	}
	if u.User != nil {
		return registry.Errorf(op, registry.EINVALID, "the URL carries credentials; put them in the receiver's configuration, not in the URL")
	}
	if u.Fragment != "" {
		return registry.Errorf(op, registry.EINVALID, "the URL has a fragment (#…), which is never sent")
	}
	return nil
}

// Subscribe adds a subscription and returns it with its secret, the only
// time the secret is shown.
func (d *Dispatcher) Subscribe(ctx context.Context, rawURL string, events []string, by string) (Subscription, error) {
	const op = "webhook.Subscribe"
	if err := CheckURL(rawURL); err != nil {
		return Subscription{}, err
	}
	if len(events) == 0 {
		events = slices.Clone(Types)
	}
	var evs []string
	for _, e := range events {
		if !slices.Contains(Types, e) {
			return Subscription{}, registry.Errorf(op, registry.EINVALID, "no event %q; the events are %s", clip(e, 40), strings.Join(Types, ", "))
		}
		if !slices.Contains(evs, e) {
			evs = append(evs, e)
		}
	}
	slices.Sort(evs)
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.subs) >= MaxSubscriptions {
		return Subscription{}, registry.Errorf(op, registry.ECONFLICT, "this node holds %d subscriptions, its most; remove one first", MaxSubscriptions)
	}
	s := Subscription{ID: "wh_" + randomHex(8), URL: rawURL, Events: evs, Created: d.now().UTC(), By: by, Secret: randomHex(32)}
	d.subs = append(d.subs, s)
	if err := d.saveLocked(ctx); err != nil {
		d.subs = d.subs[:len(d.subs)-1]
		return Subscription{}, err
	}
	return s, nil
}

// Unsubscribe removes a subscription and its pending deliveries.
func (d *Dispatcher) Unsubscribe(ctx context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	i := slices.IndexFunc(d.subs, func(s Subscription) bool { return s.ID == id })
	if i < 0 {
		return registry.Errorf("webhook.Unsubscribe", registry.ENOTFOUND, "no webhook %q", clip(id, 40))
	}
	subs := slices.Delete(slices.Clone(d.subs), i, i+1)
	pending := slices.DeleteFunc(slices.Clone(d.pending), func(p Pending) bool { return p.Subscription == id })
	old, oldPending := d.subs, d.pending
	d.subs, d.pending = subs, pending
	if err := d.saveLocked(ctx); err != nil {
		d.subs, d.pending = old, oldPending
		return err
	}
	d.recount()
	return nil
}

// Active reports whether anyone subscribes, so that a node with no
// subscription spends nothing on events.
func (d *Dispatcher) Active() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.subs) > 0
}

// Subscriptions lists the subscriptions without their secrets.
func (d *Dispatcher) Subscriptions() []Subscription {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Subscription, len(d.subs))
	for i, s := range d.subs {
		s.Secret = ""
		s.Events = slices.Clone(s.Events)
		out[i] = s
	}
	return out
}

// Deliveries returns the newest log entries first, of one subscription or
// of all ("").
func (d *Dispatcher) Deliveries(sub string, limit int) []Delivery {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []Delivery
	for i := len(d.dlog) - 1; i >= 0 && len(out) < limit; i-- {
		if sub == "" || d.dlog[i].Subscription == sub {
			out = append(out, d.dlog[i])
		}
	}
	return out
}

// Emit queues ev for every subscription that asked for its type. It never
// blocks on a receiver; an event beyond the queue's bounds is dropped for
// that subscription, and the log says so.
func (d *Dispatcher) Emit(ctx context.Context, ev Event) {
	if ev.ID == "" {
		ev.ID = "ev_" + randomHex(8)
	}
	if ev.Time.IsZero() {
		ev.Time = d.now().UTC()
	}
	ev.Node = d.node
	d.mu.Lock()
	defer d.mu.Unlock()
	added := false
	for _, s := range d.subs {
		if !slices.Contains(s.Events, ev.Type) && ev.Type != EventPing {
			continue
		}
		added = d.enqueueLocked(s.ID, ev) || added
	}
	if added {
		d.poke()
	}
}

// Ping queues a test delivery to one subscription.
func (d *Dispatcher) Ping(ctx context.Context, id string) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !slices.ContainsFunc(d.subs, func(s Subscription) bool { return s.ID == id }) {
		return "", registry.Errorf("webhook.Ping", registry.ENOTFOUND, "no webhook %q", clip(id, 40))
	}
	ev := Event{ID: "ev_" + randomHex(8), Type: EventPing, Time: d.now().UTC(), Node: d.node,
		Data: json.RawMessage(`{"message":"a test delivery from wasm-crates-registry"}`)}
	if !d.enqueueLocked(id, ev) {
		return "", registry.Errorf("webhook.Ping", registry.EBUSY, "the delivery queue is full; try again later")
	}
	d.poke()
	return d.pending[len(d.pending)-1].ID, nil
}

func (d *Dispatcher) enqueueLocked(sub string, ev Event) bool {
	size := len(ev.Data) + len(ev.Subject) + 256
	if len(d.pending) >= maxQueued || d.queued+size > maxQueuedBytes || len(ev.Data) > maxPayload {
		d.appendLog(Delivery{ID: "dl_" + randomHex(8), Subscription: sub, Event: ev.ID, Type: ev.Type, Time: d.now().UTC(),
			Error: "dropped: the delivery queue is full", Final: "dropped"})
		return false
	}
	d.pending = append(d.pending, Pending{ID: "dl_" + randomHex(8), Subscription: sub, Event: ev, Next: d.now()})
	d.queued += size
	d.dirty = true
	return true
}

func (d *Dispatcher) recount() {
	d.queued = 0
	for _, p := range d.pending {
		d.queued += len(p.Event.Data) + len(p.Event.Subject) + 256
	}
}

func (d *Dispatcher) appendLog(e Delivery) {
	d.dirty = true
	d.dlog = append(d.dlog, e)
	if over := len(d.dlog) - maxLog; over > 0 {
		d.dlog = slices.Delete(d.dlog, 0, over)
	}
}

func (d *Dispatcher) saveLocked(ctx context.Context) error {
	if err := d.store.SaveWebhooks(ctx, d.subs, d.pending, d.dlog); err != nil {
		return registry.E("webhook", registry.EINTERNAL, "cannot save the webhooks", err)
	}
	d.dirty = false
	return nil
}

func (d *Dispatcher) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// loop delivers due deliveries one at a time, in the order they fall due.
func (d *Dispatcher) loop() {
	defer close(d.done)
	for {
		d.mu.Lock()
		var next *Pending
		for i := range d.pending {
			if next == nil || d.pending[i].Next.Before(next.Next) {
				next = &d.pending[i]
			}
		}
		var due Pending
		wait := time.Hour
		if next != nil {
			wait = next.Next.Sub(d.now())
			due = *next
		}
		d.mu.Unlock()
		if next != nil && wait <= 0 {
			if d.ctx.Err() != nil {
				return
			}
			d.attempt(due)
			continue
		}
		t := time.NewTimer(max(wait, 0))
		select {
		case <-d.ctx.Done():
			t.Stop()
			return
		case <-d.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// attempt makes one attempt of p and records it.
func (d *Dispatcher) attempt(p Pending) {
	d.mu.Lock()
	i := slices.IndexFunc(d.subs, func(s Subscription) bool { return s.ID == p.Subscription })
	var sub Subscription
	if i >= 0 {
		sub = d.subs[i]
	}
	d.mu.Unlock()
	if i < 0 {
		d.finish(p, nil)
		return
	}
	body, _ := json.Marshal(p.Event)
	start := d.now()
	ts := start.Unix()
	entry := Delivery{ID: p.ID, Subscription: sub.ID, Event: p.Event.ID, Type: p.Event.Type, Attempt: p.Attempt + 1, Time: start.UTC()}
	ctx, cancel := context.WithTimeout(d.ctx, attemptTimeout)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sub.URL, bytes.NewReader(body))
	if err == nil {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "wasm-crates-registry-webhook/1")
		req.Header.Set(HeaderEvent, p.Event.Type)
		req.Header.Set(HeaderDelivery, p.ID)
		req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
		req.Header.Set(HeaderSignature, Sign(sub.Secret, ts, body))
		var resp *http.Response
		resp, err = d.client.Do(req)
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseLog))
			resp.Body.Close()
			entry.Status, entry.Response = resp.StatusCode, strings.ToValidUTF8(string(b), "�")
		}
	}
	cancel()
	if d.ctx.Err() != nil {
		return // closing: the attempt is made again after the restart
	}
	entry.DurationMS = d.now().Sub(start).Milliseconds()
	if err != nil {
		entry.Error = clip(err.Error(), 300)
	}
	d.finish(p, &entry)
}

// finish records an attempt and either ends the delivery or schedules the
// next attempt.
func (d *Dispatcher) finish(p Pending, entry *Delivery) {
	d.mu.Lock()
	defer d.mu.Unlock()
	i := slices.IndexFunc(d.pending, func(q Pending) bool { return q.ID == p.ID })
	if i < 0 {
		return
	}
	done := entry == nil || (entry.Status >= 200 && entry.Status < 300)
	if entry != nil {
		switch {
		case done:
			entry.Final = "delivered"
		case entry.Attempt >= d.tries:
			entry.Final = "dropped"
			done = true
		}
		d.appendLog(*entry)
		if d.onTry != nil {
			result := entry.Final
			if result == "" {
				result = "failed"
			}
			d.onTry(result)
		}
	}
	if done {
		d.pending = slices.Delete(d.pending, i, i+1)
		d.recount()
	} else {
		d.pending[i].Attempt = entry.Attempt
		d.pending[i].Next = d.now().Add(d.backoff(entry.Attempt))
	}
	d.dirty = true
}

// Backoff is the wait after the n-th failed attempt: 1 s, 2 s, 4 s, …, at
// most 5 minutes.
func Backoff(n int) time.Duration {
	b := firstBackoff
	for i := 1; i < n && b < maxBackoff; i++ {
		b *= 2
	}
	return min(b, maxBackoff)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
