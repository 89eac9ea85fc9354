// Package testkit holds the fixtures the tests of every package share: a
// deterministic .crate builder, fixed keys, and a launcher for the real
// daemon binary. Only tests import it.
package testkit
