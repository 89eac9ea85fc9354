package pipeline

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pelletier/go-toml/v2"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// A crate can declare the feature configuration it is meant to be used
// with in wasm, in its own table
//
//	[package.metadata.wasm-crates-registry]
//	features = ["js"]            # cargo --features
//	no-default-features = true   # cargo --no-default-features
//	all-features = false         # cargo --all-features
//	targets = ["wasm32-unknown-unknown"]   # optional: the wasm targets it applies to
//
// or, failing that, in docs.rs's table [package.metadata.docs.rs] (same
// keys), which counts only when its targets name a wasm target: docs.rs
// features are usually chosen to document everything (all-features is
// common), often native-only code, so they say nothing about wasm unless
// the crate documents a wasm target with them. The pipeline tests the
// default configuration and, when it differs, the declared one; the
// verdict is the declared one's. The manifest is the crate's word: every
// value is bounded and checked, and a table that is malformed is ignored
// with a note, never a failure of the default run.

// Bounds of a declared configuration.
const (
	maxManifestBytes = 1 << 20
	maxFeatureLen    = 64
	maxConfigTargets = 16
)

// Keys of the metadata tables.
const (
	registryTable = "wasm-crates-registry"
	docsRSTable   = "docs.rs"
)

// crateConfig is a feature configuration: cargo's flags for it and where
// it was declared.
type crateConfig struct {
	Source    string   // registry.ConfigDefault, ConfigFromRegistry or ConfigFromDocsRS
	Features  []string // validated feature names, sorted, no duplicates
	NoDefault bool
	All       bool
	Targets   []string // canonical wasm targets it applies to; empty: every wasm target
	// Invalid, when set, says why cargo cannot select this configuration's
	// features; nothing is built with it.
	Invalid string
}

// defaultConfig is cargo's default feature configuration.
var defaultConfig = &crateConfig{Source: registry.ConfigDefault}

// isDefault reports whether c selects the same features as the default.
func (c *crateConfig) isDefault() bool {
	return len(c.Features) == 0 && !c.NoDefault && !c.All
}

// flagNames are c's flags as a report shows them.
func (c *crateConfig) flagNames() []string {
	var f []string
	if c.NoDefault {
		f = append(f, "no-default-features")
	}
	if c.All {
		f = append(f, "all-features")
	}
	return f
}

// Name is the configuration's name in reports: "default", or its flags
// and features, e.g. "no-default-features features=js".
func (c *crateConfig) Name() string {
	if c.isDefault() {
		return registry.ConfigDefault
	}
	parts := c.flagNames()
	if len(c.Features) > 0 {
		parts = append(parts, "features="+strings.Join(c.Features, ","))
	}
	return strings.Join(parts, " ")
}

// cargoArgs are the flags that select c on cargo's command line.
func (c *crateConfig) cargoArgs() []string {
	var a []string
	if c.NoDefault {
		a = append(a, "--no-default-features")
	}
	if c.All {
		a = append(a, "--all-features")
	}
	if len(c.Features) > 0 {
		a = append(a, "--features", strings.Join(c.Features, ","))
	}
	return a
}

// appliesTo reports whether c is tested on target: the host always (for
// the native comparison), a wasm target when c names it or names none.
func (c *crateConfig) appliesTo(target, host string) bool {
	if target == host {
		return true
	}
	if !isWasm(target) {
		return false
	}
	return len(c.Targets) == 0 || slices.Contains(c.Targets, target)
}

// featureSubcommands are the cargo commands that take feature flags: those
// that build, and metadata (the dependency tree depends on the features).
var featureSubcommands = []string{"build", "test", "rustc", "bench", "check", "doc", "rustdoc", "metadata"}

// withFeatures inserts flags (a configuration's cargo flags) after the
// subcommand of a cargo command line that takes them.
func withFeatures(args, flags []string) []string {
	if len(flags) == 0 || len(args) == 0 || !slices.Contains(featureSubcommands, args[0]) {
		return args
	}
	out := make([]string, 0, len(args)+len(flags))
	out = append(out, args[0])
	out = append(out, flags...)
	return append(out, args[1:]...)
}

