package main

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

type healthJSON struct {
	PeerID  string   `json:"peer_id"`
	Addrs   []string `json:"addrs"`
	Records int      `json:"records"`
	Blobs   int      `json:"blobs"`
	Digest  string   `json:"digest"`
}

// eventually polls cond every 50 ms until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestTwoDaemonsFederate joins two real daemons with --peer, publishes on
// one, reads on the other, yanks from the second once it is an owner, and
// checks the sync report and the digests.
func TestTwoDaemonsFederate(t *testing.T) {
	a := startDaemon(t, filepath.Join(t.TempDir(), "a"), "--pipeline=false")
	var ha healthJSON
	a.cliJSON(t, &ha, "health")
	if len(ha.Addrs) == 0 || !strings.HasSuffix(ha.Addrs[0], "/p2p/"+ha.PeerID) {
		t.Fatalf("health shows no full multiaddr: %+v", ha)
	}
	b := startDaemon(t, filepath.Join(t.TempDir(), "b"), "--pipeline=false", "--peer", ha.Addrs[0])
	var hb healthJSON
	b.cliJSON(t, &hb, "health")

	fixture := filepath.Join(repoRoot(t), "testdata", "crates", "wcr-fixture-add", "Cargo.toml")
	a.mustCLI(t, "submit", "--manifest", fixture)

	// The release reaches B by gossip (or the reconciliation on connect).
	eventually(t, 20*time.Second, "the release did not reach node B", func() bool {
		_, _, code := b.cli(t, "show", "wcr-fixture-add@0.1.0")
		return code == 0
	})
	show := b.mustCLI(t, "show", "wcr-fixture-add@0.1.0")
	if !strings.Contains(show, ha.PeerID) {
		t.Fatalf("B's show does not name A as the author:\n%s", show)
	}
	// B serves the archive (fetched from A when B lacks it) and it verifies.
	out := b.mustCLI(t, "download", "-o", filepath.Join(t.TempDir(), "x.crate"), "wcr-fixture-add@0.1.0")
	if !strings.Contains(out, "cksum verified") {
		t.Fatalf("download on B: %s", out)
	}
	var peers struct {
		Peers []struct {
			ID        string `json:"id"`
			Connected bool   `json:"connected"`
			Saved     bool   `json:"saved"`
		} `json:"peers"`
	}
	b.cliJSON(t, &peers, "peers")
	if len(peers.Peers) != 1 || peers.Peers[0].ID != ha.PeerID || !peers.Peers[0].Connected || !peers.Peers[0].Saved {
		t.Fatalf("B's peers: %+v", peers)
	}

	// B may not yank A's crate until A makes it an owner.
	if _, errOut, code := b.cli(t, "yank", "wcr-fixture-add@0.1.0"); code == 0 || !strings.Contains(errOut, "owner") {
		t.Fatalf("yank by a non-owner: exit %d %q", code, errOut)
	}
	// An owners change alone does not let B act on A: A does not trust B
	// (B dialled in). A's admin joins B with trust, so B's yank counts.
	a.mustCLI(t, "owners", "add", "wcr-fixture-add", hb.PeerID)
	a.mustCLI(t, "peers", "add", hb.Addrs[0])
	eventually(t, 20*time.Second, "the owners change did not reach B", func() bool {
		out, _, _ := b.cli(t, "owners", "wcr-fixture-add")
		return strings.Contains(out, hb.PeerID)
	})
	b.mustCLI(t, "yank", "--reason", "federated", "wcr-fixture-add@0.1.0")
	eventually(t, 20*time.Second, "B's yank did not reach A", func() bool {
		var r releaseJSON
		a.cliJSON(t, &r, "show", "wcr-fixture-add@0.1.0")
		return r.Yanked
	})

	// A forced sync reports what moved, and the digests agree.
	rep := b.mustCLI(t, "sync", "--peer", ha.Addrs[0])
	if !strings.Contains(rep, ha.PeerID) || !strings.Contains(rep, "ROUND TRIPS") {
		t.Fatalf("sync report:\n%s", rep)
	}
	var sa, sb healthJSON
	eventually(t, 20*time.Second, "digests differ", func() bool {
		a.cliJSON(t, &sa, "state")
		b.cliJSON(t, &sb, "state")
		return sa.Digest == sb.Digest && sa.Records == sb.Records
	})
	// release, owners, yank, A's key record vouching for B, and each
	// node's checkpoints of its log.
	if sa.Records < 4 {
		t.Fatalf("records = %d, want at least release, owners, yank and the key record", sa.Records)
	}

	// B remembers A across a restart and catches up on what it missed.
	b.stop()
	a.mustCLI(t, "unyank", "wcr-fixture-add@0.1.0")
	b2 := startDaemon(t, b.dataDir, "--pipeline=false")
	eventually(t, 30*time.Second, "the restarted node did not catch up", func() bool {
		var r releaseJSON
		b2.cliJSON(t, &r, "show", "wcr-fixture-add@0.1.0")
		return !r.Yanked
	})
}

// TestRestartedNodeRedialsItsPeers: B and C joined A (A never joined
// them). A is killed and starts again on another port, where B and C
// cannot find it: A itself dials the peers it was connected to, and every
// link is back within 5 s.
func TestRestartedNodeRedialsItsPeers(t *testing.T) {
	dirA := filepath.Join(t.TempDir(), "a")
	a := startDaemon(t, dirA, "--pipeline=false")
	var ha healthJSON
	a.cliJSON(t, &ha, "health")
	b := startDaemon(t, filepath.Join(t.TempDir(), "b"), "--pipeline=false", "--peer", ha.Addrs[0])
	c := startDaemon(t, filepath.Join(t.TempDir(), "c"), "--pipeline=false", "--peer", ha.Addrs[0])
	var hb, hc healthJSON
	b.cliJSON(t, &hb, "health")
	c.cliJSON(t, &hc, "health")
	connected := func(d *daemon, ids ...string) bool {
		var res struct {
			Peers []struct {
				ID        string `json:"id"`
				Connected bool   `json:"connected"`
			} `json:"peers"`
		}
		out, _, code := d.cli(t, "--json", "peers")
		if code != 0 || json.Unmarshal([]byte(out), &res) != nil {
			return false
		}
		n := 0
		for _, p := range res.Peers {
			if p.Connected && slices.Contains(ids, p.ID) {
				n++
			}
		}
		return n == len(ids)
	}
	eventually(t, 20*time.Second, "A is connected to B and C", func() bool { return connected(a, hb.PeerID, hc.PeerID) })

	a.kill()
	a2 := startDaemon(t, dirA, "--pipeline=false")
	var ha2 healthJSON
	a2.cliJSON(t, &ha2, "health")
	if ha2.Addrs[0] == ha.Addrs[0] {
		t.Fatalf("A came back on its old address %s; the test needs another", ha.Addrs[0])
	}
	start := time.Now()
	eventually(t, 5*time.Second, "A reconnected to B and C within 5 s of starting", func() bool { return connected(a2, hb.PeerID, hc.PeerID) })
	t.Logf("links back %s after A started", time.Since(start).Round(time.Millisecond))
}
