// Command wasm-crates-registry runs a registry node: the Badger store, the
// libp2p federation, the testing pipeline, the REST API, the Cargo registry
// protocol and the dashboard. Every setting is a flag and an environment
// variable; with none, it runs a working node with data in ./registry-data
// and the API on http://127.0.0.1:8080.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/net/netutil"
	"golang.org/x/time/rate"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/federation"
	"github.com/wasmrust/wasm-crates-registry/mirror"
	"github.com/wasmrust/wasm-crates-registry/node"
	"github.com/wasmrust/wasm-crates-registry/node/api"
	"github.com/wasmrust/wasm-crates-registry/node/cargo"
	"github.com/wasmrust/wasm-crates-registry/node/web"
	"github.com/wasmrust/wasm-crates-registry/pipeline"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	pipeline.MaybeRunHelper()
	app := &cli.App{
		Name:    "wasm-crates-registry",
		Usage:   "run a federated registry node for WebAssembly-compatible Rust crates",
		Version: version,
		Description: "Starts a node: Badger store, REST API, Cargo registry (sparse index and web API),\n" +
			"dashboard, libp2p federation and the wasm testing pipeline. Every flag can also be\n" +
			"set by the environment variable shown beside it. On first start the node makes its\n" +
			"key (node.key) and an admin token (admin-token) in the data directory.",
		Flags:  flags(),
		Action: run,
	}
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "wasm-crates-registry:", registry.MessageOf(err))
		os.Exit(1)
	}
}