// declaredConfig reads the configuration a manifest declares for wasm. It
// returns nil when none is declared (or the declared tables are unusable),
// with notes saying what was ignored and why.
func declaredConfig(manifest []byte) (*crateConfig, []string) {
	if len(manifest) > maxManifestBytes {
		return nil, []string{fmt.Sprintf("the manifest is larger than %d bytes; its metadata tables were not read", maxManifestBytes)}
	}
	var m struct {
		Package struct {
			Metadata map[string]any `toml:"metadata"`
		} `toml:"package"`
	}
	if err := toml.Unmarshal(manifest, &m); err != nil {
		return nil, []string{"the manifest's metadata could not be read, so only the default configuration was tested: " + truncateText(firstLine(err.Error()), 200)}
	}
	var notes []string
	if t, ok := m.Package.Metadata[registryTable]; ok {
		c, err := parseConfigTable(t, registry.ConfigFromRegistry)
		if err == "" {
			return c, notes
		}
		notes = append(notes, "[package.metadata."+registryTable+"] was ignored: "+err)
	}
	docs, _ := m.Package.Metadata["docs"].(map[string]any)
	if t, ok := docs["rs"]; ok {
		c, err := parseConfigTable(t, registry.ConfigFromDocsRS)
		switch {
		case err != "":
			notes = append(notes, "[package.metadata.docs.rs] was ignored: "+err)
		case len(c.Targets) > 0:
			return c, notes
		}
	}
	return nil, notes
}

// parseConfigTable checks one metadata table. A non-empty error says why
// the table cannot be used. Targets that are not wasm targets the
// pipeline knows are left out; for docs.rs, a table naming none is not a
// wasm configuration (c.Targets is empty).
func parseConfigTable(v any, source string) (*crateConfig, string) {
	t, ok := v.(map[string]any)
	if !ok {
		return nil, "it is not a table"
	}
	c := &crateConfig{Source: source}
	var err string
	if c.Features, err = stringList(t["features"], "features", registry.MaxConfigFeatures); err != "" {
		return nil, err
	}
	seen := map[string]bool{}
	var feats []string
	for _, f := range c.Features {
		if why := checkFeatureName(f); why != "" {
			return nil, why
		}
		if !seen[f] {
			seen[f] = true
			feats = append(feats, f)
		}
	}
	slices.Sort(feats)
	c.Features = feats
	for key, dst := range map[string]*bool{"no-default-features": &c.NoDefault, "all-features": &c.All} {
		switch b := t[key].(type) {
		case nil:
		case bool:
			*dst = b
		default:
			return nil, key + " is not true or false"
		}
	}
	targets, err := stringList(t["targets"], "targets", maxConfigTargets)
	if err != "" {
		return nil, err
	}
	for _, tg := range targets {
		ct := canonicalTarget(tg)
		if (ct == TargetWasmUnknown || ct == TargetWasip1) && !slices.Contains(c.Targets, ct) {
			c.Targets = append(c.Targets, ct)
		}
	}
	if source == registry.ConfigFromRegistry && len(targets) > 0 && len(c.Targets) == 0 {
		return nil, "targets names no wasm target this registry tests (" + TargetWasmUnknown + ", " + TargetWasip1 + ")"
	}
	return c, ""
}

// stringList checks that v, when present, is an array of at most max
// strings.
func stringList(v any, key string, max int) ([]string, string) {
	if v == nil {
		return nil, ""
	}
	arr, ok := v.([]any)
	if !ok {
		return nil, key + " is not an array of strings"
	}
	if len(arr) > max {
		return nil, fmt.Sprintf("%s has %d entries; at most %d are read", key, len(arr), max)
	}
	out := make([]string, 0, len(arr))
	for _, e := range arr {
		s, ok := e.(string)
		if !ok {
			return nil, key + " is not an array of strings"
		}
		if len(s) > 2*maxFeatureLen+1 {
			return nil, fmt.Sprintf("an entry of %s is longer than %d bytes", key, 2*maxFeatureLen+1)
		}
		out = append(out, s)
	}
	return out, ""
}

