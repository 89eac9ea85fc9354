package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"encoding/base64"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/rest"
)

// printJSON prints raw API JSON as is.
func printJSON(raw []byte) error {
	var buf bytes.Buffer
	if json.Indent(&buf, raw, "", "  ") != nil {
		buf.Reset()
		buf.Write(raw)
	}
	buf.WriteByte('\n')
	_, err := os.Stdout.Write(buf.Bytes())
	return err
}

// get fetches path; with --json it prints the answer and returns done.
func (e *env) get(path string, out any) (done bool, err error) {
	var raw []byte
	if err := e.cl.getJSON(e.ctx, path, &raw); err != nil {
		return false, err
	}
	if e.json {
		return true, printJSON(raw)
	}
	return false, json.Unmarshal(raw, out)
}

// send sends a JSON request; with --json it prints the answer and returns done.
func (e *env) send(method, path string, in, out any) (done bool, err error) {
	var raw []byte
	if err := e.cl.sendJSON(e.ctx, method, path, in, &raw); err != nil {
		return false, err
	}
	if e.json {
		return true, printJSON(raw)
	}
	if out == nil {
		return false, nil
	}
	return false, json.Unmarshal(raw, out)
}

func esc(id string) string { return url.PathEscape(id) }

func healthCmd() *cli.Command {
	return &cli.Command{
		Name:  "health",
		Usage: "show the node's name, version, peer ID, addresses, record and blob counts",
		Action: action(func(e *env) error {
			var h health
			if done, err := e.get("/health", &h); done || err != nil {
				return err
			}
			t := newTable()
			t.kv("name", h.Name)
			t.kv("status", h.Status)
			t.kv("version", h.Version)
			t.kv("peer id", h.PeerID)
			for i, a := range h.Addrs {
				label := ""
				if i == 0 {
					label = "addresses"
				}
				t.kv(label, a)
			}
			t.kv("records", strconv.FormatInt(h.Records, 10))
			t.kv("blobs", strconv.FormatInt(h.Blobs, 10))
			t.kv("state digest", h.Digest)
			t.kv("peers connected", strconv.Itoa(h.Peers))
			t.kv("pipeline", onOff(h.Pipeline))
			t.kv("uptime", h.Uptime)
			return t.flush()
		}),
	}
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func listFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "query", Aliases: []string{"q"}, Usage: "substring of the name, description or keywords"},
		&cli.StringFlag{Name: "name", Usage: "exact crate name"},
		&cli.StringFlag{Name: "yanked", Usage: "true or false (default: both)"},
		&cli.StringFlag{Name: "wasm", Usage: "compatible, builds, partial, incompatible or untested"},
		&cli.BoolFlag{Name: "gc-ready", Usage: "only crates whose trusted report says GC-ready"},
		&cli.BoolFlag{Name: "dual", Usage: "only crates that work natively and in wasm"},
		&cli.IntFlag{Name: "limit", Value: 50, Usage: "page size (1–1000)"},
		&cli.StringFlag{Name: "cursor", Usage: "continue after a previous page"},
		&cli.BoolFlag{Name: "all", Usage: "fetch every page"},
	}
}

func listCmd() *cli.Command {
	return &cli.Command{
		Name:   "list",
		Usage:  "list releases, with filters and pagination",
		Flags:  listFlags(),
		Action: action(func(e *env) error { return runList(e, e.c.String("query")) }),
	}
}

func searchCmd() *cli.Command {
	return &cli.Command{
		Name:      "search",
		Usage:     "search releases by name, description or keyword",
		ArgsUsage: "QUERY",
		Flags:     listFlags(),
		Action: action(func(e *env) error {
			q, err := oneArg(e.c, "search query")
			if err != nil {
				return err
			}
			return runList(e, q)
		}),
	}
}