func flags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "database-url", Aliases: []string{"data-dir"}, EnvVars: []string{"DATABASE_URL"}, Value: "./registry-data",
			Usage: "Badger data directory: a plain path or badger://PATH (it also holds node.key and admin-token)"},
		&cli.StringFlag{Name: "host", EnvVars: []string{"HOST"}, Value: "127.0.0.1", Usage: "address the REST API listens on"},
		&cli.IntFlag{Name: "port", EnvVars: []string{"PORT"}, Value: 8080, Usage: "port of the REST API (0 picks a free one)"},
		&cli.StringFlag{Name: "registry-name", EnvVars: []string{"REGISTRY_NAME"}, Value: "wasm-crates-registry", Usage: "the registry's name on first start (later: config set name …)"},
		&cli.StringFlag{Name: "public-url", EnvVars: []string{"PUBLIC_URL"}, Usage: "URL clients reach the API at, for the Cargo index config (default http://HOST:PORT)"},
		&cli.BoolFlag{Name: "auth-required", EnvVars: []string{"AUTH_REQUIRED"},
			Usage: "private node: every request but GET /health needs a token (reads of the API, the Cargo index and downloads too); the Cargo index says auth-required"},
		&cli.StringFlag{Name: "tls-cert", EnvVars: []string{"TLS_CERT"}, Usage: "PEM certificate (chain) to serve the API over HTTPS; needs --tls-key"},
		&cli.StringFlag{Name: "tls-key", EnvVars: []string{"TLS_KEY"}, Usage: "PEM private key of --tls-cert"},
		&cli.StringFlag{Name: "max-crate-size", EnvVars: []string{"MAX_CRATE_SIZE"}, Value: "10MiB", Usage: "largest .crate accepted (bytes, or with KiB/MiB)"},
		&cli.DurationFlag{Name: "max-skew", EnvVars: []string{"MAX_SKEW"}, Value: registry.DefaultMaxSkew, Usage: "how far ahead of this clock a record's time may be before it is held back"},
		&cli.StringFlag{Name: "log-level", EnvVars: []string{"LOG_LEVEL"}, Value: "info", Usage: "debug, info, warn or error"},
		&cli.StringFlag{Name: "log-format", EnvVars: []string{"LOG_FORMAT"}, Value: "text", Usage: "text or json"},
		&cli.BoolFlag{Name: "reindex", Usage: "re-verify every record and blob (quarantining damaged ones), then rebuild every index and view from the records, at start"},
		&cli.DurationFlag{Name: "scrub-interval", EnvVars: []string{"SCRUB_INTERVAL"}, Value: node.DefaultScrubInterval,
			Usage: "how often every stored record and blob is re-verified in the background, spread over up to half the interval (0 or less: never)"},

		&cli.StringFlag{Name: "quota-author", EnvVars: []string{"QUOTA_AUTHOR"}, Value: quotaString(node.DefaultQuotas.AuthorCount, node.DefaultQuotas.AuthorBytes), Category: "Quotas",
			Usage: "records and bytes stored per untrusted author, as COUNT,SIZE (\"unlimited\" for either)"},
		&cli.StringFlag{Name: "quota-peer", EnvVars: []string{"QUOTA_PEER"}, Value: quotaString(node.DefaultQuotas.PeerCount, node.DefaultQuotas.PeerBytes), Category: "Quotas",
			Usage: "records and bytes of untrusted authors stored per sending peer, as COUNT,SIZE"},
		&cli.StringFlag{Name: "quota-kind", EnvVars: []string{"QUOTA_KIND"}, Value: quotaString(node.DefaultQuotas.KindCount, node.DefaultQuotas.KindBytes), Category: "Quotas",
			Usage: "records and bytes of untrusted authors stored per known kind, as COUNT,SIZE"},
		&cli.StringFlag{Name: "quota-unknown", EnvVars: []string{"QUOTA_UNKNOWN"}, Value: quotaString(node.DefaultQuotas.UnknownCount, node.DefaultQuotas.UnknownBytes), Category: "Quotas",
			Usage: "records and bytes of kinds this node does not apply, all together, as COUNT,SIZE (relayed only within it)"},
		&cli.DurationFlag{Name: "checkpoint-interval", EnvVars: []string{"CHECKPOINT_INTERVAL"}, Value: time.Second, Usage: "how often to sign a checkpoint of this node's log when it has grown (0: never; the node then witnesses nothing itself)"},

		&cli.Float64Flag{Name: "rate-limit-addr", EnvVars: []string{"RATE_LIMIT_ADDR"}, Value: api.DefaultAddrRate, Category: "HTTP limits",
			Usage: "requests per second one client address may make, on average (IPv6: per /64; 0: no limit)"},
		&cli.IntFlag{Name: "rate-burst-addr", EnvVars: []string{"RATE_BURST_ADDR"}, Value: api.DefaultAddrBurst, Category: "HTTP limits",
			Usage: "requests one client address may make at once before --rate-limit-addr applies"},
		&cli.Float64Flag{Name: "rate-limit-token", EnvVars: []string{"RATE_LIMIT_TOKEN"}, Value: api.DefaultTokenRate, Category: "HTTP limits",
			Usage: "requests per second one presented token may make, on average (0: no limit)"},
		&cli.IntFlag{Name: "rate-burst-token", EnvVars: []string{"RATE_BURST_TOKEN"}, Value: api.DefaultTokenBurst, Category: "HTTP limits",
			Usage: "requests one token may make at once before --rate-limit-token applies"},
		&cli.IntFlag{Name: "max-connections", EnvVars: []string{"MAX_CONNECTIONS"}, Value: 1024, Category: "HTTP limits",
			Usage: "open client connections at most; more wait to be accepted"},
		&cli.DurationFlag{Name: "body-idle-timeout", EnvVars: []string{"BODY_IDLE_TIMEOUT"}, Value: api.DefaultBodyIdle, Category: "HTTP limits",
			Usage: "how long reading a request body or writing a response may make no progress before the connection is cut"},
		&cli.DurationFlag{Name: "body-grace", EnvVars: []string{"BODY_GRACE"}, Value: api.DefaultBodyGrace, Category: "HTTP limits",
			Usage: "time any request body may take; after it the body must keep arriving at --min-transfer-rate on average"},
		&cli.StringFlag{Name: "min-transfer-rate", EnvVars: []string{"MIN_TRANSFER_RATE"}, Value: "4KiB", Category: "HTTP limits",
			Usage: "slowest average rate, per second, of a request body after --body-grace, and of a response"},

		&cli.StringFlag{Name: "wasm-index-gates", EnvVars: []string{"WASM_INDEX_GATES"}, Value: "curated", Category: "Cargo registry",
			Usage: "quality gates a release must have passed to appear in the wasm-only index /wasm/index/ (comma-separated: curated, needs-review)"},
		&cli.StringFlag{Name: "wasm-index-verdicts", EnvVars: []string{"WASM_INDEX_VERDICTS"}, Value: "compatible,builds,partial", Category: "Cargo registry",
			Usage: "wasm verdicts a release may have to appear in the wasm-only index (comma-separated: compatible, builds, partial)"},
		&cli.StringSliceFlag{Name: "same-registry", EnvVars: []string{"SAME_REGISTRY"}, Category: "Cargo registry",
			Usage: "other index URLs that mean this registry (e.g. other nodes of the federation); dependencies on them are served as local"},

		&cli.StringSliceFlag{Name: "upstream", EnvVars: []string{"UPSTREAMS"}, Category: "Mirror",
			Usage: "sparse index to mirror, repeatable, in order of precedence (crates.io: https://index.crates.io/): its crates are served by this node's index, their .crate archives fetched on first download, checked and kept"},
		&cli.DurationFlag{Name: "upstream-refresh", EnvVars: []string{"UPSTREAM_REFRESH"}, Value: node.DefaultUpstreamRefresh, Category: "Mirror",
			Usage: "how long a mirrored crate's index file is served from this node's records before the upstream is asked again (with ETag / If-Modified-Since; 0 or less: on every request)"},
		&cli.DurationFlag{Name: "upstream-timeout", EnvVars: []string{"UPSTREAM_TIMEOUT"}, Value: mirror.DefaultTimeout, Category: "Mirror",
			Usage: "time one upstream request may take, body included"},
		&cli.StringFlag{Name: "upstream-max-index-size", EnvVars: []string{"UPSTREAM_MAX_INDEX_SIZE"}, Value: "16MiB", Category: "Mirror",
			Usage: "largest upstream index file accepted (bytes, or with KiB/MiB); archives are capped by --max-crate-size"},
		&cli.BoolFlag{Name: "upstream-local-first", EnvVars: []string{"UPSTREAM_LOCAL_FIRST"}, Category: "Mirror",
			Usage: "let a local publish take a crate name an upstream has (by default it is refused: the upstream owns its namespace)"},

		&cli.BoolFlag{Name: "p2p", EnvVars: []string{"P2P"}, Value: true, Category: "Federation",
			Usage: "be a libp2p peer: gossip records and reconcile with peers (--p2p=false for a standalone node)"},
		&cli.StringSliceFlag{Name: "p2p-listen", EnvVars: []string{"P2P_LISTEN"}, Category: "Federation",
			Value: cli.NewStringSlice(federation.DefaultListen...),
			Usage: "libp2p listen multiaddrs, repeatable or comma-separated"},
		&cli.StringSliceFlag{Name: "public-key", EnvVars: []string{"PUBLIC_KEY"}, Category: "Trust",
			Usage: "a trust root's public key, typically the operator's own developer key (`wasm-crates-registry-cli keys show`): a peer ID (12D3Koo…), 64 hex digits or base64 of the ed25519 key, or a PEM PUBLIC KEY block; repeatable or comma-separated. Its releases, key registrations and other records count from the node's first start"},
		&cli.StringSliceFlag{Name: "peer", EnvVars: []string{"PEERS"}, Category: "Federation",
			Usage: "full multiaddr of a node to join and trust (/ip4/…/tcp/…/p2p/12D3Koo…), repeatable; remembered across restarts. A trusted peer is a trust root: its releases, yanks, owners changes, reports and key records count here, and this node vouches for it to its own peers"},
		&cli.StringSliceFlag{Name: "peer-no-trust", EnvVars: []string{"PEERS_NO_TRUST"}, Category: "Federation",
			Usage: "full multiaddr of a node to join without trusting it (records are exchanged; its own are untrusted claims here unless a trusted key vouches for it), repeatable"},
		&cli.StringFlag{Name: "network", EnvVars: []string{"NETWORK"}, Value: federation.DefaultNetwork, Category: "Federation",
			Usage: "gossip network name: nodes on different networks never exchange records"},
		&cli.DurationFlag{Name: "sync-interval", EnvVars: []string{"SYNC_INTERVAL"}, Value: time.Minute, Category: "Federation",
			Usage: "how often to reconcile with every connected peer (0 or less: only on connect and on demand)"},

		&cli.BoolFlag{Name: "pipeline", EnvVars: []string{"PIPELINE"}, Value: true, Category: "Testing pipeline",
			Usage: "build and test crates natively and for wasm (needs bubblewrap and a Rust toolchain; --pipeline=false to run without)"},
		&cli.IntFlag{Name: "pipeline-workers", EnvVars: []string{"PIPELINE_WORKERS"}, Value: 1, Category: "Testing pipeline",
			Usage: "test runs at a time"},
		&cli.StringSliceFlag{Name: "cargo-source", EnvVars: []string{"CARGO_SOURCES"}, Category: "Testing pipeline",
			Usage: "directory source of crates for dependencies, repeatable (default: /usr/share/cargo/registry when present)"},
		&cli.StringFlag{Name: "pipeline-dir", EnvVars: []string{"PIPELINE_DIR"}, Category: "Testing pipeline",
			Usage: "the pipeline's private directory, where builds run and its caches live; created 0700, refused if another user owns it or others may write it (default: <data-dir>/pipeline)"},
		&cli.BoolFlag{Name: "allow-network", EnvVars: []string{"PIPELINE_ALLOW_NETWORK"}, Category: "Testing pipeline",
			Usage: "let cargo fetch missing dependencies from crates.io (builds and tests still run offline)"},
		&cli.DurationFlag{Name: "test-time", EnvVars: []string{"PIPELINE_TEST_TIME"}, Value: pipeline.DefaultLimits().TestTime, Category: "Testing pipeline",
			Usage: "wall time (and native CPU time) one test may take before it is stopped and reported as a timeout"},
		&cli.BoolFlag{Name: "shared-testing", EnvVars: []string{"SHARED_TESTING"}, Category: "Testing pipeline",
			Usage: "share test work with the federation's testers: test every release the federation still needs a report on, under a lease (claim record) so that no release is tested twice except for confirmation"},
		&cli.DurationFlag{Name: "lease", EnvVars: []string{"LEASE"}, Value: registry.DefaultLease, Category: "Testing pipeline",
			Usage: "length of the leases this node takes on releases it tests; renewed every third of it while the run goes on"},
		&cli.DurationFlag{Name: "max-lease", EnvVars: []string{"MAX_LEASE"}, Value: registry.DefaultMaxLease, Category: "Testing pipeline",
			Usage: "longest lease this node honours, counted from when it received the claim, whatever the claim says"},
		&cli.Uint64Flag{Name: "confirm-per-mille", EnvVars: []string{"CONFIRM_PER_MILLE"}, Value: registry.DefaultConfirmPerMille, Category: "Testing pipeline",
			Usage: "share of releases (in thousandths, chosen by release ID) that a second tester confirms; releases whose verdict would enter the wasm-only index are always confirmed"},
		&cli.DurationFlag{Name: "shared-scan", EnvVars: []string{"SHARED_SCAN"}, Value: 10 * time.Second, Category: "Testing pipeline",
			Usage: "how often to look for releases the federation still needs tested"},
	}
}

