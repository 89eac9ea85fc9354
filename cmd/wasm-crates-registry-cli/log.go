package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// The transparency log commands: show a node's checkpoint, fetch proofs,
// and verify records and logs against signed checkpoints. Everything a
// verification relies on is checked here, with the node's answers treated
// as untrusted: signatures, roots and proofs are recomputed locally.

type logCheckpointJSON struct {
	Checkpoint struct {
		ID     registry.ID   `json:"id"`
		Author string        `json:"author"`
		Time   int64         `json:"time"`
		Size   uint64        `json:"size"`
		Prev   uint64        `json:"prev"`
		Root   registry.Hash `json:"root"`
		Note   string        `json:"note"`
		Record []byte        `json:"record"`
	} `json:"checkpoint"`
	LogSize uint64        `json:"log_size"`
	LogRoot registry.Hash `json:"log_root"`
}

type inclusionJSON struct {
	ID    registry.ID     `json:"id"`
	Index uint64          `json:"index"`
	Size  uint64          `json:"size"`
	Root  registry.Hash   `json:"root"`
	Proof []registry.Hash `json:"proof"`
}

type consistencyJSON struct {
	First      uint64          `json:"first"`
	Second     uint64          `json:"second"`
	FirstRoot  registry.Hash   `json:"first_root"`
	SecondRoot registry.Hash   `json:"second_root"`
	Proof      []registry.Hash `json:"proof"`
}

type logEntriesJSON struct {
	LogSize uint64 `json:"log_size"`
	Entries []struct {
		Index uint64      `json:"index"`
		ID    registry.ID `json:"id"`
	} `json:"entries"`
}

func logCmd() *cli.Command {
	return &cli.Command{
		Name:  "log",
		Usage: "the node's transparency log: checkpoints, proofs and offline verification",
		Subcommands: []*cli.Command{
			logCheckpointCmd(), logProveCmd(), logVerifyCmd(), logDownloadCmd(), logEvidenceCmd(),
		},
	}
}

func fmtMS(ms int64) string { return time.UnixMilli(ms).UTC().Format(time.RFC3339Nano) }

// fetchCheckpoint gets a checkpoint from the node and verifies its
// signature and body locally.
func (e *env) fetchCheckpoint(author string) (*registry.Checkpoint, []byte, error) {
	path := "/log/checkpoint"
	if author != "" {
		path += "?author=" + url.QueryEscape(author)
	}
	var cp logCheckpointJSON
	if err := e.cl.getJSON(e.ctx, path, &cp); err != nil {
		return nil, nil, err
	}
	c, err := parseCheckpointBytes(cp.Checkpoint.Record)
	if err != nil {
		return nil, nil, fmt.Errorf("the node's checkpoint does not verify: %w", err)
	}
	return c, cp.Checkpoint.Record, nil
}

// parseCheckpointBytes verifies a checkpoint record: canonical CBOR, or the
// JSON answer of GET /log/checkpoint.
func parseCheckpointBytes(b []byte) (*registry.Checkpoint, error) {
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
		var cp logCheckpointJSON
		if err := json.Unmarshal(t, &cp); err != nil {
			return nil, fmt.Errorf("not a checkpoint: %v", err)
		}
		b = cp.Checkpoint.Record
	}
	rec, err := registry.DecodeRecord(b)
	if err != nil {
		return nil, errors.New(registry.MessageOf(err))
	}
	c, err := registry.ParseCheckpoint(rec)
	if err != nil {
		return nil, errors.New(registry.MessageOf(err))
	}
	return c, nil
}

// loadCheckpoint reads --checkpoint (a file) or fetches the node's latest,
// and checks --author.
func (e *env) loadCheckpoint() (*registry.Checkpoint, error) {
	var c *registry.Checkpoint
	if f := e.c.String("checkpoint"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		if c, err = parseCheckpointBytes(b); err != nil {
			return nil, fmt.Errorf("%s is not a valid signed checkpoint: %w", f, err)
		}
	} else {
		var err error
		if c, _, err = e.fetchCheckpoint(e.c.String("author")); err != nil {
			return nil, err
		}
	}
	if a := e.c.String("author"); a != "" && c.Author().PeerID() != a {
		return nil, fmt.Errorf("the checkpoint is signed by %s, not by %s", c.Author().PeerID(), a)
	}
	return c, nil
}

