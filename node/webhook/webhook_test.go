package webhook

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// memStore keeps what the dispatcher saves as JSON, as a real store would
// (so nothing is shared by reference between saves and loads). The node's
// store is tested with the node.
type memStore struct {
	mu   sync.Mutex
	blob []byte
}

type saved struct {
	Subs    []Subscription
	Pending []Pending
	Log     []Delivery
}

func (m *memStore) LoadWebhooks(context.Context) ([]Subscription, []Pending, []Delivery, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var s saved
	if m.blob != nil {
		if err := json.Unmarshal(m.blob, &s); err != nil {
			return nil, nil, nil, err
		}
	}
	return s.Subs, s.Pending, s.Log, nil
}

func (m *memStore) SaveWebhooks(_ context.Context, subs []Subscription, pending []Pending, log []Delivery) error {
	b, err := json.Marshal(saved{subs, pending, log})
	m.mu.Lock()
	m.blob = b
	m.mu.Unlock()
	return err
}

func (m *memStore) pending(t *testing.T) []Pending {
	_, p, _, err := m.LoadWebhooks(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// receiver is a real HTTP endpoint that checks every delivery's signature
// and answers with the next status of its script (200 once it runs out).
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	secret func() string
	mu     sync.Mutex
	script []int
	got    []received
}

type received struct {
	event    Event
	delivery string
	verified error
}

func newReceiver(t *testing.T, script ...int) *receiver {
	r := &receiver{t: t, script: script}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var ev Event
		json.Unmarshal(body, &ev)
		r.mu.Lock()
		secret := ""
		if r.secret != nil {
			secret = r.secret()
		}
		r.got = append(r.got, received{ev, req.Header.Get(HeaderDelivery), Verify(secret, req.Header, body, time.Now(), time.Minute)})
		status := 200
		if len(r.script) > 0 {
			status, r.script = r.script[0], r.script[1:]
		}
		r.mu.Unlock()
		w.WriteHeader(status)
		io.WriteString(w, strings.Repeat("x", 2000))
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) deliveries() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func fast(n int) time.Duration { return 20 * time.Millisecond }

func newDispatcher(t *testing.T, st Store, opt Options) *Dispatcher {
	t.Helper()
	if opt.Backoff == nil {
		opt.Backoff = fast
	}
	d, err := New(context.Background(), st, "12D3KooWNode", opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// TestDeliverySignedAndRetried: a real receiver checks the signature of
// every delivery; a 500 is retried under the same delivery ID, and the log
// records both attempts truthfully.
func TestDeliverySignedAndRetried(t *testing.T) {
	ctx := context.Background()
	rcv := newReceiver(t, 500)
	st := &memStore{}
	d := newDispatcher(t, st, Options{})
	sub, err := d.Subscribe(ctx, rcv.srv.URL+"/hook", []string{EventPublish, EventYank}, "alice")
	if err != nil {
		t.Fatal(err)
	}
	rcv.secret = func() string { return sub.Secret }
	if len(sub.Secret) != 64 || d.Subscriptions()[0].Secret != "" {
		t.Fatalf("the secret is shown at creation only: %q / %q", sub.Secret, d.Subscriptions()[0].Secret)
	}
	d.Emit(ctx, Event{Type: EventReport, Subject: "a@1.0.0"}) // not subscribed
	d.Emit(ctx, Event{Type: EventPublish, Subject: "serde@1.0.0", Data: json.RawMessage(`{"version":"1.0.0"}`)})
	eventually(t, "two attempts", func() bool { return len(rcv.deliveries()) >= 2 })
	got := rcv.deliveries()
	if len(got) != 2 {
		t.Fatalf("%d deliveries, want 2 (one failed, one retried): %+v", len(got), got)
	}
	for _, g := range got {
		if g.verified != nil {
			t.Errorf("signature: %v", g.verified)
		}
		if g.event.Type != EventPublish || g.event.Subject != "serde@1.0.0" || g.event.Node != "12D3KooWNode" || string(g.event.Data) != `{"version":"1.0.0"}` {
			t.Errorf("payload %+v", g.event)
		}
	}
	if got[0].delivery != got[1].delivery || got[0].event.ID != got[1].event.ID {
		t.Errorf("a retry changed the delivery or event ID: %+v", got)
	}
	eventually(t, "the log", func() bool { return len(d.Deliveries("", 10)) == 2 })
	log := d.Deliveries(sub.ID, 10) // newest first
	if log[1].Attempt != 1 || log[1].Status != 500 || log[1].Final != "" ||
		log[0].Attempt != 2 || log[0].Status != 200 || log[0].Final != "delivered" || len(log[0].Response) != maxResponseLog {
		t.Errorf("delivery log %+v", log)
	}
	eventually(t, "the delivered event to leave the saved queue", func() bool { return len(st.pending(t)) == 0 })
	// With the wrong secret the receiver's check fails.
	if err := Verify("not-the-secret", http.Header{HeaderTimestamp: {"1"}, HeaderSignature: {Sign(sub.Secret, 1, []byte("x"))}}, []byte("x"), time.Unix(1, 0), time.Minute); err == nil {
		t.Error("Verify accepted another secret")
	}
	if err := Verify(sub.Secret, http.Header{HeaderTimestamp: {"1"}, HeaderSignature: {Sign(sub.Secret, 1, []byte("x"))}}, []byte("x"), time.Unix(1000, 0), time.Minute); err == nil {
		t.Error("Verify accepted a replay 999 s old")
	}
}

// TestDroppedAfterTheLastAttempt, and redirects are not followed.
func TestDroppedAfterTheLastAttempt(t *testing.T) {
	ctx := context.Background()
	moved := newReceiver(t) // where a redirect would lead
	rcv := httptest.NewServer(http.RedirectHandler(moved.srv.URL, http.StatusFound))
	defer rcv.Close()
	d := newDispatcher(t, &memStore{}, Options{MaxAttempts: 3})
	sub, err := d.Subscribe(ctx, rcv.URL, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	d.Emit(ctx, Event{Type: EventGate, Subject: "x@1.0.0"})
	eventually(t, "three attempts", func() bool { return len(d.Deliveries(sub.ID, 10)) == 3 })
	log := d.Deliveries(sub.ID, 10)
	if log[0].Final != "dropped" || log[0].Status != http.StatusFound || log[2].Final != "" {
		t.Errorf("log %+v", log)
	}
	if n := len(moved.deliveries()); n != 0 {
		t.Errorf("a redirect was followed %d times", n)
	}
}

// TestPendingSurvivesARestart: a delivery whose receiver is down waits in
// the store and is made after the dispatcher starts again.
func TestPendingSurvivesARestart(t *testing.T) {
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: every attempt fails
	st := &memStore{}
	d, err := New(ctx, st, "n", Options{Backoff: func(int) time.Duration { return time.Hour }})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := d.Subscribe(ctx, "http://"+addr+"/h", []string{EventYank}, "")
	if err != nil {
		t.Fatal(err)
	}
	d.Emit(ctx, Event{Type: EventYank, Subject: "a@1.0.0"})
	eventually(t, "a failed attempt", func() bool { return len(d.Deliveries("", 1)) == 1 })
	d.Close()
	if p := st.pending(t); len(p) != 1 || p[0].Attempt != 1 {
		t.Fatalf("pending after close: %+v", p)
	}
	// The receiver comes up; the restarted dispatcher delivers.
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	var got []string
	var mu sync.Mutex
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Get(HeaderEvent))
		mu.Unlock()
	})}
	go srv.Serve(ln)
	defer srv.Close()
	// The pending delivery is due in an hour; a restart with due times in
	// the past (the node was down) delivers at once.
	_, p, l, _ := st.LoadWebhooks(ctx)
	p[0].Next = time.Now().Add(-time.Second)
	st.SaveWebhooks(ctx, []Subscription{sub}, p, l)
	d2 := newDispatcher(t, st, Options{})
	eventually(t, "the resumed delivery", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 1 })
	eventually(t, "the log", func() bool { return len(d2.Deliveries("", 10)) == 2 })
	if log := d2.Deliveries("", 10); log[0].Attempt != 2 || log[0].Final != "delivered" {
		t.Errorf("log after restart %+v", log)
	}
}

