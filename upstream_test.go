package registry

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const goldenUpstreamLine = `{"name":"Golden","vers":"1.0.0","deps":[{"name":"serde","req":"^1","features":[],"optional":false,"default_features":true,"target":null,"kind":"normal"}],"cksum":"` +
	"1111111111111111111111111111111111111111111111111111111111111111" + `","features":{"std":[]},"yanked":false}`

// TestUpstreamGolden pins the wire format of an upstream record
// (testdata/golden/upstream.json; -update rewrites it).
func TestUpstreamGolden(t *testing.T) {
	b, err := NewUpstreamBody("https://index.crates.io/", goldenUpstreamLine)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Sign(goldenKey(t, 1), KindUpstream, "golden", b, goldenTime)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{"hex": hex.EncodeToString(r.Bytes()), "id": r.ID().String()}
	path := filepath.Join("testdata", "golden", "upstream.json")
	if *update {
		out, _ := json.MarshalIndent(got, "", "  ")
		if err := os.WriteFile(path, append(out, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]string
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	if got["hex"] != want["hex"] || got["id"] != want["id"] {
		t.Fatalf("upstream record changed:\ngot  %v\nwant %v", got, want)
	}
	bb, _ := hex.DecodeString(want["hex"])
	dec, err := DecodeRecord(bb)
	if err != nil {
		t.Fatal(err)
	}
	body, err := dec.DecodeBody()
	if err != nil || *body.(*UpstreamBody) != *b {
		t.Fatalf("decoded body %+v, %v", body, err)
	}
	if body.(*UpstreamBody).BlobID().Hex() != strings.Repeat("1", 64) {
		t.Fatal("BlobID is not the cksum's multihash")
	}
}

func TestHostileUpstreamBodies(t *testing.T) {
	k := goldenKey(t, 1)
	good, _ := NewUpstreamBody("https://index.crates.io/", goldenUpstreamLine)
	sign := func(subject string, b *UpstreamBody) error {
		_, err := Sign(k, KindUpstream, subject, b, goldenTime)
		return err
	}
	if err := sign("golden", good); err != nil {
		t.Fatal(err)
	}
	mutate := func(f func(b *UpstreamBody)) *UpstreamBody {
		c := *good
		f(&c)
		return &c
	}
	cases := map[string]struct {
		subject string
		body    *UpstreamBody
	}{
		"subject not the lowercase name": {"Golden", good},
		"subject another crate":          {"other", good},
		"name unlike the line":           {"golden", mutate(func(b *UpstreamBody) { b.Name = "golden" })},
		"version unlike the line":        {"golden", mutate(func(b *UpstreamBody) { b.Version = "2.0.0" })},
		"cksum unlike the line":          {"golden", mutate(func(b *UpstreamBody) { b.Cksum = strings.Repeat("2", 64) })},
		"yanked unlike the line":         {"golden", mutate(func(b *UpstreamBody) { b.Yanked = true })},
		"bad name":                       {"../x", mutate(func(b *UpstreamBody) { b.Name = "../x" })},
		"bad cksum":                      {"golden", mutate(func(b *UpstreamBody) { b.Cksum = "zz" })},
		"file upstream":                  {"golden", mutate(func(b *UpstreamBody) { b.Upstream = "file:///etc/" })},
		"upstream with a newline":        {"golden", mutate(func(b *UpstreamBody) { b.Upstream = "https://x/\nEvil: 1" })},
		"line not JSON":                  {"golden", mutate(func(b *UpstreamBody) { b.Line = "{" })},
		"line an array":                  {"golden", mutate(func(b *UpstreamBody) { b.Line = "[]" })},
		"two lines":                      {"golden", mutate(func(b *UpstreamBody) { b.Line = goldenUpstreamLine + "\n" + goldenUpstreamLine })},
		"huge line": {"golden", mutate(func(b *UpstreamBody) {
			b.Line = strings.Replace(goldenUpstreamLine, `"yanked"`, `"x":"`+strings.Repeat("a", MaxUpstreamLine)+`","yanked"`, 1)
		})},
	}
	for name, c := range cases {
		if err := sign(c.subject, c.body); KindOf(err) != EINVALID {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestUpstreamLineKeyIgnoresOnlyYanked(t *testing.T) {
	k1, err := UpstreamLineKey(goldenUpstreamLine)
	if err != nil {
		t.Fatal(err)
	}
	yanked, err := UpstreamLineYanked(goldenUpstreamLine, true)
	if err != nil || !strings.Contains(yanked, `"yanked":true`) {
		t.Fatalf("%s %v", yanked, err)
	}
	if back, _ := UpstreamLineYanked(goldenUpstreamLine, false); back != goldenUpstreamLine {
		t.Fatal("setting yanked to what the line says must keep the line")
	}
	reordered := `{"yanked":true,  "cksum":"` + strings.Repeat("1", 64) + `","vers":"1.0.0","name":"Golden","features":{"std":[]},"deps":[{"kind":"normal","name":"serde","req":"^1","features":[],"optional":false,"default_features":true,"target":null}]}`
	for _, l := range []string{yanked, reordered} {
		if k, err := UpstreamLineKey(l); err != nil || k != k1 {
			t.Fatalf("key of %s:\n%s\nwant\n%s", l, k, k1)
		}
	}
	for _, l := range []string{
		strings.Replace(goldenUpstreamLine, `"^1"`, `"^1.0"`, 1),
		strings.Replace(goldenUpstreamLine, `"std":[]`, `"std":["alloc"]`, 1),
		strings.Replace(goldenUpstreamLine, `"yanked":false`, `"yanked":false,"links":"z"`, 1),
	} {
		if k, _ := UpstreamLineKey(l); k == k1 {
			t.Fatalf("a changed line has the same key: %s", l)
		}
	}
}

// FuzzUpstreamLine: any line an upstream record accepts keeps its identity
// through a yank and back, and signs into a record that decodes to the same
// body.
func FuzzUpstreamLine(f *testing.F) {
	f.Add(goldenUpstreamLine)
	f.Add(`{"name":"a","vers":"0.0.1-x+y","cksum":"` + strings.Repeat("0", 64) + `","yanked":true,"deps":null,"x":[1.5e3,{"b":"\u00e9"}]}`)
	k := goldenKey(f, 1)
	f.Fuzz(func(t *testing.T, line string) {
		b, err := NewUpstreamBody("https://index.crates.io/", line)
		if err != nil {
			return
		}
		key, err := UpstreamLineKey(line)
		if err != nil {
			t.Fatalf("an accepted line has no key: %v", err)
		}
		flipped, err := UpstreamLineYanked(line, !b.Yanked)
		if err != nil {
			t.Fatalf("an accepted line cannot be yanked: %v", err)
		}
		if k2, err := UpstreamLineKey(flipped); err != nil || k2 != key {
			t.Fatalf("a yank changed the line's identity:\n%s\n%s", key, k2)
		}
		if back, err := NewUpstreamBody("https://index.crates.io/", flipped); err != nil || back.Yanked == b.Yanked {
			t.Fatalf("the yanked line does not make a yanked body: %v", err)
		}
		r, err := Sign(k, KindUpstream, strings.ToLower(b.Name), b, goldenTime)
		if err != nil {
			t.Fatalf("an accepted body does not sign: %v", err)
		}
		d, err := DecodeRecord(r.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		got, err := d.DecodeBody()
		if err != nil || *got.(*UpstreamBody) != *b {
			t.Fatalf("round trip: %+v %v", got, err)
		}
	})
}
