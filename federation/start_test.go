package federation

import (
	"context"
	"strings"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/store"
)

// New refuses a configuration it cannot run with before it starts
// anything, with an invalid-input error that names the value at fault.
func TestNewRefusesBadConfig(t *testing.T) {
	key, _ := registry.GenerateKey(nil)
	db, err := store.Open(t.TempDir(), store.Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cases := []struct {
		name string
		edit func(*Config)
		says string
	}{
		{"short key", func(c *Config) { c.Key = c.Key[:32] }, "ed25519 private key"},
		{"no key", func(c *Config) { c.Key = nil }, "ed25519 private key"},
		{"network with a slash", func(c *Config) { c.Network = "Bad/Name" }, `"Bad/Name"`},
		{"network too long", func(c *Config) { c.Network = strings.Repeat("n", maxNetworkName+1) }, "network name must be"},
		{"listen not a multiaddr", func(c *Config) { c.Listen = []string{"127.0.0.1:4001"} }, "127.0.0.1:4001"},
		{"bootstrap without a peer ID", func(c *Config) { c.Bootstrap = []string{"/ip4/127.0.0.1/tcp/4001"} }, "/p2p/12D3KooW"},
		{"bootstrap garbage", func(c *Config) { c.Bootstrap = []string{"\x00\xff"} }, ""},
	}
	for _, c := range cases {
		cfg := testConfig(key)
		c.edit(&cfg)
		n, err := New(context.Background(), cfg, db)
		if err == nil {
			n.Close()
			t.Errorf("%s: New accepted it", c.name)
			continue
		}
		if registry.KindOf(err) != registry.EINVALID || !strings.Contains(registry.MessageOf(err), c.says) {
			t.Errorf("%s: %v (%s), want invalid naming %q", c.name, err, registry.KindOf(err), c.says)
		}
	}
}

// A zero Config runs: every field a node needs has a default, and what
// the caller set is kept (a negative SyncInterval turns periodic sync off).
func TestConfigDefaults(t *testing.T) {
	var cfg Config
	cfg.fillDefaults()
	if cfg.Network != DefaultNetwork || len(cfg.Listen) != len(DefaultListen) || cfg.MaxSkew != registry.DefaultMaxSkew ||
		cfg.SyncInterval != time.Minute || cfg.Logger == nil || cfg.Now == nil {
		t.Errorf("defaults: %+v", cfg)
	}
	if cfg.Limits.MaxInboundSessions <= 0 || cfg.Limits.MaxBlobStreams <= 0 || cfg.Limits.IngestQueueBytes <= 0 {
		t.Errorf("limits not filled: %+v", cfg.Limits)
	}
	set := Config{Network: "mine", Listen: []string{"/ip4/127.0.0.1/tcp/0"}, SyncInterval: -1, MaxSkew: time.Second}
	set.fillDefaults()
	if set.Network != "mine" || set.Listen[0] != "/ip4/127.0.0.1/tcp/0" || set.SyncInterval != -1 || set.MaxSkew != time.Second {
		t.Errorf("the caller's settings were not kept: %+v", set)
	}
}

// Bootstrap peers join the peer book and are protected in the connection
// manager; the node's own address among them is skipped.
func TestNewJoinsBootstrapPeers(t *testing.T) {
	a := startNode(t, "", nil, nil)
	var self registry.PrivateKey
	self, _ = registry.GenerateKey(nil)
	b := startNode(t, "", self, func(c *Config) {
		c.Bootstrap = []string{a.Addrs()[0]}
	})
	// Restart b with its own address among its bootstrap peers.
	own := b.Addrs()[0]
	dir := b.dir
	b.stop()
	b = startNode(t, dir, self, func(c *Config) { c.Bootstrap = []string{a.Addrs()[0], own} })
	b.mu.Lock()
	_, hasA := b.book[a.host.ID()]
	_, hasSelf := b.book[b.host.ID()]
	b.mu.Unlock()
	if !hasA || hasSelf {
		t.Errorf("peer book: a %v, itself %v; want a only", hasA, hasSelf)
	}
	if !b.cm.IsProtected(a.host.ID(), protectTag) {
		t.Error("the bootstrap peer is not protected in the connection manager")
	}
	if len(b.host.Peerstore().Addrs(a.host.ID())) == 0 {
		t.Error("the bootstrap peer's addresses are not in the peerstore")
	}
}