func runList(e *env, query string) error {
	c := e.c
	v := url.Values{}
	set := func(k, val string) {
		if val != "" {
			v.Set(k, val)
		}
	}
	set("q", query)
	set("name", c.String("name"))
	set("yanked", c.String("yanked"))
	set("wasm", c.String("wasm"))
	if c.Bool("gc-ready") {
		v.Set("gc_ready", "true")
	}
	if c.Bool("dual") {
		v.Set("dual", "true")
	}
	if c.Int("limit") < 1 || c.Int("limit") > 1000 {
		return usagef("--limit must be from 1 to 1000")
	}
	v.Set("limit", strconv.Itoa(c.Int("limit")))
	set("cursor", c.String("cursor"))
	var all []*release
	var raws []json.RawMessage
	next := ""
	for {
		var raw []byte
		if err := e.cl.getJSON(e.ctx, "/crates?"+v.Encode(), &raw); err != nil {
			return err
		}
		var p page
		if err := json.Unmarshal(raw, &p); err != nil {
			return err
		}
		all = append(all, p.Crates...)
		raws = append(raws, raw)
		next = p.NextCursor
		if !c.Bool("all") || next == "" {
			break
		}
		v.Set("cursor", next)
	}
	if e.json {
		if len(raws) == 1 {
			return printJSON(raws[0])
		}
		b, _ := json.Marshal(map[string]any{"crates": all})
		return printJSON(b)
	}
	if len(all) == 0 {
		fmt.Println("no releases match")
		return nil
	}
	t := newTable()
	t.row("NAME", "VERSION", "WASM", "SCORE", "GATE", "YANKED", "DESCRIPTION")
	for _, r := range all {
		score := "-"
		if r.Score != nil {
			score = strconv.FormatUint(*r.Score, 10)
		}
		t.row(r.Name, r.Version, r.Wasm, score, dash(r.Gate), yesNo(r.Yanked), clip(r.Description, 50))
	}
	if err := t.flush(); err != nil {
		return err
	}
	if next != "" {
		fmt.Printf("\nmore: --cursor %s\n", next)
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len([]rune(s)) > n {
		return string([]rune(s)[:n-1]) + "…"
	}
	return s
}

func showCmd() *cli.Command {
	return &cli.Command{
		Name:      "show",
		Usage:     "show a release: metadata, yank state, conflicts, reports and the wasm target matrix",
		ArgsUsage: "ID (name@version, a crate name, or a record ID)",
		Action: action(func(e *env) error {
			id, err := oneArg(e.c, "release ID")
			if err != nil {
				return err
			}
			var r release
			if done, err := e.get("/crates/"+esc(id), &r); done || err != nil {
				return err
			}
			printRelease(&r)
			var tests testsAnswer
			if err := e.cl.getJSON(e.ctx, "/tests/"+esc(r.Subject), &tests); err == nil && len(tests.Reports) > 0 {
				fmt.Println()
				printReport(&tests.Reports[0])
			}
			return nil
		}),
	}
}

func printRelease(r *release) {
	t := newTable()
	t.kv("release", r.Subject)
	t.kv("id", r.ID.String())
	if r.Description != "" {
		t.kv("description", clip(r.Description, 100))
	}
	t.kv("license", dash(r.License))
	if r.Repository != "" {
		t.kv("repository", r.Repository)
	}
	t.kv("published", r.Published.Format(time.RFC3339)+" by "+r.Author)
	t.kv("cksum", r.Cksum)
	t.kv("size", fmt.Sprintf("%d bytes", r.Size))
	if r.Edition != "" {
		t.kv("edition", r.Edition)
	}
	if r.RustVersion != "" {
		t.kv("rust-version", r.RustVersion)
	}
	if r.Links != "" {
		t.kv("links", r.Links)
	}
	yank := "no"
	if r.Yank != nil {
		state := "unyanked"
		if r.Yanked {
			state = "yes"
		}
		yank = fmt.Sprintf("%s (by %s at %s", state, r.Yank.By, r.Yank.At.Format(time.RFC3339))
		if r.Yank.Reason != "" {
			yank += ": " + r.Yank.Reason
		}
		yank += ")"
	}
	t.kv("yanked", yank)
	switch {
	case r.Witnessed != nil:
		t.kv("witnessed", r.Witnessed.Format(time.RFC3339)+" (first included in a trusted checkpoint)")
	default:
		t.kv("witnessed", "pending (no trusted checkpoint includes it yet)")
	}
	if r.Backdated {
		t.kv("warning", "backdated: it claims a time well before it was first witnessed")
	}
	if r.Unauthorized {
		t.kv("warning", "untrusted claim: no key this node trusts to publish the crate signed it; it is not indexed or served")
	}
	for i, c := range r.Claims {
		label := ""
		if i == 0 {
			label = "conflicts"
		}
		var why []string
		if !c.Authorized {
			why = append(why, "untrusted claim")
		}
		if c.Backdated {
			why = append(why, "backdated")
		}
		if c.Witnessed == nil {
			why = append(why, "pending")
		}
		desc := c.ID.String() + " by " + c.Author + " (another release of the same version, kept as evidence"
		if len(why) > 0 {
			desc += "; " + strings.Join(why, ", ")
		}
		t.kv(label, desc+")")
	}
	t.kv("owners", strings.Join(r.Owners, ", "))
	score := "-"
	if r.Score != nil {
		score = strconv.FormatUint(*r.Score, 10)
	}
	t.kv("wasm", fmt.Sprintf("%s (score %s, gate %s, gc-ready %s, dual %s)", r.Wasm, score, dash(r.Gate), yesNo(r.GCReady), yesNo(r.Dual)))
	if r.WasmReason != "" {
		t.kv("", terminalSafe(r.WasmReason))
	}
	for i, d := range r.Deps {
		label := ""
		if i == 0 {
			label = "dependencies"
		}
		s := d.Name + " " + d.Req
		if d.Kind != "normal" {
			s += " (" + d.Kind + ")"
		}
		if d.Target != "" {
			s += " [" + d.Target + "]"
		}
		if d.Optional {
			s += " optional"
		}
		if d.Package != "" && d.Package != d.Name {
			s += " = " + d.Package
		}
		t.kv(label, s)
	}
	for i, rep := range r.Reports {
		label := ""
		if i == 0 {
			label = "reports"
		}
		trust := "untrusted"
		if rep.Trusted {
			trust = "trusted"
		}
		t.kv(label, fmt.Sprintf("%s %s score %d %s by %s (%s)", rep.Outcome, rep.Wasm, rep.Score, rep.Gate, rep.Author, trust))
	}
	for i, rv := range r.Reviews {
		label := ""
		if i == 0 {
			label = "reviews"
		}
		t.kv(label, fmt.Sprintf("%s by %s: %s", rv.Verdict, rv.Author, rv.Comment))
	}
	t.flush()
}

func submitCmd() *cli.Command {
	return &cli.Command{
		Name:  "submit",
		Usage: "package a crate (or take a ready .crate) and publish it on the node",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "manifest", Usage: "path to the crate's Cargo.toml; the crate is packaged like `cargo package`"},
			&cli.StringFlag{Name: "crate", Usage: "path to a ready .crate archive"},
			&cli.BoolFlag{Name: "use-cargo", Usage: "package with `cargo package --no-verify` instead of the built-in packager"},
			&cli.StringFlag{Name: "max-size", Value: "10MiB", Usage: "refuse to upload archives larger than this"},
			&cli.BoolFlag{Name: "print-id", Usage: "print only name@version of the release on standard output, for scripts (what `test` takes)"},
		},
		Action: action(func(e *env) error {
			m, f := e.c.String("manifest"), e.c.String("crate")
			if (m == "") == (f == "") {
				return usagef("submit needs exactly one of --manifest PATH/Cargo.toml or --crate FILE.crate")
			}
			var data []byte
			var err error
			switch {
			case f != "":
				data, err = os.ReadFile(f)
				if err != nil {
					return fmt.Errorf("cannot read %s: %v", f, err)
				}
			case e.c.Bool("use-cargo"):
				data, err = cargoPackage(m)
			default:
				if st, serr := os.Stat(m); serr == nil && st.IsDir() {
					m = m + string(os.PathSeparator) + "Cargo.toml"
				}
				var body *registry.ReleaseBody
				data, body, err = packCrate(m, 1<<40)
				if err == nil && !e.json {
					fmt.Fprintf(os.Stderr, "packaged %s %s (%d bytes)\n", body.Name, body.Version, len(data))
				}
			}
			if err != nil {
				return err
			}
			var raw []byte
			upload := uploadBody(data, "uploading", os.Stderr, isTerminal(os.Stderr) && !e.json)
			k, err := devKey(e)
			if err != nil {
				return err
			}
			if k != nil {
				body, err := registry.ParseCrate(data, 1<<40)
				if err != nil {
					return err
				}
				rec, err := registry.Sign(k, registry.KindRelease, registry.ReleaseSubject(body.Name, body.Version), body, time.Now())
				if err != nil {
					return err
				}
				hdr := http.Header{registry.SignedRecordHeader: {base64.StdEncoding.EncodeToString(rec.Bytes())}}
				if err := e.cl.doWith(e.ctx, http.MethodPost, "/crates", upload, "application/gzip", hdr, &raw); err != nil {
					return err
				}
			} else if err := e.cl.do(e.ctx, http.MethodPost, "/crates", upload, "application/gzip", &raw); err != nil {
				return err
			}
			if e.json {
				return printJSON(raw)
			}
			var res struct {
				Created bool    `json:"created"`
				Release release `json:"release"`
			}
			if err := json.Unmarshal(raw, &res); err != nil {
				return err
			}
			what := "published"
			if !res.Created {
				what = "already published (same archive)"
			}
			if e.c.Bool("print-id") {
				fmt.Fprintf(os.Stderr, "%s %s (record %s)\n", what, res.Release.Subject, res.Release.ID)
				fmt.Println(res.Release.Subject)
				return nil
			}
			fmt.Printf("%s %s\nid %s\n", what, res.Release.Subject, res.Release.ID)
			return nil
		}),
	}
}

