package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"
)

type verifyReport struct {
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Records  int64     `json:"records_checked"`
	Blobs    int64     `json:"blobs_checked"`
	Complete bool      `json:"complete"`
	Trigger  string    `json:"trigger"`
	Damaged  []struct {
		Kind    string `json:"kind"`
		ID      string `json:"id"`
		Problem string `json:"problem"`
	} `json:"damaged"`
}

func verifyCmd() *cli.Command {
	return &cli.Command{
		Name:  "verify",
		Usage: "re-verify every stored record and blob now, quarantine what is damaged, and report it (non-zero exit status when something is damaged)",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "last", Usage: "show the last verification's report instead of running one"}},
		Action: action(func(e *env) error {
			var raw []byte
			var err error
			if e.c.Bool("last") {
				err = e.cl.getJSON(e.ctx, "/verify", &raw)
			} else {
				if !e.json {
					fmt.Fprintln(os.Stderr, "verifying every record and blob…")
				}
				err = e.cl.sendJSON(e.ctx, http.MethodPost, "/verify", struct{}{}, &raw)
			}
			if err != nil {
				return err
			}
			var r verifyReport
			if err := json.Unmarshal(raw, &r); err != nil {
				return fmt.Errorf("the node's verification report is not the JSON this CLI reads: %w", err)
			}
			if e.json {
				if err := printJSON(raw); err != nil {
					return err
				}
			} else {
				t := newTable()
				t.kv("finished", r.Finished.Local().Format(time.RFC3339))
				t.kv("trigger", r.Trigger)
				t.kv("records checked", strconv.FormatInt(r.Records, 10))
				t.kv("blobs checked", strconv.FormatInt(r.Blobs, 10))
				t.kv("complete", strconv.FormatBool(r.Complete))
				t.kv("damaged", strconv.Itoa(len(r.Damaged)))
				if err := t.flush(); err != nil {
					return err
				}
				if len(r.Damaged) > 0 {
					t := newTable()
					t.row("KIND", "ID", "PROBLEM")
					for _, d := range r.Damaged {
						t.row(d.Kind, d.ID, d.Problem)
					}
					if err := t.flush(); err != nil {
						return err
					}
				}
			}
			if len(r.Damaged) > 0 {
				return fmt.Errorf("%d damaged items were quarantined; peers will supply intact copies of the records they hold", len(r.Damaged))
			}
			return nil
		}),
	}
}
