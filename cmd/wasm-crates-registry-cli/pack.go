package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// packMTime is the fixed modification time of every archive entry, so that
// packing the same directory twice gives the same bytes (and re-submitting
// is idempotent). Cargo uses the same instant for reproducible packages.
var packMTime = time.Unix(1153704088, 0)

// packCrate archives the crate whose manifest is at manifestPath the way
// `cargo package` lays it out: a gzip'd tar of every package file under
// "name-version/", honouring package.include and package.exclude, without
// target/, .git/ and nested packages. It returns the archive and the
// release it describes.
func packCrate(manifestPath string, maxSize int64) ([]byte, *registry.ReleaseBody, error) {
	data, err := os.ReadFile(manifestPath)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot read the manifest: %w", err)
	}
	rel, err := registry.ParseManifest(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %s", manifestPath, registry.MessageOf(err))
	}
	var raw struct {
		Package struct {
			Include []string `toml:"include"`
			Exclude []string `toml:"exclude"`
		} `toml:"package"`
	}
	_ = toml.Unmarshal(data, &raw)
	include, err := compileGlobs(raw.Package.Include)
	if err != nil {
		return nil, nil, err
	}
	exclude, err := compileGlobs(raw.Package.Exclude)
	if err != nil {
		return nil, nil, err
	}
	root := filepath.Dir(manifestPath)
	var files []string
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return nil
		}
		if d.IsDir() {
			if rel == "target" || d.Name() == ".git" {
				return fs.SkipDir
			}
			if _, err := os.Stat(filepath.Join(p, "Cargo.toml")); err == nil {
				return fs.SkipDir // a nested package is packaged on its own
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil // links and special files are never packaged
		}
		if rel == "Cargo.toml" {
			files = append(files, rel)
			return nil
		}
		if len(include) > 0 {
			if matchAny(include, rel) {
				files = append(files, rel)
			}
			return nil
		}
		if !matchAny(exclude, rel) {
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("reading the crate directory: %w", err)
	}
	slices.Sort(files)
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	tw := tar.NewWriter(zw)
	prefix := rel.Name + "-" + rel.Version + "/"
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(f)))
		if err != nil {
			return nil, nil, err
		}
		info, err := os.Stat(filepath.Join(root, filepath.FromSlash(f)))
		if err != nil {
			return nil, nil, err
		}
		mode := int64(0o644)
		if info.Mode()&0o111 != 0 {
			mode = 0o755
		}
		hdr := &tar.Header{Name: prefix + f, Mode: mode, Size: int64(len(b)), ModTime: packMTime, Typeflag: tar.TypeReg, Format: tar.FormatGNU}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, nil, err
		}
		if _, err := tw.Write(b); err != nil {
			return nil, nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, nil, err
	}
	out := buf.Bytes()
	parsed, err := registry.ParseCrate(out, maxSize)
	if err != nil {
		return nil, nil, fmt.Errorf("the packaged crate is not valid: %s", registry.MessageOf(err))
	}
	return out, parsed, nil
}

// cargoPackage runs `cargo package --no-verify` and returns the archive it
// made.
func cargoPackage(manifestPath string) ([]byte, error) {
	cargo, err := exec.LookPath("cargo")
	if err != nil {
		return nil, fmt.Errorf("--use-cargo needs cargo on PATH")
	}
	tmp, err := os.MkdirTemp("", "wcr-package-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.Command(cargo, "package", "--no-verify", "--allow-dirty", "--manifest-path", manifestPath, "--target-dir", tmp)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("cargo package failed: %s (without network, crates with dependencies package with the built-in packager: drop --use-cargo)", cargoError(string(out)))
	}
	matches, _ := filepath.Glob(filepath.Join(tmp, "package", "*.crate"))
	if len(matches) != 1 {
		return nil, fmt.Errorf("cargo package made %d archives; expected one", len(matches))
	}
	return os.ReadFile(matches[0])
}

type glob struct{ re *regexp.Regexp }

// compileGlobs turns Cargo's include/exclude patterns (gitignore style) into
// matchers: "*" within a path component, "**" across components, a leading
// "/" anchors to the package root, a pattern without "/" matches at any
// depth, and a pattern matching a directory matches everything in it.
func compileGlobs(patterns []string) ([]glob, error) {
	var out []glob
	for _, p := range patterns {
		orig := p
		anchored := strings.HasPrefix(p, "/")
		p = strings.TrimPrefix(strings.TrimSuffix(p, "/"), "/")
		if strings.Contains(p, "/") {
			anchored = true
		}
		var sb strings.Builder
		sb.WriteString("^")
		if !anchored {
			sb.WriteString("(?:.*/)?")
		}
		for i := 0; i < len(p); i++ {
			switch c := p[i]; {
			case strings.HasPrefix(p[i:], "**/"):
				sb.WriteString("(?:.*/)?")
				i += 2
			case strings.HasPrefix(p[i:], "**"):
				sb.WriteString(".*")
				i++
			case c == '*':
				sb.WriteString("[^/]*")
			case c == '?':
				sb.WriteString("[^/]")
			default:
				sb.WriteString(regexp.QuoteMeta(string(c)))
			}
		}
		sb.WriteString("(?:/.*)?$")
		re, err := regexp.Compile(sb.String())
		if err != nil {
			return nil, fmt.Errorf("package include/exclude pattern %q is not valid", orig)
		}
		out = append(out, glob{re})
	}
	return out, nil
}

func matchAny(gs []glob, rel string) bool {
	rel = path.Clean(rel)
	for _, g := range gs {
		if g.re.MatchString(rel) {
			return true
		}
	}
	return false
}

// cargoError returns cargo's error from its output in one line: the
// "error: …" line and the first line of its cause ("Caused by:"), or the
// last non-empty line when there is no error line.
func cargoError(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i, l := range lines {
		msg, ok := strings.CutPrefix(strings.TrimSpace(l), "error: ")
		if !ok {
			continue
		}
		for j := i + 1; j+1 < len(lines); j++ {
			if strings.TrimSpace(lines[j]) == "Caused by:" {
				return msg + ": " + strings.TrimSpace(lines[j+1])
			}
		}
		return msg
	}
	return strings.TrimSpace(lines[len(lines)-1])
}