func run(c *cli.Context) error {
	log, err := newLogger(c.String("log-level"), c.String("log-format"))
	if err != nil {
		return err
	}
	dir, err := parseDatabaseURL(c.String("database-url"))
	if err != nil {
		return err
	}
	maxSize, err := parseSize(c.String("max-crate-size"))
	if err != nil {
		return err
	}
	var quotas node.Quotas
	for _, q := range []struct {
		flag         string
		count, bytes *int64
	}{
		{"quota-author", &quotas.AuthorCount, &quotas.AuthorBytes},
		{"quota-peer", &quotas.PeerCount, &quotas.PeerBytes},
		{"quota-kind", &quotas.KindCount, &quotas.KindBytes},
		{"quota-unknown", &quotas.UnknownCount, &quotas.UnknownBytes},
	} {
		if *q.count, *q.bytes, err = parseQuota(c.String(q.flag)); err != nil {
			return fmt.Errorf("--%s: %w", q.flag, err)
		}
	}
	scrub := c.Duration("scrub-interval")
	if scrub <= 0 {
		scrub = -1
	}
	opt, tlsCert, tlsKey, err := serverOptions(c)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	addr := net.JoinHostPort(c.String("host"), strconv.Itoa(c.Int("port")))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("cannot listen on %s (is another node running? set PORT or --port): %w", addr, err)
	}
	defer ln.Close()
	if m := c.Int("max-connections"); m > 0 {
		ln = netutil.LimitListener(ln, m)
	}

	cfg := node.Config{
		DataDir:       dir,
		Name:          c.String("registry-name"),
		MaxCrateSize:  maxSize,
		MaxSkew:       c.Duration("max-skew"),
		Version:       version,
		Logger:        log,
		Announce:      os.Stdout,
		Workers:       c.Int("pipeline-workers"),
		Quotas:        quotas,
		ScrubInterval: scrub,

		CheckpointInterval: c.Duration("checkpoint-interval"),
		TrustedPeers:       c.StringSlice("peer"),
	}
	if cfg.Upstream, err = upstreamConfig(c, maxSize); err != nil {
		return err
	}
	for _, s := range c.StringSlice("public-key") {
		k, err := registry.ParsePublicKey(s)
		if err != nil {
			return fmt.Errorf("--public-key / PUBLIC_KEY: %s", registry.MessageOf(err))
		}
		cfg.TrustedKeys = append(cfg.TrustedKeys, k)
	}
	if c.Bool("p2p") {
		interval := c.Duration("sync-interval")
		if interval <= 0 {
			interval = -1
		}
		cfg.Network = node.Federation(federation.Config{
			Listen:       c.StringSlice("p2p-listen"),
			Network:      c.String("network"),
			Bootstrap:    append(append([]string{}, c.StringSlice("peer")...), c.StringSlice("peer-no-trust")...),
			MaxSkew:      c.Duration("max-skew"),
			SyncInterval: interval,
			Logger:       log.With("component", "p2p"),
			Limits:       federation.Limits{MaxBlobSize: maxSize},
		})
	}
	if c.Bool("pipeline") {
		pc := pipeline.Config{AllowNetwork: c.Bool("allow-network"), MaxCrateSize: maxSize,
			Limits: pipeline.Limits{TestTime: c.Duration("test-time")}}
		if d := c.String("pipeline-dir"); d != "" {
			pc.Dir = d
		}
		if c.IsSet("cargo-source") {
			pc.DirectorySources = append([]string{}, c.StringSlice("cargo-source")...)
		}
		cfg.Tester = node.PipelineTester(dir, pc)
		cfg.Shared = node.SharedTesting{Enabled: c.Bool("shared-testing"), Lease: c.Duration("lease"), MaxLease: c.Duration("max-lease"),
			ConfirmPerMille: c.Uint64("confirm-per-mille"), Scan: c.Duration("shared-scan")}
	}
	n, err := node.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer n.Close()
	if c.Bool("reindex") {
		rep, err := n.VerifyAtStart(ctx)
		if err != nil {
			return err
		}
		log.Info("verified", "records", rep.Records, "blobs", rep.Blobs, "damaged", len(rep.Damaged))
		k, err := n.Reindex()
		if err != nil {
			return err
		}
		log.Info("reindexed", "records", k)
	}

	srv := api.NewWith(n, log, opt)
	policy, err := cargo.ParseWasmPolicy(c.String("wasm-index-gates"), c.String("wasm-index-verdicts"))
	if err != nil {
		return err
	}
	ch, err := cargo.New(n, cargo.Config{PublicURL: c.String("public-url"), SameRegistry: c.StringSlice("same-registry"), Wasm: policy, Logger: log, AuthRequired: opt.AuthRequired})
	if err != nil {
		return err
	}
	ch.Mount(srv.Mount)
	srv.Mount("/ui/", web.New(n, log))
	srv.Mount("GET /{$}", http.RedirectHandler("/ui/", http.StatusFound))
	// Request bodies and responses have per-request deadlines that follow
	// progress (api.BodyTimeouts), not the server's ReadTimeout and
	// WriteTimeout, which would also cut large uploads and downloads at a
	// normal speed, and long polls.
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	errc := make(chan error, 1)
	scheme := "http"
	if tlsCert != "" {
		scheme = "https"
		go func() { errc <- hs.ServeTLS(ln, tlsCert, tlsKey) }()
	} else {
		go func() { errc <- hs.Serve(ln) }()
	}
	absDir, _ := filepath.Abs(dir)
	fmt.Printf("wasm-crates-registry %s: node %s\n  REST API  %s://%s\n  dashboard %s://%s/ui/\n  data      %s\n", version, n.PeerID(), scheme, ln.Addr(), scheme, ln.Addr(), absDir)
	for _, a := range n.Health(ctx).Addrs {
		fmt.Printf("  p2p       %s\n", a)
	}
	log.Info("node started", "api", scheme+"://"+ln.Addr().String(), "private", opt.AuthRequired, "data", absDir, "peer", n.PeerID())

	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("REST API stopped: %w", err)
		}
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = hs.Shutdown(sctx)
	return n.Close()
}

