package main

import (
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
)

// The global options (--api, --token, --json, …) are accepted before the
// command, after it and after its arguments: `--json list`, `list --json`
// and `show serde --json` mean the same. A value given later on the line
// wins over one given earlier; a value not given at all comes from the
// environment or the default.

// globalFlags are the application's own flags, with their environment
// variables and defaults.
func globalFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "api", EnvVars: []string{"REGISTRY_URL"}, Value: "http://127.0.0.1:8080", Usage: "URL of the node's REST API"},
		&cli.StringFlag{Name: "token", EnvVars: []string{"REGISTRY_TOKEN"}, Usage: "token of the node at --api, sent with writes, and with reads only when the node is private (default: the admin-token file in --data-dir, used only when --api is a loopback address)"},
		&cli.StringFlag{Name: "data-dir", EnvVars: []string{"REGISTRY_DATA_DIR"}, Value: "./registry-data", Usage: "data directory of a local node, where the admin token is looked for"},
		&cli.BoolFlag{Name: "json", Usage: "print the API's JSON instead of tables"},
		&cli.StringFlag{Name: "key", EnvVars: []string{"REGISTRY_KEY"}, Usage: "sign submit, yank and owners with this developer key (see `keys`) instead of having the node sign"},
		&cli.StringFlag{Name: "key-dir", EnvVars: []string{"REGISTRY_KEY_DIR"}, Usage: "where developer keys are kept (default: <user config dir>/wasm-crates-registry/keys)"},
		&cli.DurationFlag{Name: "timeout", Value: 60 * time.Second, Usage: "how long to wait for each answer"},
	}
}

// commandCopies are the global flags as a command declares them: no
// environment variable and no default, so that a copy is set only when the
// flag was written after the command's name. Only --json shows in a
// command's help; the others are listed by the application's help.
func commandCopies() []cli.Flag {
	var out []cli.Flag
	for _, f := range globalFlags() {
		switch f := f.(type) {
		case *cli.StringFlag:
			out = append(out, &cli.StringFlag{Name: f.Name, Usage: f.Usage, Hidden: true})
		case *cli.BoolFlag:
			out = append(out, &cli.BoolFlag{Name: f.Name, Usage: f.Usage})
		case *cli.DurationFlag:
			out = append(out, &cli.DurationFlag{Name: f.Name, Usage: f.Usage, Hidden: true})
		}
	}
	return out
}

// withGlobalFlags gives every command and subcommand the global flags, and
// makes a bad option after a command a usage error (exit status 2) as it is
// before one.
func withGlobalFlags(cmds []*cli.Command) []*cli.Command {
	for _, c := range cmds {
		c.Flags = append(c.Flags, commandCopies()...)
		if c.OnUsageError == nil {
			c.OnUsageError = func(_ *cli.Context, err error, _ bool) error { return usageError{err.Error()} }
		}
		withGlobalFlags(c.Subcommands)
	}
	return cmds
}

// setIn returns the innermost context of c's lineage in which the global
// flag name was written on the command line, or the application's context
// (where the environment and the default apply).
func setIn(c *cli.Context, name string) *cli.Context {
	lineage := c.Lineage()
	for _, x := range lineage {
		if slices.Contains(x.LocalFlagNames(), name) {
			return x
		}
	}
	return lineage[len(lineage)-1]
}

func globalString(c *cli.Context, name string) string {
	return setIn(c, name).String(name)
}

func globalBool(c *cli.Context, name string) bool {
	return setIn(c, name).Bool(name)
}

func globalDuration(c *cli.Context, name string) time.Duration {
	return setIn(c, name).Duration(name)
}

// interspersed moves the options written after a command's arguments in
// front of them, because the flag parser stops at the first argument:
// `show serde --json` becomes `show --json serde`. It knows which options
// take a value from the commands' declarations; everything after "--"
// stays an argument.
func interspersed(app *cli.App, args []string) []string {
	if len(args) == 0 || args[len(args)-1] == completeFlag {
		return args // completion reads the line as the shell has it
	}
	out := []string{args[0]}
	rest := args[1:]
	flags, cmds := app.Flags, app.Commands
	// The application's options and the command path.
	for len(rest) > 0 {
		a := rest[0]
		if a == "--" || !strings.HasPrefix(a, "-") {
			if a == "--" {
				return append(out, rest...)
			}
			cmd := findCommand(cmds, a)
			if cmd == nil {
				break
			}
			out = append(out, a)
			rest = rest[1:]
			flags, cmds = cmd.Flags, cmd.Subcommands
			if len(cmds) == 0 {
				break
			}
			continue
		}
		n := 1
		if takesValue(flags, a) && len(rest) > 1 {
			n = 2
		}
		out = append(out, rest[:n]...)
		rest = rest[n:]
	}
	// The command's own options and arguments.
	var opts, pos []string
	for len(rest) > 0 {
		a := rest[0]
		if a == "--" {
			pos = append(pos, rest...)
			break
		}
		if len(a) > 1 && strings.HasPrefix(a, "-") {
			n := 1
			if takesValue(flags, a) && len(rest) > 1 {
				n = 2
			}
			opts = append(opts, rest[:n]...)
			rest = rest[n:]
			continue
		}
		pos = append(pos, a)
		rest = rest[1:]
	}
	out = append(out, opts...)
	return append(out, pos...)
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.Name == name || slices.Contains(c.Aliases, name) {
			return c
		}
	}
	return nil
}

// takesValue reports whether the option a (like "--api" or "-x"; not
// "--api=URL") is declared in flags as taking a separate value.
func takesValue(flags []cli.Flag, a string) bool {
	name := strings.TrimLeft(a, "-")
	if strings.Contains(name, "=") {
		return false
	}
	for _, f := range flags {
		if !slices.Contains(f.Names(), name) {
			continue
		}
		if v, ok := f.(cli.DocGenerationFlag); ok {
			return v.TakesValue()
		}
	}
	return false
}
