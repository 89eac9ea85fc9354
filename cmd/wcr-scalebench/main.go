// Command wcr-scalebench measures one node at a million records: bulk
// ingest into the real store, the real daemon's first start and restart
// over it (time until it serves, RSS at rest), GET /crates with every
// single filter over HTTP, and reconciling 100 missing records between two
// federation nodes holding the million. It prints the figures recorded in
// docs/benchmarks/scale.md.
//
//	wcr-scalebench -daemon PATH [-records 1000000] [-dir DIR] [-only ingest,daemon,reconcile]
//
// The signed records are kept in DIR/records.bin, so later runs over the
// same DIR skip signing; the store is DIR/node.
package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/federation"
	"github.com/wasmrust/wasm-crates-registry/store"
)

func main() {
	records := flag.Int("records", 1_000_000, "records the node holds")
	dir := flag.String("dir", "", "working directory (kept; default: a new temporary one)")
	daemon := flag.String("daemon", "", "path of the wasm-crates-registry binary (go build ./cmd/wasm-crates-registry)")
	only := flag.String("only", "ingest,daemon,reconcile", "phases to run")
	requests := flag.Int("requests", 200, "GET /crates requests per filter")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the ingest phase to this file")
	flag.Parse()
	if *dir == "" {
		d, err := os.MkdirTemp("", "wcr-scalebench-")
		if err != nil {
			fail(err)
		}
		*dir = d
	}
	b := &bench{dir: *dir, n: *records, daemon: *daemon, requests: *requests, cpuprofile: *cpuprofile}
	fmt.Printf("wcr-scalebench: %s, GOMAXPROCS=%d, %d records, working directory %s\n", runtime.Version(), runtime.GOMAXPROCS(0), b.n, b.dir)
	if err := b.load(); err != nil {
		fail(err)
	}
	for _, phase := range []struct {
		name string
		fn   func() error
	}{{"ingest", b.ingest}, {"daemon", b.serve}, {"reconcile", b.reconcile}} {
		if !strings.Contains(*only, phase.name) {
			continue
		}
		if err := phase.fn(); err != nil {
			fail(fmt.Errorf("%s: %w", phase.name, err))
		}
	}
	fmt.Println()
	b.table()
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "wcr-scalebench:", err)
	os.Exit(1)
}

type bench struct {
	dir        string
	n          int
	daemon     string
	requests   int
	cpuprofile string

	publisher registry.PrivateKey
	raw       [][]byte // canonical bytes of the records, in time order
	rows      [][3]string
}

func (b *bench) row(what, figure, target string) {
	b.rows = append(b.rows, [3]string{what, figure, target})
	fmt.Printf("  %s: %s\n", what, figure)
}

func (b *bench) table() {
	w := [3]int{len("measure"), len("figure"), len("target")}
	for _, r := range b.rows {
		for i := range r {
			w[i] = max(w[i], len([]rune(r[i])))
		}
	}
	line := func(r [3]string) {
		fmt.Print("|")
		for i, s := range r {
			fmt.Printf(" %s%s |", s, strings.Repeat(" ", w[i]-len([]rune(s))))
		}
		fmt.Println()
	}
	line([3]string{"measure", "figure", "target"})
	line([3]string{strings.Repeat("-", w[0]), strings.Repeat("-", w[1]), strings.Repeat("-", w[2])})
	for _, r := range b.rows {
		line(r)
	}
}

// Record mix, per crate: three releases (one in twenty by a stranger, an
// untrusted claim), a report by the publisher (a trust root, so a trusted
// tester) on each release with verdicts spread as below, three reviews by
// strangers, and a yank of the first version in one crate of fifty.
var verdicts = []struct {
	wasm   string
	weight int
}{{registry.WasmCompatible, 60}, {registry.WasmIncompatible, 25}, {registry.WasmBuilds, 13}, {registry.WasmPartial, 2}}