func yankCmd(yank bool) *cli.Command {
	name, usage := "yank", "yank a release: it stays downloadable but new resolutions skip it"
	if !yank {
		name, usage = "unyank", "undo a yank"
	}
	return &cli.Command{
		Name:      name,
		Usage:     usage,
		ArgsUsage: "ID",
		Flags:     []cli.Flag{&cli.StringFlag{Name: "reason", Usage: "why (recorded in the signed yank record)"}},
		Action: action(func(e *env) error {
			id, err := oneArg(e.c, "release ID")
			if err != nil {
				return err
			}
			if k, err := devKey(e); err != nil || k != nil {
				if err != nil {
					return err
				}
				if !strings.Contains(id, "@") {
					return usagef("signing with --key needs the release as NAME@VERSION, not %q", id)
				}
				return signAndPost(e, k, registry.KindYank, id, &registry.YankBody{Yanked: yank, Reason: e.c.String("reason")})
			}
			var r release
			in := map[string]any{"yanked": yank, "reason": e.c.String("reason")}
			if done, err := e.send(http.MethodPut, "/crates/"+esc(id), in, &r); done || err != nil {
				return err
			}
			state := "not yanked"
			if r.Yanked {
				state = "yanked"
			}
			fmt.Printf("%s is %s\n", r.Subject, state)
			return nil
		}),
	}
}

