package pipeline

import (
	"bytes"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// The declared wasm configuration: [package.metadata.wasm-crates-registry]
// first, docs.rs metadata only when it names a wasm target; a hostile or
// malformed table is a note and never stops the default run.

func TestConfigDeclaredTables(t *testing.T) {
	const pkg = "[package]\nname = \"x\"\nversion = \"0.1.0\"\n"
	cases := []struct {
		name     string
		manifest string
		want     string // the configuration's name, "" for none
		source   string
		targets  []string
		note     string // a note that must be given
	}{
		{"none", pkg, "", "", nil, ""},
		{"registry table", pkg + "[package.metadata.wasm-crates-registry]\nfeatures = [\"wasm\", \"js\", \"wasm\"]\nno-default-features = true\n",
			"no-default-features features=js,wasm", registry.ConfigFromRegistry, nil, ""},
		{"registry wins over docs.rs", pkg + "[package.metadata.docs.rs]\nall-features = true\ntargets = [\"wasm32-unknown-unknown\"]\n[package.metadata.wasm-crates-registry]\nfeatures = [\"js\"]\n",
			"features=js", registry.ConfigFromRegistry, nil, ""},
		{"docs.rs with a wasm target", pkg + "[package.metadata.docs.rs]\nfeatures = [\"js\"]\ntargets = [\"x86_64-unknown-linux-gnu\", \"wasm32-unknown-unknown\", \"riscv64gc-unknown-none-elf\"]\n",
			"features=js", registry.ConfigFromDocsRS, []string{TargetWasmUnknown}, ""},
		{"docs.rs without a wasm target", pkg + "[package.metadata.docs.rs]\nall-features = true\ntargets = [\"x86_64-unknown-linux-gnu\"]\n", "", "", nil, ""},
		{"docs.rs without targets", pkg + "[package.metadata.docs.rs]\nall-features = true\n", "", "", nil, ""},
		{"old wasi name", pkg + "[package.metadata.wasm-crates-registry]\nfeatures = [\"wasi\"]\ntargets = [\"wasm32-wasi\"]\n",
			"features=wasi", registry.ConfigFromRegistry, []string{TargetWasip1}, ""},
		{"dependency feature", pkg + "[package.metadata.wasm-crates-registry]\nfeatures = [\"getrandom/js\", \"rand?/std\"]\n",
			"features=getrandom/js,rand?/std", registry.ConfigFromRegistry, nil, ""},
		{"same as default", pkg + "[package.metadata.wasm-crates-registry]\nfeatures = []\n", "default", registry.ConfigFromRegistry, nil, ""},

		// Hostile or malformed: ignored with a note.
		{"not a table", pkg + "[package.metadata]\nwasm-crates-registry = \"yes\"\n", "", "", nil, "not a table"},
		{"features not strings", pkg + "[package.metadata.wasm-crates-registry]\nfeatures = [1, 2]\n", "", "", nil, "not an array of strings"},
		{"features a string", pkg + "[package.metadata.wasm-crates-registry]\nfeatures = \"js\"\n", "", "", nil, "not an array of strings"},
		{"flag not a bool", pkg + "[package.metadata.wasm-crates-registry]\nno-default-features = \"true\"\n", "", "", nil, "not true or false"},
		{"shell in a feature", pkg + "[package.metadata.wasm-crates-registry]\nfeatures = [\"js; rm -rf ~\"]\n", "", "", nil, "not a valid feature name"},
		{"option as a feature", pkg + "[package.metadata.wasm-crates-registry]\nfeatures = [\"--config=build.rustflags\"]\n", "", "", nil, "not a valid feature name"},
		{"dep: name", pkg + "[package.metadata.wasm-crates-registry]\nfeatures = [\"dep:getrandom\"]\n", "", "", nil, "dep:"},
		{"bad dependency feature", pkg + "[package.metadata.wasm-crates-registry]\nfeatures = [\"-x/js\"]\n", "", "", nil, "not a valid dependency feature"},
		{"non-ascii feature", pkg + "[package.metadata.wasm-crates-registry]\nfeatures = [\"jś\"]\n", "", "", nil, "not a valid feature name"},
		{"long feature", pkg + "[package.metadata.wasm-crates-registry]\nfeatures = [\"" + strings.Repeat("a", 65) + "\"]\n", "", "", nil, "not a valid feature name"},
		{"too many features", pkg + "[package.metadata.wasm-crates-registry]\nfeatures = [" + strings.Repeat("\"a\",", 40) + "]\n", "", "", nil, "at most 32"},
		{"too many targets", pkg + "[package.metadata.wasm-crates-registry]\ntargets = [" + strings.Repeat("\"wasm32-wasi\",", 20) + "]\n", "", "", nil, "at most 16"},
		{"unknown targets only", pkg + "[package.metadata.wasm-crates-registry]\nfeatures = [\"js\"]\ntargets = [\"x86_64-unknown-linux-gnu\"]\n", "", "", nil, "names no wasm target"},
		{"malformed docs.rs", pkg + "[package.metadata.docs.rs]\ntargets = \"wasm32-unknown-unknown\"\n", "", "", nil, "docs.rs] was ignored"},
		{"not TOML", "[package\nname = ", "", "", nil, "could not be read"},
		{"deeply nested", pkg + "[package.metadata.wasm-crates-registry]\nfeatures = " + strings.Repeat("[", 200000) + strings.Repeat("]", 200000) + "\n", "", "", nil, "nested more than"},
		{"deeply nested inline tables", pkg + "x = " + strings.Repeat("{a=", 100000) + "1" + strings.Repeat("}", 100000) + "\n", "", "", nil, ""},
		{"huge manifest", pkg + "# " + strings.Repeat("x", maxManifestBytes) + "\n", "", "", nil, "larger than"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, notes := declaredConfig([]byte(c.manifest))
			got := ""
			if cfg != nil {
				got = cfg.Name()
			}
			if got != c.want {
				t.Fatalf("configuration %q, want %q (notes %q)", got, c.want, notes)
			}
			if cfg != nil && (cfg.Source != c.source || !slices.Equal(cfg.Targets, c.targets)) {
				t.Errorf("source %q targets %v; want %q %v", cfg.Source, cfg.Targets, c.source, c.targets)
			}
			if c.note != "" && !strings.Contains(strings.Join(notes, "\n"), c.note) {
				t.Errorf("notes %q; want one saying %q", notes, c.note)
			}
			for _, n := range notes {
				if len(n) > 600 {
					t.Errorf("a note is %d bytes: the crate's text is not bounded", len(n))
				}
			}
		})
	}
}

