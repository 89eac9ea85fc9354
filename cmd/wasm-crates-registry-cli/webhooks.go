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

type webhookInfo struct {
	ID      string    `json:"id"`
	URL     string    `json:"url"`
	Events  []string  `json:"events"`
	Created time.Time `json:"created"`
	By      string    `json:"by"`
	Secret  string    `json:"secret"`
}

type deliveryInfo struct {
	ID         string    `json:"id"`
	Event      string    `json:"event"`
	Type       string    `json:"type"`
	Attempt    int       `json:"attempt"`
	Time       time.Time `json:"time"`
	Status     int       `json:"status"`
	Error      string    `json:"error"`
	DurationMS int64     `json:"duration_ms"`
	Final      string    `json:"final"`
}

func webhooksCmd() *cli.Command {
	return &cli.Command{
		Name:  "webhooks",
		Usage: "subscribe HTTP endpoints to the node's events: publish, yank, report, verdict, gate (admin token)",
		Subcommands: []*cli.Command{
			{
				Name:      "add",
				Usage:     "subscribe URL; prints the secret that signs its deliveries, shown only now",
				ArgsUsage: "URL",
				Flags: []cli.Flag{
					&cli.StringSliceFlag{Name: "event", Usage: "publish, yank, report, verdict or gate (repeatable; default: all)"},
				},
				Action: action(func(e *env) error {
					u, err := oneArg(e.c, "URL")
					if err != nil {
						return err
					}
					var raw json.RawMessage
					if err := e.cl.sendJSON(e.ctx, http.MethodPost, "/webhooks", map[string]any{"url": u, "events": e.c.StringSlice("event")}, &raw); err != nil {
						return err
					}
					if e.json {
						return printJSON(raw)
					}
					var w webhookInfo
					if err := json.Unmarshal(raw, &w); err != nil {
						return fmt.Errorf("the node's answer is not the JSON this CLI reads: %w", err)
					}
					fmt.Fprintf(os.Stderr, "webhook %s: %s for %s; its secret, shown only now (Wcr-Signature is the HMAC-SHA256 of \"<Wcr-Timestamp>.<body>\" with it):\n", w.ID, w.URL, strings.Join(w.Events, ","))
					fmt.Println(w.Secret)
					return nil
				}),
			},
			{
				Name:  "list",
				Usage: "list the subscriptions",
				Action: action(func(e *env) error {
					var l struct {
						Webhooks []webhookInfo `json:"webhooks"`
					}
					if done, err := e.get("/webhooks", &l); done || err != nil {
						return err
					}
					t := newTable()
					t.row("ID", "URL", "EVENTS", "CREATED", "BY")
					for _, w := range l.Webhooks {
						t.row(w.ID, w.URL, strings.Join(w.Events, ","), w.Created.Local().Format(time.DateTime), w.By)
					}
					return t.flush()
				}),
			},
			{
				Name:      "remove",
				Usage:     "remove a subscription and its pending deliveries",
				ArgsUsage: "ID",
				Action: action(func(e *env) error {
					id, err := oneArg(e.c, "webhook ID")
					if err != nil {
						return err
					}
					var out map[string]any
					if done, err := e.send(http.MethodDelete, "/webhooks/"+url.PathEscape(id), nil, &out); done || err != nil {
						return err
					}
					fmt.Println("removed", id)
					return nil
				}),
			},
			{
				Name:      "test",
				Usage:     "send a test delivery (a ping event) and show how it went",
				ArgsUsage: "ID",
				Flags:     []cli.Flag{&cli.DurationFlag{Name: "wait", Value: 15 * time.Second, Usage: "how long to wait for the attempt"}},
				Action: action(func(e *env) error {
					id, err := oneArg(e.c, "webhook ID")
					if err != nil {
						return err
					}
					var p struct {
						Delivery string `json:"delivery"`
					}
					if err := e.cl.sendJSON(e.ctx, http.MethodPost, "/webhooks/"+url.PathEscape(id)+"/ping", nil, &p); err != nil {
						return err
					}
					deadline := time.Now().Add(e.c.Duration("wait"))
					for {
						var l struct {
							Deliveries []deliveryInfo `json:"deliveries"`
						}
						if err := e.cl.getJSON(e.ctx, "/webhooks/"+url.PathEscape(id)+"/deliveries?limit=20", &l); err != nil {
							return err
						}
						for _, d := range l.Deliveries {
							if d.ID != p.Delivery {
								continue
							}
							if d.Final == "delivered" {
								fmt.Printf("delivered: %d in %d ms\n", d.Status, d.DurationMS)
								return nil
							}
							return fmt.Errorf("the test delivery failed (attempt %d: %s); the node retries it with backoff", d.Attempt, attemptResult(d))
						}
						if time.Now().After(deadline) {
							return fmt.Errorf("no attempt of delivery %s within %s", p.Delivery, e.c.Duration("wait"))
						}
						time.Sleep(200 * time.Millisecond)
					}
				}),
			},
			{
				Name:      "deliveries",
				Usage:     "the delivery log of a subscription, newest first",
				ArgsUsage: "ID",
				Flags:     []cli.Flag{&cli.IntFlag{Name: "limit", Value: 50, Usage: "entries to show (at most 1000)"}},
				Action: action(func(e *env) error {
					id, err := oneArg(e.c, "webhook ID")
					if err != nil {
						return err
					}
					var l struct {
						Deliveries []deliveryInfo `json:"deliveries"`
					}
					if done, err := e.get("/webhooks/"+url.PathEscape(id)+"/deliveries?limit="+strconv.Itoa(e.c.Int("limit")), &l); done || err != nil {
						return err
					}
					t := newTable()
					t.row("TIME", "EVENT", "DELIVERY", "ATTEMPT", "RESULT", "MS")
					for _, d := range l.Deliveries {
						t.row(d.Time.Local().Format(time.DateTime), d.Type, d.ID, strconv.Itoa(d.Attempt), attemptResult(d), strconv.FormatInt(d.DurationMS, 10))
					}
					return t.flush()
				}),
			},
		},
	}
}

func attemptResult(d deliveryInfo) string {
	r := ""
	if d.Status != 0 {
		r = strconv.Itoa(d.Status)
	}
	if d.Error != "" {
		r = strings.TrimSpace(r + " " + d.Error)
	}
	if d.Final != "" {
		r += " (" + d.Final + ")"
	}
	return r
}
