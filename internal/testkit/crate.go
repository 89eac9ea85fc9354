package testkit

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"slices"
	"time"
)

// epoch is the modification time of every entry Crate writes, so that the
// same arguments always give the same bytes (and the same cksum).
var epoch = time.Unix(0, 0).UTC()

// CrateOption adjusts the archive Crate builds.
type CrateOption func(*crateConfig)

type crateConfig struct {
	manifest []string
}

// ManifestLines appends lines to the [package] table of the default
// Cargo.toml (and, after a blank line, may open further tables such as
// "[dependencies]"). It has no effect when files holds a Cargo.toml.
func ManifestLines(lines ...string) CrateOption {
	return func(c *crateConfig) { c.manifest = append(c.manifest, lines...) }
}

// Description sets the description of the default Cargo.toml.
func Description(d string) CrateOption {
	return ManifestLines(fmt.Sprintf("description = %q", d))
}

// Manifest is the default Cargo.toml Crate writes for name and version:
// a [package] table with the two fields followed by lines, one per line.
func Manifest(name, version string, lines ...string) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "[package]\nname = %q\nversion = %q\n", name, version)
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}

// Crate returns a .crate archive as Cargo packages one: a gzip'd tar whose
// regular files live under "name-version/". files maps paths relative to
// that directory (slash-separated) to contents; when it holds no
// "Cargo.toml", Manifest(name, version, lines from opts...) is added. The
// result is deterministic: entries sorted by path, mode 0644, modification
// time the Unix epoch, no owner names. The caller owns the returned slice.
// Crate panics only if the tar writer rejects a path (a test's mistake).
func Crate(name, version string, files map[string]string, opts ...CrateOption) []byte {
	var c crateConfig
	for _, o := range opts {
		o(&c)
	}
	all := make(map[string]string, len(files)+1)
	for p, body := range files {
		all[p] = body
	}
	if _, ok := all["Cargo.toml"]; !ok {
		all["Cargo.toml"] = Manifest(name, version, c.manifest...)
	}
	paths := make([]string, 0, len(all))
	for p := range all {
		paths = append(paths, p)
	}
	slices.Sort(paths)

	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	top := name + "-" + version + "/"
	for _, p := range paths {
		body := all[p]
		h := &tar.Header{Name: top + p, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg, ModTime: epoch}
		if err := tw.WriteHeader(h); err != nil {
			panic(fmt.Sprintf("testkit.Crate: %s: %v", p, err))
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			panic(fmt.Sprintf("testkit.Crate: %s: %v", p, err))
		}
	}
	if err := tw.Close(); err != nil {
		panic(err)
	}
	if err := zw.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}