func TestConfigCargoArgs(t *testing.T) {
	c := &crateConfig{Features: []string{"js", "wasm"}, NoDefault: true}
	flags := c.cargoArgs()
	if want := []string{"--no-default-features", "--features", "js,wasm"}; !slices.Equal(flags, want) {
		t.Fatalf("cargoArgs %q, want %q", flags, want)
	}
	got := withFeatures([]string{"build", "--offline", "--target", "wasm32-wasi"}, flags)
	if want := []string{"build", "--no-default-features", "--features", "js,wasm", "--offline", "--target", "wasm32-wasi"}; !slices.Equal(got, want) {
		t.Errorf("build: %q, want %q", got, want)
	}
	// Commands that resolve or fetch never get feature flags.
	for _, sub := range []string{"generate-lockfile", "fetch", "--version"} {
		if got := withFeatures([]string{sub, "--offline"}, flags); !slices.Equal(got, []string{sub, "--offline"}) {
			t.Errorf("%s: %q", sub, got)
		}
	}
}

func TestConfigAgainstRelease(t *testing.T) {
	rb := &registry.ReleaseBody{
		Features: map[string][]string{"default": {"std"}, "std": nil, "js": {"dep:wasm-bindgen"}},
		Deps: []registry.Dep{
			{Name: "getrandom", Kind: registry.DepNormal},
			{Name: "wasm-bindgen", Kind: registry.DepNormal, Optional: true},
			{Name: "serde", Kind: registry.DepNormal, Optional: true},
			{Name: "criterion", Kind: registry.DepDev},
		},
	}
	for _, c := range []struct {
		features []string
		bad      string
	}{
		{[]string{"js", "std"}, ""},
		{[]string{"serde"}, ""},                    // an optional dependency's implicit feature
		{[]string{"getrandom/js"}, ""},             // a dependency's feature
		{[]string{"wasm-bindgen"}, "wasm-bindgen"}, // named with dep: by a feature, so not a feature
		{[]string{"wasm"}, "wasm"},
		{[]string{"criterion/html"}, "criterion"}, // dev-dependencies are not built with the library
	} {
		why := (&crateConfig{Features: c.features}).checkAgainst(rb)
		if (why == "") != (c.bad == "") || !strings.Contains(why, c.bad) {
			t.Errorf("%v: %q; want a reason naming %q", c.features, why, c.bad)
		}
	}
}