// load signs the records, or reads them from records.bin.
func (b *bench) load() error {
	pk, err := registry.KeyFromSeed([]byte("wcr-scalebench publisher key 32b"))
	if err != nil {
		return err
	}
	b.publisher = pk
	path := filepath.Join(b.dir, "records.bin")
	if raw, err := readRecords(path); err == nil && len(raw) == b.n {
		b.raw = raw
		fmt.Printf("read %d signed records from %s\n", len(raw), path)
		return nil
	}
	start := time.Now()
	var strangers []registry.PrivateKey
	for i := range 8 {
		k, err := registry.KeyFromSeed([]byte(fmt.Sprintf("wcr-scalebench stranger key %04d", i)))
		if err != nil {
			return err
		}
		strangers = append(strangers, k)
	}
	type job struct {
		key     registry.PrivateKey
		kind    registry.Kind
		subject string
		body    any
		at      time.Time
	}
	t0 := time.Now().Add(-30 * 24 * time.Hour).Truncate(time.Millisecond)
	rng := rand.New(rand.NewSource(1))
	var jobs []job
	for c := 0; len(jobs) < b.n; c++ {
		name := fmt.Sprintf("crate-%07d", c)
		at := t0.Add(time.Duration(c) * 2 * time.Second)
		next := func() time.Time { at = at.Add(time.Millisecond); return at }
		var rels []job
		for v := range 3 {
			k := b.publisher
			if rng.Intn(20) == 0 {
				k = strangers[rng.Intn(len(strangers))]
			}
			blob := registry.Sum([]byte(name + strconv.Itoa(v)))
			body := &registry.ReleaseBody{Name: name, Version: fmt.Sprintf("1.%d.0", v), Cksum: blob.Hex(), Blob: blob.Bytes(), Size: 1000 + uint64(c%5000),
				Description: fmt.Sprintf("crate number %d, generated for the scale benchmark", c), Keywords: []string{"wasm", "bench", fmt.Sprintf("k%d", c%1000)}}
			rels = append(rels, job{k, registry.KindRelease, registry.ReleaseSubject(name, body.Version), body, next()})
		}
		jobs = append(jobs, rels...)
		for v := range 3 {
			jobs = append(jobs, job{b.publisher, registry.KindReport, rels[v].subject, nil, next()})
		}
		for v := range 3 {
			jobs = append(jobs, job{strangers[rng.Intn(len(strangers))], registry.KindReview, rels[v].subject,
				&registry.ReviewBody{Verdict: registry.VerdictApprove, Comment: "works for me"}, next()})
		}
		if c%50 == 0 {
			jobs = append(jobs, job{b.publisher, registry.KindYank, rels[0].subject, &registry.YankBody{Yanked: true, Reason: "superseded"}, next()})
		}
	}
	jobs = jobs[:b.n]
	b.raw = make([][]byte, len(jobs))
	// Reports name the ID of the release they test: releases are signed
	// first, then the rest.
	ids := map[string]registry.ID{}
	var mu sync.Mutex
	signAll := func(pick func(j job) bool) error {
		var wg sync.WaitGroup
		errs := make([]error, runtime.GOMAXPROCS(0))
		for w := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				wrng := rand.New(rand.NewSource(int64(w)))
				for i := w; i < len(jobs); i += len(errs) {
					j := jobs[i]
					if !pick(j) {
						continue
					}
					body := j.body
					if j.kind == registry.KindReport {
						mu.Lock()
						rid, ok := ids[j.subject]
						mu.Unlock()
						if !ok { // a stranger's release: the report names no release held
							rid = registry.Sum([]byte(j.subject))
						}
						body = reportBody(wrng, rid)
					}
					r, err := registry.Sign(j.key, j.kind, j.subject, body, j.at)
					if err != nil {
						errs[w] = err
						return
					}
					b.raw[i] = r.Bytes()
					if j.kind == registry.KindRelease && j.key.Public().Equal(b.publisher.Public()) {
						mu.Lock()
						ids[j.subject] = r.ID()
						mu.Unlock()
					}
				}
			}()
		}
		wg.Wait()
		return errors.Join(errs...)
	}
	if err := signAll(func(j job) bool { return j.kind == registry.KindRelease }); err != nil {
		return err
	}
	if err := signAll(func(j job) bool { return j.kind != registry.KindRelease }); err != nil {
		return err
	}
	fmt.Printf("signed %d records in %s\n", len(b.raw), time.Since(start).Round(time.Second))
	return writeRecords(path, b.raw)
}

func reportBody(rng *rand.Rand, release registry.ID) *registry.ReportBody {
	x := rng.Intn(100)
	wasm := verdicts[len(verdicts)-1].wasm
	for _, v := range verdicts {
		if x < v.weight {
			wasm = v.wasm
			break
		}
		x -= v.weight
	}
	body := &registry.ReportBody{Release: release.Bytes(), Outcome: registry.OutcomeTestPass, Wasm: wasm,
		GCReady: rng.Intn(10) == 0, Dual: rng.Intn(2) == 0, Score: uint64(rng.Intn(101)), Gate: registry.GateNeedsReview}
	if wasm == registry.WasmBuilds {
		body.Reason = "no wasm test runner for this crate"
	}
	return body
}

