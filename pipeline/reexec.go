package pipeline

import (
	"fmt"
	"os"
	"sort"
	"strings"
)

// The pipeline runs some of its own code inside the sandbox, never in the
// node's process: the supervisor that starts each untrusted command and
// the wazero test runner. They are the node's own executable (or a test
// binary) started again with a reserved first argument, so no second
// binary has to be installed or found.

// helperArg is the reserved first argument that marks a helper process.
const helperArg = "__wcr-pipeline-helper"

var helpers = map[string]func(args []string) int{}

// registerHelper makes fn runnable as the helper called name. It is called
// from init functions only.
func registerHelper(name string, fn func(args []string) int) {
	if _, dup := helpers[name]; dup {
		panic("pipeline: helper " + name + " registered twice")
	}
	helpers[name] = fn
}

// MaybeRunHelper runs the helper that os.Args names and exits with its
// status when this process was started as a pipeline helper; otherwise it
// returns at once. Every main (and TestMain) of a program that runs the
// pipeline must call it before doing anything else.
func MaybeRunHelper() {
	if len(os.Args) < 3 || os.Args[1] != helperArg {
		return
	}
	fn, ok := helpers[os.Args[2]]
	if !ok {
		names := make([]string, 0, len(helpers))
		for n := range helpers {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintf(os.Stderr, "unknown pipeline helper %q (known: %s)\n", os.Args[2], strings.Join(names, ", "))
		os.Exit(2)
	}
	os.Exit(fn(os.Args[3:]))
}

// helperArgs is the command line that starts helper name with args, given
// the path of the executable as the sandbox sees it.
func helperArgs(exe, name string, args ...string) []string {
	return append([]string{exe, helperArg, name}, args...)
}
