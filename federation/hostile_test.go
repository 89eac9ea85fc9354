package federation

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// hostile is a libp2p peer that speaks the registry's protocols but lies.
//
// On /wcr/reconcile/1 it follows docs/FEDERATION.md §4 to the letter for an
// initiator that holds more than T keys — it answers the opening fingerprint
// with an ID list of the one record it
// offers, reads every turn to its end, answers DONE with FIN — and differs
// from an honest responder in one respect only, chosen by mode: the record
// it sends for the WANT of the offered one.
type hostile struct {
	h     host.Host
	topic *pubsub.Topic
	key   registry.PrivateKey
	bait  *registry.Record // the record its reconciliation offers
	given *registry.Record // what it sends instead when lying
	mode  atomic.Int32     // reconcileBusy, reconcileHonest or reconcileLying
	// sessions counts reconciliations that ended as the protocol says: with
	// FIN after the initiator's DONE.
	sessions atomic.Int32
}

const (
	reconcileBusy   = iota // refuse as busy (ERROR 2)
	reconcileHonest        // answer the WANT with the offered record
	reconcileLying         // answer the WANT with a record never offered
)

func newHostile(t *testing.T) *hostile {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); h.Close() })
	ps, err := pubsub.NewGossipSub(ctx, h,
		pubsub.WithMessageIdFn(messageID),
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithNoAuthor(),
		pubsub.WithFloodPublish(true))
	if err != nil {
		t.Fatal(err)
	}
	topic, err := ps.Join(Topic("test"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := topic.Subscribe(); err != nil {
		t.Fatal(err)
	}
	key, _ := registry.GenerateKey(nil)
	x := &hostile{h: h, topic: topic, key: key}
	x.bait = review(t, key, "bait@1.0.0", "offered", time.Now())
	x.given = review(t, key, "switch@1.0.0", "sent instead", time.Now())
	h.SetStreamHandler(ReconcileProtocol, x.reconcile)
	h.SetStreamHandler(BlobProtocol, x.blob)
	return x
}

// reconcile is the responder's side of a session (docs/FEDERATION.md
// §4.3): HELLO and an ID list of the bait for the initiator's opening turn;
// then, for each of the initiator's turns, the bait's record (or, lying,
// another) after the first and an empty turn after the others, until DONE,
// which it answers with FIN. An ERROR from the initiator ends the session.
func (x *hostile) reconcile(s network.Stream) {
	defer s.Close()
	fr := newFrameReader(s, 5*time.Second, time.Time{})
	fw := newFrameWriter(s, 5*time.Second, time.Time{})
	mode := x.mode.Load()
	if mode == reconcileBusy {
		fw.write(frameError, errorPayload(codeBusy, "later"))
		fw.flush()
		return
	}
	// readTurn reads the initiator's frames up to the end of its turn and
	// returns the frame that ended it: END, DONE or ERROR.
	readTurn := func() byte {
		for {
			t, _, err := fr.read()
			if err != nil {
				return frameError
			}
			if t == frameEnd || t == frameDone || t == frameError {
				return t
			}
		}
	}
	if readTurn() != frameEnd {
		return
	}
	rw := &rangeWriter{}
	rw.add(wireRange{upper: infKey, mode: modeIDList, ids: []registry.ID{x.bait.ID()}})
	fw.write(frameHello, helloPayload("test"))
	fw.write(frameRanges, rw.buf)
	fw.write(frameEnd, nil)
	fw.flush()
	for turn := 0; ; turn++ {
		switch readTurn() {
		case frameDone:
			fw.write(frameFin, nil)
			if fw.flush() == nil {
				x.sessions.Add(1)
			}
			io.Copy(io.Discard, s)
			return
		case frameEnd:
		default:
			return
		}
		if turn == 0 {
			sent := x.bait
			if mode == reconcileLying {
				sent = x.given
			}
			fw.write(frameRecord, sent.Bytes())
		}
		fw.write(frameEnd, nil)
		fw.flush()
	}
}

// blob answers every request with bytes that do not hash to it.
func (x *hostile) blob(s network.Stream) {
	defer s.Close()
	var req [35]byte
	if _, err := io.ReadFull(s, req[:]); err != nil {
		return
	}
	junk := bytes.Repeat([]byte("not the blob "), 100)
	s.Write(binary.AppendUvarint([]byte{blobOK}, uint64(len(junk))))
	s.Write(junk)
}

func (x *hostile) publish(t *testing.T, data []byte) {
	t.Helper()
	if err := x.topic.Publish(context.Background(), data); err != nil {
		t.Fatal(err)
	}
}

func infoOf(n *testNode, id peer.ID) PeerInfo {
	for _, p := range n.Peers() {
		if p.ID == id.String() {
			return p
		}
	}
	return PeerInfo{}
}

// TestHostilePeer: a peer that gossips forged signatures, truncated CBOR,
// oversized messages, replays and far-future records, and that lies on the
// reconciliation and blob protocols. None of it is stored or relayed,
// honest traffic still converges, and the hostile peer's score falls until
// it is banned (DESIGN.md §3).
func TestHostilePeer(t *testing.T) {
	a, b := startNode(t, "", nil, nil), startNode(t, "", nil, nil)
	b.join(a)
	honest := recordPool(t, 40)
	a.write(honest[:30]...)
	// Both hold a record they did not see on gossip, as after a
	// reconciliation, so that a replay of it reaches the validator.
	for _, n := range []*testNode{a, b} {
		if _, err := n.ingest([]*registry.Record{honest[39]}, nil, true); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "honest nodes converge", converged(a, b))

	x := newHostile(t)
	xaddr := x.h.Addrs()[0].String() + "/p2p/" + x.h.ID().String()
	// Control: the same peer, honest, completes a session with a fresh
	// node, which gets the offered record; so when the lying session fails,
	// the lie is the reason. Like A, the node holds more than T keys, so it
	// opens with a fingerprint, which the peer answers with its ID list.
	x.mode.Store(reconcileHonest)
	c := startNode(t, "", nil, nil)
	c.write(honest[:30]...)
	if _, err := c.Sync(context.Background(), xaddr); err != nil {
		t.Fatalf("sync with the hostile peer while it is honest: %v", err)
	}
	if !c.holds(x.bait.ID()) || x.sessions.Load() == 0 {
		t.Fatalf("the honest session did not complete: offered record held %v, sessions ended with FIN %d", c.holds(x.bait.ID()), x.sessions.Load())
	}
	x.mode.Store(reconcileBusy)
	c.stop()

	if err := x.h.Connect(context.Background(), peer.AddrInfo{ID: a.host.ID(), Addrs: a.host.Addrs()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the hostile peer is on the topic", func() bool {
		return len(x.topic.ListPeers()) > 0
	})
	topicReady(t, a, b)

	// Gossip: forged, truncated, oversized, far-future, replayed.
	good := honest[35]
	forged := append([]byte(nil), good.Bytes()...)
	forged[len(forged)-5] ^= 0x40
	future := review(t, x.key, "later@1.0.0", "from the future", time.Now().Add(time.Hour))
	oversized := make([]byte, registry.MaxRecordSize+1000)
	copy(oversized, good.Bytes())
	x.publish(t, forged)
	x.publish(t, good.Bytes()[:len(good.Bytes())/2])
	x.publish(t, oversized)
	x.publish(t, future.Bytes())
	x.publish(t, honest[39].Bytes()) // a replay of a record both nodes hold
	eventually(t, 10*time.Second, "A judged every message", func() bool {
		s := a.Stats()
		return s.GossipRejected >= 3 && s.GossipIgnoredFuture >= 1 && s.GossipIgnoredHeld >= 1
	})
	eventually(t, 5*time.Second, "the hostile peer's score falls", func() bool { return infoOf(a, x.h.ID()).Score < 0 })

	// Reconciliation that sends a record other than the one asked for.
	x.mode.Store(reconcileLying)
	if _, err := a.Sync(context.Background(), xaddr); err == nil {
		t.Fatal("sync with a lying peer succeeded: the node accepted a record it had neither asked for nor listed")
	} else if !strings.Contains(err.Error(), "neither asked for nor in a range this node listed") {
		t.Fatalf("sync with a lying peer failed for another reason than the unsolicited record: %v", err)
	}
	x.mode.Store(reconcileBusy)
	// A blob with the wrong bytes (or, once banned, none at all).
	if _, err := a.FetchBlob(context.Background(), registry.Sum([]byte("some blob"))); err == nil {
		t.Fatal("a blob with the wrong bytes was accepted")
	}
	if ok, _ := a.db.HasBlob(registry.Sum(bytes.Repeat([]byte("not the blob "), 100))); ok {
		t.Fatal("wrong blob bytes were stored")
	}
	if a.Stats().Violations == 0 {
		t.Fatal("no protocol violation was counted")
	}
	eventually(t, 15*time.Second, "the hostile peer is banned", func() bool {
		info := infoOf(a, x.h.ID())
		return !info.Banned.IsZero() && !info.Connected
	})

	// Honest traffic still flows and converges.
	a.write(honest[30:34]...)
	b.write(honest[34])
	eventually(t, 10*time.Second, "honest nodes converge", converged(a, b))
	for _, n := range []*testNode{a, b} {
		if n.holds(future.ID()) || n.holds(good.ID()) || n.holds(x.given.ID()) {
			t.Fatal("a hostile, far-future or never-published record was stored")
		}
	}
	if s := b.Stats(); s.GossipRejected != 0 || s.GossipIgnoredFuture != 0 || s.GossipIgnoredHeld != 0 {
		t.Fatalf("A relayed hostile traffic to B: %+v", s)
	}
	if info := infoOf(a, b.host.ID()); info.Score < 0 || !info.Banned.IsZero() {
		t.Fatalf("the honest peer lost standing: %+v", info)
	}
}

// TestSlowPeersCannotStall: a peer that opens reconciliations and then
// says nothing is cut off after Limits.StreamIdle, sessions beyond
// Limits.MaxInboundSessions are refused as busy, and meanwhile an honest
// peer still reconciles with the node.
func TestSlowPeersCannotStall(t *testing.T) {
	a := startNode(t, "", nil, func(c *Config) {
		c.Limits.MaxInboundSessions = 2
		c.Limits.StreamIdle = 500 * time.Millisecond
	})
	a.write(recordPool(t, 20)...)
	x := newHostile(t)
	ai := peer.AddrInfo{ID: a.host.ID(), Addrs: a.host.Addrs()}
	if err := x.h.Connect(context.Background(), ai); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	silent, err := x.h.NewStream(ctx, a.host.ID(), ReconcileProtocol)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	silent.Write([]byte{frameHello}) // one byte, then nothing
	eventually(t, 5*time.Second, "the silent session is running", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		st := a.peers[x.h.ID()]
		return st != nil && st.inbound
	})
	// A second session from the same peer is refused while the first runs.
	second, err := x.h.NewStream(ctx, a.host.ID(), ReconcileProtocol)
	if err != nil {
		t.Fatal(err)
	}
	fr := newFrameReader(second, 5*time.Second, time.Time{})
	ty, p, err := fr.read()
	if err != nil || ty != frameError || p[0] != codeBusy {
		t.Fatalf("second concurrent session: frame 0x%02x %q, %v; want ERROR busy", ty, p, err)
	}
	second.Close()

	// An honest peer reconciles meanwhile.
	b := startNode(t, "", nil, nil)
	if _, err := b.Sync(ctx, a.addr()); err != nil {
		t.Fatalf("honest sync while a peer stalls: %v", err)
	}
	if !converged(a, b)() {
		t.Fatal("honest peer did not converge")
	}

	// The silent session is dropped after the idle limit.
	silent.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	_, err = io.Copy(io.Discard, silent)
	if time.Since(start) > 4*time.Second {
		t.Fatalf("silent session still open after %s (err %v)", time.Since(start), err)
	}
}