// TestHostileSubscriptions: what cannot be an endpoint, unknown events,
// too many subscriptions, a flood of events and an unknown ID.
func TestHostileSubscriptions(t *testing.T) {
	ctx := context.Background()
	d := newDispatcher(t, &memStore{}, Options{Backoff: func(int) time.Duration { return time.Hour }})
	for _, u := range []string{"", "ftp://x/", "/relative", "http://user:pw@example.test/", "http://x/#frag", "http://" + strings.Repeat("a", 3000), "javascript:alert(1)"} {
		if _, err := d.Subscribe(ctx, u, nil, ""); registry.KindOf(err) != registry.EINVALID {
			t.Errorf("URL %q: %v", clip(u, 30), err)
		}
	}
	if _, err := d.Subscribe(ctx, "http://127.0.0.1:1/", []string{"publish", "everything"}, ""); registry.KindOf(err) != registry.EINVALID {
		t.Errorf("unknown event: %v", err)
	}
	for i := 0; i < MaxSubscriptions; i++ {
		if _, err := d.Subscribe(ctx, "http://127.0.0.1:1/", []string{EventPublish}, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.Subscribe(ctx, "http://127.0.0.1:1/", nil, ""); registry.KindOf(err) != registry.ECONFLICT {
		t.Errorf("subscription %d: %v", MaxSubscriptions+1, err)
	}
	// 100 subscriptions × 20 events: the queue holds maxQueued, the rest
	// are logged as dropped.
	for i := 0; i < 20; i++ {
		d.Emit(ctx, Event{Type: EventPublish, Subject: "a@1.0.0"})
	}
	d.mu.Lock()
	queued, logged := len(d.pending), len(d.dlog)
	d.mu.Unlock()
	if queued > maxQueued || queued+logged < 2000 {
		t.Errorf("after 2000 deliveries: %d queued (at most %d), %d logged", queued, maxQueued, logged)
	}
	if err := d.Unsubscribe(ctx, "wh_nosuch"); registry.KindOf(err) != registry.ENOTFOUND {
		t.Errorf("unknown subscription: %v", err)
	}
	if _, err := d.Ping(ctx, "wh_nosuch"); registry.KindOf(err) != registry.ENOTFOUND {
		t.Errorf("ping of an unknown subscription: %v", err)
	}
	first := d.Subscriptions()[0].ID
	if err := d.Unsubscribe(ctx, first); err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	for _, p := range d.pending {
		if p.Subscription == first {
			t.Errorf("an unsubscribed endpoint keeps pending deliveries")
			break
		}
	}
	d.mu.Unlock()
}

// TestPingDeliversATestEvent to one subscription only.
func TestPingDeliversATestEvent(t *testing.T) {
	ctx := context.Background()
	a, b := newReceiver(t), newReceiver(t)
	d := newDispatcher(t, &memStore{}, Options{})
	sa, _ := d.Subscribe(ctx, a.srv.URL, []string{EventGate}, "")
	d.Subscribe(ctx, b.srv.URL, []string{EventGate}, "")
	a.secret = func() string { return sa.Secret }
	id, err := d.Ping(ctx, sa.ID)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the ping", func() bool { return len(a.deliveries()) == 1 })
	got := a.deliveries()[0]
	if got.event.Type != EventPing || got.delivery != id || got.verified != nil || len(b.deliveries()) != 0 {
		t.Errorf("ping: %+v, other receiver %d", got, len(b.deliveries()))
	}
}

func TestBackoffDoublesToItsCap(t *testing.T) {
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}
	for i, w := range want {
		if got := Backoff(i + 1); got != w {
			t.Errorf("Backoff(%d) = %s, want %s", i+1, got, w)
		}
	}
	if Backoff(30) != maxBackoff {
		t.Errorf("Backoff(30) = %s", Backoff(30))
	}
}