func logCheckpointCmd() *cli.Command {
	return &cli.Command{
		Name:  "checkpoint",
		Usage: "show the node's latest signed checkpoint (verified locally); -o saves the signed record",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "author", Usage: "peer ID of another checkpoint author, as this node holds its chain"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the checkpoint record (canonical CBOR) to this file"},
		},
		Action: action(func(e *env) error {
			c, raw, err := e.fetchCheckpoint(e.c.String("author"))
			if err != nil {
				return err
			}
			if out := e.c.String("output"); out != "" {
				if err := os.WriteFile(out, raw, 0o644); err != nil {
					return err
				}
			}
			if e.json {
				return printJSON(mustJSON(map[string]any{"id": c.ID(), "author": c.Author().PeerID(), "time": c.Time(), "size": c.Size, "prev": c.Prev, "root": c.Root}))
			}
			t := newTable()
			t.kv("checkpoint", c.ID().String())
			t.kv("author", c.Author().PeerID())
			t.kv("signed at", fmtMS(c.Time()))
			t.kv("tree size", strconv.FormatUint(c.Size, 10))
			t.kv("root", c.Root.String())
			t.kv("previous size", strconv.FormatUint(c.Prev, 10))
			t.kv("signature", "verified")
			return t.flush()
		}),
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

func logProveCmd() *cli.Command {
	return &cli.Command{
		Name:      "prove",
		Usage:     "fetch an inclusion proof for a record (or, with --from and --to, a consistency proof) and check it",
		ArgsUsage: "[RECORD_ID]",
		Flags: []cli.Flag{
			&cli.Uint64Flag{Name: "size", Usage: "tree size to prove against (default: the node's latest checkpoint)"},
			&cli.Uint64Flag{Name: "from", Usage: "consistency proof: the smaller tree size"},
			&cli.Uint64Flag{Name: "to", Usage: "consistency proof: the larger tree size"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the proof (JSON) to this file, for log verify --proof"},
		},
		Action: action(func(e *env) error {
			var raw []byte
			if e.c.IsSet("from") || e.c.IsSet("to") {
				if !e.c.IsSet("from") || !e.c.IsSet("to") || e.c.NArg() != 0 {
					return usagef("a consistency proof needs --from and --to and no record ID")
				}
				if err := e.cl.getJSON(e.ctx, fmt.Sprintf("/log/proof/consistency?first=%d&second=%d", e.c.Uint64("from"), e.c.Uint64("to")), &raw); err != nil {
					return err
				}
				var p consistencyJSON
				if err := json.Unmarshal(raw, &p); err != nil {
					return err
				}
				if err := registry.VerifyConsistency(p.First, p.Second, p.Proof, p.FirstRoot, p.SecondRoot); err != nil {
					return fmt.Errorf("FAILED: the node's consistency proof from size %d to %d does not verify", p.First, p.Second)
				}
				if err := writeOut(e, raw); err != nil || e.json {
					return err
				}
				fmt.Printf("OK: the log of size %d (root %s) is a prefix of the log of size %d (root %s); proof of %d hashes verified.\n",
					p.First, p.FirstRoot, p.Second, p.SecondRoot, len(p.Proof))
				return nil
			}
			id, err := oneArg(e.c, "record ID")
			if err != nil {
				return err
			}
			rid, err := registry.ParseID(id)
			if err != nil {
				return usagef("%s", registry.MessageOf(err))
			}
			path := "/log/proof/inclusion?id=" + url.QueryEscape(rid.String())
			if e.c.IsSet("size") {
				path += "&size=" + strconv.FormatUint(e.c.Uint64("size"), 10)
			}
			if err := e.cl.getJSON(e.ctx, path, &raw); err != nil {
				return err
			}
			var p inclusionJSON
			if err := json.Unmarshal(raw, &p); err != nil {
				return err
			}
			if p.ID != rid || registry.VerifyInclusion(rid, p.Index, p.Size, p.Proof, p.Root) != nil {
				return fmt.Errorf("FAILED: the node's inclusion proof for %s does not verify", rid)
			}
			if err := writeOut(e, raw); err != nil || e.json {
				return err
			}
			fmt.Printf("OK: record %s is entry %d of the log of size %d (root %s); proof of %d hashes verified.\n", rid, p.Index, p.Size, p.Root, len(p.Proof))
			return nil
		}),
	}
}

func writeOut(e *env, raw []byte) error {
	if out := e.c.String("output"); out != "" {
		if err := os.WriteFile(out, raw, 0o644); err != nil {
			return err
		}
	}
	if e.json {
		return printJSON(raw)
	}
	return nil
}

func logVerifyCmd() *cli.Command {
	return &cli.Command{
		Name:  "verify",
		Usage: "verify a record, or a downloaded log, against a signed checkpoint",
		Description: "RECORD is a record ID or a file holding a record's canonical bytes. The checkpoint comes\n" +
			"from --checkpoint (a file saved by 'log checkpoint -o') or from the node. With --proof\n" +
			"(saved by 'log prove -o') the check is offline; with --log (saved by 'log download')\n" +
			"the whole log is recomputed and checked against the checkpoint instead.",
		ArgsUsage: "[RECORD]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "checkpoint", Usage: "file with a signed checkpoint (CBOR or the JSON of /log/checkpoint)"},
			&cli.StringFlag{Name: "author", Usage: "require the checkpoint to be signed by this peer ID"},
			&cli.StringFlag{Name: "proof", Usage: "file with an inclusion proof (JSON), to verify offline"},
			&cli.StringFlag{Name: "log", Usage: "file with a downloaded log (one record ID per line)"},
		},
		Action: action(func(e *env) error {
			c, err := e.loadCheckpoint()
			if err != nil {
				return err
			}
			if f := e.c.String("log"); f != "" {
				if e.c.NArg() != 0 {
					return usagef("give either a record or --log, not both")
				}
				return verifyLogFile(f, c)
			}
			arg, err := oneArg(e.c, "record ID or record file")
			if err != nil {
				return err
			}
			id, what, err := recordArg(arg)
			if err != nil {
				return err
			}
			var p inclusionJSON
			if f := e.c.String("proof"); f != "" {
				b, err := os.ReadFile(f)
				if err != nil {
					return err
				}
				if err := json.Unmarshal(b, &p); err != nil {
					return fmt.Errorf("%s is not an inclusion proof: %v", f, err)
				}
			} else if err := e.cl.getJSON(e.ctx, fmt.Sprintf("/log/proof/inclusion?id=%s&size=%d", url.QueryEscape(id.String()), c.Size), &p); err != nil {
				return err
			}
			switch {
			case p.ID != id:
				return fmt.Errorf("FAILED: the proof is for record %s, not for %s", p.ID, id)
			case p.Size != c.Size:
				return fmt.Errorf("FAILED: the proof is for a log of size %d, but the checkpoint signs size %d", p.Size, c.Size)
			}
			if err := registry.VerifyInclusion(id, p.Index, c.Size, p.Proof, c.Root); err != nil {
				return fmt.Errorf("FAILED: %s is NOT in the log of %s at size %d (root %s): the inclusion proof does not lead to the signed root", what, c.Author().PeerID(), c.Size, c.Root)
			}
			fmt.Printf("OK: %s is entry %d of the log of %s; the checkpoint %s signed at %s covers it (size %d, root %s).\n",
				what, p.Index, c.Author().PeerID(), c.ID(), fmtMS(c.Time()), c.Size, c.Root)
			return nil
		}),
	}
}

// recordArg reads a record ID, or a record file whose signature it verifies.
func recordArg(arg string) (registry.ID, string, error) {
	if b, err := os.ReadFile(arg); err == nil {
		rec, err := registry.DecodeRecord(b)
		if err != nil {
			return registry.ID{}, "", fmt.Errorf("FAILED: %s is not a valid signed record: %s", arg, registry.MessageOf(err))
		}
		return rec.ID(), fmt.Sprintf("the %s record %s (from %s, signature verified)", rec.Kind, rec.ID(), arg), nil
	}
	id, err := registry.ParseID(arg)
	if err != nil {
		return id, "", usagef("%s is neither a readable record file nor a record ID", arg)
	}
	return id, "record " + id.String(), nil
}

// verifyLogFile recomputes a downloaded log's tree and checks it against
// the checkpoint: the root of its first Size entries, and the entries the
// checkpoint itself carries.
func verifyLogFile(path string, c *registry.Checkpoint) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var ids []registry.ID
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		id, err := registry.ParseID(s)
		if err != nil {
			return fmt.Errorf("FAILED: %s line %d is not a record ID", path, line)
		}
		ids = append(ids, id)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if uint64(len(ids)) < c.Size {
		return fmt.Errorf("FAILED: the log in %s has %d entries, fewer than the %d the checkpoint signs", path, len(ids), c.Size)
	}
	for i, id := range c.Leaves {
		if ids[c.Prev+uint64(i)] != id {
			return fmt.Errorf("FAILED: entry %d of %s is %s, but the checkpoint says %s", c.Prev+uint64(i), path, ids[c.Prev+uint64(i)], id)
		}
	}
	if root := registry.TreeRoot(ids[:c.Size]); root != c.Root {
		return fmt.Errorf("FAILED: the first %d entries of %s hash to %s, but the checkpoint signs %s", c.Size, path, root, c.Root)
	}
	fmt.Printf("OK: the first %d entries of %s are the log %s signed in checkpoint %s at %s (root %s).\n",
		c.Size, path, c.Author().PeerID(), c.ID(), fmtMS(c.Time()), c.Root)
	return nil
}