// A crate whose default feature does not compile for wasm32 and that
// declares --no-default-features --features wasm for wasm: compatible in
// that configuration, and the default configuration is shown incompatible.
func TestConfigWasmFeatureFixture(t *testing.T) {
	t.Parallel()
	b := runFixture(t, filepath.Join("testdata", "f-wasmfeature")).body
	if b.Wasm != registry.WasmCompatible || b.Outcome != registry.OutcomeTestPass {
		t.Fatalf("verdict %s, outcome %s (%s); want compatible, test-pass in the declared configuration", b.Wasm, b.Outcome, b.Message)
	}
	const name = "no-default-features features=wasm"
	if b.Config != name {
		t.Errorf("config %q, want %q", b.Config, name)
	}
	if len(b.Configs) != 2 {
		t.Fatalf("configs %+v; want the default and the declared one", b.Configs)
	}
	def, decl := b.Configs[0], b.Configs[1]
	if def.Name != "default" || def.Source != registry.ConfigDefault || def.Wasm != registry.WasmIncompatible || def.Outcome != registry.OutcomeBuildFail {
		t.Errorf("default configuration %+v; want incompatible, build-fail", def)
	}
	if decl.Name != name || decl.Source != registry.ConfigFromRegistry || decl.Wasm != registry.WasmCompatible ||
		!slices.Equal(decl.Features, []string{"wasm"}) || !slices.Equal(decl.Flags, []string{"no-default-features"}) {
		t.Errorf("declared configuration %+v", decl)
	}
	// Both configurations were tested natively, and the declared one's
	// wasm tests ran: the backend test checks the feature reached the crate.
	host := testPipeline(t).host
	wantCounts(t, targetOf(t, b, host), 2, 0, 0, 0, 0)
	wantCounts(t, targetOf(t, b, TargetWasip1), 2, 0, 0, 0, 0)
	for _, ct := range def.Targets {
		if ct.Target == host && (ct.Tests == nil || ct.Tests.Passed != 2) {
			t.Errorf("default configuration, native: %+v; want 2 tests passed", ct)
		}
		if isWasm(ct.Target) && ct.Build != buildFailed {
			t.Errorf("default configuration, %s: build %q; want failed", ct.Target, ct.Build)
		}
	}
	if depOf(b, "wcr-fx-wasmfeature") == nil {
		t.Errorf("no dependency tree: cargo metadata did not take the configuration's flags (notes %q)", b.Notes)
	}
	if c := testOf(t, b, "lib::tests::backend_matches_target"); c.Wasm != registry.TestPassed {
		t.Errorf("backend test under wazero: %+v", c)
	}
	if err := decodeReport(t, "wcr-fx-wasmfeature@0.1.0", b); err != nil {
		t.Errorf("the report does not decode: %v", err)
	}
}

// A declared configuration naming a feature the crate does not have is
// reported invalid; the verdict is the default configuration's.
func TestConfigMissingFeatureFixture(t *testing.T) {
	t.Parallel()
	b := runFixture(t, filepath.Join("testdata", "f-nofeature")).body
	if b.Wasm != registry.WasmCompatible || b.Config != "default" {
		t.Fatalf("verdict %s for %q; want compatible for the default configuration", b.Wasm, b.Config)
	}
	if len(b.Configs) != 2 {
		t.Fatalf("configs %+v", b.Configs)
	}
	inv := b.Configs[1]
	if inv.Name != "features=js" || inv.Outcome != registry.OutcomeInvalidConfig || inv.Wasm != "" || !strings.Contains(inv.Message, "no feature js") || len(inv.Targets) != 0 {
		t.Errorf("declared configuration %+v; want invalid, naming the missing feature, nothing built", inv)
	}
	if b.Configs[0].Wasm != registry.WasmCompatible {
		t.Errorf("default configuration %+v", b.Configs[0])
	}
}

// decodeReport signs body as a report and decodes it as a receiving node
// does, validation included.
func decodeReport(t *testing.T, subject string, body *registry.ReportBody) error {
	t.Helper()
	rec, err := registry.Sign(key(t), registry.KindReport, subject, body, time.Unix(1_700_000_000, 0))
	if err != nil {
		return err
	}
	_, err = rec.DecodeBody()
	return err
}