// serverOptions reads the API's access rules and limits, and the TLS files.
func serverOptions(c *cli.Context) (opt api.Options, cert, key string, err error) {
	opt.AuthRequired = c.Bool("auth-required")
	for _, f := range []string{"rate-limit-addr", "rate-limit-token"} {
		if v := c.Float64(f); v < 0 {
			return opt, "", "", fmt.Errorf("--%s %v: give requests per second, or 0 for no limit", f, v)
		}
	}
	for _, f := range []string{"rate-burst-addr", "rate-burst-token"} {
		if v := c.Int(f); v < 1 {
			return opt, "", "", fmt.Errorf("--%s %d: give at least 1 request", f, v)
		}
	}
	opt.Rate = api.RateLimits{
		PerAddr: rate.Limit(c.Float64("rate-limit-addr")), AddrBurst: c.Int("rate-burst-addr"),
		PerToken: rate.Limit(c.Float64("rate-limit-token")), TokenBurst: c.Int("rate-burst-token"),
	}
	minRate, err := parseSize(c.String("min-transfer-rate"))
	if err != nil {
		return opt, "", "", fmt.Errorf("--min-transfer-rate: %w", err)
	}
	if c.Duration("body-idle-timeout") <= 0 || c.Duration("body-grace") <= 0 {
		return opt, "", "", errors.New("--body-idle-timeout and --body-grace must be positive durations, like 30s")
	}
	opt.Body = api.BodyTimeouts{Idle: c.Duration("body-idle-timeout"), Grace: c.Duration("body-grace"), MinRate: minRate}
	cert, key = c.String("tls-cert"), c.String("tls-key")
	if (cert == "") != (key == "") {
		return opt, "", "", errors.New("--tls-cert and --tls-key go together: give both PEM files, or neither to serve plain HTTP")
	}
	if cert != "" {
		if _, err := tls.LoadX509KeyPair(cert, key); err != nil {
			return opt, "", "", fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
	}
	return opt, cert, key, nil
}

// parseDatabaseURL accepts a plain path or badger://PATH.
func parseDatabaseURL(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("DATABASE_URL is empty: give a directory path or badger://PATH")
	}
	if rest, ok := strings.CutPrefix(s, "badger://"); ok {
		if rest == "" {
			return "", errors.New("DATABASE_URL badger:// has no path: give a directory path or badger://PATH, like badger://./registry-data")
		}
		return rest, nil
	}
	if i := strings.Index(s, ":"); i > 0 && !strings.ContainsAny(s[:i], `/\.`) {
		return "", fmt.Errorf("DATABASE_URL %q is not supported: this node stores its data in Badger only; give a directory path or badger://PATH", s)
	}
	return s, nil
}

