package federation

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/store"
)

// testNode is a federation node on loopback over its own on-disk Badger
// store.
type testNode struct {
	*Node
	t   testing.TB
	db  *store.DB
	dir string
	key registry.PrivateKey
	cfg Config
}

func testLogger() *slog.Logger {
	if lvl := os.Getenv("WCR_TEST_LOG"); lvl != "" {
		var l slog.Level
		l.UnmarshalText([]byte(lvl))
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
	}
	return slog.New(slog.DiscardHandler)
}

func testConfig(key registry.PrivateKey) Config {
	return Config{
		Key:          key,
		Listen:       []string{"/ip4/127.0.0.1/tcp/0"},
		Network:      "test",
		SyncInterval: -1,
		Logger:       testLogger(),
	}
}

// startNode starts a node on a fresh store (or on dir, reopening it).
func startNode(t testing.TB, dir string, key registry.PrivateKey, edit func(*Config)) *testNode {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	if key == nil {
		key, _ = registry.GenerateKey(nil)
	}
	db, err := store.Open(dir, store.Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(key)
	if edit != nil {
		edit(&cfg)
	}
	n, err := New(context.Background(), cfg, db)
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	tn := &testNode{Node: n, t: t, db: db, dir: dir, key: key, cfg: cfg}
	t.Cleanup(tn.stop)
	return tn
}

func (tn *testNode) stop() {
	if tn.Node != nil {
		tn.Node.Close()
		tn.db.Close()
		tn.Node = nil
	}
}

// write stores a record on the node and publishes it, as the node's API
// does.
func (tn *testNode) write(recs ...*registry.Record) {
	tn.t.Helper()
	if _, err := tn.db.PutRecords(recs); err != nil {
		tn.t.Fatal(err)
	}
	for _, r := range recs {
		if err := tn.Publish(context.Background(), r); err != nil {
			tn.t.Fatal(err)
		}
	}
}

func (tn *testNode) addr() string { return tn.Addrs()[0] }

func (tn *testNode) join(other *testNode) {
	tn.t.Helper()
	if _, err := tn.AddPeer(context.Background(), other.addr()); err != nil {
		tn.t.Fatal(err)
	}
}

func (tn *testNode) holds(id registry.ID) bool {
	_, err := tn.db.GetRecord(id)
	return err == nil
}

// eventually polls cond every 20 ms until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func converged(nodes ...*testNode) func() bool {
	return func() bool {
		d := nodes[0].Digest()
		for _, n := range nodes[1:] {
			if n.Digest() != d {
				return false
			}
		}
		for _, n := range nodes {
			if n.db.Fingerprint().Digest() != d {
				return false
			}
		}
		return true
	}
}

// release builds a release of name@version by key with a random archive.
func release(t testing.TB, key registry.PrivateKey, name, version string, at time.Time) (*registry.Record, []byte) {
	t.Helper()
	blob := make([]byte, 2048)
	rand.Read(blob)
	id := registry.Sum(blob)
	r, err := registry.Sign(key, registry.KindRelease, registry.ReleaseSubject(name, version), &registry.ReleaseBody{
		Name: name, Version: version, Cksum: id.Hex(), Blob: id.Bytes(), Size: uint64(len(blob)),
	}, at)
	if err != nil {
		t.Fatal(err)
	}
	return r, blob
}

