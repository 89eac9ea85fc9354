package node

import (
	"context"
	"fmt"
	"slices"
	"strings"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/store"
)

// Confirmation states of a release's verdict.
const (
	ConfirmUntested     = "untested"     // no authorized tester reported
	ConfirmSingle       = "single"       // one authorized tester reported
	ConfirmConfirmed    = "confirmed"    // two or more authorized testers reported, and all agree
	ConfirmDisagreement = "disagreement" // two or more reported, and some results differ
)

// Difference is one result on which two reports differ: Item names it
// ("wasm verdict", "outcome", "target wasm32-wasip1 outcome", "test
// lib::adds wasm", …), A and B are the two reports' values ("absent" when
// one report lacks the item).
type Difference struct {
	Item string `json:"item"`
	A    string `json:"a"`
	B    string `json:"b"`
}

// absent stands for an item one report lacks.
const absent = "absent"

// CompareReports compares two reports on the same release result by
// result: the wasm verdict, the outcome, each target's build and outcome
// and each test's native and wasm state. Times, sizes and scores are
// measurements, not results, and are not compared; neither are targets
// shown for information only (Extra) nor a target one node had no
// toolchain for. No differences means the reports agree.
func CompareReports(a, b *registry.ReportBody) []Difference {
	var out []Difference
	diff := func(item, x, y string) {
		if x != y {
			out = append(out, Difference{Item: item, A: x, B: y})
		}
	}
	diff("wasm verdict", a.Wasm, b.Wasm)
	diff("outcome", a.Outcome, b.Outcome)
	ta, tb := targetsOf(a), targetsOf(b)
	for _, name := range unionKeys(ta, tb) {
		x, okx := ta[name]
		y, oky := tb[name]
		if okx && oky && (x.Outcome == registry.OutcomeToolchainMissing || y.Outcome == registry.OutcomeToolchainMissing) {
			continue
		}
		switch {
		case !okx:
			diff("target "+name, absent, y.Outcome)
		case !oky:
			diff("target "+name, x.Outcome, absent)
		default:
			diff("target "+name+" build", x.Build, y.Build)
			diff("target "+name+" outcome", x.Outcome, y.Outcome)
		}
	}
	sa, sb := testsOf(a), testsOf(b)
	for _, name := range unionKeys(sa, sb) {
		x, okx := sa[name]
		y, oky := sb[name]
		switch {
		case !okx:
			diff("test "+name, absent, "present")
		case !oky:
			diff("test "+name, "present", absent)
		default:
			diff("test "+name+" native", orNone(x.Native), orNone(y.Native))
			diff("test "+name+" wasm", orNone(x.Wasm), orNone(y.Wasm))
		}
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func targetsOf(b *registry.ReportBody) map[string]registry.TargetReport {
	m := map[string]registry.TargetReport{}
	for _, t := range b.Targets {
		if !t.Extra {
			m[t.Target] = t
		}
	}
	return m
}

func testsOf(b *registry.ReportBody) map[string]registry.TestComparison {
	m := map[string]registry.TestComparison{}
	for _, t := range b.Tests {
		m[t.Name] = t
	}
	return m
}

func unionKeys[V any](a, b map[string]V) []string {
	var ks []string
	for k := range a {
		ks = append(ks, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			ks = append(ks, k)
		}
	}
	slices.Sort(ks)
	return ks
}

// Confirmation is how far independent testers agree on a release.
type Confirmation struct {
	Subject string      `json:"subject"`
	Release registry.ID `json:"release"`
	Status  string      `json:"status"`
	// Testers is how many authorized testers reported; "confirmed by
	// Testers nodes" when Status is confirmed.
	Testers int               `json:"testers"`
	Summary string            `json:"summary"`
	Reports []ConfirmedReport `json:"reports"`
	// Disagreements compare every later report with the first, when they
	// differ: both reports side by side, result by result.
	Disagreements []Disagreement `json:"disagreements,omitempty"`
}

// ConfirmedReport is one tester's report in a Confirmation.
type ConfirmedReport struct {
	Report  registry.ID          `json:"report"`
	Tester  registry.PublicKey   `json:"tester"`
	Time    int64                `json:"time"`
	Outcome string               `json:"outcome"`
	Wasm    string               `json:"wasm"`
	Body    *registry.ReportBody `json:"-"`
}

// Disagreement is two reports that differ.
type Disagreement struct {
	A           registry.ID  `json:"a"`
	B           registry.ID  `json:"b"`
	Differences []Difference `json:"differences"`
}

// authorizedReports returns the live reports on v's winning release by the
// testers trust accepts, oldest first, one per tester.
func (n *Node) authorizedReports(v *store.ReleaseView, trust *TrustSet) ([]ConfirmedReport, error) {
	may := trust.Tests(v.Name)
	var out []ConfirmedReport
	seen := map[string]bool{}
	for i := len(v.Reports) - 1; i >= 0; i-- {
		r := &v.Reports[i]
		if r.Release != v.Release || !may(r.Author) || seen[string(r.Author)] {
			continue
		}
		seen[string(r.Author)] = true
		rec, err := n.db.GetRecord(r.ID)
		if err != nil {
			return nil, err
		}
		b, err := rec.DecodeBody()
		if err != nil {
			continue
		}
		body := b.(*registry.ReportBody)
		out = append(out, ConfirmedReport{Report: r.ID, Tester: r.Author, Time: r.Time, Outcome: body.Outcome, Wasm: body.Wasm, Body: body})
	}
	return out, nil
}

// confirmationOf compares the authorized reports on v.
func (n *Node) confirmationOf(v *store.ReleaseView, trust *TrustSet) (*Confirmation, error) {
	reps, err := n.authorizedReports(v, trust)
	if err != nil {
		return nil, err
	}
	c := &Confirmation{Subject: v.Subject(), Release: v.Release, Testers: len(reps), Reports: reps}
	if c.Reports == nil {
		c.Reports = []ConfirmedReport{}
	}
	switch len(reps) {
	case 0:
		c.Status, c.Summary = ConfirmUntested, "no authorized tester has reported"
		return c, nil
	case 1:
		c.Status, c.Summary = ConfirmSingle, "tested by 1 node, not confirmed"
		return c, nil
	}
	for _, r := range reps[1:] {
		if d := CompareReports(reps[0].Body, r.Body); len(d) > 0 {
			c.Disagreements = append(c.Disagreements, Disagreement{A: reps[0].Report, B: r.Report, Differences: d})
		}
	}
	if len(c.Disagreements) == 0 {
		c.Status, c.Summary = ConfirmConfirmed, fmt.Sprintf("confirmed by %d nodes", len(reps))
	} else {
		c.Status, c.Summary = ConfirmDisagreement, fmt.Sprintf("%d nodes disagree on %d results", len(reps), len(c.Disagreements[0].Differences))
	}
	return c, nil
}

// Confirmation returns how far the authorized testers of a release agree.
func (n *Node) Confirmation(ctx context.Context, id string) (*Confirmation, error) {
	v, err := n.ResolveView(ctx, id)
	if err != nil {
		return nil, err
	}
	return n.confirmationOf(v, n.Trust())
}

// TesterAgreement is how often one tester's reports agree with other
// testers' reports on the same releases.
type TesterAgreement struct {
	Tester registry.PublicKey `json:"tester"`
	// Compared counts the other testers' reports its reports were
	// compared with; Agreed those that agree.
	Compared int `json:"compared"`
	Agreed   int `json:"agreed"`
	// RatePerMille is Agreed×1000/Compared.
	RatePerMille int `json:"rate_per_mille"`
	Reports      int `json:"reports"`
}

// Confirmations lists every release that two or more authorized testers
// reported on, and each tester's agreement rate over them (every pair of
// reports on a release is one comparison for each of its two testers).
type Confirmations struct {
	Releases []*Confirmation   `json:"releases"`
	Testers  []TesterAgreement `json:"testers"`
}

// AllConfirmations computes Confirmations over the whole record set.
func (n *Node) AllConfirmations(ctx context.Context) (*Confirmations, error) {
	trust := n.Trust()
	views, _, err := n.db.ListViews(store.ListQuery{Match: func(v *store.ReleaseView) bool { return !v.Unauthorized }})
	if err != nil {
		return nil, err
	}
	out := &Confirmations{Releases: []*Confirmation{}, Testers: []TesterAgreement{}}
	rates := map[string]*TesterAgreement{}
	rate := func(k registry.PublicKey) *TesterAgreement {
		r := rates[string(k)]
		if r == nil {
			r = &TesterAgreement{Tester: k}
			rates[string(k)] = r
		}
		return r
	}
	for _, v := range views {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c, err := n.confirmationOf(v, trust)
		if err != nil {
			return nil, err
		}
		for _, r := range c.Reports {
			rate(r.Tester).Reports++
		}
		if c.Testers < 2 {
			continue
		}
		out.Releases = append(out.Releases, c)
		for i := range c.Reports {
			for j := i + 1; j < len(c.Reports); j++ {
				agree := len(CompareReports(c.Reports[i].Body, c.Reports[j].Body)) == 0
				for _, k := range []registry.PublicKey{c.Reports[i].Tester, c.Reports[j].Tester} {
					r := rate(k)
					r.Compared++
					if agree {
						r.Agreed++
					}
				}
			}
		}
	}
	for _, r := range rates {
		if r.Compared > 0 {
			r.RatePerMille = r.Agreed * 1000 / r.Compared
		}
		out.Testers = append(out.Testers, *r)
	}
	slices.SortFunc(out.Testers, func(a, b TesterAgreement) int { return strings.Compare(a.Tester.PeerID(), b.Tester.PeerID()) })
	return out, nil
}
