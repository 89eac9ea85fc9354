package pipeline

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// maxRetimed bounds the runs of one re-timing pass (the baseline
// included).
const maxRetimed = 256

// retimeWasm times again the wasm tests of one binary that passed and ran
// long enough to time, in a runtime that cannot interrupt a run. The test
// runner's runtime must interrupt a test at its deadline, and wazero does
// that with a check at every loop head and call, which slows a tight loop
// several times: timings taken there compare the check, not wasm, with
// native code. Only tests that already passed within their deadline run
// again, once each after a baseline run, in one wasm-bench helper whose
// deadline the sandbox enforces (three times the checked time of the
// tests, within the stage's budget). When the pass does not finish, the
// checked timings stand and a note says so. Outcomes never change here:
// only the times of passed tests.
func (r *jobRun) retimeWasm(ctx context.Context, bin testBinary, br *binaryRun, budget *testBudget) error {
	type pick struct {
		i    int
		name string
	}
	var picks []pick
	var checked time.Duration
	prefix := br.Label + "::"
	for i, t := range br.Tests {
		if t.State != registry.TestPassed || t.US < registry.MinTimedUS || len(picks) >= maxRetimed-1 {
			continue
		}
		picks = append(picks, pick{i, strings.TrimPrefix(t.Name, prefix)})
		checked += time.Duration(t.US) * time.Microsecond
	}
	if len(picks) == 0 {
		return nil
	}
	left := time.Until(budget.deadline)
	if left <= time.Second {
		r.notes = append(r.notes, bin.Label+": no time was left to time its wasm tests without interruption checks; their times include wazero's checks")
		return nil
	}
	scratch, err := os.MkdirTemp(r.dir, "wtime-")
	if err != nil {
		return registry.E("pipeline.retime", registry.EINTERNAL, "", err)
	}
	defer os.RemoveAll(scratch)
	if err := r.sb.prepareWritable(scratch); err != nil {
		return err
	}
	runs := [][]string{{"--exact", noSuchTest}}
	for _, p := range picks {
		runs = append(runs, []string{"--exact", p.name, "--nocapture", "--test-threads=1"})
	}
	lim := r.p.cfg.Limits
	req := wasmBenchRequest{Module: bin.Path, Scratch: scratch, Pages: uint32(min(lim.TestMemory/65536, 65536)), Runs: runs}
	timeout := min(3*checked+10*time.Second, left)
	var out wasmBenchResult
	run, stderr, err := r.p.helper(ctx, r.sb, "wasm-bench", req, []string{bin.Path}, []string{scratch}, timeout, scratch, &out)
	if err != nil {
		return err
	}
	why := ""
	switch {
	case run.TimedOut:
		why = fmt.Sprintf("did not end within %s", timeout.Round(time.Second))
	case !run.ok():
		why = "ended: " + runnerEnd(run, stderr)
	case out.Error != "":
		why = out.Error
	case len(out.RunsUS) != len(runs):
		why = fmt.Sprintf("reported %d runs, not %d", len(out.RunsUS), len(runs))
	}
	if why != "" {
		r.notes = append(r.notes, bin.Label+": timing its wasm tests again without interruption checks "+truncateText(why, 300)+"; their times include wazero's checks")
		return nil
	}
	base := time.Duration(out.RunsUS[0]) * time.Microsecond
	for k, p := range picks {
		br.Tests[p.i].US = netMicros(time.Duration(out.RunsUS[k+1])*time.Microsecond, base)
		br.Tests[p.i].Retimed = true
	}
	return nil
}