func yank(t testing.TB, key registry.PrivateKey, subject string, yanked bool, at time.Time) *registry.Record {
	t.Helper()
	r, err := registry.Sign(key, registry.KindYank, subject, &registry.YankBody{Yanked: yanked}, at)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func review(t testing.TB, key registry.PrivateKey, subject, comment string, at time.Time) *registry.Record {
	t.Helper()
	r, err := registry.Sign(key, registry.KindReview, subject, &registry.ReviewBody{Verdict: registry.VerdictApprove, Comment: comment}, at)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestLine: three nodes A–B–C, C not connected to A. A release made on A
// reaches C by gossip through B, C fetches its blob, and the digests are
// equal (DESIGN.md §3).
func TestLine(t *testing.T) {
	a, b, c := startNode(t, "", nil, nil), startNode(t, "", nil, nil), startNode(t, "", nil, nil)
	b.join(a)
	c.join(b)
	for _, p := range c.Peers() {
		if p.ID == a.PeerID() {
			t.Fatal("C is connected to A; the test needs a line")
		}
	}
	dev, _ := registry.GenerateKey(nil)
	rel, blob := release(t, dev, "linecrate", "1.0.0", time.Now())
	a.write(rel)
	if _, err := a.db.PutBlob(blob); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the release reaches C", func() bool { return c.holds(rel.ID()) })
	eventually(t, 10*time.Second, "digests are equal", converged(a, b, c))
	eventually(t, 20*time.Second, "C fetches the blob through B", func() bool {
		ok, _ := c.db.HasBlob(registry.Sum(blob))
		return ok
	})
	got, err := c.FetchBlob(context.Background(), registry.Sum(blob))
	if err != nil || string(got) != string(blob) {
		t.Fatalf("FetchBlob on C: %v", err)
	}
	if _, err := a.FetchBlob(context.Background(), registry.Sum([]byte("nobody has this"))); registry.KindOf(err) != registry.ENOTFOUND {
		t.Fatalf("FetchBlob of an unknown blob: %v, want not_found", err)
	}

	// Once the topic peers know each other, a record travels by gossip.
	topicReady(t, a, b)
	topicReady(t, b, c)
	r := review(t, a.key, "linecrate@1.0.0", "by gossip", time.Now())
	a.write(r)
	eventually(t, 10*time.Second, "the review reaches C", func() bool { return c.holds(r.ID()) })
	if s := c.Stats(); s.GossipAccepted == 0 {
		t.Fatalf("C's stats show no gossip: %+v", s)
	}
	eventually(t, 10*time.Second, "digests are equal", converged(a, b, c))
}

// topicReady waits until x and y see each other on the gossip topic.
func topicReady(t testing.TB, x, y *testNode) {
	t.Helper()
	eventually(t, 10*time.Second, "gossip peers see each other", func() bool {
		return slices.Contains(x.topic.ListPeers(), y.host.ID()) && slices.Contains(y.topic.ListPeers(), x.host.ID())
	})
}

// stateOf resolves a crate on a node (registry.ResolveCrate) and returns
// the winners: the release, its conflicts and the live yank.
func stateOf(t testing.TB, n *testNode, name, version string) string {
	t.Helper()
	recs, err := n.db.RecordsByName(name)
	if err != nil {
		t.Fatal(err)
	}
	cs := registry.ResolveCrate(name, recs, time.Now(), registry.DefaultMaxSkew, registry.TrustEveryone(), registry.NoWitness)
	rel := cs.Releases[version]
	if rel == nil {
		return "no release"
	}
	var conflicts []string
	for _, c := range rel.Conflicts {
		conflicts = append(conflicts, c.Record.ID().String())
	}
	yank := "none"
	if rel.Yank != nil {
		yank = rel.Yank.ID().String()
	}
	return fmt.Sprintf("release=%s conflicts=%v yank=%s yanked=%v", rel.Release.ID(), conflicts, yank, rel.Yanked)
}

// TestPartitionHeal: B is cut off from A and C; both sides write, including
// a conflicting yank and unyank of the same release and two releases of one
// name@version; after reconnecting, the digests are equal and every node
// shows the same winners (DESIGN.md §2 conflict rules).
func TestPartitionHeal(t *testing.T) {
	a, b, c := startNode(t, "", nil, nil), startNode(t, "", nil, nil), startNode(t, "", nil, nil)
	b.join(a)
	c.join(b)
	dev, _ := registry.GenerateKey(nil)
	now := time.Now()
	rel, _ := release(t, dev, "split", "1.0.0", now.Add(-time.Minute))
	a.write(rel)
	eventually(t, 10*time.Second, "the release reaches C", func() bool { return c.holds(rel.ID()) })

	// Cut B off: B forgets A, C forgets B; nobody redials.
	if err := b.RemovePeer(context.Background(), a.PeerID()); err != nil {
		t.Fatal(err)
	}
	if err := c.RemovePeer(context.Background(), b.PeerID()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "B is cut off", func() bool {
		return len(b.host.Network().Peers()) == 0 && len(a.host.Network().Peers()) == 0 && len(c.host.Network().Peers()) == 0
	})

	yankA := yank(t, dev, rel.Subject, true, now)
	unyankC := yank(t, dev, rel.Subject, false, now.Add(time.Millisecond))
	a.write(yankA, review(t, a.key, rel.Subject, "on A", now))
	c.write(unyankC, review(t, c.key, rel.Subject, "on C", now))
	b.write(review(t, b.key, rel.Subject, "on B", now))
	dupA, _ := release(t, dev, "split", "2.0.0", now.Add(2*time.Millisecond))
	dupC, _ := release(t, dev, "split", "2.0.0", now.Add(3*time.Millisecond))
	a.write(dupA)
	c.write(dupC)
	var many []*registry.Record
	for i := range 200 {
		many = append(many, review(t, dev, rel.Subject, fmt.Sprintf("bulk %d", i), now.Add(time.Duration(i)*time.Millisecond)))
	}
	a.write(many[:100]...)
	c.write(many[100:]...)
	if converged(a, b, c)() {
		t.Fatal("partitioned nodes already agree")
	}

	b.join(a)
	c.join(b)
	eventually(t, 20*time.Second, "digests are equal after healing", converged(a, b, c))
	for _, v := range []string{"1.0.0", "2.0.0"} {
		sa, sb, sc := stateOf(t, a, "split", v), stateOf(t, b, "split", v), stateOf(t, c, "split", v)
		if sa != sb || sb != sc {
			t.Fatalf("%s: nodes disagree:\nA %s\nB %s\nC %s", v, sa, sb, sc)
		}
	}
	if s := stateOf(t, a, "split", "1.0.0"); s != fmt.Sprintf("release=%s conflicts=[] yank=%s yanked=false", rel.ID(), unyankC.ID()) {
		t.Fatalf("1.0.0 resolved to %s; the later unyank must win", s)
	}
	if s := stateOf(t, b, "split", "2.0.0"); s != fmt.Sprintf("release=%s conflicts=[%s] yank=none yanked=false", dupA.ID(), dupC.ID()) {
		t.Fatalf("2.0.0 resolved to %s; the first release must win and the other be a conflict", s)
	}
}

// TestLateJoiner: a fresh node joins one that holds 5,000 records and
// converges; the bytes exchanged are close to the records' own size.
func TestLateJoiner(t *testing.T) {
	recs := recordPool(t, 5000)
	var size int
	for _, r := range recs {
		size += len(r.Bytes())
	}
	dir := t.TempDir()
	db, err := store.Open(dir, store.Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.PutRecords(recs); err != nil {
		t.Fatal(err)
	}
	db.Close()
	old := startNode(t, dir, nil, nil)
	if old.Stats().IndexRecords != 5000 {
		t.Fatalf("index read %d records from the store, want 5000", old.Stats().IndexRecords)
	}
	fresh := startNode(t, "", nil, nil)
	rep, err := fresh.Sync(context.Background(), old.addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("late joiner: %d records (%d bytes) in %s: %d bytes in, %d bytes out, %d round trips",
		rep.RecordsIn, size, rep.Duration, rep.BytesIn, rep.BytesOut, rep.RoundTrips)
	if rep.RecordsIn != 5000 || rep.RecordsOut != 0 {
		t.Fatalf("sync moved %d in, %d out; want 5000 in", rep.RecordsIn, rep.RecordsOut)
	}
	if moved := rep.BytesIn + rep.BytesOut; float64(moved) > 1.2*float64(size) {
		t.Fatalf("%d bytes exchanged for %d bytes of records; want at most 1.2×", moved, size)
	}
	if !converged(old, fresh)() {
		t.Fatal("digests differ after the late joiner's sync")
	}
	// Nothing left to move: one fingerprint each way.
	rep, err = fresh.Sync(context.Background(), "")
	if err != nil || rep.RecordsIn+rep.RecordsOut != 0 || rep.RoundTrips > 2 {
		t.Fatalf("second sync: %+v, %v", rep, err)
	}
}

// TestRestartRemembersPeers: a node remembers the peers it joined, and
// after a restart reconnects to them and catches up with what it missed.
func TestRestartRemembersPeers(t *testing.T) {
	a := startNode(t, "", nil, nil)
	b := startNode(t, "", nil, nil)
	b.join(a)
	dir, key := b.dir, b.key
	b.stop()
	missed := review(t, a.key, "gone@1.0.0", "written while B was down", time.Now())
	a.write(missed)
	b = startNode(t, dir, key, nil)
	eventually(t, 15*time.Second, "B reconnects to A", func() bool {
		for _, p := range b.Peers() {
			if p.ID == a.PeerID() {
				return p.Saved && p.Connected
			}
		}
		return false
	})
	eventually(t, 15*time.Second, "B catches up by itself", converged(a, b))
	if !b.holds(missed.ID()) {
		t.Fatal("B lacks the record written while it was down")
	}
	var info PeerInfo
	for _, p := range b.Peers() {
		if p.ID == a.PeerID() {
			info = p
		}
	}
	if len(info.Addrs) == 0 || info.LastSync.IsZero() {
		t.Fatalf("peer info after restart: %+v", info)
	}
}

// TestPeerErrors checks the errors a user sees.
func TestPeerErrors(t *testing.T) {
	a := startNode(t, "", nil, nil)
	ctx := context.Background()
	for _, bad := range []string{"", "localhost:4001", "/ip4/127.0.0.1/tcp/4001", "/p2p/" + a.PeerID()} {
		_, err := a.AddPeer(ctx, bad)
		if registry.KindOf(err) != registry.EINVALID || !contains(registry.MessageOf(err), "/p2p/12D3KooW") {
			t.Errorf("AddPeer(%q) = %v; want invalid, saying what a full multiaddr looks like", bad, err)
		}
	}
	if _, err := a.AddPeer(ctx, a.addr()); registry.KindOf(err) != registry.EINVALID {
		t.Errorf("AddPeer(own address) = %v, want invalid", err)
	}
	gone := startNode(t, "", nil, nil)
	addr, goneID := gone.addr(), gone.PeerID()
	gone.stop()
	info, err := a.AddPeer(ctx, addr)
	if registry.KindOf(err) != registry.ETEMPORARY || !info.Saved || info.Connected {
		t.Errorf("AddPeer(unreachable) = %+v, %v; want remembered, not connected, temporarily unavailable", info, err)
	}
	if err := a.RemovePeer(ctx, info.ID); err != nil {
		t.Errorf("RemovePeer(remembered) = %v", err)
	}
	if err := a.RemovePeer(ctx, info.ID); registry.KindOf(err) != registry.ENOTFOUND {
		t.Errorf("RemovePeer(forgotten) = %v, want not_found", err)
	}
	if _, err := a.Sync(ctx, ""); registry.KindOf(err) != registry.ETEMPORARY {
		t.Errorf("Sync with no peers = %v, want temporarily_unavailable", err)
	}
	if _, err := a.Sync(ctx, goneID); registry.KindOf(err) != registry.ENOTFOUND {
		t.Errorf("Sync with an unknown peer ID = %v, want not_found", err)
	}
	if _, err := a.Sync(ctx, "not-a-peer"); registry.KindOf(err) != registry.EINVALID {
		t.Errorf("Sync with garbage = %v, want invalid", err)
	}
	if _, err := New(ctx, Config{Key: a.key, Network: "Bad/Name"}, a.db); registry.KindOf(err) != registry.EINVALID {
		t.Errorf("New with a bad network name = %v, want invalid", err)
	}
}

// TestQUIC joins two nodes over QUIC.
func TestQUIC(t *testing.T) {
	quicOnly := func(c *Config) { c.Listen = []string{"/ip4/127.0.0.1/udp/0/quic-v1"} }
	a := startNode(t, "", nil, quicOnly)
	b := startNode(t, "", nil, quicOnly)
	if !contains(a.addr(), "/quic-v1/p2p/") {
		t.Fatalf("address %s is not a full QUIC multiaddr", a.addr())
	}
	b.join(a)
	r := review(t, a.key, "quic@1.0.0", "over QUIC", time.Now())
	a.write(r)
	eventually(t, 10*time.Second, "the record crosses QUIC", func() bool { return b.holds(r.ID()) })
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// TestSyncMovesBlobs: a forced reconciliation moves releases both ways and
// the blobs of those releases with them, and reports each (docs/FEDERATION.md
// §5.1).
func TestSyncMovesBlobs(t *testing.T) {
	a, b := startNode(t, "", nil, nil), startNode(t, "", nil, nil)
	dev, _ := registry.GenerateKey(nil)
	relA, blobA := release(t, dev, "blobby", "1.0.0", time.Now())
	relB, blobB := release(t, dev, "blobby", "2.0.0", time.Now())
	a.write(relA)
	a.db.PutBlob(blobA)
	b.write(relB)
	b.db.PutBlob(blobB)
	rep, err := b.Sync(context.Background(), a.addr())
	if err != nil {
		t.Fatal(err)
	}
	if rep.RecordsIn != 1 || rep.RecordsOut != 1 || rep.BlobsIn != 1 || rep.BlobsOut != 1 || len(rep.Peers) != 1 {
		t.Fatalf("sync report %+v; want one record and one blob each way", rep)
	}
	if rep.BytesIn < int64(len(blobA)) || rep.BytesOut < int64(len(blobB)) || rep.RoundTrips == 0 || rep.Duration == 0 {
		t.Fatalf("sync report %+v does not account for the blobs", rep)
	}
	for _, n := range []*testNode{a, b} {
		for _, blob := range [][]byte{blobA, blobB} {
			if ok, _ := n.db.HasBlob(registry.Sum(blob)); !ok {
				t.Fatal("a blob did not move with its release")
			}
		}
	}
	info := infoOf(b, a.host.ID())
	if info.RecordsIn != 1 || info.RecordsOut != 1 || info.LastSync.IsZero() {
		t.Fatalf("peer info after sync: %+v", info)
	}
	// A connected peer may be named by its peer ID.
	rep, err = b.Sync(context.Background(), a.PeerID())
	if err != nil || len(rep.Peers) != 1 || rep.Peers[0].Peer != a.PeerID() || rep.RecordsIn+rep.RecordsOut != 0 {
		t.Fatalf("sync by peer ID: %+v, %v", rep, err)
	}
}

func TestParsePeerAddr(t *testing.T) {
	a := startNode(t, "", nil, nil)
	if ai, err := parsePeerAddr(a.addr()); err != nil || ai.ID.String() != a.PeerID() {
		t.Fatalf("parsePeerAddr(%s) = %v, %v", a.addr(), ai, err)
	}
	for _, bad := range []string{"/dns4/example.org/tcp/4001", "not a multiaddr", "/p2p/" + a.PeerID()} {
		if _, err := parsePeerAddr(bad); registry.KindOf(err) != registry.EINVALID {
			t.Errorf("parsePeerAddr(%q) = %v, want invalid", bad, err)
		}
	}
}

// TestPeriodicSync: a record that reached one node without being gossiped
// reaches its peers at the next periodic reconciliation.
func TestPeriodicSync(t *testing.T) {
	fast := func(c *Config) { c.SyncInterval = 300 * time.Millisecond }
	a, b := startNode(t, "", nil, fast), startNode(t, "", nil, fast)
	b.join(a)
	r := review(t, a.key, "quiet@1.0.0", "never gossiped", time.Now())
	if _, err := a.ingest([]*registry.Record{r}, nil, true); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the periodic reconciliation carries the record", func() bool { return b.holds(r.ID()) })
}

// TestSyncCancel: cancelling a sync stops it at once, even while the peer
// says nothing.
func TestSyncCancel(t *testing.T) {
	a := startNode(t, "", nil, nil)
	x := newHostile(t)
	x.h.SetStreamHandler(ReconcileProtocol, func(s network.Stream) { io.Copy(io.Discard, s) })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	rep, err := a.Sync(ctx, x.h.Addrs()[0].String()+"/p2p/"+x.h.ID().String())
	if err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("sync with a silent peer: %+v, %v after %s", rep, err, time.Since(start))
	}
}
