package registry

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// goldenTime is the signing time of every golden record.
var goldenTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func goldenKey(t testing.TB, seed byte) PrivateKey {
	t.Helper()
	k, err := KeyFromSeed(bytes.Repeat([]byte{seed}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// goldenRecords are the records of testdata/golden/records.json, built from
// fixed keys and times so that anyone can recompute them (ed25519 is
// deterministic).
func goldenRecords(t testing.TB) map[string]*Record {
	k := goldenKey(t, 1)
	blob := Sum([]byte("golden crate bytes"))
	mk := func(kind Kind, subject string, body any) *Record {
		r, err := Sign(k, kind, subject, body, goldenTime)
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		return r
	}
	return map[string]*Record{
		"release": mk(KindRelease, "golden@1.0.0", &ReleaseBody{
			Name: "golden", Version: "1.0.0", Cksum: blob.Hex(), Blob: blob.Bytes(), Size: 18,
			Deps: []Dep{
				{Name: "serde", Req: "^1.0", Kind: DepNormal, DefaultFeatures: true, Features: []string{"derive"}},
				{Name: "rand", Req: "0.8", Kind: DepNormal, Target: "cfg(not(target_arch = \"wasm32\"))", Optional: true, DefaultFeatures: false, Package: "rand"},
			},
			Features:    map[string][]string{"default": {"std"}, "std": {}},
			RustVersion: "1.63", Edition: "2021", Description: "Golden vector", License: "MIT",
			Keywords: []string{"wasm"}, Categories: []string{"wasm"},
		}),
		"yank":   mk(KindYank, "golden@1.0.0", &YankBody{Yanked: true, Reason: "test"}),
		"review": mk(KindReview, "golden@1.0.0", &ReviewBody{Verdict: VerdictApprove, Comment: "ok"}),
		"owners": mk(KindOwners, "golden", NewOwnersBody([]PublicKey{goldenKey(t, 1).Public(), goldenKey(t, 2).Public()})),
		"key":    mk(KindKey, goldenKey(t, 2).Public().KeyID(), &KeyBody{Key: goldenKey(t, 2).Public(), Name: "tester", Roles: []string{RoleTester}}),
		"report": mk(KindReport, "golden@1.0.0", &ReportBody{
			Release: Sum([]byte("release")).Bytes(), Outcome: "test-pass", Wasm: WasmCompatible,
			GCReady: true, Dual: true, Score: 91, Gate: GateCurated, Started: 1767225600000, Finished: 1767225660000,
		}),
		"unknown-kind": mk(Kind("attestation"), "golden@1.0.0", map[int]any{1: "anything", 2: []byte{1, 2}}),
	}
}

type goldenVector struct {
	Name         string `json:"name"`
	Seed         string `json:"key_seed_hex"`
	Author       string `json:"author_hex"`
	PeerID       string `json:"author_peer_id"`
	Kind         string `json:"kind"`
	Subject      string `json:"subject"`
	Time         int64  `json:"time"`
	Body         string `json:"body_hex"`
	SigningBytes string `json:"signing_bytes_hex"`
	Sig          string `json:"sig_hex"`
	Record       string `json:"record_hex"`
	ID           string `json:"id_base32"`
	ID58         string `json:"id_base58"`
}

func TestGoldenVectors(t *testing.T) {
	path := filepath.Join("testdata", "golden", "records.json")
	recs := goldenRecords(t)
	var got []goldenVector
	for _, name := range []string{"release", "yank", "review", "owners", "key", "report", "unknown-kind"} {
		r := recs[name]
		w := wireRecord{Kind: string(r.Kind), Subject: r.Subject, Body: r.Body, Author: r.Author, Time: r.Time}
		sb, err := signingBytes(&w)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(sb, signingBytesOf(r.Bytes())) {
			t.Fatalf("%s: signing bytes derived from the envelope differ from the encoded fields", name)
		}
		got = append(got, goldenVector{
			Name: name, Seed: hex.EncodeToString(bytes.Repeat([]byte{1}, 32)), Author: r.Author.Hex(), PeerID: r.Author.PeerID(),
			Kind: string(r.Kind), Subject: r.Subject, Time: r.Time, Body: hex.EncodeToString(r.Body),
			SigningBytes: hex.EncodeToString(sb), Sig: hex.EncodeToString(r.Sig),
			Record: hex.EncodeToString(r.Bytes()), ID: r.ID().String(), ID58: r.ID().Base58(),
		})
	}
	if *update {
		b, _ := json.MarshalIndent(got, "", "  ")
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	var want []goldenVector
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	if len(want) != len(got) {
		t.Fatalf("golden file has %d vectors, code makes %d", len(want), len(got))
	}
	for i := range want {
		w, g := want[i], got[i]
		if w != g {
			t.Errorf("vector %s changed:\n got %+v\nwant %+v", w.Name, g, w)
			continue
		}
		raw, _ := hex.DecodeString(w.Record)
		r, err := DecodeRecord(raw)
		if err != nil {
			t.Errorf("vector %s does not decode: %v", w.Name, err)
			continue
		}
		if r.ID().String() != w.ID {
			t.Errorf("vector %s: ID %s, want %s", w.Name, r.ID(), w.ID)
		}
		for _, s := range []string{w.ID, w.ID58} {
			id, err := ParseID(s)
			if err != nil || id != r.ID() {
				t.Errorf("ParseID(%s) = %s, %v", s, id, err)
			}
		}
		sb, _ := hex.DecodeString(w.SigningBytes)
		sig, _ := hex.DecodeString(w.Sig)
		if !bytes.HasPrefix(sb, []byte(SignDomain)) || !r.Author.Verify(sb, sig) {
			t.Errorf("vector %s: signature does not verify over signing bytes", w.Name)
		}
	}
}

// TestAdversarialRecords checks that every kind of damage is rejected with
// the right error kind (DESIGN.md §2: every byte from a peer is re-verified).
func TestAdversarialRecords(t *testing.T) {
	good := goldenRecords(t)["release"]
	raw := good.Bytes()
	flip := func(i int) []byte {
		b := bytes.Clone(raw)
		b[i] ^= 0x01
		return b
	}
	// Locate the signature: the last 64 bytes of the envelope.
	sigAt := len(raw) - 64
	var w wireRecord
	if err := Unmarshal(raw, &w); err != nil {
		t.Fatal(err)
	}
	reencode := func(mut func(m map[int]any)) []byte {
		var m map[int]any
		if err := anyMode.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		mut(m)
		b, err := encMode.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := []struct {
		name string
		b    []byte
		kind ErrorKind
	}{
		{"empty", nil, EINVALID},
		{"truncated", raw[:len(raw)/2], EINVALID},
		{"truncated-by-one", raw[:len(raw)-1], EINVALID},
		{"trailing-byte", append(bytes.Clone(raw), 0x00), EINVALID},
		{"bit-flipped-signature", flip(sigAt + 10), EINVALID},
		{"bit-flipped-subject", flip(bytes.Index(raw, []byte("golden@")) + 1), EINVALID},
		{"not-a-map", []byte{0x83, 0x01, 0x02, 0x03}, EINVALID},
		{"unknown-envelope-key", reencode(func(m map[int]any) { m[7] = "extra" }), EINVALID},
		{"missing-signature", reencode(func(m map[int]any) { delete(m, 6) }), EINVALID},
		{"float-time", reencode(func(m map[int]any) { m[5] = 1.5 }), EINVALID},
		{"negative-time", reencode(func(m map[int]any) { m[5] = -1 }), EINVALID},
		{"short-author", reencode(func(m map[int]any) { m[4] = []byte{1, 2, 3} }), EINVALID},
		{"kind-with-space", reencode(func(m map[int]any) { m[1] = "re lease" }), EINVALID},
		{"oversized", append([]byte{0x5a, 0x00, 0x10, 0x00, 0x00}, make([]byte, 1<<20)...), ETOOLARGE},
		// Non-canonical: a definite map re-encoded with its keys in the wrong
		// order (6 before 1) — same content, different bytes.
		{"non-canonical-key-order", swapFirstAndLastPair(t, raw), EINVALID},
		// Non-canonical: a text length in a longer form than needed.
		{"non-shortest-length", longKind(t, raw), EINVALID},
		// Indefinite-length map.
		{"indefinite-length", indefinite(raw), EINVALID},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := DecodeRecord(c.b)
			if err == nil {
				t.Fatal("accepted")
			}
			if KindOf(err) != c.kind {
				t.Fatalf("kind %s, want %s: %v", KindOf(err), c.kind, err)
			}
		})
	}
	if _, err := DecodeRecordWithID(raw, Sum([]byte("other"))); KindOf(err) != EINVALID {
		t.Fatalf("wrong ID accepted: %v", err)
	}
	if _, err := DecodeRecordWithID(raw, good.ID()); err != nil {
		t.Fatalf("right ID refused: %v", err)
	}
	// Writing the adversarial cases out lets other implementations run them.
	if *update {
		out := map[string]string{}
		for _, c := range cases {
			if c.name != "oversized" {
				out[c.name] = hex.EncodeToString(c.b)
			}
		}
		b, _ := json.MarshalIndent(out, "", "  ")
		os.WriteFile(filepath.Join("testdata", "golden", "invalid-records.json"), append(b, '\n'), 0o644)
	}
	data, err := os.ReadFile(filepath.Join("testdata", "golden", "invalid-records.json"))
	if err != nil {
		t.Fatal(err)
	}
	var stored map[string]string
	json.Unmarshal(data, &stored)
	if len(stored) < 10 {
		t.Fatalf("invalid-records.json has %d cases", len(stored))
	}
	for name, h := range stored {
		b, _ := hex.DecodeString(h)
		if _, err := DecodeRecord(b); err == nil {
			t.Errorf("stored invalid vector %s accepted", name)
		}
	}
}

// swapFirstAndLastPair re-encodes the envelope with key 6 first.
func swapFirstAndLastPair(t *testing.T, raw []byte) []byte {
	var w wireRecord
	if err := Unmarshal(raw, &w); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.WriteByte(0xa6) // map(6)
	enc := func(v any) {
		x, err := encMode.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(x)
	}
	enc(6)
	enc(w.Sig)
	enc(1)
	enc(w.Kind)
	enc(2)
	enc(w.Subject)
	enc(3)
	b.Write(w.Body)
	enc(4)
	enc(w.Author)
	enc(5)
	enc(w.Time)
	return b.Bytes()
}

// longKind re-encodes the kind text string with a 1-byte length argument
// where the length fits in the initial byte (not the shortest form).
func longKind(t *testing.T, raw []byte) []byte {
	i := bytes.Index(raw, []byte{0x01, 0x67, 'r', 'e', 'l', 'e', 'a', 's', 'e'})
	if i < 0 {
		t.Fatal("kind not found")
	}
	out := append(bytes.Clone(raw[:i+1]), 0x78, 0x07)
	return append(out, raw[i+2:]...)
}

// indefinite turns the definite map header into an indefinite one.
func indefinite(raw []byte) []byte {
	out := append([]byte{0xbf}, raw[1:]...)
	return append(out, 0xff)
}