func reviewCmd() *cli.Command {
	return &cli.Command{
		Name:      "review",
		Usage:     "sign this node's review (curation note) of a release",
		ArgsUsage: "ID",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "verdict", Required: true, Usage: "approve, reject or flag"},
			&cli.StringFlag{Name: "comment", Usage: "the note"},
		},
		Action: action(func(e *env) error {
			id, err := oneArg(e.c, "release ID")
			if err != nil {
				return err
			}
			var r release
			in := map[string]any{"review": map[string]string{"verdict": e.c.String("verdict"), "comment": e.c.String("comment")}}
			if done, err := e.send(http.MethodPut, "/crates/"+esc(id), in, &r); done || err != nil {
				return err
			}
			fmt.Printf("reviewed %s: %s\n", r.Subject, e.c.String("verdict"))
			return nil
		}),
	}
}

// settableKeys maps `config set` keys to how their value becomes JSON.
var settableKeys = map[string]func(string) (any, error){
	"name":        func(v string) (any, error) { return map[string]any{"name": v}, nil },
	"description": func(v string) (any, error) { return map[string]any{"description": v}, nil },
	"auto_test":   boolSetting(func(b bool) any { return map[string]any{"auto_test": b} }),
	"gates.curated_min_score": uintSetting(func(n uint64) any {
		return map[string]any{"gates": map[string]any{"curated_min_score": n}}
	}),
	"gates.reject_below_score": uintSetting(func(n uint64) any {
		return map[string]any{"gates": map[string]any{"reject_below_score": n}}
	}),
	"gates.require_wasm": boolSetting(func(b bool) any { return map[string]any{"gates": map[string]any{"require_wasm": b}} }),
	"trust.all":          boolSetting(func(b bool) any { return map[string]any{"trust": map[string]any{"all": b}} }),
	"trust.keys": func(v string) (any, error) {
		keys := []string{}
		for _, k := range strings.Split(v, ",") {
			if k = strings.TrimSpace(k); k != "" {
				keys = append(keys, k)
			}
		}
		return map[string]any{"trust": map[string]any{"keys": keys}}, nil
	},
}