func logDownloadCmd() *cli.Command {
	return &cli.Command{
		Name:  "download",
		Usage: "save the node's log (one record ID per line) for log verify --log",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Required: true, Usage: "file to write"},
			&cli.Uint64Flag{Name: "size", Usage: "entries to fetch (default: the whole log)"},
		},
		Action: action(func(e *env) error {
			var ids []string
			size := e.c.Uint64("size")
			for start := uint64(0); ; {
				var page logEntriesJSON
				if err := e.cl.getJSON(e.ctx, fmt.Sprintf("/log/entries?start=%d&limit=1000", start), &page); err != nil {
					return err
				}
				if size == 0 {
					size = page.LogSize
				}
				for _, en := range page.Entries {
					if en.Index != start {
						return fmt.Errorf("the node skipped entry %d", start)
					}
					if start < size {
						ids = append(ids, en.ID.String())
					}
					start++
				}
				if start >= size || len(page.Entries) == 0 {
					break
				}
				if !e.json {
					fmt.Fprintf(os.Stderr, "\r%d/%d entries", start, size)
				}
			}
			if uint64(len(ids)) < size {
				return fmt.Errorf("the node's log has %d entries, not %d", len(ids), size)
			}
			if err := os.WriteFile(e.c.String("output"), []byte(strings.Join(ids, "\n")+"\n"), 0o644); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "\rwrote %d entries to %s\n", len(ids), e.c.String("output"))
			return nil
		}),
	}
}

func logEvidenceCmd() *cli.Command {
	return &cli.Command{
		Name:  "evidence",
		Usage: "list checkpoint equivocation evidence held by the node",
		Action: action(func(e *env) error {
			var ev struct {
				Evidence []registry.Evidence `json:"evidence"`
			}
			if done, err := e.get("/log/evidence", &ev); done || err != nil {
				return err
			}
			if len(ev.Evidence) == 0 {
				fmt.Println("no equivocation seen")
				return nil
			}
			t := newTable()
			t.row("AUTHOR", "REASON", "AT SIZE", "CHECKPOINTS", "DETAIL")
			for _, x := range ev.Evidence {
				t.row(x.Author.PeerID(), x.Reason, strconv.FormatUint(x.At, 10), x.A.String()+" "+x.B.String(), x.Detail)
			}
			return t.flush()
		}),
	}
}
