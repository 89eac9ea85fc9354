package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
)

type tokenInfo struct {
	ID      string     `json:"id"`
	Name    string     `json:"name"`
	Person  string     `json:"person"`
	Created time.Time  `json:"created"`
	Expires *time.Time `json:"expires"`
	Revoked *time.Time `json:"revoked"`
	Scopes  []string   `json:"scopes"`
	Crates  []string   `json:"crates"`
}

func (t tokenInfo) state() string {
	switch {
	case t.Revoked != nil:
		return "revoked " + t.Revoked.Local().Format(time.DateOnly)
	case t.Expires != nil && !time.Now().Before(*t.Expires):
		return "expired " + t.Expires.Local().Format(time.DateOnly)
	case t.Expires != nil:
		return "expires " + t.Expires.Local().Format(time.DateOnly)
	}
	return "no expiry"
}

func tokensCmd() *cli.Command {
	return &cli.Command{
		Name:  "tokens",
		Usage: "make, list and revoke per-person API tokens",
		Subcommands: []*cli.Command{
			{
				Name:  "create",
				Usage: "make a token (shown once); an admin token can make one for anybody, others for themselves with no more than they hold",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "name", Value: "cli", Usage: "a name to tell the token by"},
					&cli.StringSliceFlag{Name: "scope", Usage: "publish-new, publish-update, yank, owners, review, test or admin (repeatable)", Required: true},
					&cli.StringSliceFlag{Name: "crate", Usage: "limit the token to crates matching a name or a prefix* (repeatable)"},
					&cli.StringFlag{Name: "person", Usage: "whom the token is for (default: yourself)"},
					&cli.StringFlag{Name: "expires", Usage: "lifetime, e.g. 90d or 12h (default: none)"},
				},
				Action: action(func(e *env) error {
					if e.c.NArg() > 0 {
						return usagef("tokens create takes no arguments, only options (got %q); give the name with --name", e.c.Args().First())
					}
					req := map[string]any{"name": e.c.String("name"), "scopes": e.c.StringSlice("scope"), "crates": e.c.StringSlice("crate"),
						"person": e.c.String("person"), "expires_in": e.c.String("expires")}
					var raw json.RawMessage
					if err := e.cl.sendJSON(e.ctx, http.MethodPost, "/tokens", req, &raw); err != nil {
						return err
					}
					if e.json {
						return printJSON(raw)
					}
					var nt struct {
						Token string    `json:"token"`
						Info  tokenInfo `json:"info"`
					}
					if err := json.Unmarshal(raw, &nt); err != nil {
						return fmt.Errorf("the node's answer is not the JSON this CLI reads: %w", err)
					}
					fmt.Fprintf(os.Stderr, "token %s (%s) for %s, scopes %s, %s; it is shown only now:\n", nt.Info.ID, nt.Info.Name, nt.Info.Person, strings.Join(nt.Info.Scopes, ","), nt.Info.state())
					fmt.Println(nt.Token)
					return nil
				}),
			},
			{
				Name:  "list",
				Usage: "list tokens (all of them for an admin token, your own otherwise); never their secrets",
				Action: action(func(e *env) error {
					var raw json.RawMessage
					if err := e.cl.getJSON(e.ctx, "/tokens", &raw); err != nil {
						return err
					}
					if e.json {
						return printJSON(raw)
					}
					var l struct {
						Tokens []tokenInfo `json:"tokens"`
					}
					if err := json.Unmarshal(raw, &l); err != nil {
						return fmt.Errorf("the node's answer is not the JSON this CLI reads: %w", err)
					}
					t := newTable()
					t.row("ID", "NAME", "PERSON", "SCOPES", "CRATES", "STATE")
					for _, x := range l.Tokens {
						crates := strings.Join(x.Crates, ",")
						if crates == "" {
							crates = "*"
						}
						t.row(x.ID, x.Name, x.Person, strings.Join(x.Scopes, ","), crates, x.state())
					}
					return t.flush()
				}),
			},
			{
				Name:      "revoke",
				Usage:     "revoke a token by its ID (8 or more hex digits of what `tokens list` shows)",
				ArgsUsage: "ID",
				Action: action(func(e *env) error {
					id, err := oneArg(e.c, "token ID")
					if err != nil {
						return err
					}
					var raw json.RawMessage
					if err := e.cl.sendJSON(e.ctx, http.MethodDelete, "/tokens/"+url.PathEscape(id), nil, &raw); err != nil {
						return err
					}
					if e.json {
						return printJSON(raw)
					}
					var x tokenInfo
					if err := json.Unmarshal(raw, &x); err != nil {
						return fmt.Errorf("the node's answer is not the JSON this CLI reads: %w", err)
					}
					fmt.Printf("token %s (%s of %s) %s\n", x.ID, x.Name, x.Person, x.state())
					return nil
				}),
			},
		},
	}
}

