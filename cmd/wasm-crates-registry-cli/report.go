package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// reportDetail is the part of a report body the CLI prints.
type reportDetail struct {
	Message     string   `json:"message"`
	Reason      string   `json:"wasm_reason"`
	MissingDeps []string `json:"missing_deps"`
	Targets     []struct {
		Target     string `json:"target"`
		Triple     string `json:"triple"`
		Outcome    string `json:"outcome"`
		Message    string `json:"message"`
		Build      string `json:"build"`
		BuildUS    uint64 `json:"build_us"`
		TestUS     uint64 `json:"test_us"`
		PeakMemory uint64 `json:"peak_memory"`
		Runner     string `json:"runner"`
		Install    string `json:"install"`
		Toolchain  string `json:"toolchain"`
		Extra      bool   `json:"extra"`
		Refusals   []struct {
			Action string `json:"action"`
			Detail string `json:"detail"`
			Count  uint64 `json:"count"`
		} `json:"refusals"`
		Tests *struct {
			Passed  uint64 `json:"passed"`
			Failed  uint64 `json:"failed"`
			Ignored uint64 `json:"ignored"`
			Timeout uint64 `json:"timeout"`
			OOM     uint64 `json:"oom"`
		} `json:"tests"`
		DocTests *struct {
			Passed uint64 `json:"passed"`
			Failed uint64 `json:"failed"`
		} `json:"doc_tests"`
		Artifacts []struct {
			Name string `json:"name"`
			Size uint64 `json:"size"`
			Gzip uint64 `json:"gzip"`
		} `json:"artifacts"`
	} `json:"targets"`
	Timing *struct {
		Compared uint64 `json:"compared"`
		NativeUS uint64 `json:"native_us"`
		WasmUS   uint64 `json:"wasm_us"`
		Ratio    uint64 `json:"ratio_milli"`
		Timed    uint64 `json:"timed"`
	} `json:"timing"`
	GCChecks []struct {
		Name   string `json:"name"`
		Pass   bool   `json:"pass"`
		Reason string `json:"reason"`
	} `json:"gc_checks"`
	BrokenBy  string `json:"broken_by"`
	Breakdown []struct {
		Name   string `json:"name"`
		Points uint64 `json:"points"`
		Max    uint64 `json:"max"`
	} `json:"score_breakdown"`
	Wazero  string `json:"wazero"`
	Config  string `json:"config"`
	Configs []struct {
		Name    string `json:"name"`
		Wasm    string `json:"wasm"`
		Outcome string `json:"outcome"`
		Message string `json:"message"`
	} `json:"configs"`
	Benches []struct {
		Name       string `json:"name"`
		Iterations uint64 `json:"iterations"`
		NativeUS   uint64 `json:"native_us"`
		WasmUS     uint64 `json:"wasm_us"`
		Ratio      uint64 `json:"ratio_milli"`
		Note       string `json:"note"`
	} `json:"benches"`
	Notes []string `json:"notes"`
	Logs  []struct {
		Step   string `json:"step"`
		Target string `json:"target"`
		Text   string `json:"text"`
	} `json:"logs"`
}

func msStr(us uint64) string {
	if us == 0 {
		return "-"
	}
	return (time.Duration(us) * time.Microsecond).Round(time.Millisecond).String()
}

