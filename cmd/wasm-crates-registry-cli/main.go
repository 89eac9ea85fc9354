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
	"time"

	"github.com/urfave/cli/v2"
)

var version = "dev"

// Exit statuses.
const (
	exitFailure = 1 // the node refused or failed the request
	exitUsage   = 2 // the command line is wrong
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
	err := app.Run(args)
	if unknown {
		return exitUsage
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", oneLine(err.Error()))
		var ue usageError
		if errors.As(err, &ue) {
			return exitUsage
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
		Name:    "wasm-crates-registry-cli",
		Usage:   "query and manage a wasm-crates-registry node over its REST API",
		Version: version,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "api", EnvVars: []string{"REGISTRY_URL"}, Value: "http://127.0.0.1:8080", Usage: "URL of the node's REST API"},
			&cli.StringFlag{Name: "token", EnvVars: []string{"REGISTRY_TOKEN"}, Usage: "token of the node at --api, sent with writes, and with reads only when the node is private (default: the admin-token file in --data-dir, used only when --api is a loopback address)"},
			&cli.StringFlag{Name: "data-dir", EnvVars: []string{"REGISTRY_DATA_DIR"}, Value: "./registry-data", Usage: "data directory of a local node, where the admin token is looked for"},
			&cli.BoolFlag{Name: "json", Usage: "print the API's JSON instead of tables"},
			&cli.StringFlag{Name: "key", EnvVars: []string{"REGISTRY_KEY"}, Usage: "sign submit, yank and owners with this developer key (see `keys`) instead of having the node sign"},
			&cli.StringFlag{Name: "key-dir", EnvVars: []string{"REGISTRY_KEY_DIR"}, Usage: "where developer keys are kept (default: <user config dir>/wasm-crates-registry/keys)"},
			&cli.DurationFlag{Name: "timeout", Value: 60 * time.Second, Usage: "how long to wait for each answer"},
		},
		Commands: []*cli.Command{
			healthCmd(), listCmd(), searchCmd(), showCmd(), submitCmd(), yankCmd(true), yankCmd(false),
			reviewCmd(), configCmd(), testCmd(), jobCmd(), syncCmd(), peersCmd(), stateCmd(),
			ownersCmd(), downloadCmd(), recordCmd(), logCmd(), verifyCmd(), tokensCmd(), auditCmd(), keysCmd(), corpusCmd(),
		},
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
	tok := c.String("token")
	if tok == "" && isLoopbackURL(c.String("api")) {
		// The admin-token file belongs to the node on this machine: it is
		// never sent to an API elsewhere.
		if b, err := os.ReadFile(filepath.Join(c.String("data-dir"), "admin-token")); err == nil {
			tok = strings.TrimSpace(string(b))
		}
	}
	cl, err := newClient(c.String("api"), tok, c.Duration("timeout"))
	if err != nil {
		return nil, usageError{err.Error()}
	}
	return &env{c: c, cl: cl, json: c.Bool("json"), ctx: c.Context}, nil
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