// parseQuota reads "COUNT,SIZE", either part "unlimited" (-1).
func parseQuota(s string) (count, bytes int64, err error) {
	c, b, ok := strings.Cut(s, ",")
	if !ok {
		return 0, 0, fmt.Errorf("quota %q is not COUNT,SIZE (like 10000,64MiB)", s)
	}
	c, b = strings.TrimSpace(c), strings.TrimSpace(b)
	if c == "unlimited" {
		count = -1
	} else if count, err = strconv.ParseInt(c, 10, 64); err != nil || count <= 0 {
		return 0, 0, fmt.Errorf("quota %q: the count must be a positive number or unlimited", s)
	}
	if b == "unlimited" {
		bytes = -1
	} else if bytes, err = parseSize(b); err != nil {
		return 0, 0, fmt.Errorf("quota %q: %w", s, err)
	}
	return count, bytes, nil
}

// quotaString is the flag form of a quota.
func quotaString(count, bytes int64) string {
	size := strconv.FormatInt(bytes, 10)
	switch {
	case bytes%(1<<30) == 0:
		size = strconv.FormatInt(bytes>>30, 10) + "GiB"
	case bytes%(1<<20) == 0:
		size = strconv.FormatInt(bytes>>20, 10) + "MiB"
	}
	return strconv.FormatInt(count, 10) + "," + size
}

