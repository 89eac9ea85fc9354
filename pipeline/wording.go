package pipeline

import (
	"time"
)

// The wording of a target's outcome messages. They are shown to users as
// the report's reason for an outcome: one sentence each, naming the target
// and, where known, the dependency at fault.

// builtMessage is the "build" stage's message for a build that took wall.
func builtMessage(wall time.Duration) string {
	return "built in " + wall.Round(time.Millisecond).String()
}

// buildFailure says why target's build failed when the sandbox's
// accounting gave no reason: dep is the first dependency that failed
// (name@version), "" when it was the crate itself or is unknown.
func buildFailure(target, dep string) string {
	if dep != "" {
		return "the dependency " + dep + " does not compile for " + target
	}
	return "the crate does not compile for " + target
}

// testBuildFailure says why the tests' build for target failed when the
// sandbox's accounting gave no reason; dep as for buildFailure.
func testBuildFailure(target, dep string) string {
	why := "the library builds but its tests do not compile for " + target
	if dep != "" {
		why += " (the dependency " + dep + " fails)"
	}
	return why
}

// untestedMessage is the message of a target that was built and whose
// tests are not run for it.
func untestedMessage(target string) string {
	if target == TargetWasmUnknown {
		return "built; wasm32-unknown-unknown has no system interface to run libtest, so its tests run under wasm32-wasip1"
	}
	return "built; tests are run only natively and for wasm32-wasip1"
}