func writeRecords(path string, raw [][]byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for _, r := range raw {
		var l [4]byte
		binary.BigEndian.PutUint32(l[:], uint32(len(r)))
		w.Write(l[:])
		w.Write(r)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func readRecords(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	var out [][]byte
	for {
		var l [4]byte
		if _, err := io.ReadFull(r, l[:]); err == io.EOF {
			return out, nil
		} else if err != nil {
			return nil, err
		}
		b := make([]byte, binary.BigEndian.Uint32(l[:]))
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, err
		}
		out = append(out, b)
	}
}

// ingest stores every record into a new store at DIR/node as a peer's
// records arrive: canonical bytes decoded and verified in signature
// batches on all cores, stored in synced batches of 1,000 while the next
// batch is verified. The store's Authority trusts the publisher, so its
// releases found crates and derive views.
func (b *bench) ingest() error {
	path := filepath.Join(b.dir, "node")
	if err := os.RemoveAll(path); err != nil {
		return err
	}
	db, err := store.Open(path, store.Options{GCInterval: -1})
	if err != nil {
		return err
	}
	if _, err := db.SetAuthority(registry.NewTrust([]registry.PublicKey{b.publisher.Public()}, nil, time.Now(), registry.DefaultMaxSkew)); err != nil {
		db.Close()
		return err
	}
	const batch = 1000
	verified := make(chan []*registry.Record, 2)
	verr := make(chan error, 1)
	if b.cpuprofile != "" {
		f, err := os.Create(b.cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	cpu0, start := cpuTime(), time.Now()
	go func() {
		defer close(verified)
		for i := 0; i < len(b.raw); i += batch {
			recs, err := verifyBatch(b.raw[i:min(i+batch, len(b.raw))])
			if err != nil {
				verr <- err
				return
			}
			verified <- recs
		}
	}()
	stored, lastReport := 0, time.Now()
	for recs := range verified {
		added, err := db.PutRecords(recs)
		if err != nil {
			db.Close()
			return err
		}
		stored += len(added)
		if time.Since(lastReport) > 10*time.Second {
			fmt.Printf("  … %d records stored, %.0f records/s\n", stored, float64(stored)/time.Since(start).Seconds())
			lastReport = time.Now()
		}
	}
	select {
	case err := <-verr:
		db.Close()
		return err
	default:
	}
	took, cpu := time.Since(start), cpuTime()-cpu0
	if stored != len(b.raw) {
		db.Close()
		return fmt.Errorf("stored %d of %d records", stored, len(b.raw))
	}
	closeStart := time.Now()
	if err := db.Close(); err != nil {
		return err
	}
	size, _ := dirSize(path)
	b.row(fmt.Sprintf("ingest %d records (verify + store, synced batches of %d)", len(b.raw), batch), fmt.Sprintf("%.0f records/s (%s)", float64(len(b.raw))/took.Seconds(), took.Round(time.Second)), "≥ 15,000 records/s")
	b.row("ingest: process CPU per record", fmt.Sprintf("%.0f µs", float64(cpu.Microseconds())/float64(len(b.raw))), "")
	b.row("store on disk after ingest", fmt.Sprintf("%.0f MiB (close took %s)", float64(size)/(1<<20), time.Since(closeStart).Round(time.Millisecond)), "")
	return nil
}

// verifyBatch decodes and verifies raw on all cores, 64 signatures per
// batch.
func verifyBatch(raw [][]byte) ([]*registry.Record, error) {
	out := make([]*registry.Record, len(raw))
	const chunk = 64
	var wg sync.WaitGroup
	errs := make([]error, (len(raw)+chunk-1)/chunk)
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for c := range errs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			lo, hi := c*chunk, min((c+1)*chunk, len(raw))
			recs, _, err := registry.DecodeBatch(raw[lo:hi])
			if err != nil {
				errs[c] = err
				return
			}
			copy(out[lo:], recs)
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// serve starts the real daemon over DIR/node twice (the first start
// derives the views under the daemon's own trust; the second is the
// restart measured), then measures GET /crates with each filter and the
// daemon's RSS at rest.
func (b *bench) serve() error {
	if b.daemon == "" {
		return errors.New("-daemon is required: go build -o /tmp/wcr ./cmd/wasm-crates-registry")
	}
	path := filepath.Join(b.dir, "node")
	first, err := b.startDaemon(path)
	if err != nil {
		return err
	}
	b.row("daemon first start over the ingested store (views derived again under its trust)", first.ready.Round(time.Millisecond).String(), "")
	if err := first.stop(); err != nil {
		return err
	}
	d, err := b.startDaemon(path)
	if err != nil {
		return err
	}
	defer d.stop()
	b.row("daemon restart: exec until GET /crates answers", d.ready.Round(time.Millisecond).String(), "≤ 5 s")
	time.Sleep(30 * time.Second)
	b.row("daemon RSS at rest, 30 s after the restart", rssFigure(d.cmd.Process.Pid), "≤ 256 MiB")
	crates := b.n * 10 / 94 // records per crate: 3 releases, 3 reports, 3 reviews, a yank in 50
	filters := []string{"", "wasm=compatible", "wasm=incompatible", "wasm=builds", "wasm=partial", "wasm=untested",
		"gc_ready=true", "gc_ready=false", "dual=true", "dual=false", "yanked=true", "yanked=false",
		fmt.Sprintf("name=crate-%07d", crates/2), "q=" + url.QueryEscape(fmt.Sprintf("crate number %d,", crates/3))}
	rng := rand.New(rand.NewSource(2))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2}}
	for _, f := range filters {
		var lat []time.Duration
		total := 0
		n := b.requests
		if strings.HasPrefix(f, "q=") {
			n = min(n, 20) // a substring query scans every view
		}
		for i := range n {
			q := "limit=50"
			if f != "" {
				q += "&" + f
			}
			if i%2 == 1 && !strings.HasPrefix(f, "name=") {
				at := fmt.Sprintf("crate-%07d@1.0.0", rng.Intn(crates))
				q += "&cursor=" + base64.RawURLEncoding.EncodeToString([]byte(at))
			}
			start := time.Now()
			page, err := getPage(client, d.base+"/crates?"+q)
			if err != nil {
				return fmt.Errorf("GET /crates?%s: %w", q, err)
			}
			lat = append(lat, time.Since(start))
			if err := checkPage(f, page); err != nil {
				return fmt.Errorf("GET /crates?%s: %w", q, err)
			}
			total += len(page.Crates)
		}
		slices.Sort(lat)
		ms := func(x time.Duration) string { return fmt.Sprintf("%.2f ms", float64(x.Microseconds())/1000) }
		name := f
		if name == "" {
			name = "(no filter)"
		}
		b.row("GET /crates?limit=50&"+name, fmt.Sprintf("p50 %s, p99 %s (%.1f releases per page)", ms(lat[len(lat)/2]), ms(lat[len(lat)*99/100]), float64(total)/float64(len(lat))), "p99 ≤ 20 ms")
	}
	time.Sleep(30 * time.Second)
	b.row("daemon RSS at rest, 30 s after the queries", rssFigure(d.cmd.Process.Pid), "≤ 256 MiB")
	return nil
}

type page struct {
	Crates []struct {
		Name    string `json:"name"`
		Yanked  bool   `json:"yanked"`
		Wasm    string `json:"wasm"`
		GCReady bool   `json:"gc_ready"`
		Dual    bool   `json:"dual"`
	} `json:"crates"`
	NextCursor string `json:"next_cursor"`
}

func getPage(c *http.Client, u string) (*page, error) {
	resp, err := c.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("status %d: %.200s", resp.StatusCode, body)
	}
	var p page
	return &p, json.Unmarshal(body, &p)
}

// checkPage fails unless every release listed has the filtered value.
func checkPage(filter string, p *page) error {
	k, v, _ := strings.Cut(filter, "=")
	for _, c := range p.Crates {
		ok := true
		switch k {
		case "wasm":
			ok = c.Wasm == v
		case "gc_ready":
			ok = strconv.FormatBool(c.GCReady) == v
		case "dual":
			ok = strconv.FormatBool(c.Dual) == v
		case "yanked":
			ok = strconv.FormatBool(c.Yanked) == v
		case "name":
			ok = c.Name == v
		}
		if !ok {
			return fmt.Errorf("lists %s, which does not have %s", c.Name, filter)
		}
	}
	if len(p.Crates) == 0 && filter == "" {
		return errors.New("no releases listed")
	}
	return nil
}

type daemonProc struct {
	cmd   *exec.Cmd
	base  string
	ready time.Duration
	log   *os.File
}

// startDaemon execs the daemon over path and waits until GET
// /crates?limit=50 answers 200.
func (b *bench) startDaemon(path string) (*daemonProc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(filepath.Join(b.dir, "daemon.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(b.daemon, "--database-url", path, "--host", "127.0.0.1", "--port", strconv.Itoa(port),
		"--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--pipeline=false", "--public-key", b.publisher.Public().Hex(), "--log-level", "info",
		"--rate-limit-addr", "0") // the list path is measured, not the rate limiter
	cmd.Stdout, cmd.Stderr = logf, logf
	d := &daemonProc{cmd: cmd, base: fmt.Sprintf("http://127.0.0.1:%d", port), log: logf}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case err := <-exited:
			logf.Close()
			return nil, fmt.Errorf("the daemon exited before serving (%v); see %s", err, logf.Name())
		default:
		}
		if p, err := getPage(client, d.base+"/crates?limit=50"); err == nil && len(p.Crates) > 0 {
			d.ready = time.Since(start)
			break
		}
		if time.Since(start) > 20*time.Minute {
			d.stop()
			return nil, errors.New("the daemon did not serve within 20 minutes")
		}
		time.Sleep(5 * time.Millisecond)
	}
	go func() { <-exited }()
	return d, nil
}

