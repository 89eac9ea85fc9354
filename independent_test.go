package registry

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// The tests in this file check the record format against a second,
// independent implementation: testdata/independent/vectors.py, written from
// docs/FORMAT.md with Debian's python3-cbor2, python3-nacl (libsodium) and
// hashlib. The goldens of testdata/golden are written by this code; here
// something else checks them.

const vectorsScript = "testdata/independent/vectors.py"

// independentPython returns a python3 that has cbor2 and nacl, or skips the
// test with the "capability vectors:" marker, which fails `make test`
// unless allowed. WCR_TEST_PYTHON names one explicitly; otherwise Debian's
// /usr/bin/python3 is preferred over the first python3 on PATH, which may
// be another installation without Debian's modules.
func independentPython(t *testing.T) string {
	t.Helper()
	var candidates []string
	if p := os.Getenv("WCR_TEST_PYTHON"); p != "" {
		candidates = append(candidates, p)
	}
	candidates = append(candidates, "/usr/bin/python3")
	if p, err := exec.LookPath("python3"); err == nil {
		candidates = append(candidates, p)
	}
	var tried []string
	for _, p := range candidates {
		out, err := exec.Command(p, "-c", "import cbor2, nacl.signing").CombinedOutput()
		if err == nil {
			return p
		}
		why := strings.TrimSpace(lastLine(string(out)))
		if why == "" {
			why = err.Error()
		}
		tried = append(tried, p+": "+why)
	}
	t.Skipf("SKIPPING: capability vectors: no python3 with the cbor2 and nacl modules (tried %s); "+
		"install Debian's python3-cbor2 and python3-nacl (make test does), or set WCR_TEST_PYTHON", strings.Join(tried, "; "))
	return ""
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// runVectors runs the independent script and returns its standard output;
// a failed check fails the test with the script's own words.
func runVectors(t *testing.T, args ...string) []byte {
	t.Helper()
	py := independentPython(t)
	cmd := exec.Command(py, append([]string{vectorsScript}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the independent implementation (%s %s) disagrees: %v\n%s%s", py, strings.Join(args, " "), err, out, stderr.String())
	}
	return out
}

// TestGoldenVectorsIndependently has the independent implementation decode
// every golden record, re-encode it canonically, recompute its signing
// bytes, signature (ed25519 is deterministic), ID and author's peer ID,
// refuse every invalid record, and recompute the tree hashes, proofs and
// checkpoint of the log goldens.
func TestGoldenVectorsIndependently(t *testing.T) {
	out := string(runVectors(t, "golden", "testdata/golden"))
	var invalid map[string]string
	b, err := os.ReadFile("testdata/golden/invalid-records.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &invalid); err != nil {
		t.Fatal(err)
	}
	var records []goldenVector
	if b, err = os.ReadFile("testdata/golden/records.json"); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &records); err != nil {
		t.Fatal(err)
	}
	// Each vector must have been checked, not only the script's exit status.
	for _, v := range records {
		if !strings.Contains(out, "ok record "+v.Name+" "+v.ID+"\n") {
			t.Errorf("the independent check did not confirm record %s (%s):\n%s", v.Name, v.ID, out)
		}
	}
	for name := range invalid {
		if !strings.Contains(out, "ok refused "+name+":") {
			t.Errorf("the independent check did not refuse %s:\n%s", name, out)
		}
	}
	if !strings.Contains(out, "ok tlog: 7 leaves, 8 roots") {
		t.Errorf("the independent check did not confirm the log goldens:\n%s", out)
	}
}

// TestRecordBuiltIndependently: a record built from scratch by the
// independent implementation is accepted, with the same ID and author; its
// variants that break the format are refused.
func TestRecordBuiltIndependently(t *testing.T) {
	var built struct {
		Valid struct {
			Record string `json:"record_hex"`
			ID     string `json:"id_base32"`
			ID58   string `json:"id_base58"`
			PeerID string `json:"author_peer_id"`
		} `json:"valid"`
		Invalid map[string]string `json:"invalid"`
	}
	if err := json.Unmarshal(runVectors(t, "build"), &built); err != nil {
		t.Fatal(err)
	}
	b, err := hex.DecodeString(built.Valid.Record)
	if err != nil {
		t.Fatal(err)
	}
	r, err := DecodeRecord(b)
	if err != nil {
		t.Fatalf("a record built from the specification is refused: %v", err)
	}
	if r.ID().String() != built.Valid.ID || r.ID().Base58() != built.Valid.ID58 {
		t.Errorf("ID %s / %s, the independent implementation says %s / %s", r.ID(), r.ID().Base58(), built.Valid.ID, built.Valid.ID58)
	}
	if r.Author.KeyID() != built.Valid.PeerID {
		t.Errorf("author %s, the independent implementation says %s", r.Author.KeyID(), built.Valid.PeerID)
	}
	body, err := r.DecodeBody()
	if err != nil {
		t.Fatal(err)
	}
	if y, ok := body.(*YankBody); !ok || !y.Yanked || y.Reason != "built from the specification" || r.Kind != KindYank || r.Subject != "python-built@0.1.0" {
		t.Errorf("decoded as %s %q %#v", r.Kind, r.Subject, body)
	}
	again, err := Sign(goldenKey(t, 0x42), r.Kind, r.Subject, body, r.When())
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(again.Bytes()) != built.Valid.Record {
		t.Errorf("signing the same content here gives other bytes:\n%x\nindependent:\n%s", again.Bytes(), built.Valid.Record)
	}
	if len(built.Invalid) < 4 {
		t.Fatalf("only %d invalid variants", len(built.Invalid))
	}
	for name, h := range built.Invalid {
		b, err := hex.DecodeString(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeRecord(b); err == nil {
			t.Errorf("%s: an invalid record built independently is accepted", name)
		}
	}
}

// TestRFC9162ExampleTree checks the tree code against the example of RFC
// 9162 §2.1.5 (the same as RFC 6962 §2.1.3): seven leaves d0…d6, the
// audit paths of d0, d3, d4 and d6 and the consistency proofs from the
// trees of 3, 4 and 6 leaves, with hashes computed by hashlib from the
// RFC's pictures.
func TestRFC9162ExampleTree(t *testing.T) {
	var rfc struct {
		Leaves      []string            `json:"leaves_multihash_hex"`
		Roots       map[string]string   `json:"roots_hex"`
		Inclusion   map[string][]string `json:"inclusion"`
		Consistency map[string][]string `json:"consistency"`
	}
	if err := json.Unmarshal(runVectors(t, "rfc9162"), &rfc); err != nil {
		t.Fatal(err)
	}
	var ids []ID
	for _, h := range rfc.Leaves {
		b, _ := hex.DecodeString(h)
		id, err := IDFromBytes(b)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if len(ids) != 7 || len(rfc.Inclusion) != 4 || len(rfc.Consistency) != 3 || len(rfc.Roots) != 4 {
		t.Fatalf("the example has %d leaves, %d audit paths, %d consistency proofs, %d roots", len(ids), len(rfc.Inclusion), len(rfc.Consistency), len(rfc.Roots))
	}
	// node returns the hash of a perfect subtree from the leaves.
	var node func(n TreeNode) Hash
	node = func(n TreeNode) Hash {
		if n.Level == 0 {
			return LeafHash(ids[n.Index])
		}
		return NodeHash(node(TreeNode{n.Level - 1, 2 * n.Index}), node(TreeNode{n.Level - 1, 2*n.Index + 1}))
	}
	build := func(p ProofPlan, err error) []string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		var hs []Hash
		for _, n := range p.Nodes() {
			hs = append(hs, node(n))
		}
		out, err := p.Build(hs)
		if err != nil {
			t.Fatal(err)
		}
		return hexes(out)
	}
	root := func(size string) Hash {
		t.Helper()
		h, err := ParseHash(rfc.Roots[size])
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	for size, want := range rfc.Roots {
		n, _ := strconv.Atoi(size)
		if got := TreeRoot(ids[:n]).String(); got != want {
			t.Errorf("root of the first %d leaves is %s, the RFC's tree gives %s", n, got, want)
		}
	}
	for index, want := range rfc.Inclusion {
		i, _ := strconv.ParseUint(index, 10, 64)
		got := build(InclusionPlan(i, 7))
		if !reflect.DeepEqual(got, want) {
			t.Errorf("audit path of d%d: %v, the RFC says %v", i, got, want)
		}
		if err := VerifyInclusion(ids[i], i, 7, parseHashes(t, want), root("7")); err != nil {
			t.Errorf("the RFC's audit path of d%d does not verify: %v", i, err)
		}
	}
	for size, want := range rfc.Consistency {
		m, _ := strconv.ParseUint(size, 10, 64)
		got := build(ConsistencyPlan(m, 7))
		if !reflect.DeepEqual(got, want) {
			t.Errorf("consistency proof %d→7: %v, the RFC says %v", m, got, want)
		}
		if err := VerifyConsistency(m, 7, parseHashes(t, want), root(size), root("7")); err != nil {
			t.Errorf("the RFC's consistency proof %d→7 does not verify: %v", m, err)
		}
	}
}

func parseHashes(t *testing.T, hs []string) []Hash {
	t.Helper()
	out := make([]Hash, len(hs))
	for i, s := range hs {
		h, err := ParseHash(s)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = h
	}
	return out
}