// checkFeatureName says why f cannot be passed to cargo's --features, or
// "" when it can: a feature name ("std"), or a dependency's feature
// ("serde/derive", "serde?/derive"). Names use cargo's ASCII charset: a
// letter, digit or _ first, then letters, digits, _, -, + and .; cargo
// refuses "dep:" names on its command line.
func checkFeatureName(f string) string {
	if strings.HasPrefix(f, "dep:") {
		return fmt.Sprintf("feature %q: cargo does not take dep: names on its command line; name the feature that enables the dependency", truncateText(f, maxFeatureLen))
	}
	dep, feat, isDep := strings.Cut(f, "/")
	if isDep {
		dep = strings.TrimSuffix(dep, "?")
		if !validName(dep, false) || !validName(feat, true) {
			return fmt.Sprintf("feature %q is not a valid dependency feature (name/feature)", truncateText(f, maxFeatureLen))
		}
		return ""
	}
	if !validName(f, true) {
		return fmt.Sprintf("feature %q is not a valid feature name (letters, digits, _, -, + and . only, at most %d bytes)", truncateText(f, maxFeatureLen), maxFeatureLen)
	}
	return ""
}

// validName checks a feature name (feature) or a dependency name.
func validName(s string, feature bool) bool {
	if s == "" || len(s) > maxFeatureLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_':
		case i > 0 && c == '-':
		case i > 0 && feature && (c == '+' || c == '.'):
		default:
			return false
		}
	}
	return true
}

