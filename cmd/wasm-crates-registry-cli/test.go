package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
)

type reportWithBody struct {
	reportSummary
	Report json.RawMessage `json:"report"`
}

type testsAnswer struct {
	Release release          `json:"release"`
	Reports []reportWithBody `json:"reports"`
	Jobs    []job            `json:"jobs"`
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func testCmd() *cli.Command {
	return &cli.Command{
		Name:      "test",
		Usage:     "run the testing pipeline on a release, follow it stage by stage and print the report",
		ArgsUsage: "ID",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "no-wait", Usage: "queue the run and return"},
			&cli.DurationFlag{Name: "max-wait", Value: time.Hour, Usage: "give up following after this long"},
			&cli.StringFlag{Name: "require", Usage: "exit with status 3 unless the tested release is curated, at least needs-review (not rejected), or wasm compatible: curated | needs-review | compatible"},
		},
		Action: action(func(e *env) error {
			id, err := oneArg(e.c, "release ID")
			if err != nil {
				return err
			}
			require := e.c.String("require")
			if require != "" && !slices.Contains(requireLevels, require) {
				return usagef("--require %q: use one of %s", require, strings.Join(requireLevels, ", "))
			}
			if require != "" && e.c.Bool("no-wait") {
				return usagef("--require needs the run's result; it cannot go with --no-wait")
			}
			var j job
			if err := e.cl.sendJSON(e.ctx, http.MethodPost, "/tests/"+esc(id), nil, &j); err != nil {
				return err
			}
			if e.c.Bool("no-wait") {
				if e.json {
					b, _ := json.Marshal(j)
					return printJSON(b)
				}
				fmt.Printf("queued job %d for %s\n", j.ID, j.Subject)
				return nil
			}
			final, err := followJob(e, j, e.c.Duration("max-wait"))
			if err != nil {
				return err
			}
			var raw []byte
			if err := e.cl.getJSON(e.ctx, "/tests/"+esc(final.Subject), &raw); err != nil {
				return err
			}
			var t testsAnswer
			if err := json.Unmarshal(raw, &t); err != nil {
				return err
			}
			if e.json {
				if err := printJSON(raw); err != nil {
					return err
				}
				if final.State == "done" {
					return meets(&t.Release, require)
				}
			}
			if final.State != "done" {
				if strings.HasPrefix(final.Error, "not tested here: ") {
					return fmt.Errorf("job %d ended %s: %s; the federation's testers share the work: `corpus work %s` shows who tests it, `corpus confirmation %s` what they found",
						final.ID, final.State, final.Error, final.Subject, final.Subject)
				}
				return fmt.Errorf("job %d ended %s: %s", final.ID, final.State, final.Error)
			}
			for i := range t.Reports {
				if t.Reports[i].ID == final.Report {
					fmt.Println()
					printReport(&t.Reports[i])
					if err := meets(&t.Release, require); err != nil {
						return err
					}
					if require != "" {
						fmt.Printf("\n%s meets --require %s: %s, %s\n", t.Release.Subject, require, t.Release.Wasm, t.Release.Gate)
					}
					return nil
				}
			}
			return fmt.Errorf("job %d finished but its report %s is not listed", final.ID, final.Report)
		}),
	}
}