func boolSetting(f func(bool) any) func(string) (any, error) {
	return func(v string) (any, error) {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, usagef("%q is not true or false", v)
		}
		return f(b), nil
	}
}

func uintSetting(f func(uint64) any) func(string) (any, error) {
	return func(v string) (any, error) {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return nil, usagef("%q is not a whole number", v)
		}
		return f(n), nil
	}
}

func settableList() string {
	keys := make([]string, 0, len(settableKeys))
	for k := range settableKeys {
		keys = append(keys, k)
	}
	sortStrings(keys)
	return strings.Join(keys, ", ")
}

func configCmd() *cli.Command {
	show := func(e *env) error {
		var raw []byte
		if err := e.cl.getJSON(e.ctx, "/registry", &raw); err != nil {
			return err
		}
		if e.json {
			return printJSON(raw)
		}
		var s struct {
			Name        string `json:"name"`
			Description string `json:"description"`
			AutoTest    bool   `json:"auto_test"`
			Gates       struct {
				Curated     uint64 `json:"curated_min_score"`
				RejectBelow uint64 `json:"reject_below_score"`
				RequireWasm bool   `json:"require_wasm"`
			} `json:"gates"`
			Trust struct {
				All  bool     `json:"all"`
				Keys []string `json:"keys"`
			} `json:"trust"`
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			return err
		}
		t := newTable()
		t.kv("name", s.Name)
		t.kv("description", s.Description)
		t.kv("auto_test", strconv.FormatBool(s.AutoTest))
		t.kv("gates.curated_min_score", strconv.FormatUint(s.Gates.Curated, 10))
		t.kv("gates.reject_below_score", strconv.FormatUint(s.Gates.RejectBelow, 10))
		t.kv("gates.require_wasm", strconv.FormatBool(s.Gates.RequireWasm))
		t.kv("trust.all", strconv.FormatBool(s.Trust.All))
		t.kv("trust.keys", strings.Join(s.Trust.Keys, ","))
		return t.flush()
	}
	return &cli.Command{
		Name:   "config",
		Usage:  "show the registry's settings, or change one with `config set KEY VALUE`",
		Action: action(show),
		Subcommands: []*cli.Command{{
			Name:      "set",
			Usage:     "change a setting (keys: " + settableList() + ")",
			ArgsUsage: "KEY VALUE",
			Action: action(func(e *env) error {
				if e.c.NArg() != 2 {
					return usagef("config set needs KEY VALUE; keys are %s", settableList())
				}
				key, val := e.c.Args().Get(0), e.c.Args().Get(1)
				mk, ok := settableKeys[key]
				if !ok {
					return usagef("%q is not a setting; settable keys are %s", key, settableList())
				}
				patch, err := mk(val)
				if err != nil {
					return err
				}
				if done, err := e.send(http.MethodPut, "/registry", patch, nil); done || err != nil {
					return err
				}
				fmt.Printf("%s = %s\n", key, val)
				return nil
			}),
		}},
	}
}

func stateCmd() *cli.Command {
	return &cli.Command{
		Name:  "state",
		Usage: "show the record count and state digest (equal on nodes in sync)",
		Action: action(func(e *env) error {
			var s struct {
				Records int64  `json:"records"`
				Blobs   int64  `json:"blobs"`
				Digest  string `json:"digest"`
			}
			if done, err := e.get("/registry/state", &s); done || err != nil {
				return err
			}
			fmt.Printf("records %d\nblobs   %d\ndigest  %s\n", s.Records, s.Blobs, s.Digest)
			return nil
		}),
	}
}

