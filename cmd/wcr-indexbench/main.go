// Command wcr-indexbench measures how fast a node serves Cargo's sparse
// index, against nginx serving the very same files from disk in the same
// run.
//
// It opens a node in a temporary directory, writes N crates (several
// versions each, with dependencies, features and trusted reports) straight
// into its store as signed records, serves the node's REST API with the
// Cargo handler mounted on a loopback port, as the daemon does, fetches every
// index file of both views from it and writes them under a directory that a
// child nginx (with a generated configuration, on another loopback port)
// serves. Then wrk requests all index files, round-robin, from each server in
// turn, for several rounds, and the harness prints a table: requests per
// second, latency percentiles and the server's CPU time per request (medians
// over the rounds), and each node row's rate against the nginx run just
// before it in the same round. With -pin, both servers run on CPU 1 and wrk
// on CPU 0.
//
// Usage:
//
//	wcr-indexbench [-crates 10000] [-duration 10s] [-rounds 5] [-connections 64] [-threads 2] [-pin] [-go-baseline] [-out FILE]
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/node"
	"github.com/wasmrust/wasm-crates-registry/node/api"
	"github.com/wasmrust/wasm-crates-registry/node/cargo"
)

func main() {
	crates := flag.Int("crates", 10_000, "number of crates (each with 1 to 5 versions)")
	duration := flag.Duration("duration", 10*time.Second, "length of each wrk run")
	rounds := flag.Int("rounds", 5, "runs per server; the table shows medians")
	conns := flag.Int("connections", 64, "wrk connections")
	threads := flag.Int("threads", 2, "wrk threads")
	nginxBin := flag.String("nginx", "/usr/sbin/nginx", "nginx binary")
	wrkBin := flag.String("wrk", "/usr/bin/wrk", "wrk binary")
	out := flag.String("out", "", "also write the table (Markdown) to this file")
	keep := flag.Bool("keep", false, "keep the temporary directory")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the node's process during the measured runs to this file")
	baseline := flag.Bool("go-baseline", false, "also measure a plain net/http server serving the same files from a map in memory")
	pin := flag.Bool("pin", false, "pin the servers (this process and nginx) to CPU 1 and wrk to CPU 0, so each server gets one core to itself")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("wcr-indexbench: ")
	if *pin && os.Getenv(pinnedEnv) == "" {
		os.Exit(reexecPinned())
	}
	wrkPrefix = nil
	if *pin {
		wrkPrefix = []string{"taskset", "-c", "0"}
	}
	for _, b := range []string{*nginxBin, *wrkBin} {
		if _, err := os.Stat(b); err != nil {
			log.Fatalf("%s is missing (apt-get install nginx-light wrk): %v", b, err)
		}
	}
	dir, err := os.MkdirTemp("", "wcr-indexbench-")
	if err != nil {
		log.Fatal(err)
	}
	// nginx's workers run as an unprivileged user and must read the files.
	if err := os.Chmod(dir, 0o755); err != nil {
		log.Fatal(err)
	}
	if !*keep {
		defer os.RemoveAll(dir)
	} else {
		log.Printf("working directory: %s", dir)
	}
	if err := run(dir, *crates, *duration, *rounds, *conns, *threads, *nginxBin, *wrkBin, *out, *cpuprofile, *baseline); err != nil {
		log.Print(err)
		if !*keep {
			os.RemoveAll(dir)
		}
		os.Exit(1)
	}
}