func (d *daemonProc) stop() error {
	defer d.log.Close()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return nil
	}
	for range 600 {
		if err := d.cmd.Process.Signal(syscall.Signal(0)); err != nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return d.cmd.Process.Kill()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// rssFigure describes the memory of process pid: VmRSS, and its
// anonymous (heap) and file-backed (Badger's memory-mapped tables) parts.
func rssFigure(pid int) string {
	v := procStatus(pid)
	mib := func(k string) float64 { return float64(v[k]) / 1024 }
	return fmt.Sprintf("%.0f MiB (anonymous %.0f MiB, mapped files %.0f MiB)", mib("VmRSS"), mib("RssAnon"), mib("RssFile"))
}

// procStatus returns the kB fields of /proc/pid/status.
func procStatus(pid int) map[string]int64 {
	out := map[string]int64{}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[2] == "kB" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			out[strings.TrimSuffix(f[0], ":")] = n
		}
	}
	return out
}

// reconcile copies the ingested store, removes 100 records spread over
// the time range from the copy (store.Quarantine: they leave its record
// set and indexes), and lets a federation node over the copy reconcile
// with one over the original.
func (b *bench) reconcile() error {
	const missing = 100
	full := filepath.Join(b.dir, "node")
	lagDir := filepath.Join(b.dir, "lag")
	if err := os.RemoveAll(lagDir); err != nil {
		return err
	}
	if out, err := exec.Command("cp", "-a", full, lagDir).CombinedOutput(); err != nil {
		return fmt.Errorf("copying the store: %v: %s", err, out)
	}
	lagDB, err := store.Open(lagDir, store.Options{GCInterval: -1})
	if err != nil {
		return err
	}
	var ids []registry.ID
	size := 0
	stride := len(b.raw) / missing
	for i := stride / 2; i < len(b.raw) && len(ids) < missing; i += stride {
		ids = append(ids, registry.Sum(b.raw[i]))
		size += len(b.raw[i])
	}
	if err := lagDB.Quarantine(ids, nil); err != nil {
		lagDB.Close()
		return err
	}
	fullDB, err := store.Open(full, store.Options{GCInterval: -1})
	if err != nil {
		lagDB.Close()
		return err
	}
	start := time.Now()
	fullNode, err := startNode(fullDB)
	if err != nil {
		return err
	}
	defer fullNode.Close()
	lagNode, err := startNode(lagDB)
	if err != nil {
		return err
	}
	defer lagNode.Close()
	b.row("two federation nodes opened over 1M-record stores (index loaded)", time.Since(start).Round(time.Millisecond).String(), "")
	rep, err := lagNode.Sync(context.Background(), fullNode.Addrs()[0])
	if err != nil {
		return err
	}
	if lagNode.Digest() != fullNode.Digest() {
		return errors.New("digests differ after reconciliation")
	}
	budget := 2*size + 64<<10
	b.row(fmt.Sprintf("reconcile %d missing of %d: bytes", missing, len(b.raw)), fmt.Sprintf("%d B (records %d B; %d in, %d out; %d round trips; %s)", rep.BytesIn+rep.BytesOut, size, rep.BytesIn, rep.BytesOut, rep.RoundTrips, rep.Duration.Round(time.Millisecond)),
		fmt.Sprintf("≤ %d B", budget))
	return nil
}

func startNode(db *store.DB) (*federation.Node, error) {
	key, err := registry.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	return federation.New(context.Background(), federation.Config{
		Key: key, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Network: "scalebench", SyncInterval: -1,
		Logger: slog.New(slog.DiscardHandler),
	}, db)
}

func dirSize(path string) (int64, error) {
	var n int64
	err := filepath.Walk(path, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return err
	})
	return n, err
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