func syncCmd() *cli.Command {
	return &cli.Command{
		Name:  "sync",
		Usage: "reconcile with peers now and report what moved",
		Flags: []cli.Flag{&cli.StringFlag{Name: "peer", Usage: "one peer, by full multiaddr (…/p2p/12D3Koo…) or peer ID; default every connected peer"}},
		Action: action(func(e *env) error {
			if !e.json {
				fmt.Fprintln(os.Stderr, "reconciling…")
			}
			var r syncReport
			if done, err := e.send(http.MethodPost, "/registry/sync", map[string]string{"peer": e.c.String("peer")}, &r); done || err != nil {
				return err
			}
			t := newTable()
			t.row("PEER", "RECORDS IN", "RECORDS OUT", "BLOBS IN", "BLOBS OUT", "BYTES IN", "BYTES OUT", "ROUND TRIPS", "TIME", "ERROR")
			row := func(name string, s rest.SyncStats, d time.Duration, errText string) {
				t.row(name, strconv.Itoa(s.RecordsIn), strconv.Itoa(s.RecordsOut),
					strconv.Itoa(s.BlobsIn), strconv.Itoa(s.BlobsOut),
					strconv.FormatInt(s.BytesIn, 10), strconv.FormatInt(s.BytesOut, 10),
					strconv.Itoa(s.RoundTrips), d.Round(time.Millisecond).String(), errText)
			}
			for _, p := range r.Peers {
				row(p.Peer, p.SyncStats, p.Duration, p.Error)
			}
			if len(r.Peers) != 1 {
				row("total", r.SyncStats, r.Duration, "")
			}
			return t.flush()
		}),
	}
}

func peersCmd() *cli.Command {
	return &cli.Command{
		Name:  "peers",
		Usage: "list peers; `peers add MULTIADDR` joins another node, `peers remove PEER` forgets one",
		Action: action(func(e *env) error {
			var res struct {
				Peers []peerInfo `json:"peers"`
			}
			if done, err := e.get("/peers", &res); done || err != nil {
				return err
			}
			if len(res.Peers) == 0 {
				fmt.Println("no peers")
				return nil
			}
			t := newTable()
			t.row("PEER", "CONNECTED", "LAST SYNC", "RECORDS IN", "RECORDS OUT", "SCORE", "ADDRESS")
			for _, p := range res.Peers {
				last := "never"
				if !p.LastSync.IsZero() {
					last = p.LastSync.Format(time.RFC3339)
				}
				addr := ""
				if len(p.Addrs) > 0 {
					addr = p.Addrs[0]
				}
				if p.LastError != "" {
					last += " (" + clip(p.LastError, 40) + ")"
				}
				t.row(p.ID, yesNo(p.Connected), last, strconv.FormatUint(p.RecordsIn, 10), strconv.FormatUint(p.RecordsOut, 10), fmt.Sprintf("%.1f", p.Score), addr)
			}
			return t.flush()
		}),
		Subcommands: []*cli.Command{
			{
				Name: "add", Usage: "join a node by its full multiaddr (…/p2p/12D3Koo…) and trust it as a trust root (--no-trust: exchange records only)", ArgsUsage: "MULTIADDR",
				Flags: []cli.Flag{&cli.BoolFlag{Name: "no-trust", Usage: "join without trusting the peer: its records are untrusted claims here"}},
				Action: action(func(e *env) error {
					addr, err := oneArg(e.c, "multiaddr")
					if err != nil {
						return err
					}
					trust := !e.c.Bool("no-trust")
					var p peerInfo
					if done, err := e.send(http.MethodPost, "/peers", map[string]any{"addr": addr, "trust": trust}, &p); done || err != nil {
						return err
					}
					how := "trusted"
					if !trust {
						how = "not trusted"
					}
					fmt.Printf("joined %s (connected: %s, %s)\n", p.ID, yesNo(p.Connected), how)
					return nil
				}),
			},
			{
				Name: "remove", Usage: "forget a peer", ArgsUsage: "PEER",
				Action: action(func(e *env) error {
					id, err := oneArg(e.c, "peer ID")
					if err != nil {
						return err
					}
					if done, err := e.send(http.MethodDelete, "/peers/"+esc(id), nil, nil); done || err != nil {
						return err
					}
					fmt.Printf("removed %s\n", id)
					return nil
				}),
			},
		},
	}
}