// parseSize reads "10485760", "512KiB", "10MiB" or "1GiB".
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}}
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range units {
		if v, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(v), u.mult
			break
		}
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || v <= 0 || v > (1<<40)/mult {
		return 0, fmt.Errorf("size %q is not a positive size like 10MiB or 1048576", s)
	}
	return v * mult, nil
}

func newLogger(level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: use text or json", format)
}

// upstreamConfig reads the mirror's flags.
func upstreamConfig(c *cli.Context, maxCrate int64) (node.UpstreamConfig, error) {
	uc := node.UpstreamConfig{Refresh: c.Duration("upstream-refresh"), LocalFirst: c.Bool("upstream-local-first")}
	if uc.Refresh <= 0 {
		uc.Refresh = -1
	}
	maxIndex, err := parseSize(c.String("upstream-max-index-size"))
	if err != nil {
		return uc, fmt.Errorf("--upstream-max-index-size: %w", err)
	}
	if c.Duration("upstream-timeout") <= 0 {
		return uc, errors.New("--upstream-timeout must be a positive duration, like 30s")
	}
	for _, s := range c.StringSlice("upstream") {
		u, err := mirror.New(mirror.Config{URL: s, Timeout: c.Duration("upstream-timeout"), MaxIndexBytes: maxIndex, MaxCrateBytes: maxCrate,
			UserAgent: "wasm-crates-registry/" + version})
		if err != nil {
			return uc, fmt.Errorf("--upstream / UPSTREAMS: %s", registry.MessageOf(err))
		}
		uc.Upstreams = append(uc.Upstreams, u)
	}
	return uc, nil
}
