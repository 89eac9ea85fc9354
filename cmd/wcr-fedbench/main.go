// Command wcr-fedbench measures federation on loopback: real libp2p hosts,
// each over its own on-disk Badger store, in one process. It prints a table
// of the figures recorded in docs/benchmarks/federation.md.
//
//	wcr-fedbench [-nodes 5] [-records 10000] [-total 100000] [-missing 100]
//	             [-joiner 5000] [-samples 300] [-crates 1000] [-runs 1] [-only a,b,c]
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/federation"
	"github.com/wasmrust/wasm-crates-registry/store"
)

func main() {
	nodes := flag.Int("nodes", 5, "nodes in the gossip and latency runs")
	flag.DurationVar(&syncInterval, "sync-interval", -1, "reconcile with every connected peer this often during the runs, as a node's --sync-interval (<0: never, gossip alone)")
	records := flag.Int("records", 10000, "records written on one node in the throughput run")
	total := flag.Int("total", 100000, "records held by the node that is caught up with")
	missing := flag.Int("missing", 100, "records the catching-up node lacks")
	joiner := flag.Int("joiner", 5000, "records held by the node a late joiner joins")
	samples := flag.Int("samples", 300, "records in the latency run")
	crates := flag.Int("crates", 1000, "distinct crate names the generated records are about")
	runs := flag.Int("runs", 1, "repeat every run this many times and report the median and range")
	only := flag.String("only", "a,b,c", "runs to do: a (throughput), b (catch-up), c (latency)")
	dir := flag.String("dir", "", "directory for the stores (default: a temporary one)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "wcr-fedbench:", err)
			os.Exit(1)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	crateNames = max(1, *crates)
	if err := run(*nodes, *records, *total, *missing, *joiner, *samples, max(1, *runs), *only, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "wcr-fedbench:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

// row is one measured figure; runs of the same measure are merged.
type row struct {
	what, target string
	val          float64
	format       func(float64) string
}

func unit(f string) func(float64) string { return func(v float64) string { return fmt.Sprintf(f, v) } }

func run(nodes, records, total, missing, joiner, samples, runs int, only, dir string) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "wcr-fedbench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	b := &bench{dir: dir}
	var order []string
	byWhat := map[string][]row{}
	add := func(rs []row) {
		for _, r := range rs {
			if _, ok := byWhat[r.what]; !ok {
				order = append(order, r.what)
			}
			byWhat[r.what] = append(byWhat[r.what], r)
		}
	}
	fmt.Printf("wcr-fedbench: %s, GOMAXPROCS=%d, records about %d crates, %d run(s), stores under %s\n", runtime.Version(), runtime.GOMAXPROCS(0), crateNames, runs, dir)
	for range runs {
		if strings.Contains(only, "a") {
			r, err := b.throughput(nodes, records)
			if err != nil {
				return fmt.Errorf("throughput: %w", err)
			}
			add(r)
		}
		if strings.Contains(only, "b") {
			r, err := b.catchUp(total, missing, joiner)
			if err != nil {
				return fmt.Errorf("catch-up: %w", err)
			}
			add(r)
		}
		if strings.Contains(only, "c") {
			r, err := b.latency(nodes, samples)
			if err != nil {
				return fmt.Errorf("latency: %w", err)
			}
			add(r)
		}
	}
	type out struct{ what, figure, target string }
	var table []out
	for _, what := range order {
		rs := byWhat[what]
		vals := make([]float64, len(rs))
		for i, r := range rs {
			vals[i] = r.val
		}
		slices.Sort(vals)
		f := rs[0].format
		fig := f(vals[len(vals)/2])
		if len(vals) > 1 && vals[0] != vals[len(vals)-1] {
			fig += " (" + f(vals[0]) + " – " + f(vals[len(vals)-1]) + ")"
		}
		table = append(table, out{what, fig, rs[0].target})
	}
	w := [3]int{len("measure"), len("figure"), len("target")}
	for _, r := range table {
		w[0], w[1], w[2] = max(w[0], len(r.what)), max(w[1], len(r.figure)), max(w[2], len(r.target))
	}
	line := func(a, b, c string) { fmt.Printf("| %-*s | %-*s | %-*s |\n", w[0], a, w[1], b, w[2], c) }
	fmt.Println()
	if runs > 1 {
		fmt.Printf("median (min – max) of %d runs\n", runs)
	}
	line("measure", "figure", "target")
	line(strings.Repeat("-", w[0]), strings.Repeat("-", w[1]), strings.Repeat("-", w[2]))
	for _, r := range table {
		line(r.what, r.figure, r.target)
	}
	return nil
}

type bench struct {
	dir string
	seq int
}

type node struct {
	*federation.Node
	db *store.DB
	mu sync.Mutex
	at map[registry.ID]time.Time // when each record was durably stored here
}

// start opens a store under b.dir, loads preload into it, and starts a
// node over it (which reads the store's index as on a restart).
func (b *bench) start(watch bool, preload ...*registry.Record) (*node, error) {
	b.seq++
	path := fmt.Sprintf("%s/node%d", b.dir, b.seq)
	db, err := store.Open(path, store.Options{GCInterval: -1})
	if err != nil {
		return nil, err
	}
	for i := 0; i < len(preload); i += 4096 {
		if _, err := db.PutRecords(preload[i:min(i+4096, len(preload))]); err != nil {
			db.Close()
			return nil, err
		}
	}
	key, err := registry.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	n := &node{db: db, at: map[registry.ID]time.Time{}}
	cfg := federation.Config{
		Key:          key,
		Listen:       []string{"/ip4/127.0.0.1/tcp/0"},
		Network:      "bench",
		SyncInterval: syncInterval,
		Logger:       slog.New(slog.DiscardHandler),
	}
	if watch {
		cfg.OnIngest = func(added []*registry.Record) {
			now := time.Now()
			n.mu.Lock()
			for _, r := range added {
				n.at[r.ID()] = now
			}
			n.mu.Unlock()
		}
	}
	n.Node, err = federation.New(context.Background(), cfg, db)
	if err != nil {
		db.Close()
		return nil, err
	}
	return n, nil
}

func (n *node) stop() {
	n.Node.Close()
	n.db.Close()
}

// mesh starts k nodes, each joined to every earlier one.
func (b *bench) mesh(k int, watch bool) ([]*node, error) {
	var ns []*node
	for i := range k {
		n, err := b.start(watch)
		if err != nil {
			return ns, err
		}
		for _, m := range ns[:i] {
			if _, err := n.AddPeer(context.Background(), m.Addrs()[0]); err != nil {
				return append(ns, n), err
			}
		}
		ns = append(ns, n)
	}
	// Let gossipsub build its mesh (heartbeats are 1 s apart).
	time.Sleep(3 * time.Second)
	return ns, nil
}

func stopAll(ns []*node) {
	for _, n := range ns {
		n.stop()
	}
}

// syncInterval is the nodes' periodic reconciliation (-1: none).
var syncInterval time.Duration = -1

// crateNames is how many crate names generated records spread over.
var crateNames = 1000

// sign makes n review records on all cores, about crateNames crates.
func sign(n int, tag string) ([]*registry.Record, error) {
	key, err := registry.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	out := make([]*registry.Record, n)
	base := time.Now().Add(-time.Hour)
	workers := runtime.GOMAXPROCS(0)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				r, err := registry.Sign(key, registry.KindReview, fmt.Sprintf("crate%d@1.%d.0", i%crateNames, i),
					&registry.ReviewBody{Verdict: registry.VerdictApprove, Comment: fmt.Sprintf("%s review %d", tag, i)},
					base.Add(time.Duration(i)*time.Millisecond))
				if err != nil {
					errs[w] = err
					return
				}
				out[i] = r
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func bytesOf(recs []*registry.Record) int {
	s := 0
	for _, r := range recs {
		s += len(r.Bytes())
	}
	return s
}

func equalDigests(ns []*node) bool {
	d := ns[0].Digest()
	for _, n := range ns[1:] {
		if n.Digest() != d {
			return false
		}
	}
	return true
}

// throughput: records written on one node until every node's digest is
// equal. Every receiver verifies and durably stores every record.
func (b *bench) throughput(k, count int) ([]row, error) {
	recs, err := sign(count, "throughput")
	if err != nil {
		return nil, err
	}
	ns, err := b.mesh(k, false)
	defer stopAll(ns)
	if err != nil {
		return nil, err
	}
	writer := ns[0]
	ctx := context.Background()
	cpu0 := cpuTime()
	start := time.Now()
	// The writer stores batches of 100 (one synced write each) while it
	// publishes the batches already stored, as a node's API would.
	stored := make(chan []*registry.Record, 4)
	storeErr := make(chan error, 1)
	go func() {
		defer close(stored)
		for i := 0; i < len(recs); i += 100 {
			batch := recs[i:min(i+100, len(recs))]
			if _, err := writer.db.PutRecords(batch); err != nil {
				storeErr <- err
				return
			}
			stored <- batch
		}
	}()
	for batch := range stored {
		for _, r := range batch {
			if err := writer.Publish(ctx, r); err != nil {
				return nil, err
			}
		}
	}
	select {
	case err := <-storeErr:
		return nil, err
	default:
	}
	written := time.Since(start)
	deadline := time.Now().Add(5 * time.Minute)
	for !equalDigests(ns) {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("digests still differ after 5 minutes")
		}
		time.Sleep(2 * time.Millisecond)
	}
	took := time.Since(start)
	cpu := cpuTime() - cpu0
	var gossiped, reconciled, heldAgain uint64
	for _, n := range ns[1:] {
		s := n.Stats()
		gossiped += s.GossipAccepted
		heldAgain += s.GossipIgnoredHeld
		reconciled += s.RecordsIngested - s.GossipAccepted
	}
	fmt.Printf("(a) %d records on 1 of %d nodes: written and published in %s, all digests equal after %s; receivers verified %d gossiped records (%d arrived by reconciliation, %d gossiped again after they had arrived); process CPU %.2f s (%.0f%% of %d cores)\n",
		count, k, written.Round(time.Millisecond), took.Round(time.Millisecond), gossiped, reconciled, heldAgain,
		cpu.Seconds(), 100*cpu.Seconds()/took.Seconds()/float64(runtime.GOMAXPROCS(0)), runtime.GOMAXPROCS(0))
	perRecord := float64(cpu.Microseconds()) / float64(count)
	return []row{
		{fmt.Sprintf("(a) %d records from 1 node to all %d: throughput", count, k), "≥ 3,700 records/s", float64(count) / took.Seconds(), unit("%.0f records/s")},
		{"(a) seconds until all digests are equal", "", took.Seconds(), unit("%.2f s")},
		{fmt.Sprintf("(a) process CPU per record (all %d nodes)", k), "", perRecord, unit("%.0f µs")},
		{fmt.Sprintf("(a) throughput if the process had all %d cores", runtime.GOMAXPROCS(0)), "", float64(runtime.GOMAXPROCS(0)) * 1e6 / perRecord, unit("%.0f records/s")},
	}, nil
}

// catchUp: a node lacking `missing` of `total` records reconciles with one
// holding them all; then a fresh node joins one holding `joiner` records.
func (b *bench) catchUp(total, missing, joiner int) ([]row, error) {
	recs, err := sign(total, "catch-up")
	if err != nil {
		return nil, err
	}
	// The missing records are spread evenly over the whole time range.
	stride := total / missing
	var lacking, held []*registry.Record
	for i, r := range recs {
		if i%stride == stride/2 && len(lacking) < missing {
			lacking = append(lacking, r)
		} else {
			held = append(held, r)
		}
	}
	full, err := b.start(false, recs...)
	if err != nil {
		return nil, err
	}
	defer full.stop()
	lag, err := b.start(false, held...)
	if err != nil {
		return nil, err
	}
	defer lag.stop()
	rep, err := lag.Sync(context.Background(), full.Addrs()[0])
	if err != nil {
		return nil, err
	}
	if lag.Digest() != full.Digest() {
		return nil, fmt.Errorf("digests differ after catch-up")
	}
	size := bytesOf(lacking)
	moved := rep.BytesIn + rep.BytesOut
	fmt.Printf("(b) catch-up of %d of %d records (%d bytes of records): %d records in, %d bytes in, %d bytes out, %d round trips, %s\n",
		missing, total, size, rep.RecordsIn, rep.BytesIn, rep.BytesOut, rep.RoundTrips, rep.Duration.Round(time.Millisecond))

	jrecs := recs[:joiner]
	host, err := b.start(false, jrecs...)
	if err != nil {
		return nil, err
	}
	defer host.stop()
	fresh, err := b.start(false)
	if err != nil {
		return nil, err
	}
	defer fresh.stop()
	start := time.Now()
	jrep, err := fresh.Sync(context.Background(), host.Addrs()[0])
	if err != nil {
		return nil, err
	}
	took := time.Since(start)
	if fresh.Digest() != host.Digest() {
		return nil, fmt.Errorf("digests differ after the late joiner's sync")
	}
	jsize := bytesOf(jrecs)
	jmoved := jrep.BytesIn + jrep.BytesOut
	fmt.Printf("(b) late joiner on %d records (%d bytes): %d records in, %d bytes in, %d bytes out, %d round trips, %s (with connecting)\n",
		joiner, jsize, jrep.RecordsIn, jrep.BytesIn, jrep.BytesOut, jrep.RoundTrips, took.Round(time.Millisecond))
	budget := 2*size + 64<<10
	return []row{
		{fmt.Sprintf("(b) %d missing of %d: bytes exchanged", missing, total), "≤ 2× records + 64 KiB", float64(moved),
			func(v float64) string { return fmt.Sprintf("%.0f B (budget 2×%d + 65,536 = %d B)", v, size, budget) }},
		{fmt.Sprintf("(b) %d missing of %d: round trips", missing, total), "", float64(rep.RoundTrips), unit("%.0f")},
		{fmt.Sprintf("(b) late joiner on %d records: time", joiner), "≤ 1 s", took.Seconds(), unit("%.3f s")},
		{fmt.Sprintf("(b) late joiner on %d records: bytes", joiner), "≤ 1.2×", float64(jmoved) / float64(jsize),
			func(v float64) string { return fmt.Sprintf("%.3f× the records' %d B", v, jsize) }},
	}, nil
}

// latency: one record at a time from a rotating writer; the time from just
// before Publish until every other node has stored it durably.
func (b *bench) latency(k, samples int) ([]row, error) {
	recs, err := sign(samples, "latency")
	if err != nil {
		return nil, err
	}
	ns, err := b.mesh(k, true)
	defer stopAll(ns)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	var lat []time.Duration
	for i, r := range recs {
		w := ns[i%len(ns)]
		if _, err := w.db.PutRecords([]*registry.Record{r}); err != nil {
			return nil, err
		}
		start := time.Now()
		if err := w.Publish(ctx, r); err != nil {
			return nil, err
		}
		deadline := time.Now().Add(10 * time.Second)
		var last time.Time
		for {
			done := true
			last = time.Time{}
			for _, n := range ns {
				if n == w {
					continue
				}
				n.mu.Lock()
				at, ok := n.at[r.ID()]
				n.mu.Unlock()
				if !ok {
					done = false
					break
				}
				if at.After(last) {
					last = at
				}
			}
			if done {
				break
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("record %d did not reach every node in 10 s", i)
			}
			time.Sleep(50 * time.Microsecond)
		}
		lat = append(lat, last.Sub(start))
		time.Sleep(5 * time.Millisecond)
	}
	slices.Sort(lat)
	p := func(q float64) time.Duration { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
	fmt.Printf("(c) %d single records across %d nodes: p50 %s, p90 %s, p99 %s, max %s\n", samples, k,
		p(0.5).Round(10*time.Microsecond), p(0.9).Round(10*time.Microsecond), p(0.99).Round(10*time.Microsecond), lat[len(lat)-1].Round(10*time.Microsecond))
	return []row{
		{fmt.Sprintf("(c) one record to all %d nodes: p50", k), "≤ 5 ms", float64(p(0.5).Microseconds()) / 1000, unit("%.2f ms")},
		{fmt.Sprintf("(c) one record to all %d nodes: p99", k), "≤ 15 ms", float64(p(0.99).Microseconds()) / 1000, unit("%.2f ms")},
	}, nil
}

// cpuTime returns the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