func ownersCmd() *cli.Command {
	list := func(e *env, name string) error {
		var res struct {
			Owners []string `json:"owners"`
		}
		if done, err := e.get("/crates/"+esc(name)+"/owners", &res); done || err != nil {
			return err
		}
		for _, o := range res.Owners {
			fmt.Println(o)
		}
		return nil
	}
	change := func(add bool) cli.ActionFunc {
		return action(func(e *env) error {
			if e.c.NArg() != 2 {
				return usagef("%s needs CRATE PEER_ID", e.c.Command.Name)
			}
			name, key := e.c.Args().Get(0), e.c.Args().Get(1)
			var res struct {
				Owners []string `json:"owners"`
			}
			if err := e.cl.getJSON(e.ctx, "/crates/"+esc(name)+"/owners", &res); err != nil {
				return err
			}
			next := []string{}
			for _, o := range res.Owners {
				if o != key {
					next = append(next, o)
				}
			}
			if add {
				next = append(next, key)
			}
			if k, err := devKey(e); err != nil || k != nil {
				if err != nil {
					return err
				}
				var keys []registry.PublicKey
				for _, o := range next {
					pk, err := registry.ParsePeerID(o)
					if err != nil {
						return usagef("%s", registry.MessageOf(err))
					}
					keys = append(keys, pk)
				}
				return signAndPost(e, k, registry.KindOwners, name, registry.NewOwnersBody(keys))
			}
			if done, err := e.send(http.MethodPut, "/crates/"+esc(name)+"/owners", map[string]any{"owners": next}, &res); done || err != nil {
				return err
			}
			fmt.Printf("owners of %s: %s\n", name, strings.Join(res.Owners, ", "))
			return nil
		})
	}
	return &cli.Command{
		Name: "owners", Usage: "show a crate's owners (keys allowed to publish and yank); add or remove one", ArgsUsage: "CRATE",
		Action: action(func(e *env) error {
			name, err := oneArg(e.c, "crate name")
			if err != nil {
				return err
			}
			return list(e, name)
		}),
		Subcommands: []*cli.Command{
			{Name: "add", Usage: "add an owner", ArgsUsage: "CRATE PEER_ID", Action: change(true)},
			{Name: "remove", Usage: "remove an owner", ArgsUsage: "CRATE PEER_ID", Action: change(false)},
		},
	}
}

func downloadCmd() *cli.Command {
	return &cli.Command{
		Name: "download", Usage: "download a release's verified .crate", ArgsUsage: "ID",
		Flags: []cli.Flag{&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "file to write (default NAME-VERSION.crate)"}},
		Action: action(func(e *env) error {
			id, err := oneArg(e.c, "release ID")
			if err != nil {
				return err
			}
			var r release
			if err := e.cl.getJSON(e.ctx, "/crates/"+esc(id), &r); err != nil {
				return err
			}
			var data []byte
			if err := e.cl.do(e.ctx, http.MethodGet, "/crates/"+esc(r.Subject)+"/download", nil, "", &data); err != nil {
				return err
			}
			if registry.Sum(data).Hex() != r.Cksum {
				return fmt.Errorf("the downloaded archive does not match the release's cksum %s", r.Cksum)
			}
			out := e.c.String("output")
			if out == "" {
				out = r.Name + "-" + r.Version + ".crate"
			}
			if err := os.WriteFile(out, data, 0o644); err != nil {
				return err
			}
			fmt.Printf("wrote %s (%d bytes, cksum verified)\n", out, len(data))
			return nil
		}),
	}
}

func recordCmd() *cli.Command {
	return &cli.Command{
		Name: "record", Usage: "show a signed record (or save its canonical bytes with -o)", ArgsUsage: "RECORD_ID",
		Flags: []cli.Flag{&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the canonical CBOR bytes to this file"}},
		Action: action(func(e *env) error {
			id, err := oneArg(e.c, "record ID")
			if err != nil {
				return err
			}
			if out := e.c.String("output"); out != "" {
				b, err := e.cl.getRaw(e.ctx, "/records/"+esc(id))
				if err != nil {
					return err
				}
				buf := bytes.NewBuffer(b)
				rec, err := registry.DecodeRecord(buf.Bytes())
				if err != nil {
					return fmt.Errorf("the record does not verify: %s", registry.MessageOf(err))
				}
				if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
					return err
				}
				fmt.Printf("wrote %s: %s record %s, signature verified\n", out, rec.Kind, rec.ID())
				return nil
			}
			var raw []byte
			if err := e.cl.getJSON(e.ctx, "/records/"+esc(id)+"?format=json", &raw); err != nil {
				return err
			}
			return printJSON(raw)
		}),
	}
}
