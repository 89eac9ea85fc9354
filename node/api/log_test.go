package api

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/internal/testkit"
)

func TestLogEndpoints(t *testing.T) {
	f := newFixture(t)
	if r := f.do("GET", "/log/checkpoint", nil, false); r.status != 404 || r.errCode(t) != "not_found" {
		t.Fatalf("checkpoint before the first: %d %s", r.status, r.body)
	}
	var sub SubmitResult
	f.do("POST", "/crates", crate(t, "logged", "1.0.0", ""), true).json(t, &sub)
	cks, err := f.n.SignCheckpoints(context.Background())
	if err != nil || len(cks) != 1 {
		t.Fatalf("signing: %d %v", len(cks), err)
	}

	var cp LogCheckpointResult
	if r := f.do("GET", "/log/checkpoint", nil, false); r.status != 200 {
		t.Fatalf("checkpoint: %d %s", r.status, r.body)
	} else {
		r.json(t, &cp)
	}
	rec, err := registry.DecodeRecord(cp.Checkpoint.Record)
	if err != nil || rec.ID() != cks[0].ID() || !rec.Author.Equal(f.n.PublicKey()) {
		t.Fatalf("the served checkpoint record does not verify: %v", err)
	}
	if cp.Checkpoint.Note != registry.CheckpointNote(f.n.PeerID(), cp.Checkpoint.Size, cp.Checkpoint.Root) || cp.LogSize != cp.Checkpoint.Size+1 {
		t.Fatalf("checkpoint answer %+v", cp)
	}

	var inc InclusionResult
	f.do("GET", "/log/proof/inclusion?id="+sub.Release.ID.String(), nil, false).json(t, &inc)
	if inc.Size != cp.Checkpoint.Size || inc.Root != cp.Checkpoint.Root {
		t.Fatalf("inclusion answer %+v", inc)
	}
	if err := registry.VerifyInclusion(sub.Release.ID, inc.Index, inc.Size, inc.Proof, cp.Checkpoint.Root); err != nil {
		t.Fatal(err)
	}

	// A second checkpoint, and the consistency of the two.
	f.do("POST", "/crates", crate(t, "logged", "1.1.0", ""), true)
	cks2, _ := f.n.SignCheckpoints(context.Background())
	c2, _ := registry.ParseCheckpoint(cks2[0])
	var cons ConsistencyResult
	f.do("GET", fmt.Sprintf("/log/proof/consistency?first=%d&second=%d", cp.Checkpoint.Size, c2.Size), nil, false).json(t, &cons)
	if cons.FirstRoot != cp.Checkpoint.Root || cons.SecondRoot != c2.Root {
		t.Fatalf("consistency roots %+v", cons)
	}
	if err := registry.VerifyConsistency(cons.First, cons.Second, cons.Proof, cp.Checkpoint.Root, c2.Root); err != nil {
		t.Fatal(err)
	}

	var ents LogEntriesResult
	f.do("GET", "/log/entries?start=0&limit=2", nil, false).json(t, &ents)
	if len(ents.Entries) != 2 || ents.Entries[0].ID != sub.Release.ID || ents.LogSize < 4 {
		t.Fatalf("entries %+v", ents)
	}
	var wit WitnessResult
	f.do("GET", "/log/witness?id="+sub.Release.ID.String(), nil, false).json(t, &wit)
	if len(wit.Witnessed) != 1 || wit.Witnessed[0].Time != cks[0].Time {
		t.Fatalf("witness %+v", wit)
	}
}

func TestLogEndpointsRefuseHostileInput(t *testing.T) {
	f := newFixture(t)
	f.do("POST", "/crates", crate(t, "hostile", "1.0.0", ""), true)
	if _, err := f.n.SignCheckpoints(context.Background()); err != nil {
		t.Fatal(err)
	}
	absent := registry.Sum([]byte("absent")).String()
	for _, c := range []struct {
		path, code string
	}{
		{"/log/proof/inclusion", "invalid"},
		{"/log/proof/inclusion?id=nonsense", "invalid"},
		{"/log/proof/inclusion?id=" + absent, "not_found"},
		{"/log/proof/inclusion?id=" + absent + "&size=-1", "invalid"},
		{"/log/proof/inclusion?id=" + absent + "&size=99999999999999999999999", "invalid"},
		{"/log/proof/inclusion?id=" + absent + "&size=1000", "invalid"},
		{"/log/proof/consistency?first=1", "invalid"},
		{"/log/proof/consistency?first=2&second=1", "invalid"},
		{"/log/proof/consistency?first=1&second=18446744073709551615", "invalid"},
		{"/log/proof/consistency?first=x&second=1", "invalid"},
		{"/log/entries?limit=0", "invalid"},
		{"/log/entries?limit=100000", "invalid"},
		{"/log/entries?start=" + url.QueryEscape("1e3"), "invalid"},
		{"/log/checkpoint?author=12D3KooWnope", "invalid"},
		{"/log/witness?id=", "invalid"},
	} {
		r := f.do("GET", c.path, nil, false)
		if r.status < 400 || r.status >= 500 || r.errCode(t) != c.code {
			t.Errorf("%s: %d %s, want code %s", c.path, r.status, r.body, c.code)
		}
	}
	if r := f.do("POST", "/log/evidence", nil, true); r.status != 405 {
		t.Errorf("POST on a read-only endpoint: %d", r.status)
	}
}

// Two checkpoints by one trusted key that fork the same tree size are
// detected on receipt and shown as evidence.
func TestForkedCheckpointIsEvidence(t *testing.T) {
	f := newFixture(t)
	k := testkit.Key(42)
	// Only a witness's checkpoints are verified: the node trusts the key.
	if _, err := f.n.UpdateSettings(context.Background(), "t", []byte(`{"trust":{"keys":["`+k.Public().PeerID()+`"]}}`)); err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-time.Minute)
	a := []registry.ID{registry.Sum([]byte("a")), registry.Sum([]byte("b"))}
	b := []registry.ID{registry.Sum([]byte("a")), registry.Sum([]byte("c"))}
	sign := func(leaves []registry.ID, t0 time.Time) []byte {
		r, err := registry.Sign(k, registry.KindCheckpoint, k.Public().PeerID(), registry.NewCheckpointBody(k.Public().PeerID(), 0, leaves, registry.TreeRoot(leaves)), t0)
		if err != nil {
			t.Fatal(err)
		}
		return r.Bytes()
	}
	for _, rec := range [][]byte{sign(a, at), sign(b, at.Add(time.Second))} {
		if r := f.do("POST", "/records", rec, true); r.status != 201 {
			t.Fatalf("importing a checkpoint: %d %s", r.status, r.body)
		}
	}
	var ev EvidenceResult
	f.do("GET", "/log/evidence", nil, false).json(t, &ev)
	if len(ev.Evidence) != 1 || ev.Evidence[0].Reason != registry.ReasonFork || !ev.Evidence[0].Author.Equal(k.Public()) || ev.Evidence[0].At != 2 {
		t.Fatalf("evidence %+v", ev)
	}
	var wit WitnessResult
	f.do("GET", "/log/witness?id="+a[1].String(), nil, false).json(t, &wit)
	if len(wit.Witnessed) != 0 {
		t.Fatalf("an equivocating key still witnesses: %+v", wit)
	}
}
