package pipeline

import (
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// The messages users read for a failed or untested target name the target
// and, when a dependency is at fault, that dependency — never the crate
// itself as a dependency.
func TestUnitFailureWording(t *testing.T) {
	cases := []struct{ got, want string }{
		{buildFailure(TargetWasmUnknown, ""), "the crate does not compile for wasm32-unknown-unknown"},
		{buildFailure(TargetWasip1, "getrandom@0.2.8"), "the dependency getrandom@0.2.8 does not compile for wasm32-wasip1"},
		{testBuildFailure(TargetWasip1, ""), "the library builds but its tests do not compile for wasm32-wasip1"},
		{testBuildFailure(TargetWasip1, "rand@0.8.5"), "the library builds but its tests do not compile for wasm32-wasip1 (the dependency rand@0.8.5 fails)"},
		{untestedMessage(TargetWasmUnknown), "built; wasm32-unknown-unknown has no system interface to run libtest, so its tests run under wasm32-wasip1"},
		{untestedMessage("aarch64-unknown-linux-gnu"), "built; tests are run only natively and for wasm32-wasip1"},
		{builtMessage(1234567 * time.Microsecond), "built in 1.235s"},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

// A failing build names the dependency at fault only when it is not the
// crate under test.
func TestUnitFailingDependency(t *testing.T) {
	r := &jobRun{job: &Job{Body: &registry.ReleaseBody{Name: "mine", Version: "1.0.0"}}}
	cases := []struct{ firstError, want string }{
		{"", ""},
		{"registry+https://github.com/rust-lang/crates.io-index#getrandom@0.2.8", "getrandom@0.2.8"},
		{"path+file:///work/mine#1.0.0", ""},
		{"mine 1.0.0 (path+file:///work/mine)", ""},
	}
	for _, c := range cases {
		if got := r.failingDependency(&cargoResult{firstError: c.firstError}); got != c.want {
			t.Errorf("failingDependency(%q) = %q, want %q", c.firstError, got, c.want)
		}
	}
}
