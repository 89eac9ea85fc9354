package main

import (
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
)

// The answers of the /corpus endpoints, as far as the CLI prints them.

type runInfo struct {
	ID        string `json:"id"`
	Toolchain string `json:"toolchain"`
	Releases  int    `json:"releases"`
	Reports   int    `json:"reports"`
	Last      int64  `json:"last"`
}

type corpusReport struct {
	Run      runInfo        `json:"run"`
	Verdicts map[string]int `json:"verdicts"`
	Targets  []struct {
		Target   string         `json:"target"`
		Tested   int            `json:"tested"`
		Built    int            `json:"built"`
		Passed   int            `json:"passed"`
		Outcomes map[string]int `json:"outcomes"`
	} `json:"targets"`
	BreakingDeps []struct {
		Name     string   `json:"name"`
		Crates   int      `json:"crates"`
		Examples []string `json:"examples"`
	} `json:"breaking_deps"`
	Confirmed   int `json:"confirmed"`
	Disagreeing int `json:"disagreeing"`
	Crates      []struct {
		Subject      string `json:"subject"`
		Wasm         string `json:"wasm"`
		Outcome      string `json:"outcome"`
		BrokenBy     string `json:"broken_by"`
		Testers      int    `json:"testers"`
		Confirmation string `json:"confirmation"`
	} `json:"crates"`
}

type verdictChange struct {
	Subject     string `json:"subject"`
	FromWasm    string `json:"from_wasm"`
	FromOutcome string `json:"from_outcome"`
	ToWasm      string `json:"to_wasm"`
	ToOutcome   string `json:"to_outcome"`
}

type confirmation struct {
	Subject string `json:"subject"`
	Status  string `json:"status"`
	Testers int    `json:"testers"`
	Summary string `json:"summary"`
	Reports []struct {
		Report  string `json:"report"`
		Tester  string `json:"tester"`
		Outcome string `json:"outcome"`
		Wasm    string `json:"wasm"`
	} `json:"reports"`
	Disagreements []struct {
		A           string `json:"a"`
		B           string `json:"b"`
		Differences []struct {
			Item string `json:"item"`
			A    string `json:"a"`
			B    string `json:"b"`
		} `json:"differences"`
	} `json:"disagreements"`
}

func corpusCmd() *cli.Command {
	return &cli.Command{
		Name:  "corpus",
		Usage: "corpus runs (every trusted report by one toolchain), their crater-style reports, regressions and confirmed verdicts",
		Subcommands: []*cli.Command{
			{Name: "runs", Usage: "list the runs, newest first", Action: action(corpusRuns)},
			{Name: "report", Usage: "a run's report: builds and passes per target, the dependencies that break the most wasm builds, every release", ArgsUsage: "[RUN]",
				Flags:  []cli.Flag{&cli.IntFlag{Name: "deps", Value: 10, Usage: "breaking dependencies to show"}, &cli.BoolFlag{Name: "crates", Usage: "list every release"}},
				Action: action(corpusReportCmd)},
			{Name: "regressions", Usage: "compare two runs release by release", ArgsUsage: "FROM_RUN TO_RUN", Action: action(corpusRegressions)},
			{Name: "confirmations", Usage: "releases reported by two or more testers, disagreements side by side, and each tester's agreement rate", Action: action(corpusConfirmations)},
			{Name: "confirmation", Usage: "how far the testers of one release agree", ArgsUsage: "ID", Action: action(corpusConfirmation)},
			{Name: "work", Usage: "who tests a release: the reports it needs, has, and the active leases on it (shared testing)", ArgsUsage: "ID", Action: action(corpusWork)},
		},
	}
}

func corpusRuns(e *env) error {
	var out struct {
		Runs []runInfo `json:"runs"`
	}
	if done, err := e.get("/corpus/runs", &out); done || err != nil {
		return err
	}
	t := newTable()
	t.row("RUN", "TOOLCHAIN", "RELEASES", "REPORTS", "LAST REPORT")
	for _, r := range out.Runs {
		t.row(r.ID, r.Toolchain, strconv.Itoa(r.Releases), strconv.Itoa(r.Reports), time.UnixMilli(r.Last).UTC().Format(time.RFC3339))
	}
	if len(out.Runs) == 0 {
		fmt.Println("no corpus run yet: no authorized tester has reported on a release")
	}
	return t.flush()
}

func corpusReportCmd(e *env) error {
	if e.c.NArg() > 1 {
		return usagef("report takes at most one run ID (got %d arguments)", e.c.NArg())
	}
	run := e.c.Args().First()
	if run == "" {
		run = "latest"
	}
	var r corpusReport
	if done, err := e.get("/corpus/report?run="+url.QueryEscape(run), &r); done || err != nil {
		return err
	}
	fmt.Printf("run %s  %s\n%d releases, %d reports, %d confirmed, %d disagreeing\n", r.Run.ID, r.Run.Toolchain, r.Run.Releases, r.Run.Reports, r.Confirmed, r.Disagreeing)
	fmt.Printf("verdicts: %s\n\n", counts(r.Verdicts))
	t := newTable()
	t.row("TARGET", "TESTED", "BUILD", "PASS", "OUTCOMES")
	for _, tt := range r.Targets {
		t.row(tt.Target, strconv.Itoa(tt.Tested), strconv.Itoa(tt.Built), strconv.Itoa(tt.Passed), counts(tt.Outcomes))
	}
	t.flush()
	fmt.Println()
	t = newTable()
	t.row("BREAKING DEPENDENCY", "CRATES", "FOR EXAMPLE")
	for i, d := range r.BreakingDeps {
		if i == e.c.Int("deps") {
			break
		}
		t.row(d.Name, strconv.Itoa(d.Crates), strings.Join(d.Examples, " "))
	}
	if len(r.BreakingDeps) == 0 {
		t.row("(none)", "", "")
	}
	t.flush()
	if e.c.Bool("crates") {
		fmt.Println()
		t = newTable()
		t.row("RELEASE", "WASM", "OUTCOME", "BROKEN BY", "CONFIRMATION")
		for _, c := range r.Crates {
			conf := c.Confirmation
			if conf == "confirmed" {
				conf = fmt.Sprintf("confirmed by %d nodes", c.Testers)
			}
			t.row(c.Subject, c.Wasm, c.Outcome, c.BrokenBy, conf)
		}
		t.flush()
	}
	return nil
}