// followJob long-polls a job and shows its progress until it ends: a live
// line in a terminal, plain lines otherwise (and nothing with --json).
func followJob(e *env, j job, maxWait time.Duration) (job, error) {
	live := isTerminal(os.Stderr) && !e.json
	deadline := time.Now().Add(maxWait)
	seen := 0
	if !e.json {
		fmt.Fprintf(os.Stderr, "job %d: testing %s\n", j.ID, j.Subject)
	}
	spin := []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}
	tick := 0
	for {
		for ; seen < len(j.Events); seen++ {
			ev := j.Events[seen]
			if e.json {
				continue
			}
			line := fmt.Sprintf("  %-10s %-24s %-7s %s", ev.Stage, ev.Target, ev.State, ev.Message)
			if live {
				fmt.Fprintf(os.Stderr, "\r\033[K%s\n", strings.TrimRight(line, " "))
			} else {
				fmt.Fprintln(os.Stderr, strings.TrimRight(line, " "))
			}
		}
		if j.State != "queued" && j.State != "running" {
			if live {
				fmt.Fprint(os.Stderr, "\r\033[K")
			}
			if !e.json {
				fmt.Fprintf(os.Stderr, "job %d %s\n", j.ID, j.State)
			}
			return j, nil
		}
		if time.Now().After(deadline) {
			return j, fmt.Errorf("job %d is still %s after %s; follow it later with `job %d`", j.ID, j.State, maxWait, j.ID)
		}
		if live {
			fmt.Fprintf(os.Stderr, "\r\033[K%s %s…", spin[tick%len(spin)], j.State)
			tick++
		}
		v := url.Values{"wait": {"20s"}, "events": {strconv.Itoa(len(j.Events))}, "state": {j.State}}
		var next job
		if err := e.cl.getJSON(e.ctx, "/jobs/"+strconv.FormatUint(j.ID, 10)+"?"+v.Encode(), &next); err != nil {
			return j, err
		}
		if len(next.Events) < seen {
			seen = 0 // the node trimmed old events
		}
		j = next
	}
}

func jobCmd() *cli.Command {
	return &cli.Command{
		Name: "job", Usage: "show a pipeline job, follow it with --follow, or cancel it with --cancel", ArgsUsage: "JOB_ID",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "follow", Usage: "follow until it ends"},
			&cli.BoolFlag{Name: "cancel", Usage: "cancel the job"},
		},
		Action: action(func(e *env) error {
			id, err := oneArg(e.c, "job ID")
			if err != nil {
				return err
			}
			if _, err := strconv.ParseUint(id, 10, 64); err != nil {
				return usagef("job ID %q is not a number", id)
			}
			var j job
			if e.c.Bool("cancel") {
				if done, err := e.send(http.MethodDelete, "/jobs/"+id, nil, &j); done || err != nil {
					return err
				}
				fmt.Printf("job %d: %s\n", j.ID, j.State)
				return nil
			}
			if err := e.cl.getJSON(e.ctx, "/jobs/"+id, &j); err != nil {
				return err
			}
			if e.c.Bool("follow") {
				if j, err = followJob(e, j, time.Hour); err != nil {
					return err
				}
			}
			if e.json {
				b, _ := json.Marshal(j)
				return printJSON(b)
			}
			t := newTable()
			t.kv("job", strconv.FormatUint(j.ID, 10))
			t.kv("release", j.Subject)
			t.kv("state", j.State)
			if j.Outcome != "" {
				t.kv("outcome", j.Outcome)
			}
			if !j.Report.IsZero() {
				t.kv("report", j.Report.String())
			}
			if j.Error != "" {
				t.kv("error", j.Error)
			}
			t.flush()
			for _, ev := range j.Events {
				fmt.Printf("  %s %-8s %-26s %-8s %s\n", ev.Time.Format("15:04:05"), ev.Stage, ev.Target, ev.State, ev.Message)
			}
			return nil
		}),
	}
}

// requireLevels are what `test --require` accepts.
var requireLevels = []string{"curated", "needs-review", "compatible"}

// gateError is a tested release that misses --require: exit status 3.
type gateError struct{ msg string }

func (e gateError) Error() string { return e.msg }

// meets checks the release's verdict and gate, as this node decides them
// from the reports it trusts, against --require.
func meets(r *release, require string) error {
	ok := true
	switch require {
	case "":
		return nil
	case "curated":
		ok = r.Gate == "curated"
	case "needs-review":
		ok = r.Gate == "curated" || r.Gate == "needs-review"
	case "compatible":
		ok = r.Wasm == "compatible"
	}
	if ok {
		return nil
	}
	why := strings.Join(r.GateReasons, "; ")
	if r.WasmReason != "" {
		why = strings.TrimPrefix(why+"; "+r.WasmReason, "; ")
	}
	if why == "" {
		why = "no reason given"
	}
	gate := r.Gate
	if gate == "" {
		gate = "no gate"
	}
	return gateError{fmt.Sprintf("%s misses --require %s: wasm %s, %s (%s)", r.Subject, require, r.Wasm, gate, why)}
}