func auditCmd() *cli.Command {
	return &cli.Command{
		Name:  "audit",
		Usage: "read and check the node's tamper-evident audit log (admin token)",
		Subcommands: []*cli.Command{
			{
				Name:  "verify",
				Usage: "check every entry's hash and link, and the head the node's checkpoints signed (non-zero exit status when broken)",
				Action: action(func(e *env) error {
					var raw json.RawMessage
					if err := e.cl.getJSON(e.ctx, "/audit/verify", &raw); err != nil {
						return err
					}
					var c struct {
						Entries uint64 `json:"entries"`
						OK      bool   `json:"ok"`
						Bad     uint64 `json:"bad"`
						Problem string `json:"problem"`
						Head    struct {
							Seq  uint64 `json:"seq"`
							Hash string `json:"hash"`
						} `json:"head"`
					}
					if err := json.Unmarshal(raw, &c); err != nil {
						return fmt.Errorf("the node's answer is not the JSON this CLI reads: %w", err)
					}
					if e.json {
						if err := printJSON(raw); err != nil {
							return err
						}
					} else if c.OK {
						fmt.Printf("audit log intact: %d entries, head %d %s\n", c.Entries, c.Head.Seq, c.Head.Hash)
					}
					if !c.OK {
						return fmt.Errorf("the audit log is broken at entry %d: %s", c.Bad, c.Problem)
					}
					return nil
				}),
			},
			{
				Name:  "list",
				Usage: "show audit entries, newest first",
				Flags: []cli.Flag{
					&cli.IntFlag{Name: "limit", Value: 50, Usage: "entries to show (at most 1000)"},
					&cli.Uint64Flag{Name: "before", Usage: "show entries older than this sequence number"},
				},
				Action: action(func(e *env) error {
					q := url.Values{"limit": {strconv.Itoa(e.c.Int("limit"))}}
					if b := e.c.Uint64("before"); b > 0 {
						q.Set("before", strconv.FormatUint(b, 10))
					}
					var raw json.RawMessage
					if err := e.cl.getJSON(e.ctx, "/audit?"+q.Encode(), &raw); err != nil {
						return err
					}
					if e.json {
						return printJSON(raw)
					}
					var l struct {
						Entries []struct {
							Seq     uint64    `json:"seq"`
							Time    time.Time `json:"time"`
							Action  string    `json:"action"`
							Actor   string    `json:"actor"`
							Subject string    `json:"subject"`
							Detail  string    `json:"detail"`
						} `json:"entries"`
					}
					if err := json.Unmarshal(raw, &l); err != nil {
						return fmt.Errorf("the node's answer is not the JSON this CLI reads: %w", err)
					}
					t := newTable()
					t.row("SEQ", "TIME", "ACTION", "BY", "SUBJECT", "DETAIL")
					for _, x := range l.Entries {
						d := x.Detail
						if len(d) > 60 {
							d = d[:57] + "..."
						}
						t.row(strconv.FormatUint(x.Seq, 10), x.Time.Local().Format(time.DateTime), x.Action, x.Actor, x.Subject, d)
					}
					return t.flush()
				}),
			},
		},
	}
}