func counts(m map[string]int) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var parts []string
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func corpusRegressions(e *env) error {
	if e.c.NArg() != 2 {
		return usagef("regressions needs two run IDs, FROM and TO (got %d arguments); `corpus runs` lists them", e.c.NArg())
	}
	var r struct {
		From      runInfo         `json:"from"`
		To        runInfo         `json:"to"`
		Regressed []verdictChange `json:"regressed"`
		Fixed     []verdictChange `json:"fixed"`
		Changed   []verdictChange `json:"changed"`
		Same      int             `json:"same"`
		OnlyFrom  int             `json:"only_from"`
		OnlyTo    int             `json:"only_to"`
	}
	q := "/corpus/regressions?from=" + url.QueryEscape(e.c.Args().Get(0)) + "&to=" + url.QueryEscape(e.c.Args().Get(1))
	if done, err := e.get(q, &r); done || err != nil {
		return err
	}
	fmt.Printf("%s (%s) → %s (%s): %d regressed, %d fixed, %d changed outcome, %d the same, %d only before, %d only after\n",
		r.From.ID, r.From.Toolchain, r.To.ID, r.To.Toolchain, len(r.Regressed), len(r.Fixed), len(r.Changed), r.Same, r.OnlyFrom, r.OnlyTo)
	t := newTable()
	t.row("RELEASE", "CHANGE", "BEFORE", "AFTER")
	for _, set := range []struct {
		name string
		cs   []verdictChange
	}{{"regressed", r.Regressed}, {"fixed", r.Fixed}, {"changed", r.Changed}} {
		for _, c := range set.cs {
			t.row(c.Subject, set.name, c.FromWasm+" "+c.FromOutcome, c.ToWasm+" "+c.ToOutcome)
		}
	}
	return t.flush()
}

func printConfirmation(c confirmation) {
	fmt.Printf("%s: %s\n", c.Subject, c.Summary)
	for _, r := range c.Reports {
		fmt.Printf("  %s  %-12s %-12s report %s\n", r.Tester, r.Wasm, r.Outcome, r.Report)
	}
	for _, d := range c.Disagreements {
		t := newTable()
		t.row("  RESULT", "REPORT "+d.A, "REPORT "+d.B)
		for _, x := range d.Differences {
			t.row("  "+x.Item, x.A, x.B)
		}
		t.flush()
	}
}

func corpusConfirmation(e *env) error {
	id, err := oneArg(e.c, "release ID (name@version or record ID)")
	if err != nil {
		return err
	}
	var c confirmation
	if done, err := e.get("/tests/"+esc(id)+"/confirmation", &c); done || err != nil {
		return err
	}
	printConfirmation(c)
	return nil
}

func corpusConfirmations(e *env) error {
	var out struct {
		Releases []confirmation `json:"releases"`
		Testers  []struct {
			Tester       string `json:"tester"`
			Reports      int    `json:"reports"`
			Compared     int    `json:"compared"`
			Agreed       int    `json:"agreed"`
			RatePerMille int    `json:"rate_per_mille"`
		} `json:"testers"`
	}
	if done, err := e.get("/corpus/confirmations", &out); done || err != nil {
		return err
	}
	for _, c := range out.Releases {
		printConfirmation(c)
	}
	if len(out.Releases) == 0 {
		fmt.Println("no release has been reported by two testers yet")
	}
	fmt.Println()
	t := newTable()
	t.row("TESTER", "REPORTS", "COMPARED", "AGREED", "AGREEMENT")
	for _, r := range out.Testers {
		rate := "-"
		if r.Compared > 0 {
			rate = fmt.Sprintf("%d.%d%%", r.RatePerMille/10, r.RatePerMille%10)
		}
		t.row(r.Tester, strconv.Itoa(r.Reports), strconv.Itoa(r.Compared), strconv.Itoa(r.Agreed), rate)
	}
	return t.flush()
}

func corpusWork(e *env) error {
	id, err := oneArg(e.c, "release ID (name@version or record ID)")
	if err != nil {
		return err
	}
	var w struct {
		Need      int      `json:"need"`
		Reporters []string `json:"reporters"`
		Leases    []struct {
			Tester string    `json:"tester"`
			Ends   time.Time `json:"ends"`
		} `json:"leases"`
		Mine bool `json:"reported_here"`
	}
	if done, err := e.get("/tests/"+esc(id)+"/work", &w); done || err != nil {
		return err
	}
	t := newTable()
	t.kv("reports needed", strconv.Itoa(w.Need))
	t.kv("reported by", strings.Join(w.Reporters, " "))
	for i, l := range w.Leases {
		label := ""
		if i == 0 {
			label = "leased by"
		}
		t.kv(label, l.Tester+" until "+l.Ends.Format(time.RFC3339))
	}
	if len(w.Leases) == 0 {
		t.kv("leased by", "(nobody)")
	}
	return t.flush()
}
