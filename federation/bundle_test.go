package federation

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// The bundle wire format admits one encoding of 2 to 64 records within
// 16 KiB, and nothing else.
func TestBundleWireRules(t *testing.T) {
	recs := recordPool(t, 70)
	good, err := encodeBundle(recs[:3])
	if err != nil {
		t.Fatal(err)
	}
	if !isBundle(good) || isBundle(recs[0].Bytes()) {
		t.Fatal("isBundle does not tell a bundle from a record")
	}
	raws, err := decodeBundle(good)
	if err != nil || len(raws) != 3 || !bytes.Equal(raws[1], recs[1].Bytes()) {
		t.Fatalf("a good bundle: %d records, %v", len(raws), err)
	}
	one, _ := encodeBundle(recs[:1])
	many, _ := encodeBundle(recs[:65])
	// Length heads in a longer form than needed: not canonical.
	long := append([]byte{0x98, 0x02}, good[1:]...)
	indefinite := append(append([]byte{0x9f}, good[1:]...), 0xff)
	nested, _ := bundleEnc.Marshal([]any{recs[0].Bytes(), [][]byte{recs[1].Bytes()}})
	texts, _ := bundleEnc.Marshal([]string{string(recs[0].Bytes()), string(recs[1].Bytes())})
	huge, _ := bundleEnc.Marshal([][]byte{bytes.Repeat([]byte{1}, 9000), bytes.Repeat([]byte{2}, 9000)})
	for name, data := range map[string][]byte{
		"one record": one, "65 records": many, "non-canonical length": long, "indefinite length": indefinite,
		"nested array": nested, "text strings": texts, "over 16 KiB": huge, "truncated": good[:len(good)-4], "empty": {0x80},
	} {
		if _, err := decodeBundle(data); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

// Over libp2p: a burst of records crosses in bundles and converges; a
// bundle with one forged record is rejected whole (its sender's score
// falls) and none of its records is stored from it, while the good one
// still arrives from an honest node.
func TestBundlesOverGossip(t *testing.T) {
	a, b := startNode(t, "", nil, nil), startNode(t, "", nil, nil)
	b.join(a)
	topicReady(t, a, b)
	burst := recordPool(t, 300)
	a.write(burst...)
	eventually(t, 20*time.Second, "the burst converges", converged(a, b))
	s := b.Stats()
	if s.GossipBundles == 0 || s.GossipAccepted == 0 {
		t.Fatalf("no bundle crossed: %+v", s)
	}
	t.Logf("300 records: %d accepted from gossip in %d bundles", s.GossipAccepted, s.GossipBundles)

	x := newHostile(t)
	if err := x.h.Connect(context.Background(), peer.AddrInfo{ID: b.host.ID(), Addrs: b.host.Addrs()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the hostile peer is on the topic", func() bool { return len(x.topic.ListPeers()) > 0 })
	fresh := recordPool(t, 303)[300:]
	forged := append([]byte(nil), fresh[1].Bytes()...)
	forged[len(forged)-5] ^= 0x40
	bad, err := bundleEnc.Marshal([][]byte{fresh[0].Bytes(), forged, fresh[2].Bytes()})
	if err != nil {
		t.Fatal(err)
	}
	rejected := b.Stats().GossipRejected
	x.publish(t, bad)
	eventually(t, 10*time.Second, "B rejects the bundle", func() bool { return b.Stats().GossipRejected > rejected })
	eventually(t, 10*time.Second, "the sender's score falls", func() bool { return infoOf(b, x.h.ID()).Score < 0 })
	if b.holds(fresh[0].ID()) || b.holds(fresh[2].ID()) {
		t.Fatal("a record of a rejected bundle was stored")
	}
	a.write(fresh[0], fresh[2])
	eventually(t, 20*time.Second, "the good records arrive from the honest node", func() bool {
		return b.holds(fresh[0].ID()) && b.holds(fresh[2].ID())
	})
}
