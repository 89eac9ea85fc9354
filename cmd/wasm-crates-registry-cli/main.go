// Command wasm-crates-registry-cli is the client of a registry node. It
// speaks only the node's REST API: tables for people by default, --json for
// scripts, a one-line reason and a non-zero exit status on failure.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"
)

var version = "dev"

// Exit statuses.
const (
	exitFailure = 1 // the node refused or failed the request
	exitUsage   = 2 // the command line is wrong
	exitGate    = 3 // the release was tested and misses what --require asked for
)

func main() {
	os.Exit(runApp(os.Args))
}

func runApp(args []string) int {
	app := newApp()
	unknown := false
	app.CommandNotFound = func(c *cli.Context, name string) {
		fmt.Fprintf(os.Stderr, "error: no command %q; see %s --help\n", name, c.App.Name)
		unknown = true
	}
	err := app.Run(interspersed(app, args))
	if unknown {
		return exitUsage
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", oneLine(err.Error()))
		var ue usageError
		if errors.As(err, &ue) {
			return exitUsage
		}
		var ge gateError
		if errors.As(err, &ge) {
			return exitGate
		}
		return exitFailure
	}
	return 0
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

func newApp() *cli.App {
	return &cli.App{
		Name:                 "wasm-crates-registry-cli",
		Usage:                "query and manage a wasm-crates-registry node over its REST API",
		Version:              version,
		Flags:                globalFlags(),
		EnableBashCompletion: true,
		Commands: withGlobalFlags([]*cli.Command{
			healthCmd(), listCmd(), searchCmd(), showCmd(), submitCmd(), yankCmd(true), yankCmd(false),
			reviewCmd(), configCmd(), testCmd(), jobCmd(), syncCmd(), peersCmd(), stateCmd(),
			ownersCmd(), downloadCmd(), recordCmd(), logCmd(), verifyCmd(), tokensCmd(), auditCmd(), keysCmd(), completionCmd(), corpusCmd(), webhooksCmd(),
		}),
		OnUsageError: func(c *cli.Context, err error, isSubcommand bool) error {
			return usageError{err.Error()}
		},
	}
}

// env is what every command needs.
type env struct {
	c    *cli.Context
	cl   *client
	json bool
	ctx  context.Context
}

func newEnv(c *cli.Context) (*env, error) {
	tok := globalString(c, "token")
	if tok == "" && isLoopbackURL(globalString(c, "api")) {
		// The admin-token file belongs to the node on this machine: it is
		// never sent to an API elsewhere.
		if b, err := os.ReadFile(filepath.Join(globalString(c, "data-dir"), "admin-token")); err == nil {
			tok = strings.TrimSpace(string(b))
		}
	}
	cl, err := newClient(globalString(c, "api"), tok, globalDuration(c, "timeout"))
	if err != nil {
		return nil, usageError{err.Error()}
	}
	return &env{c: c, cl: cl, json: globalBool(c, "json"), ctx: c.Context}, nil
}

// isLoopbackURL reports whether an API URL names this machine by a
// loopback address or "localhost".
func isLoopbackURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil {
		return false
	}
	h := u.Hostname()
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// action wraps a command body with its environment.
func action(fn func(e *env) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		e, err := newEnv(c)
		if err != nil {
			return err
		}
		return fn(e)
	}
}

func oneArg(c *cli.Context, what string) (string, error) {
	if c.NArg() != 1 {
		return "", usagef("%s needs exactly one %s (got %d arguments)", c.Command.Name, what, c.NArg())
	}
	return c.Args().First(), nil
}
