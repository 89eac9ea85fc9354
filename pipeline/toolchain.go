package pipeline

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// Canonical target names the pipeline always reports on.
const (
	TargetWasmUnknown = "wasm32-unknown-unknown"
	TargetWasip1      = "wasm32-wasip1"
	targetWasiOld     = "wasm32-wasi" // the name of wasm32-wasip1 on toolchains before 1.78
)

// Toolchain is one cargo/rustc pair found on the machine.
type Toolchain struct {
	ID      string   `json:"id"`      // "1.63.0@/usr/bin"
	Cargo   string   `json:"cargo"`   // path to cargo
	Rustc   string   `json:"rustc"`   // path to rustc
	Sysroot string   `json:"sysroot"` // rustc --print sysroot
	Version string   `json:"version"` // rustc release, "1.63.0"
	Channel string   `json:"channel"` // stable | beta | nightly
	Host    string   `json:"host"`    // host triple
	RustcV  string   `json:"rustc_version"`
	CargoV  string   `json:"cargo_version"`
	Targets []string `json:"targets"` // triples whose std is installed, as the toolchain names them
	// Usable is false when the pair cannot work together (cargo older than
	// rustc, or either fails to run); Problem says why.
	Usable  bool   `json:"usable"`
	Problem string `json:"problem,omitempty"`
}

// TargetStatus says, for one target, which toolchain the pipeline uses or
// what is missing.
type TargetStatus struct {
	Target    string `json:"target"`              // canonical name
	Triple    string `json:"triple,omitempty"`    // name the chosen toolchain uses
	Toolchain string `json:"toolchain,omitempty"` // chosen Toolchain.ID; empty when missing
	Tested    bool   `json:"tested"`              // tests run for this target (host natively, wasip1 in wazero)
	Missing   string `json:"missing,omitempty"`   // what is missing
	Install   string `json:"install,omitempty"`   // how to install it
	Extra     bool   `json:"extra,omitempty"`     // information only (see likeWithLike)
}

// version is a parsed rustc release.
type version [3]int

func parseVersion(s string) (version, bool) {
	var v version
	s, _, _ = strings.Cut(s, "-")
	parts := strings.Split(s, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return v, false
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return v, false
		}
		v[i] = n
	}
	return v, true
}

func (v version) less(o version) bool { return slices.Compare(v[:], o[:]) < 0 }

func (v version) String() string {
	return strconv.Itoa(v[0]) + "." + strconv.Itoa(v[1]) + "." + strconv.Itoa(v[2])
}

var (
	rustcRelease = regexp.MustCompile(`(?m)^release:\s*(\S+)`)
	rustcHost    = regexp.MustCompile(`(?m)^host:\s*(\S+)`)
	cargoVer     = regexp.MustCompile(`^cargo (\d+\.\d+\.\d+)`)
)