func run(dir string, nCrates int, duration time.Duration, rounds, conns, threads int, nginxBin, wrkBin, outFile, cpuprofile string, baseline bool) error {
	ctx := context.Background()
	// The corpus comes from one trusted key: quotas meant for strangers
	// would refuse it.
	big := int64(1) << 50
	n, err := node.Open(ctx, node.Config{DataDir: filepath.Join(dir, "node"), Announce: io.Discard,
		Quotas: node.Quotas{AuthorCount: big, AuthorBytes: big, KindCount: big, KindBytes: big}})
	if err != nil {
		return err
	}
	defer n.Close()

	start := time.Now()
	names, releases, reports, err := populate(n, nCrates)
	if err != nil {
		return err
	}
	log.Printf("stored %d crates, %d releases, %d reports in %s", len(names), releases, reports, time.Since(start).Round(time.Millisecond))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	base := "http://" + ln.Addr().String()
	srv := api.New(n, nil)
	h, err := cargo.New(n, cargo.Config{PublicURL: base})
	if err != nil {
		return err
	}
	h.Mount(srv.Mount)
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	go hs.Serve(ln)
	defer hs.Close()

	// Every index file of both views, fetched from the node and written for
	// nginx, so both servers serve identical bytes.
	www := filepath.Join(dir, "www")
	var paths []string
	files := map[string][]byte{}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	start = time.Now()
	wasmFiles := 0
	for _, prefix := range []string{"/index/", "/wasm/index/"} {
		for _, name := range append([]string{"config.json"}, names...) {
			p := prefix + name
			if name != "config.json" {
				p = prefix + registry.IndexPath(name)
			}
			b, status, err := get(client, base+p)
			if err != nil {
				return err
			}
			if status == http.StatusNotFound && prefix == "/wasm/index/" {
				continue // no release of this crate passes the wasm gates
			}
			if status != http.StatusOK {
				return fmt.Errorf("GET %s: status %d", p, status)
			}
			if err := os.MkdirAll(filepath.Dir(filepath.Join(www, p)), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(www, p), b, 0o644); err != nil {
				return err
			}
			files[p] = b
			if name != "config.json" {
				paths = append(paths, p)
				if prefix == "/wasm/index/" {
					wasmFiles++
				}
			}
		}
	}
	render := time.Since(start)
	log.Printf("rendered %d index files (%d in the wasm view) through HTTP in %s (%.0f µs each, cold cache)",
		len(paths), wasmFiles, render.Round(time.Millisecond), float64(render.Microseconds())/float64(len(paths)))

	nginxURL, nginxPID, stopNginx, err := startNginx(dir, www, nginxBin)
	if err != nil {
		return err
	}
	defer stopNginx()

	// Both servers must answer every path with the same bytes.
	for i := 0; i < len(paths); i += max(1, len(paths)/500) {
		a, sa, err := get(client, base+paths[i])
		if err != nil {
			return err
		}
		b, sb, err := get(client, nginxURL+paths[i])
		if err != nil {
			return err
		}
		if sa != 200 || sb != 200 || !bytes.Equal(a, b) {
			return fmt.Errorf("%s differs between the node (%d) and nginx (%d)", paths[i], sa, sb)
		}
	}

	var full, wasm []string
	for _, p := range paths {
		if strings.HasPrefix(p, "/wasm/") {
			wasm = append(wasm, p)
		} else {
			full = append(full, p)
		}
	}
	rand.New(rand.NewSource(1)).Shuffle(len(full), func(i, j int) { full[i], full[j] = full[j], full[i] })
	nginxName := "nginx " + nginxVersion(nginxBin) + " (static files)"
	// Each node row is compared with the nginx row before it.
	nginxCPU := func() time.Duration { return processTreeCPU(nginxPID) }
	targets := []struct {
		label string
		url   string
		paths []string
		cpu   func() time.Duration
	}{
		{nginxName + ", /index/", nginxURL, full, nginxCPU},
		{"wasm-crates-registry, /index/", base, full, selfCPU},
		{nginxName + ", /wasm/index/", nginxURL, wasm, nginxCPU},
		{"wasm-crates-registry, /wasm/index/", base, wasm, selfCPU},
	}
	if baseline {
		fixed, err := startMapServer(files)
		if err != nil {
			return err
		}
		targets = append(targets, targets[0])
		targets = append(targets, struct {
			label string
			url   string
			paths []string
			cpu   func() time.Duration
		}{"Go net/http, same files from a map", fixed, full, selfCPU})
	}
	results := make([][]wrkResult, len(targets))
	for _, tg := range targets {
		// A short warm-up: nginx's open-file cache, the node's file cache.
		if _, err := runWrk(wrkBin, dir, tg.url, tg.paths, 2*time.Second, conns, threads); err != nil {
			return err
		}
	}
	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	for r := 0; r < rounds; r++ {
		for i, tg := range targets {
			cpu0 := tg.cpu()
			res, err := runWrk(wrkBin, dir, tg.url, tg.paths, duration, conns, threads)
			if err != nil {
				return err
			}
			res.cpuPerReq = float64((tg.cpu() - cpu0).Microseconds()) / float64(res.requests)
			if res.errors > 0 {
				return fmt.Errorf("%s: %d failed requests in round %d: %s", tg.label, res.errors, r+1, res.raw)
			}
			log.Printf("round %d: %-44s %8.0f req/s  p50 %5d µs  p99 %5d µs  server CPU %5.1f µs/req", r+1, tg.label, res.rps, res.p50, res.p99, res.cpuPerReq)
			results[i] = append(results[i], res)
		}
	}

	var table strings.Builder
	fmt.Fprintf(&table, "| server | files | requests/s | p50 latency | p99 latency | server CPU per request | rate vs nginx, same round: median (range) |\n|---|---|---|---|---|---|---|\n")
	for i, tg := range targets {
		m := median(results[i])
		ratio := "—"
		if i%2 == 1 {
			var rs []float64
			for r := range results[i] {
				rs = append(rs, results[i][r].rps/results[i-1][r].rps)
			}
			slices.Sort(rs)
			ratio = fmt.Sprintf("%.2f× (%.2f–%.2f)", rs[len(rs)/2], rs[0], rs[len(rs)-1])
		}
		fmt.Fprintf(&table, "| %s | %d | %.0f | %.2f ms | %.2f ms | %.1f µs | %s |\n", tg.label, len(tg.paths), m.rps,
			float64(m.p50)/1000, float64(m.p99)/1000, medianCPU(results[i]), ratio)
	}
	placement := "servers and wrk share all CPUs"
	if wrkPrefix != nil {
		placement = "servers pinned to CPU 1, wrk to CPU 0"
	}
	fmt.Fprintf(&table, "\n%d crates, %d index files; wrk %d threads, %d connections, %s per run, median of %d rounds; %s; GOMAXPROCS %d.\n",
		len(names), len(paths), threads, conns, duration, rounds, placement, runtime.GOMAXPROCS(0))
	fmt.Print(table.String())
	if outFile != "" {
		return os.WriteFile(outFile, []byte(table.String()), 0o644)
	}
	return nil
}

