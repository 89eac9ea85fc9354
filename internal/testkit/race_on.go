//go:build race

package testkit

// RaceEnabled: the test binary runs under the race detector, so Binaries
// builds with -race too, and a daemon that reports a data race fails the
// test that started it.
const RaceEnabled = true