// candidateDirs lists directories that may hold a cargo/rustc pair: the
// explicit ones, every PATH entry, /usr/bin, /usr/local/bin and each rustup
// toolchain's bin directory.
func candidateDirs(extra []string) []string {
	var dirs []string
	dirs = append(dirs, extra...)
	dirs = append(dirs, filepath.SplitList(os.Getenv("PATH"))...)
	dirs = append(dirs, "/usr/bin", "/usr/local/bin")
	rustupHome := os.Getenv("RUSTUP_HOME")
	if rustupHome == "" {
		if home, err := os.UserHomeDir(); err == nil {
			rustupHome = filepath.Join(home, ".rustup")
		}
	}
	if rustupHome != "" {
		if ents, err := os.ReadDir(filepath.Join(rustupHome, "toolchains")); err == nil {
			for _, e := range ents {
				dirs = append(dirs, filepath.Join(rustupHome, "toolchains", e.Name(), "bin"))
			}
		}
	}
	var out []string
	seen := map[string]bool{}
	for _, d := range dirs {
		if d == "" || !filepath.IsAbs(d) {
			continue
		}
		d = filepath.Clean(d)
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}

// DetectToolchains finds every usable cargo/rustc pair in dirs (see
// candidateDirs). Pairs that are rustup proxies for a toolchain found
// directly are dropped in favour of the toolchain's own directory, since
// proxies need rustup's home inside the sandbox.
func DetectToolchains(ctx context.Context, extraDirs []string) []Toolchain {
	var found []Toolchain
	bySysroot := map[string]int{}
	for _, dir := range candidateDirs(extraDirs) {
		cargo, rustc := filepath.Join(dir, "cargo"), filepath.Join(dir, "rustc")
		if !isExecutable(cargo) || !isExecutable(rustc) {
			continue
		}
		tc, ok := probeToolchain(ctx, cargo, rustc)
		if !ok {
			continue
		}
		direct := filepath.Clean(filepath.Join(tc.Sysroot, "bin")) == dir
		if i, dup := bySysroot[tc.Sysroot]; dup {
			if direct {
				found[i] = tc
			}
			continue
		}
		bySysroot[tc.Sysroot] = len(found)
		found = append(found, tc)
	}
	slices.SortStableFunc(found, func(a, b Toolchain) int { return compareToolchains(b, a) })
	return found
}

// compareToolchains orders toolchains by preference: usable, then stable
// before beta before nightly, then newer.
func compareToolchains(a, b Toolchain) int {
	if a.Usable != b.Usable {
		if a.Usable {
			return 1
		}
		return -1
	}
	rank := func(c string) int {
		switch c {
		case "stable":
			return 2
		case "beta":
			return 1
		}
		return 0
	}
	if ra, rb := rank(a.Channel), rank(b.Channel); ra != rb {
		return ra - rb
	}
	va, _ := parseVersion(a.Version)
	vb, _ := parseVersion(b.Version)
	return slices.Compare(va[:], vb[:])
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

func probeToolchain(ctx context.Context, cargo, rustc string) (Toolchain, bool) {
	tc := Toolchain{Cargo: cargo, Rustc: rustc}
	run := func(name string, args ...string) (string, bool) {
		c, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(c, name, args...)
		cmd.Env = append(os.Environ(), "RUSTC="+rustc, "RUSTUP_TOOLCHAIN=")
		out, err := cmd.Output()
		return strings.TrimSpace(string(out)), err == nil
	}
	vv, ok := run(rustc, "-vV")
	if !ok {
		return tc, false
	}
	m := rustcRelease.FindStringSubmatch(vv)
	h := rustcHost.FindStringSubmatch(vv)
	if m == nil || h == nil {
		return tc, false
	}
	tc.Version, tc.Host = m[1], h[1]
	tc.RustcV, _, _ = strings.Cut(vv, "\n")
	switch {
	case strings.Contains(tc.Version, "nightly") || strings.Contains(tc.RustcV, "nightly"):
		tc.Channel = "nightly"
	case strings.Contains(tc.Version, "beta"):
		tc.Channel = "beta"
	default:
		tc.Channel = "stable"
	}
	sr, ok := run(rustc, "--print", "sysroot")
	if !ok || sr == "" {
		return tc, false
	}
	tc.Sysroot = filepath.Clean(sr)
	cv, ok := run(cargo, "--version")
	tc.CargoV = cv
	tc.Targets = installedTargets(tc.Sysroot)
	tc.ID = tc.Version + "@" + filepath.Dir(rustc)
	if !ok {
		tc.Problem = "cargo --version fails"
		return tc, true
	}
	cm := cargoVer.FindStringSubmatch(cv)
	rv, _ := parseVersion(tc.Version)
	if cm == nil {
		tc.Problem = "cannot read cargo's version from " + strconv.Quote(cv)
		return tc, true
	}
	cvv, _ := parseVersion(cm[1])
	if cvv[0] != rv[0] || cvv[1] < rv[1] {
		tc.Problem = "cargo " + cvv.String() + " is older than rustc " + rv.String() + " and cannot drive it"
		return tc, true
	}
	tc.Usable = true
	return tc, true
}

// installedTargets lists the targets whose standard library is in sysroot:
// those with a lib/rustlib/<target>/lib directory.
func installedTargets(sysroot string) []string {
	ents, err := os.ReadDir(filepath.Join(sysroot, "lib", "rustlib"))
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		if fi, err := os.Stat(filepath.Join(sysroot, "lib", "rustlib", e.Name(), "lib")); err == nil && fi.IsDir() {
			out = append(out, e.Name())
		}
	}
	slices.Sort(out)
	return out
}

// tripleFor returns the name toolchain tc uses for the canonical target, or
// "" if its std is not installed.
func (tc Toolchain) tripleFor(target string) string {
	if slices.Contains(tc.Targets, target) {
		return target
	}
	if target == TargetWasip1 && slices.Contains(tc.Targets, targetWasiOld) {
		return targetWasiOld
	}
	return ""
}

// canonicalTarget maps a toolchain's triple to the name reports use.
func canonicalTarget(triple string) string {
	if triple == targetWasiOld {
		return TargetWasip1
	}
	return triple
}

// Report returns the toolchain as a report names it.
func (tc Toolchain) Report(targets []string) registry.ToolchainReport {
	return registry.ToolchainReport{ID: tc.ID, Rustc: tc.RustcV, Cargo: tc.CargoV, Targets: targets}
}

// installHint says how to get a standard library for target on this kind of
// machine.
func installHint(target string, tcs []Toolchain) string {
	switch target {
	case TargetWasmUnknown, TargetWasip1:
		return "Debian: apt-get install rustc cargo libstd-rust-dev-wasm32 lld (wasm32-unknown-unknown and wasm32-wasi for rustc 1.63); " +
			"rustup: rustup target add " + target
	}
	for _, tc := range tcs {
		if tc.Host == target {
			return "install a Rust toolchain for the host: apt-get install rustc cargo, or rustup toolchain install stable"
		}
	}
	return "rustup target add " + target + " (Debian packages standard libraries only for the host and wasm32)"
}

// planTargets picks the best usable toolchain for the host target, the two
// wasm targets and extra, and for every other target any usable toolchain
// has a std for; missing targets say how to install them.
func planTargets(tcs []Toolchain, host string, extra []string) []TargetStatus {
	wanted := []string{host, TargetWasmUnknown, TargetWasip1}
	for _, e := range extra {
		if !slices.Contains(wanted, canonicalTarget(e)) {
			wanted = append(wanted, canonicalTarget(e))
		}
	}
	for _, tc := range tcs {
		if !tc.Usable {
			continue
		}
		for _, t := range tc.Targets {
			if c := canonicalTarget(t); !slices.Contains(wanted, c) {
				wanted = append(wanted, c)
			}
		}
	}
	var out []TargetStatus
	for _, t := range wanted {
		st := TargetStatus{Target: t, Tested: t == host || t == TargetWasip1}
		for _, tc := range tcs { // tcs is sorted best first
			if !tc.Usable {
				continue
			}
			if tr := tc.tripleFor(t); tr != "" {
				st.Toolchain, st.Triple = tc.ID, tr
				break
			}
		}
		if st.Toolchain == "" {
			st.Missing = "no installed toolchain has the standard library for " + t
			st.Install = installHint(t, tcs)
		}
		out = append(out, st)
	}
	return likeWithLike(out, tcs, host)
}

// hostTriple is the host target of the best usable toolchain, or the Go
// runtime's guess.
func hostTriple(tcs []Toolchain) string {
	for _, tc := range tcs {
		if tc.Usable {
			return tc.Host
		}
	}
	return "x86_64-unknown-linux-gnu"
}