// Fields 33–35 come from other nodes too: a report whose configurations or
// benchmarks pass the bounds does not decode.
func TestConfigReportFieldsBounded(t *testing.T) {
	rec, _ := release(t, packDir(t, filepath.Join("testdata", "f-nofeature")))
	base := func() *registry.ReportBody {
		return &registry.ReportBody{Release: rec.ID().Bytes(), Outcome: registry.OutcomeTestPass, Wasm: registry.WasmCompatible,
			Gate: registry.GateCurated, Score: 90, Config: "default",
			Configs: []registry.ConfigReport{{Name: "default", Source: registry.ConfigDefault, Outcome: registry.OutcomeTestPass, Wasm: registry.WasmCompatible,
				Targets: []registry.ConfigTarget{{Target: TargetWasip1, Outcome: registry.OutcomeTestPass, Build: buildOK}}}},
			Benches: []registry.BenchComparison{{Name: "light", Iterations: 5, NativeUS: 100, WasmUS: 250, Ratio: 2500}}}
	}
	const subject = "wcr-fx-nofeature@0.1.0"
	if err := decodeReport(t, subject, base()); err != nil {
		t.Fatalf("a well-formed report: %v", err)
	}
	long := string(bytes.Repeat([]byte("x"), 5000))
	for name, mutate := range map[string]func(b *registry.ReportBody){
		"config name":      func(b *registry.ReportBody) { b.Config = long },
		"too many configs": func(b *registry.ReportBody) { b.Configs = slices.Repeat(b.Configs, 5) },
		"empty config":     func(b *registry.ReportBody) { b.Configs[0].Name = "" },
		"config message":   func(b *registry.ReportBody) { b.Configs[0].Message = long },
		"features":         func(b *registry.ReportBody) { b.Configs[0].Features = slices.Repeat([]string{"js"}, 33) },
		"empty feature":    func(b *registry.ReportBody) { b.Configs[0].Features = []string{""} },
		"targets":          func(b *registry.ReportBody) { b.Configs[0].Targets = slices.Repeat(b.Configs[0].Targets, 17) },
		"target name":      func(b *registry.ReportBody) { b.Configs[0].Targets[0].Target = long },
		"too many benches": func(b *registry.ReportBody) { b.Benches = slices.Repeat(b.Benches, 65) },
		"bench name":       func(b *registry.ReportBody) { b.Benches[0].Name = long },
		"empty bench name": func(b *registry.ReportBody) { b.Benches[0].Name = "" },
		"bench note":       func(b *registry.ReportBody) { b.Benches[0].Note = long },
	} {
		b := base()
		mutate(b)
		if err := decodeReport(t, subject, b); err == nil {
			t.Errorf("%s: a report past the bounds decoded", name)
		}
	}
}

// A dependency feature that the dependency lacks passes the check against
// the release (the dependency exists), and cargo refuses it before
// compiling anything: the configuration is invalid, with cargo's reason,
// and the verdict stays the default's.
func TestConfigRefusedByCargoFixture(t *testing.T) {
	t.Parallel()
	b := runFixture(t, filepath.Join("testdata", "f-depfeature")).body
	if b.Wasm != registry.WasmCompatible || b.Config != "default" {
		t.Fatalf("verdict %s for %q; want compatible for the default configuration (%s)", b.Wasm, b.Config, b.Message)
	}
	if len(b.Configs) != 2 {
		t.Fatalf("configs %+v", b.Configs)
	}
	inv := b.Configs[1]
	if inv.Name != "features=itoa/wasm" || inv.Outcome != registry.OutcomeInvalidConfig || inv.Wasm != "" ||
		!strings.Contains(inv.Message, "cargo refused the configuration") || !strings.Contains(inv.Message, "wasm") {
		t.Errorf("declared configuration %+v; want invalid with cargo's reason", inv)
	}
	if strings.Contains(inv.Message, testPipeline(t).cfg.WorkDir) {
		t.Errorf("the message shows the node's work directory: %q", inv.Message)
	}
	wantCounts(t, targetOf(t, b, TargetWasip1), 1, 0, 0, 0, 0)
}

// FuzzDeclaredConfig: whatever the manifest, reading its declared
// configuration never panics, and what it returns is within the bounds
// and passes the feature-name rules.
func FuzzDeclaredConfig(f *testing.F) {
	f.Add([]byte("[package.metadata.wasm-crates-registry]\nfeatures = [\"js\", \"getrandom/js\"]\nno-default-features = true\ntargets = [\"wasm32-wasi\"]\n"))
	f.Add([]byte("[package.metadata.docs.rs]\nall-features = true\ntargets = [\"wasm32-unknown-unknown\"]\n"))
	f.Add([]byte("[package.metadata]\nwasm-crates-registry = 1\n"))
	f.Fuzz(func(t *testing.T, manifest []byte) {
		cfg, notes := declaredConfig(manifest)
		for _, n := range notes {
			if len(n) > 600 {
				t.Fatalf("note of %d bytes", len(n))
			}
		}
		if cfg == nil {
			return
		}
		if len(cfg.Features) > registry.MaxConfigFeatures || len(cfg.Targets) > 2 || len(cfg.Name()) > 256*registry.MaxConfigFeatures {
			t.Fatalf("unbounded configuration %+v", cfg)
		}
		for _, f := range cfg.Features {
			if why := checkFeatureName(f); why != "" {
				t.Fatalf("feature %q passed: %s", f, why)
			}
			if strings.HasPrefix(f, "-") {
				t.Fatalf("feature %q reads as an option", f)
			}
		}
	})
}
