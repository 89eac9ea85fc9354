package pipeline

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	registry "github.com/wasmrust/wasm-crates-registry"
)

func TestBenchTargetsFromManifest(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "benches", "suite"), 0o755))
	must(os.MkdirAll(filepath.Join(dir, "benches", "empty"), 0o755))
	for _, f := range []string{"benches/auto.rs", "benches/suite/main.rs", "benches/README.md", "benches/-bad.rs"} {
		must(os.WriteFile(filepath.Join(dir, f), nil, 0o644))
	}
	const pkg = "[package]\nname = \"x\"\nversion = \"0.1.0\"\n"
	names := func(bs []benchTarget) []string {
		var out []string
		for _, b := range bs {
			h := "libtest"
			if !b.Harness {
				h = "plain"
			}
			out = append(out, b.Name+":"+h)
		}
		return out
	}
	cases := []struct {
		name, manifest string
		want           []string
	}{
		{"auto-discovered", pkg, []string{"auto:libtest", "suite:libtest"}},
		{"declared and discovered", pkg + "[[bench]]\nname = \"auto\"\nharness = false\n[[bench]]\nname = \"other\"\npath = \"x.rs\"\nharness = false\n",
			[]string{"auto:plain", "other:plain", "suite:libtest"}},
		{"autobenches off", "[package]\nname = \"x\"\nversion = \"0.1.0\"\nautobenches = false\n[[bench]]\nname = \"only\"\n", []string{"only:libtest"}},
		{"hostile names", pkg + "[[bench]]\nname = \"../../etc\"\n[[bench]]\nname = 7\n[[bench]]\nharness = \"no\"\nname = \"h\"\n",
			[]string{"auto:libtest", "h:libtest", "suite:libtest"}},
		{"not TOML", "[[bench", nil},
	}
	for _, c := range cases {
		got, _ := benchTargets([]byte(c.manifest), dir)
		if !slices.Equal(names(got), c.want) {
			t.Errorf("%s: %v, want %v", c.name, names(got), c.want)
		}
	}
	var many strings.Builder
	many.WriteString(pkg + "autobenches = false\n")
	for i := range 40 {
		many.WriteString("[[bench]]\nname = \"b" + string(rune('a'+i/26)) + string(rune('a'+i%26)) + "\"\n")
	}
	got, notes := benchTargets([]byte(many.String()), dir)
	if len(got) != maxBenches || len(notes) != 1 {
		t.Errorf("40 benches: kept %d with notes %q; want %d and a note", len(got), notes, maxBenches)
	}
}

// A crate with two harness = false benchmarks of different cost: both are
// run natively and under wazero the same number of times, and both ratios
// are reported; the heavier one takes longer on both sides.
func TestBenchRatiosFixture(t *testing.T) {
	t.Parallel()
	b := runFixture(t, filepath.Join("testdata", "f-benches")).body
	if b.Wasm != registry.WasmCompatible {
		t.Fatalf("verdict %s (%s)", b.Wasm, b.Message)
	}
	if len(b.Benches) != 2 {
		t.Fatalf("benches %+v; want heavy and light", b.Benches)
	}
	by := map[string]registry.BenchComparison{}
	for _, c := range b.Benches {
		by[c.Name] = c
		if c.Iterations != benchIterations || c.NativeUS == 0 || c.WasmUS == 0 || c.Ratio == 0 || c.Note != "" {
			t.Errorf("%s: %+v; want %d iterations on each side, both times and a ratio", c.Name, c, benchIterations)
		}
		if c.NativeUS > 0 && c.WasmUS*1000/c.NativeUS != c.Ratio {
			t.Errorf("%s: ratio %d, but wasm/native is %d", c.Name, c.Ratio, c.WasmUS*1000/c.NativeUS)
		}
	}
	heavy, light := by["heavy"], by["light"]
	if heavy.NativeUS <= light.NativeUS || heavy.WasmUS <= light.WasmUS {
		t.Errorf("heavy %+v is not costlier than light %+v on both sides", heavy, light)
	}
	// The per-test comparison stays.
	if b.Timing == nil || b.Timing.Compared != 1 {
		t.Errorf("timing %+v; want the one unit test compared", b.Timing)
	}
	var stage bool
	for _, s := range b.Stages {
		stage = stage || s.Stage == "bench"
	}
	if !stage {
		t.Errorf("no bench stage in %+v", b.Stages)
	}
}

// Without bench targets nothing is benchmarked.
func TestBenchNoneFixture(t *testing.T) {
	t.Parallel()
	b := runFixture(t, filepath.Join("testdata", "f-nofeature")).body
	if len(b.Benches) != 0 {
		t.Errorf("benches %+v for a crate without bench targets", b.Benches)
	}
	for _, s := range b.Stages {
		if s.Stage == "bench" {
			t.Errorf("a bench stage ran: %+v", s)
		}
	}
}

// Benchmarks that fail, hang under wasm, flood their output with speed
// claims or need nightly: each gets a note or a ratio the node measured,
// and none stops the others or the run.
func TestBenchHostileFixture(t *testing.T) {
	t.Parallel()
	b := runFixture(t, filepath.Join("testdata", "f-benchhostile")).body
	if b.Wasm != registry.WasmCompatible {
		t.Fatalf("verdict %s (%s): misbehaving benchmarks must not change it", b.Wasm, b.Message)
	}
	by := map[string]registry.BenchComparison{}
	for _, c := range b.Benches {
		by[c.Name] = c
	}
	if len(by) != 4 {
		t.Fatalf("benches %+v; want fails, floods, nightly and wasmhang", b.Benches)
	}
	for name, want := range map[string]string{
		"fails":    "natively, it failed (exit 3)",
		"wasmhang": "under wazero, 6 runs did not end within",
		"nightly":  "needs a nightly toolchain",
	} {
		c := by[name]
		if c.Ratio != 0 || c.Iterations != 0 || !strings.Contains(c.Note, want) {
			t.Errorf("%s: %+v; want no ratio and a note saying %q", name, c, want)
		}
	}
	if f := by["floods"]; f.Ratio == 0 || f.Iterations != benchIterations || f.Note != "" || f.NativeUS == 0 || f.WasmUS == 0 {
		t.Errorf("floods: %+v; want both sides timed by the node, whatever it prints", f)
	}
}

// A criterion benchmark whose dev-dependency the node's sources lack is
// listed with the reason it was not built.
func TestBenchMissingDevDependencyFixture(t *testing.T) {
	t.Parallel()
	b := runFixture(t, filepath.Join("testdata", "f-benchdevdep")).body
	if len(b.Benches) != 1 {
		t.Fatalf("benches %+v; want crit, not built", b.Benches)
	}
	c := b.Benches[0]
	if c.Name != "crit" || c.Ratio != 0 || !strings.Contains(c.Note, "not built") || !strings.Contains(c.Note, "criterion") {
		t.Errorf("crit: %+v; want a note naming the missing dev-dependency", c)
	}
}

// FuzzBenchTargets: whatever the manifest, the bench targets are few and
// their names safe to pass to cargo.
func FuzzBenchTargets(f *testing.F) {
	f.Add([]byte("[[bench]]\nname = \"a\"\nharness = false\n"))
	f.Add([]byte("[package]\nautobenches = false\n[[bench]]\nname = \"../x\"\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, manifest []byte) {
		bs, _ := benchTargets(manifest, dir)
		if len(bs) > maxBenches {
			t.Fatalf("%d benches", len(bs))
		}
		for _, b := range bs {
			if !validName(b.Name, false) {
				t.Fatalf("bench name %q", b.Name)
			}
		}
	})
}
