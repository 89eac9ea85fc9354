//go:build race

package main

// raceEnabled: this test binary runs under the race detector, so the
// binaries it drives are built with -race too, and a daemon that reports a
// data race fails the test that ran it.
const raceEnabled = true