func sizeStr(n uint64) string {
	switch {
	case n == 0:
		return "-"
	case n >= 1<<20:
		return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fKiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%dB", n)
}

// printReport prints a report: summary, the target matrix, timing, GC
// readiness, the score breakdown and failing logs.
func printReport(r *reportWithBody) {
	trust := "not trusted by this node"
	if r.Trusted {
		trust = "trusted"
	}
	var d reportDetail
	_ = json.Unmarshal(r.Report, &d)
	t := newTable()
	t.kv("report", r.ID.String())
	t.kv("by", fmt.Sprintf("%s (%s) at %s", r.Author, trust, r.Time.Format(time.RFC3339)))
	t.kv("outcome", r.Outcome)
	if d.Message != "" {
		t.kv("", d.Message)
	}
	t.kv("wasm", r.Wasm)
	if d.Reason != "" {
		t.kv("", terminalSafe(d.Reason))
	}
	if len(d.MissingDeps) > 0 {
		t.kv("missing dependencies", terminalSafe(strings.Join(d.MissingDeps, ", ")))
	}
	t.kv("score", fmt.Sprintf("%d → %s", r.Score, r.Gate))
	t.kv("gc-ready", yesNo(r.GCReady))
	t.kv("native + wasm", yesNo(r.Dual))
	if d.BrokenBy != "" {
		t.kv("wasm broken by", d.BrokenBy)
	}
	switch {
	case d.Timing != nil && d.Timing.Timed > 0:
		t.kv("speed", fmt.Sprintf("%d timed tests: native %s, wazero %s (wasm %.2f× native)", d.Timing.Timed, msStr(d.Timing.NativeUS), msStr(d.Timing.WasmUS), float64(d.Timing.Ratio)/1000))
	case d.Timing != nil && d.Timing.Compared > 0:
		t.kv("speed", fmt.Sprintf("%d tests passed on both sides; all too short to compare speed", d.Timing.Compared))
	}
	if d.Wazero != "" {
		t.kv("wazero", d.Wazero)
	}
	if d.Config != "" && d.Config != "default" {
		t.kv("configuration", terminalSafe(d.Config)+" (the crate's declared wasm configuration)")
	}
	t.flush()
	if len(d.Configs) > 1 {
		fmt.Println("\nconfigurations tested:")
		for _, c := range d.Configs {
			fmt.Printf("  %-40s %-12s %s: %s\n", terminalSafe(c.Name), dash(c.Wasm), terminalSafe(c.Outcome), terminalSafe(c.Message))
		}
	}
	if len(d.Benches) > 0 {
		fmt.Println("\nbenchmarks (the same runs natively and under wazero):")
		for _, b := range d.Benches {
			if b.Ratio == 0 {
				fmt.Printf("  %-40s %s\n", terminalSafe(b.Name), terminalSafe(b.Note))
				continue
			}
			fmt.Printf("  %-40s %d runs: native %s, wazero %s (wasm %.2f× native)\n", terminalSafe(b.Name), b.Iterations, msStr(b.NativeUS), msStr(b.WasmUS), float64(b.Ratio)/1000)
		}
	}
	if len(d.Targets) > 0 {
		fmt.Println()
		m := newTable()
		m.row("TARGET", "OUTCOME", "BUILD", "TESTS P/F/I", "TEST TIME", "PEAK MEM", "SIZE (GZIP)")
		for _, tg := range d.Targets {
			tests := "-"
			if tg.Tests != nil {
				tests = fmt.Sprintf("%d/%d/%d", tg.Tests.Passed, tg.Tests.Failed, tg.Tests.Ignored)
				if tg.Tests.Timeout > 0 {
					tests += fmt.Sprintf(" +%d timeout", tg.Tests.Timeout)
				}
				if tg.Tests.OOM > 0 {
					tests += fmt.Sprintf(" +%d oom", tg.Tests.OOM)
				}
			}
			if d := tg.DocTests; d != nil {
				tests += fmt.Sprintf(" (doc %d/%d)", d.Passed, d.Failed)
			}
			size := "-"
			for _, a := range tg.Artifacts {
				if strings.HasSuffix(a.Name, ".wasm") || strings.HasSuffix(a.Name, ".rlib") {
					size = fmt.Sprintf("%s (%s)", sizeStr(a.Size), sizeStr(a.Gzip))
					break
				}
			}
			build := dash(tg.Build)
			if tg.BuildUS > 0 {
				build += " " + msStr(tg.BuildUS)
			}
			name := tg.Target
			if tg.Extra {
				name += " (extra, " + tg.Toolchain + ")"
			}
			m.row(name, tg.Outcome, build, tests, msStr(tg.TestUS), sizeStr(tg.PeakMemory), size)
		}
		m.flush()
		for _, tg := range d.Targets {
			if tg.Install != "" {
				fmt.Printf("  %s: %s\n", tg.Target, tg.Install)
			}
		}
		for _, tg := range d.Targets {
			if len(tg.Refusals) == 0 {
				continue
			}
			fmt.Printf("\nsandbox refusals (%s):\n", tg.Target)
			for _, r := range tg.Refusals {
				fmt.Printf("  %-16s %s", r.Action, terminalSafe(r.Detail))
				if r.Count > 1 {
					fmt.Printf(" (×%d)", r.Count)
				}
				fmt.Println()
			}
		}
	}
	if len(d.GCChecks) > 0 {
		fmt.Println("\nGC readiness:")
		for _, c := range d.GCChecks {
			mark := "fail"
			if c.Pass {
				mark = "pass"
			}
			fmt.Printf("  %-4s %s: %s\n", mark, c.Name, c.Reason)
		}
	}
	if len(d.Breakdown) > 0 {
		fmt.Println("\nscore:")
		for _, b := range d.Breakdown {
			fmt.Printf("  %3d/%-3d %s\n", b.Points, b.Max, b.Name)
		}
	}
	if len(d.Notes) > 0 {
		fmt.Println("\nnotes:")
		for _, n := range d.Notes {
			fmt.Printf("  %s\n", terminalSafe(n))
		}
	}
	for _, l := range d.Logs {
		fmt.Printf("\nlog %s %s:\n%s\n", l.Step, l.Target, indent(l.Text))
	}
}

func indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > 20 {
		lines = append(lines[:20], fmt.Sprintf("… %d more lines (see --json)", len(lines)-20))
	}
	return "  " + strings.Join(lines, "\n  ")
}

// terminalSafe replaces control characters, which a report's author
// controls, so that printing it cannot drive the terminal.
func terminalSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return '?'
		}
		return r
	}, s)
}
