package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// declaredTests lists the top-level test and fuzz functions of the packages
// that the go list patterns match, as "package\x00TestName". It reads them
// from the source (the test files go list names for this machine's build
// configuration), without building or running anything, so that a test a
// -run or -skip pattern left out of every command is still known.
func declaredTests(goCmd string, patterns []string) (map[string]bool, error) {
	args := append([]string{"list", "-e", "-json=ImportPath,Dir,TestGoFiles,XTestGoFiles,Error"}, patterns...)
	cmd := exec.Command(goCmd, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %v: %s", goCmd, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	tests := map[string]bool{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct {
			ImportPath, Dir           string
			TestGoFiles, XTestGoFiles []string
			Error                     *struct{ Err string }
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("reading go list's output: %v", err)
		}
		if p.Error != nil {
			return nil, fmt.Errorf("package %s: %s", p.ImportPath, p.Error.Err)
		}
		fset := token.NewFileSet()
		for _, name := range append(p.TestGoFiles, p.XTestGoFiles...) {
			f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, parser.SkipObjectResolution)
			if err != nil {
				return nil, err
			}
			for _, d := range f.Decls {
				if fn, ok := d.(*ast.FuncDecl); ok && isTestFunc(fn) {
					tests[p.ImportPath+"\x00"+fn.Name.Name] = true
				}
			}
		}
	}
	return tests, nil
}

// isTestFunc reports whether go test runs fn as a test: a function (not a
// method) named Test or Fuzz followed by nothing or a character that is not
// a lower-case letter, taking one *testing.T or *testing.F.
func isTestFunc(fn *ast.FuncDecl) bool {
	if fn.Recv != nil || fn.Type.Params == nil || len(fn.Type.Params.List) != 1 || len(fn.Type.Params.List[0].Names) > 1 {
		return false
	}
	name := fn.Name.Name
	var want string
	switch {
	case strings.HasPrefix(name, "Test"):
		want = "T"
	case strings.HasPrefix(name, "Fuzz"):
		want = "F"
	default:
		return false
	}
	if rest := name[4:]; rest != "" {
		if r, _ := utf8.DecodeRuneInString(rest); unicode.IsLower(r) {
			return false
		}
	}
	star, ok := fn.Type.Params.List[0].Type.(*ast.StarExpr)
	if !ok {
		return false
	}
	sel, ok := star.X.(*ast.SelectorExpr)
	return ok && sel.Sel.Name == want
}

// checkEvery fails the run for every declared test that no command ran.
func (s *summary) checkEvery(declared map[string]bool) {
	var missing []string
	for k := range declared {
		if !s.ran[k] {
			pkg, test, _ := strings.Cut(k, "\x00")
			missing = append(missing, pkg+" "+test)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		s.failf("%d tests ran in none of the commands (a -run or -skip pattern left them out of all of them):\n\t%s",
			len(missing), strings.Join(missing, "\n\t"))
	}
}