func get(c *http.Client, url string) ([]byte, int, error) {
	res, err := c.Get(url)
	if err != nil {
		return nil, 0, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return b, res.StatusCode, err
}

// populate writes nCrates crates of 1 to 5 versions each, signed by a
// benchmark key, with dependencies on earlier crates and features, plus a
// report by the same (trusted) key on most releases, so that about half of
// the crates have a release in the wasm view.
func populate(n *node.Node, nCrates int) ([]string, int, int, error) {
	rng := rand.New(rand.NewSource(42))
	key, err := registry.KeyFromSeed(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		return nil, 0, 0, err
	}
	if _, err := n.UpdateSettings(context.Background(), "bench", []byte(fmt.Sprintf(`{"trust": {"keys": [%q]}}`, key.Public().PeerID()))); err != nil {
		return nil, 0, 0, err
	}
	names := crateNames(rng, nCrates)
	t0 := time.Now().Add(-24 * time.Hour)
	var recs []*registry.Record
	var releases, reports int
	flush := func(force bool) error {
		if len(recs) >= 2000 || (force && len(recs) > 0) {
			raw := make([][]byte, len(recs))
			for i, r := range recs {
				raw[i] = r.Bytes()
			}
			admin := node.WithIdentity(context.Background(), &node.Identity{Person: "bench", Scopes: []string{node.ScopeAdmin}})
			if _, err := n.Ingest(admin, "bench", raw); err != nil {
				return err
			}
			recs = recs[:0]
		}
		return nil
	}
	for i, name := range names {
		versions := 1 + rng.Intn(5)
		for v := 0; v < versions; v++ {
			version := fmt.Sprintf("%d.%d.%d", rng.Intn(3), v, rng.Intn(10))
			blob := registry.Sum([]byte(name + "@" + version))
			body := &registry.ReleaseBody{
				Name: name, Version: version, Cksum: blob.Hex(), Blob: blob.Bytes(), Size: uint64(1000 + rng.Intn(100_000)),
				Description: "a crate for the index benchmark", License: "MIT OR Apache-2.0",
			}
			for d := rng.Intn(5); d > 0 && i > 0; d-- {
				dep := registry.Dep{Name: names[rng.Intn(i)], Req: fmt.Sprintf("^%d.%d", rng.Intn(3), rng.Intn(5)), Kind: registry.DepNormal, DefaultFeatures: true}
				switch rng.Intn(6) {
				case 0:
					dep.Kind = registry.DepDev
				case 1:
					dep.Optional = true
				case 2:
					dep.Target = "cfg(target_arch = \"wasm32\")"
				}
				if !slices.ContainsFunc(body.Deps, func(x registry.Dep) bool { return x.Name == dep.Name && x.Kind == dep.Kind }) {
					body.Deps = append(body.Deps, dep)
				}
			}
			if rng.Intn(3) == 0 {
				body.Features = map[string][]string{"default": {"std"}, "std": {}}
			}
			at := t0.Add(time.Duration(i*10+v) * time.Millisecond)
			rec, err := registry.Sign(key, registry.KindRelease, registry.ReleaseSubject(name, version), body, at)
			if err != nil {
				return nil, 0, 0, err
			}
			recs = append(recs, rec)
			releases++
			if rng.Intn(10) < 7 {
				gate, wasm := registry.GateCurated, registry.WasmCompatible
				if rng.Intn(3) == 0 {
					gate, wasm = registry.GateRejected, registry.WasmIncompatible
				}
				rep := &registry.ReportBody{Release: rec.ID().Bytes(), Outcome: registry.OutcomeTestPass, Wasm: wasm, Score: 85, Gate: gate,
					Started: at.UnixMilli(), Finished: at.UnixMilli() + 1}
				rr, err := registry.Sign(key, registry.KindReport, rec.Subject, rep, at.Add(time.Millisecond))
				if err != nil {
					return nil, 0, 0, err
				}
				recs = append(recs, rr)
				reports++
			}
			if err := flush(false); err != nil {
				return nil, 0, 0, err
			}
		}
	}
	return names, releases, reports, flush(true)
}

// crateNames returns distinct lowercase names of 1 to 24 characters, most
// of them 5 to 14 long, like crates.io's.
func crateNames(rng *rand.Rand, n int) []string {
	const letters = "abcdefghijklmnopqrstuvwxyz"
	const rest = "abcdefghijklmnopqrstuvwxyz0123456789-_"
	seen := map[string]bool{}
	var out []string
	for len(out) < n {
		l := 5 + rng.Intn(10)
		switch rng.Intn(20) {
		case 0:
			l = 1 + rng.Intn(3)
		case 1:
			l = 15 + rng.Intn(10)
		}
		b := []byte{letters[rng.Intn(len(letters))]}
		for len(b) < l {
			b = append(b, rest[rng.Intn(len(rest))])
		}
		name := string(b)
		if !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	return out
}

// startNginx runs nginx in the foreground as a child process, serving www
// on a free loopback port, with a configuration for static files (sendfile,
// open-file cache, no access log, keep-alive).
func startNginx(dir, www, bin string) (string, int, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", 0, nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	prefix := filepath.Join(dir, "nginx")
	if err := os.MkdirAll(prefix, 0o755); err != nil {
		return "", 0, nil, err
	}
	conf := fmt.Sprintf(`worker_processes auto;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    default_type text/plain;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    open_file_cache max=50000 inactive=60s;
    open_file_cache_valid 60s;
    client_body_temp_path %[1]s/client_body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    server {
        listen %[2]s;
        root %[3]s;
        location / { try_files $uri =404; }
    }
}
`, prefix, addr, www)
	confPath := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return "", 0, nil, err
	}
	cmd := exec.Command(bin, "-p", prefix, "-c", confPath, "-e", filepath.Join(prefix, "error.log"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return "", 0, nil, err
	}
	stop := func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	url := "http://" + addr
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return url, cmd.Process.Pid, stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			errLog, _ := os.ReadFile(filepath.Join(prefix, "error.log"))
			return "", 0, nil, fmt.Errorf("nginx did not start on %s: %s %s", addr, stderr.String(), errLog)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func nginxVersion(bin string) string {
	out, _ := exec.Command(bin, "-v").CombinedOutput()
	if m := regexp.MustCompile(`nginx/(\S+)`).FindSubmatch(out); m != nil {
		return string(m[1])
	}
	return ""
}

type wrkResult struct {
	requests  int64
	cpuPerReq float64 // server CPU time (user + system), µs per request
	rps       float64
	p50, p99  int64 // microseconds
	errors    int64
	raw       string
}

// wrkScript requests the paths listed in the file WCR_PATHS round-robin,
// each thread from its own starting point, and prints one parseable line.
const wrkScript = `
local paths, reqs = {}, {}
for line in io.lines(os.getenv("WCR_PATHS")) do
  paths[#paths + 1] = line
end
local threads, counter = 0, 0
function setup(thread)
  thread:set("offset", threads * 7919)
  threads = threads + 1
end
function init(args)
  -- wrk sets the Host header just before calling init.
  for i, p in ipairs(paths) do
    reqs[i] = wrk.format("GET", p)
  end
  counter = offset or 0
end
function request()
  counter = counter + 1
  return reqs[(counter % #reqs) + 1]
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK_RESULT %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.connect + e.read + e.write + e.status + e.timeout))
end
`

func runWrk(bin, dir, url string, paths []string, d time.Duration, conns, threads int) (wrkResult, error) {
	script := filepath.Join(dir, "paths.lua")
	list := filepath.Join(dir, "paths.txt")
	if err := os.WriteFile(script, []byte(wrkScript), 0o644); err != nil {
		return wrkResult{}, err
	}
	if err := os.WriteFile(list, []byte(strings.Join(paths, "\n")+"\n"), 0o644); err != nil {
		return wrkResult{}, err
	}
	args := append(slices.Clone(wrkPrefix), bin, "-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns), "-d", fmt.Sprintf("%ds", int(d.Seconds())),
		"--timeout", "10s", "-s", script, url)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "WCR_PATHS="+list)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %v\n%s", err, out)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 6 && f[0] == "WRK_RESULT" {
			var v [5]int64
			for i := range v {
				v[i], _ = strconv.ParseInt(f[i+1], 10, 64)
			}
			return wrkResult{requests: v[0], rps: float64(v[0]) / (float64(v[1]) / 1e6), p50: v[2], p99: v[3], errors: v[4], raw: string(out)}, nil
		}
	}
	return wrkResult{}, fmt.Errorf("wrk printed no result:\n%s", out)
}

