//go:build !race

package testkit

// RaceEnabled: the test binary runs without the race detector.
const RaceEnabled = false
