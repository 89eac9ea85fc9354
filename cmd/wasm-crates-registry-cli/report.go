package main

import (
	"fmt"
	"time"
)

// printReport prints a report's summary.
func printReport(r *reportWithBody) {
	trust := "not trusted by this node"
	if r.Trusted {
		trust = "trusted"
	}
	t := newTable()
	t.kv("report", r.ID)
	t.kv("by", fmt.Sprintf("%s (%s) at %s", r.Author, trust, r.Time.Format(time.RFC3339)))
	t.kv("outcome", r.Outcome)
	t.kv("wasm", r.Wasm)
	t.kv("score", fmt.Sprintf("%d → %s", r.Score, r.Gate))
	t.kv("gc-ready", yesNo(r.GCReady))
	t.kv("dual", yesNo(r.Dual))
	t.flush()
}