// median returns the run with the median requests per second.
func median(rs []wrkResult) wrkResult {
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b wrkResult) int {
		switch {
		case a.rps < b.rps:
			return -1
		case a.rps > b.rps:
			return 1
		}
		return 0
	})
	return s[len(s)/2]
}

func medianCPU(rs []wrkResult) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = r.cpuPerReq
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// selfCPU is this process's CPU time (user + system): the node's server.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// processTreeCPU is the CPU time (user + system) of process pid and its
// children (nginx's master and workers), from /proc.
func processTreeCPU(pid int) time.Duration {
	tick := 100 // USER_HZ on Linux
	var total int64
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// Fields after the command name, which is in parentheses.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		if p != pid && ppid != pid {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		total += ut + st
	}
	return time.Duration(total) * time.Second / time.Duration(tick)
}

// pinnedEnv marks the re-executed, pinned harness.
const pinnedEnv = "WCR_INDEXBENCH_PINNED"

// wrkPrefix runs wrk under taskset when the servers are pinned.
var wrkPrefix []string

// reexecPinned runs this harness again on CPU 1 (nginx, started by it,
// inherits the affinity; the Go runtime sizes GOMAXPROCS to it) and returns
// its exit code.
func reexecPinned() int {
	self, err := os.Executable()
	if err != nil {
		log.Print(err)
		return 1
	}
	cmd := exec.Command("taskset", append([]string{"-c", "1", self}, os.Args[1:]...)...)
	cmd.Env = append(os.Environ(), pinnedEnv+"=1")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		log.Print(err)
		return 1
	}
	return 0
}

// startMapServer serves files (path → bytes) with an ETag from a plain
// net/http server with the daemon's timeouts: the floor of what a Go
// handler can do with the same bytes here.
func startMapServer(files map[string][]byte) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	type file struct {
		body       []byte
		etag, clen []string
	}
	m := make(map[string]file, len(files))
	for p, b := range files {
		sum := registry.Sum(b)
		m[p] = file{body: b, etag: []string{`"` + sum.Hex()[:32] + `"`}, clen: []string{strconv.Itoa(len(b))}}
	}
	ctype := []string{"text/plain; charset=utf-8"}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, ok := m[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		hdr := w.Header()
		hdr["Etag"], hdr["Content-Type"], hdr["Content-Length"] = f.etag, ctype, f.clen
		w.Write(f.body)
	})
	go (&http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}).Serve(ln)
	return "http://" + ln.Addr().String(), nil
}