// checkAgainst says why cargo would refuse c's features for the release,
// from the release's manifest facts (its features and dependencies), or ""
// when it would not. Nothing of the crate runs for this check.
func (c *crateConfig) checkAgainst(rb *registry.ReleaseBody) string {
	deps := map[string]bool{}
	optional := map[string]bool{}
	for _, d := range rb.Deps {
		if d.Kind == registry.DepDev {
			continue
		}
		deps[d.Name] = true
		if d.Optional {
			optional[d.Name] = true
		}
	}
	// An optional dependency is a feature of its own unless a feature
	// names it with dep:.
	for _, vals := range rb.Features {
		for _, v := range vals {
			if name, ok := strings.CutPrefix(v, "dep:"); ok {
				delete(optional, name)
			}
		}
	}
	var missing []string
	for _, f := range c.Features {
		if dep, _, isDep := strings.Cut(f, "/"); isDep {
			if !deps[strings.TrimSuffix(dep, "?")] {
				missing = append(missing, f+" (no dependency "+strings.TrimSuffix(dep, "?")+")")
			}
			continue
		}
		if _, ok := rb.Features[f]; !ok && !optional[f] {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return fmt.Sprintf("the crate has no feature %s, so cargo cannot build this configuration", strings.Join(missing, ", "))
	}
	return ""
}

// runDeclared tests the configuration the crate declares for wasm, when it
// declares one that differs from the default: the host (for the native
// comparison) and the wasm targets it applies to are built and tested
// again with its features. When it is valid, its targets become the run's
// (the report's verdict is the declared configuration's) and the
// default's are kept in r.defaultTargets; otherwise the run keeps the
// default's and the declared configuration is reported invalid.
func (r *jobRun) runDeclared(ctx context.Context) error {
	r.config = defaultConfig
	manifest, err := os.ReadFile(filepath.Join(r.dir, "src", "Cargo.toml"))
	if err != nil {
		return registry.E("pipeline.config", registry.EINTERNAL, "cannot read the crate's manifest", err)
	}
	cfg, notes := declaredConfig(manifest)
	r.notes = append(r.notes, notes...)
	if cfg == nil {
		return nil
	}
	if cfg.isDefault() {
		r.notes = append(r.notes, "the wasm configuration the crate declares ("+cfg.Source+") is its default one")
		return nil
	}
	r.declared = cfg
	cfg.Invalid = cfg.checkAgainst(r.job.Body)
	if cfg.Invalid != "" {
		r.progress(Event{Stage: "config", State: StateFailed, Message: cfg.Name() + ": " + cfg.Invalid})
		return nil
	}
	_ = r.stage("config", "", func() (string, error) {
		return "declared wasm configuration " + cfg.Name() + " (" + cfg.Source + ")", nil
	})
	r.defaultTargets = r.targets
	envs := map[*cargoEnv]*cargoEnv{}
	var targets []*targetState
	for _, d := range r.defaultTargets {
		if !cfg.appliesTo(d.status.Target, r.p.host) {
			continue
		}
		ts := &targetState{status: d.status, tc: d.tc, rep: &registry.TargetReport{
			Target: d.rep.Target, Triple: d.rep.Triple, Toolchain: d.rep.Toolchain, Runner: d.rep.Runner}}
		if d.ce != nil {
			ce := envs[d.ce]
			if ce == nil {
				c := *d.ce
				c.features = cfg.cargoArgs()
				ce = &c
				envs[d.ce] = ce
			}
			ts.ce = ce
		}
		targets = append(targets, ts)
	}
	r.targets = targets
	for _, ts := range r.targets {
		if err := r.runTarget(ctx, ts); err != nil {
			return err
		}
	}
	if why := refusedBeforeCompiling(r.targets); why != "" {
		cfg.Invalid = strings.ReplaceAll(why, r.dir+"/", "")
		r.targets, r.defaultTargets = r.defaultTargets, nil
		return nil
	}
	r.config = cfg
	return nil
}

// refusedBeforeCompiling says why cargo refused a configuration, when every
// build of it failed before compiling anything (no artifact, no compiler
// message): cargo rejected the feature selection itself, so no code of the
// crate or its dependencies ran and nothing about wasm was learnt. It
// returns "" otherwise.
func refusedBeforeCompiling(targets []*targetState) string {
	why := ""
	for _, ts := range targets {
		if ts.build == nil {
			continue
		}
		cr := ts.build
		if cr.ok() || len(cr.artifacts) > 0 || len(cr.errors) > 0 || cr.firstError != "" || cr.run.TimedOut {
			return ""
		}
		if why == "" {
			text, _ := cr.log()
			why = "cargo refused the configuration before compiling anything: " + firstLineWith(text, "error")
			if l := firstLineWith(text, "does not have"); l != "does not have" && !strings.Contains(why, l) {
				why += " " + l
			}
		}
	}
	return why
}

// maxConfigMessage bounds a ConfigReport's message.
const maxConfigMessage = 600

// configReports summarises the tested configurations for the report: the
// default first, then the declared one.
func (r *jobRun) configReports() []registry.ConfigReport {
	if r.declared == nil {
		return nil
	}
	def := r.targets
	if r.defaultTargets != nil {
		def = r.defaultTargets
	}
	out := []registry.ConfigReport{r.configReport(defaultConfig, def)}
	d := r.declared
	if d.Invalid != "" {
		out = append(out, registry.ConfigReport{Name: truncateText(d.Name(), 200), Source: d.Source, Features: d.Features, Flags: d.flagNames(),
			Outcome: registry.OutcomeInvalidConfig, Message: truncateText(d.Invalid, maxConfigMessage)})
		return out
	}
	return append(out, r.configReport(d, r.targets))
}

// configReport summarises one configuration's targets.
func (r *jobRun) configReport(c *crateConfig, targets []*targetState) registry.ConfigReport {
	var uu, wasi *targetState
	cr := registry.ConfigReport{Name: truncateText(c.Name(), 200), Source: c.Source, Features: c.Features, Flags: c.flagNames()}
	for _, ts := range targets {
		switch ts.status.Target {
		case TargetWasmUnknown:
			uu = ts
		case TargetWasip1:
			wasi = ts
		}
		if len(cr.Targets) < 16 {
			cr.Targets = append(cr.Targets, registry.ConfigTarget{Target: ts.rep.Target, Outcome: ts.rep.Outcome, Build: ts.rep.Build, Tests: ts.rep.Tests})
		}
	}
	var res *resolution
	if wasi != nil {
		res = r.resolved[wasi.status.Toolchain]
	}
	v := wasmVerdict(uu, wasi, res)
	cr.Wasm = v.wasm
	outcome, msg := overallOutcome(uu, wasi)
	if v.reason != "" {
		msg += "; " + v.reason
	}
	cr.Outcome, cr.Message = outcome, truncateText(msg, maxConfigMessage)
	return cr
}

// configRun is what a job keeps of its configurations and benchmarks.
type configRun struct {
	config         *crateConfig // the configuration r.targets were tested with
	declared       *crateConfig // the crate's declared wasm configuration, when it differs from the default
	defaultTargets []*targetState
	benches        []registry.BenchComparison
}
