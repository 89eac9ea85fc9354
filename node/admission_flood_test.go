package node

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/federation"
	"github.com/wasmrust/wasm-crates-registry/store"
)

// vmRSS returns this process's resident set size in bytes.
func vmRSS(t testing.TB) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// diskUsage is the space dir's files take on disk (Badger preallocates
// sparse files, so their sizes say little).
func diskUsage(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				n += st.Blocks * 512
			}
		}
		return nil
	})
	return n
}

func openFederated(t *testing.T, dir string, q Quotas, limits federation.Limits) *Node {
	t.Helper()
	n, err := Open(context.Background(), Config{
		DataDir: dir, Announce: io.Discard, Quotas: q, ScrubInterval: -1,
		Network: Federation(federation.Config{
			Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Network: "flood", SyncInterval: -1, Limits: limits,
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// floodBound is the memory a hostile peer can make a node hold, from its
// limits (docs/FEDERATION.md §8.3), without the decoded-record cache term:
// the test's records are under 2 KiB and at most a few thousand are
// cached, which the measured growth includes.
func floodBound(l federation.Limits, conns int) int64 {
	const (
		validateQueue, maxGossip = 64 + 16, 1 << 20 // queued and running validations
		subBuffer                = 64
		sessions                 = 8 + 4 // inbound + outbound reconciliations
		perWant                  = 160   // bytes per remembered ID (slice + two map entries)
		blobFetchers             = 2 + sessions
	)
	perSession := 4*(int64(l.SessionBuffer)+registry.MaxRecordSize) + int64(l.SessionWants)*perWant + 4*8*federation.MaxRangesFrame
	return validateQueue*maxGossip + subBuffer*registry.MaxRecordSize + l.IngestQueueBytes +
		sessions*perSession + blobFetchers*l.MaxBlobSize + int64(conns)*maxGossip
}

// TestFloodStaysWithinQuotasAndMemory (DESIGN.md §2 "Bounded by design",
// docs/FEDERATION.md §8): a hostile peer floods a node by gossip and by
// reconciliation with records of an unknown kind and with valid reviews
// from 10,000 fresh keys, then offers a blob larger than its release
// declares. The node stores no more than its quotas allow, its memory
// stays under the stated bound, the hostile peer's gossip score does not
// rise, the oversized blob costs the peer a penalty, and an honest peer's
// records still arrive.
func TestFloodStaysWithinQuotasAndMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("flood test")
	}
	q := Quotas{
		AuthorCount: 3, AuthorBytes: 64 << 10,
		PeerCount: 3000, PeerBytes: 4 << 20,
		KindCount: 4000, KindBytes: 8 << 20,
		UnknownCount: 200, UnknownBytes: 256 << 10,
	}
	limits := federation.Limits{MaxBlobSize: 1 << 20, IngestQueueBytes: 4 << 20, SessionBuffer: 1 << 20, SessionWants: 4096}
	victimDir := t.TempDir()
	victim := openFederated(t, victimDir, q, limits)
	honest := openFederated(t, t.TempDir(), Quotas{}, federation.Limits{})
	ctx := context.Background()
	if _, err := victim.AddPeer(ctx, "test", honest.net.Addrs()[0], true); err != nil {
		t.Fatal(err)
	}

	var junk []*registry.Record
	for i := range 10_000 {
		k, _ := registry.GenerateKey(nil)
		junk = append(junk, reviewBy(t, k, fmt.Sprintf("junk%d@1.0.0", i%500), fmt.Sprintf("junk %d", i)))
		if i%5 == 0 {
			junk = append(junk, unknownBy(t, k, fmt.Sprintf("u%d", i), 1000))
		}
	}
	attacker, attackerDB := newAttacker(t, victim, nil)
	victimNet := victim.net.(*federation.Node)
	eventually(t, 10*time.Second, "the attacker to join the victim's topic", func() bool {
		return victimNet.Stats().GossipAccepted+victimNet.Stats().GossipIgnoredHeld > 0 || attackerJoined(victim, attacker.PeerID())
	})
	time.Sleep(2 * time.Second) // both in each other's mesh, the first reconciliation over
	// The attacker stores its junk now, out of its reconciliation index
	// until it publishes each record, and before memory is measured: the
	// test process also holds the attacker.
	if _, err := attackerDB.PutRecords(junk); err != nil {
		t.Fatal(err)
	}

	// RSS counts garbage not yet collected too; a low GC target keeps
	// that slack (GOGC percent of the live heap of the whole process) from
	// hiding what the victim holds.
	defer debug.SetGCPercent(debug.SetGCPercent(20))
	runtimeGC()
	baseRSS := vmRSS(t)
	var peakRSS atomic.Int64
	peakRSS.Store(baseRSS)
	var peakScore atomic.Int64 // the attacker's score in the victim's eyes, ×1000
	peakScore.Store(-1 << 62)
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tk := time.NewTicker(20 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				if r := vmRSS(t); r > peakRSS.Load() {
					peakRSS.Store(r)
				}
				if s := int64(scoreOf(victim, attacker.PeerID()) * 1000); s > peakScore.Load() {
					peakScore.Store(s)
				}
			}
		}
	}()

	// Flood by gossip, with an honest release in the middle. The attacker
	// holds the junk too, so that reconciliation offers it afterwards.
	start := time.Now()
	var honestRel *Release
	var err error
	for i, r := range junk {
		if err := attacker.Publish(ctx, r); err != nil {
			t.Fatal(err)
		}
		if i == len(junk)/2 {
			if honestRel, _, err = honest.Submit(ctx, "test", crateBytes(t, "honest", "1.0.0")); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Logf("gossip flood published in %s", time.Since(start).Round(time.Millisecond))
	// Then by reconciliation with every peer: the victim asks the attacker
	// for everything it lacks, and catches up with the honest node on what
	// the flood made gossip drop.
	rep, err := victim.Sync(ctx, "test", "")
	if err != nil {
		t.Logf("reconciliation: %v", err)
	}
	for _, p := range rep.Peers {
		t.Logf("reconciliation with %s: %d records in, %d bytes in, %d round trips, %s %s", p.Peer, p.RecordsIn, p.BytesIn, p.RoundTrips, p.Duration, p.Error)
	}
	// A second reconciliation stores nothing more. (The attacker still
	// pushes refused records into ranges the victim lists, docs/FEDERATION.md
	// §8.1; the victim no longer asks for them.)
	again, err := victim.Sync(ctx, "test", attacker.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("a second reconciliation with the attacker: %d records in, %d bytes in", again.RecordsIn, again.BytesIn)
	if again.RecordsIn != 0 {
		t.Errorf("the second reconciliation with the attacker stored %d records", again.RecordsIn)
	}
	eventually(t, 20*time.Second, "the honest release to reach the victim", func() bool {
		ok, _ := victim.db.HasRecord(honestRel.ID)
		return ok
	})
	close(stop)
	<-sampled

	// Quotas: nothing from untrusted authors beyond the kind and unknown
	// budgets, nothing from the attacker beyond its peer quota.
	st := victim.State()
	honestState := honest.State()
	untrusted := int64(0)
	var untrustedBytes int64
	for _, kind := range []registry.Kind{registry.KindReview, "futurekind"} {
		recs, err := victim.db.RecordsByKind(kind)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			untrusted++
			untrustedBytes += int64(len(r.Bytes()))
		}
	}
	peerUse := victim.adm.Usage(acctPeer + attacker.PeerID())
	unknownUse := victim.adm.Usage(acctUnknown)
	t.Logf("victim holds %d records (%d untrusted, %d bytes); the attacker's peer account %+v, unknown kinds %+v; honest node holds %d",
		st.Records, untrusted, untrustedBytes, peerUse, unknownUse, honestState.Records)
	if untrusted > q.KindCount+q.UnknownCount {
		t.Errorf("victim stored %d untrusted records; the kind and unknown budgets allow %d", untrusted, q.KindCount+q.UnknownCount)
	}
	if peerUse.Count > q.PeerCount || peerUse.Bytes > q.PeerBytes {
		t.Errorf("attacker's usage %+v is over its peer quota", peerUse)
	}
	if peerUse.Count < q.PeerCount/2 {
		t.Errorf("attacker's usage %+v: the flood did not reach the quota, so the test proves little", peerUse)
	}
	if unknownUse.Count > q.UnknownCount || unknownUse.Bytes > q.UnknownBytes {
		t.Errorf("unknown kinds usage %+v is over the budget", unknownUse)
	}
	fs := victimNet.Stats()
	if fs.GossipIgnoredQuota == 0 && fs.RecordsOverQuota == 0 {
		t.Errorf("no record was refused by a quota: %+v", fs)
	}

	// Memory.
	bound := floodBound(withDefaults(limits), 3)
	grew := peakRSS.Load() - baseRSS
	t.Logf("RSS: base %d MiB, peak %d MiB, growth %d MiB; stated bound for these limits %d MiB",
		baseRSS>>20, peakRSS.Load()>>20, grew>>20, bound>>20)
	if grew > bound && !raceEnabled {
		t.Errorf("RSS grew by %d MiB under the flood, over the bound of %d MiB", grew>>20, bound>>20)
	}

	// Valid junk earns no score.
	t.Logf("the attacker's highest gossip score during the flood: %.3f", float64(peakScore.Load())/1000)
	if s := float64(peakScore.Load()) / 1000; s >= 1 {
		t.Errorf("the attacker's gossip score rose to %.2f by delivering junk", s)
	}

	// An oversized blob: a release that declares 1 KiB names a 512 KiB blob
	// the attacker holds.
	big := make([]byte, 512<<10) // under MaxBlobSize, over the declared size
	for i := range big {
		big[i] = byte(i * 7)
	}
	// It comes from a second hostile peer: the first is over its quota.
	attacker2, attacker2DB := newAttacker(t, victim, nil)
	bid, err := attacker2DB.PutBlob(big)
	if err != nil {
		t.Fatal(err)
	}
	liar, _ := registry.GenerateKey(nil)
	rel, err := registry.Sign(liar, registry.KindRelease, registry.ReleaseSubject("liar", "1.0.0"), &registry.ReleaseBody{
		Name: "liar", Version: "1.0.0", Cksum: bid.Hex(), Blob: bid.Bytes(), Size: 1024}, time.Now().Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	violations := victimNet.Stats().Violations
	if _, err := attacker2DB.PutRecords([]*registry.Record{rel}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // in the victim's mesh
	if err := attacker2.Publish(ctx, rel); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the victim to penalise the oversized blob", func() bool {
		return victimNet.Stats().Violations > violations
	})
	if has, _ := victim.db.HasBlob(bid); has {
		t.Errorf("victim stored a blob larger than its release declares")
	}
	eventually(t, 5*time.Second, "the penalty to reach the attacker's gossip score", func() bool {
		return scoreOf(victim, attacker2.PeerID()) <= -100
	})

	// Disk: once closed (Badger preallocates its logs while open), the
	// victim's data directory holds the admitted records with their
	// indexes and little else.
	victim.Close()
	disk := diskUsage(victimDir)
	maxDisk := 4*(q.PeerBytes+q.UnknownBytes) + 1<<20
	t.Logf("victim's data directory: %d KiB on disk after the flood (bound %d KiB)", disk>>10, maxDisk>>10)
	if disk > maxDisk {
		t.Errorf("victim's data directory takes %d KiB, over %d KiB", disk>>10, maxDisk>>10)
	}
}

// newAttacker starts a bare federation node that holds recs in its own
// store, so that it can push them by gossip and by reconciliation, and
// joins it to victim.
func newAttacker(t *testing.T, victim *Node, recs []*registry.Record) (*federation.Node, *store.DB) {
	t.Helper()
	db, err := store.Open(t.TempDir(), store.Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.PutRecords(recs); err != nil {
		t.Fatal(err)
	}
	key, _ := registry.GenerateKey(nil)
	a, err := federation.New(context.Background(), federation.Config{Key: key, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Network: "flood", SyncInterval: -1}, db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if _, err := a.AddPeer(context.Background(), victim.net.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	return a, db
}

func withDefaults(l federation.Limits) federation.Limits {
	if l.MaxBlobSize == 0 {
		l.MaxBlobSize = registry.DefaultMaxCrateSize
	}
	if l.IngestQueueBytes == 0 {
		l.IngestQueueBytes = 16 << 20
	}
	if l.SessionBuffer == 0 {
		l.SessionBuffer = 4 << 20
	}
	if l.SessionWants == 0 {
		l.SessionWants = 16384
	}
	return l
}

func attackerJoined(n *Node, pid string) bool {
	ps, _ := n.Peers(context.Background())
	for _, p := range ps {
		if p.ID == pid && p.Connected {
			return true
		}
	}
	return false
}

func scoreOf(n *Node, pid string) float64 {
	ps, _ := n.Peers(context.Background())
	for _, p := range ps {
		if p.ID == pid {
			return p.Score
		}
	}
	return 0
}

func runtimeGC() { debug.FreeOSMemory() }
