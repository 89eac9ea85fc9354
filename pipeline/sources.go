package pipeline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/pelletier/go-toml/v2"
	registry "github.com/wasmrust/wasm-crates-registry"
)

// Dependency origins as reports name them.
const (
	sourceRegistry  = "registry"  // this node's own store
	sourceDirectory = "directory" // a configured directory source
	sourceCratesIO  = "crates-io"
)

// unpackCrate writes the files of a .crate archive into dir, without the
// archive's top "name-version/" directory, and returns that directory's
// name. Files are made readable by everyone and never executable, since
// the sandbox user reads them. Cargo configuration shipped in the archive
// (.cargo/config, .cargo/config.toml) is removed: a crate never chooses
// the sources, flags or programs it is built with.
func unpackCrate(b []byte, dir string, maxSize int64) (string, error) {
	const op = "pipeline.unpack"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", registry.E(op, registry.EINTERNAL, "cannot create the unpack directory", err)
	}
	top, err := registry.WalkCrate(b, maxSize, func(e registry.CrateEntry, r io.Reader) error {
		p := filepath.Join(dir, filepath.FromSlash(e.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return registry.E(op, registry.EINTERNAL, "cannot create a directory", err)
		}
		f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return registry.E(op, registry.EINVALID, "archive entry "+e.Path+" cannot be written (duplicate?)", err)
		}
		_, err = io.Copy(f, r)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return registry.E(op, registry.EINTERNAL, "cannot write "+e.Path, err)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	for _, f := range []string{"config", "config.toml"} {
		p := filepath.Join(dir, ".cargo", f)
		if err := os.RemoveAll(p); err != nil {
			return "", registry.E(op, registry.EINTERNAL, "cannot remove the crate's own "+p, err)
		}
	}
	return top, nil
}

// storeCrateDir returns the directory holding the unpacked release rb, with
// the .cargo-checksum.json a Cargo directory source needs, unpacking the
// blob into the cache the first time. Entries are content-addressed by the
// release's checksum, so a cached entry never goes stale; beside each, a
// digest of the unpacked tree that only the node can read
// (crates/<cksum>.tree, 0600) lets the first use in each process check
// that nobody changed it. An entry that does not match is unpacked again.
func (p *Pipeline) storeCrateDir(ctx context.Context, local LocalRegistry, rb *registry.ReleaseBody) (string, error) {
	const op = "pipeline.storeCrate"
	if len(rb.Cksum) != 64 || !isHex(rb.Cksum) {
		return "", registry.Errorf(op, registry.EINVALID, "release %s@%s has no valid checksum", rb.Name, rb.Version)
	}
	final := filepath.Join(p.cfg.CacheDir, "crates", rb.Cksum)
	sumFile := final + ".tree"
	p.cratesMu.Lock()
	verified := p.crates[rb.Cksum]
	p.cratesMu.Unlock()
	if verified {
		if fi, err := os.Lstat(final); err == nil && fi.IsDir() {
			return final, nil
		}
		p.cratesMu.Lock()
		delete(p.crates, rb.Cksum)
		p.cratesMu.Unlock()
	}
	if fi, err := os.Lstat(final); err == nil {
		want, _ := os.ReadFile(sumFile)
		got, err := treeDigest(final)
		if fi.IsDir() && err == nil && len(want) > 0 && string(want) == got {
			p.markCrate(rb.Cksum)
			return final, nil
		}
		p.log.Warn("an unpacked store crate did not match its digest and is unpacked again", "crate", rb.Name+"@"+rb.Version)
		if err := os.RemoveAll(final); err != nil {
			return "", registry.E(op, registry.EINTERNAL, "cannot remove a stale unpacked crate", err)
		}
	}
	blob, err := local.Blob(ctx, rb.BlobID())
	if err != nil {
		return "", registry.E(op, registry.KindOf(err), "cannot read the archive of "+rb.Name+"@"+rb.Version+" from the store", err)
	}
	sum := sha256.Sum256(blob)
	if hex.EncodeToString(sum[:]) != rb.Cksum {
		return "", registry.Errorf(op, registry.EINTERNAL, "the store's archive of %s@%s does not match its checksum", rb.Name, rb.Version)
	}
	tmp, err := os.MkdirTemp(filepath.Join(p.cfg.CacheDir, "crates"), ".unpack-")
	if err != nil {
		return "", registry.E(op, registry.EINTERNAL, "cannot create a cache directory", err)
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", registry.E(op, registry.EINTERNAL, "", err)
	}
	src := filepath.Join(tmp, "c")
	if _, err := unpackCrate(blob, src, p.cfg.MaxCrateSize); err != nil {
		return "", err
	}
	ck, _ := json.Marshal(map[string]any{"package": rb.Cksum, "files": map[string]string{}})
	if err := os.WriteFile(filepath.Join(src, ".cargo-checksum.json"), ck, 0o644); err != nil {
		return "", registry.E(op, registry.EINTERNAL, "", err)
	}
	digest, err := treeDigest(src)
	if err != nil {
		return "", registry.E(op, registry.EINTERNAL, "", err)
	}
	if err := os.WriteFile(sumFile+".tmp", []byte(digest), 0o600); err != nil {
		return "", registry.E(op, registry.EINTERNAL, "", err)
	}
	if err := os.Rename(sumFile+".tmp", sumFile); err != nil {
		return "", registry.E(op, registry.EINTERNAL, "", err)
	}
	if err := os.Rename(src, final); err != nil {
		// Another job unpacked it first: the same bytes, the same digest.
		if got, derr := treeDigest(final); derr == nil && got == digest {
			p.markCrate(rb.Cksum)
			return final, nil
		}
		return "", registry.E(op, registry.EINTERNAL, "cannot move the unpacked crate into the cache", err)
	}
	p.markCrate(rb.Cksum)
	return final, nil
}

func (p *Pipeline) markCrate(cksum string) {
	p.cratesMu.Lock()
	p.crates[cksum] = true
	p.cratesMu.Unlock()
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}

// treeDigest is a sha256 over an unpacked crate: every entry's path, type,
// permissions and, for files, contents, in lexical order. A link or any
// other special file makes it fail: unpacking never creates one.
func treeDigest(dir string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			fmt.Fprintf(h, "d %q %o\n", rel, fi.Mode().Perm())
		case d.Type().IsRegular():
			f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
			if err != nil {
				return err
			}
			fh := sha256.New()
			_, err = io.Copy(fh, f)
			f.Close()
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "f %q %o %x\n", rel, fi.Mode().Perm(), fh.Sum(nil))
		default:
			return fmt.Errorf("%s is not a regular file or directory", rel)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// vendorIndex records where each package of the combined source came from,
// by "name@version".
type vendorIndex map[string]string

// materialise builds the job's combined offline source: a Cargo directory
// source whose entries are symbolic links to the node's own releases
// (unpacked into the cache) and to the crates of the configured directory
// sources. A configured directory source wins when both hold a
// name@version: the node's releases only add what the directories lack,
// so no release from the federation can shadow a vetted copy. It
// writes CARGO_HOME/config.toml so that crates.io is replaced by it, unless
// network is true, in which case crates.io is used directly.
func (p *Pipeline) materialise(ctx context.Context, job *Job, vendor, home string, network bool) (vendorIndex, []string, error) {
	const op = "pipeline.materialise"
	idx := vendorIndex{}
	var notes []string
	if err := os.MkdirAll(vendor, 0o755); err != nil {
		return nil, nil, registry.E(op, registry.EINTERNAL, "", err)
	}
	link := func(key, target, origin string) error {
		name := filepath.Join(vendor, strings.ReplaceAll(key, "@", "-"))
		_ = os.Remove(name)
		if err := os.Symlink(target, name); err != nil {
			return registry.E(op, registry.EINTERNAL, "cannot link "+key+" into the job's source", err)
		}
		idx[key] = origin
		return nil
	}
	for _, dir := range p.cfg.DirectorySources {
		ents, err := os.ReadDir(dir)
		if err != nil {
			notes = append(notes, "directory source "+dir+" is not readable: "+err.Error())
			continue
		}
		for _, e := range ents {
			sub := filepath.Join(dir, e.Name())
			if _, err := os.Stat(filepath.Join(sub, ".cargo-checksum.json")); err != nil {
				continue
			}
			key, ok := dirEntryKey(sub, e.Name())
			if !ok || idx[key] != "" {
				continue
			}
			if err := link(key, sub, sourceDirectory); err != nil {
				return nil, nil, err
			}
		}
	}
	if job.Local != nil {
		rels, err := job.Local.Releases(ctx)
		if err != nil {
			return nil, nil, registry.E(op, registry.KindOf(err), "cannot list the store's releases", err)
		}
		if err := os.MkdirAll(filepath.Join(p.cfg.CacheDir, "crates"), 0o755); err != nil {
			return nil, nil, registry.E(op, registry.EINTERNAL, "", err)
		}
		for _, rb := range rels {
			if rb == nil || (rb.Name == job.Body.Name && rb.Version == job.Body.Version) || idx[rb.Name+"@"+rb.Version] != "" {
				continue
			}
			d, err := p.storeCrateDir(ctx, job.Local, rb)
			if err != nil {
				if registry.KindOf(err) == registry.ECANCELED || ctx.Err() != nil {
					return nil, nil, err
				}
				notes = append(notes, "release "+rb.Name+"@"+rb.Version+" of this registry is not usable as a dependency: "+registry.MessageOf(err))
				continue
			}
			if err := link(rb.Name+"@"+rb.Version, d, sourceRegistry); err != nil {
				return nil, nil, err
			}
		}
	}
	var cfg bytes.Buffer
	if !network {
		cfg.WriteString("[source.crates-io]\nreplace-with = \"wcr-offline\"\n\n[source.wcr-offline]\ndirectory = " + strconv.Quote(vendor) + "\n\n[net]\noffline = true\n")
	}
	cfg.WriteString("\n[term]\ncolor = \"never\"\nprogress.when = \"never\"\n")
	if err := os.MkdirAll(home, 0o755); err != nil {
		return nil, nil, registry.E(op, registry.EINTERNAL, "", err)
	}
	if err := os.WriteFile(filepath.Join(home, "config.toml"), cfg.Bytes(), 0o644); err != nil {
		return nil, nil, registry.E(op, registry.EINTERNAL, "", err)
	}
	return idx, notes, nil
}

// dirEntryKey returns "name@version" for a directory-source entry, from its
// directory name when that has the Debian form name-version, else from its
// Cargo.toml.
func dirEntryKey(dir, base string) (string, bool) {
	if i := strings.LastIndexByte(base, '-'); i > 0 {
		for j := i; j > 0; j = strings.LastIndexByte(base[:j], '-') {
			name, ver := base[:j], base[j+1:]
			if registry.ValidateVersion(ver) == nil && registry.ValidateCrateName(name) == nil {
				return name + "@" + ver, true
			}
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "Cargo.toml"))
	if err != nil {
		return "", false
	}
	var m struct {
		Package struct {
			Name    string `toml:"name"`
			Version string `toml:"version"`
		} `toml:"package"`
	}
	if toml.Unmarshal(b, &m) != nil || m.Package.Name == "" {
		return "", false
	}
	return m.Package.Name + "@" + m.Package.Version, true
}

// copyTree copies the regular files and directories of src into dst.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(out, 0o755)
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(out, b, 0o644)
		}
		return nil
	})
}

// stripDevDeps rewrites a manifest without its dev-dependencies (top level
// and per target) and without explicit test, bench and example targets, so
// that the library can be built when only the tests' dependencies are
// missing. It returns the removed dependencies' names.
func stripDevDeps(manifest []byte) ([]byte, []string, error) {
	var m map[string]any
	if err := toml.Unmarshal(manifest, &m); err != nil {
		return nil, nil, err
	}
	var names []string
	drop := func(scope map[string]any) {
		for _, k := range []string{"dev-dependencies", "dev_dependencies"} {
			if t, ok := scope[k].(map[string]any); ok {
				for name := range t {
					if !slices.Contains(names, name) {
						names = append(names, name)
					}
				}
				delete(scope, k)
			}
		}
	}
	drop(m)
	if t, ok := m["target"].(map[string]any); ok {
		for _, v := range t {
			if tt, ok := v.(map[string]any); ok {
				drop(tt)
			}
		}
	}
	for _, k := range []string{"test", "bench", "example"} {
		delete(m, k)
	}
	if pkg, ok := m["package"].(map[string]any); ok {
		pkg["autotests"], pkg["autobenches"], pkg["autoexamples"] = false, false, false
	}
	slices.Sort(names)
	out, err := toml.Marshal(m)
	return out, names, err
}

// stripOptional rewrites a manifest without the optional dependencies that
// its default features do not enable, and without the features that need
// them, so that the crate can be built with its default features when only
// such dependencies are missing. It returns the names of the removed
// dependencies.
func stripOptional(manifest []byte) ([]byte, []string, error) {
	var m map[string]any
	if err := toml.Unmarshal(manifest, &m); err != nil {
		return nil, nil, err
	}
	features, _ := m["features"].(map[string]any)
	optional := map[string]bool{}
	var tables []map[string]any
	collect := func(scope map[string]any) {
		for _, k := range []string{"dependencies", "build-dependencies", "build_dependencies"} {
			if t, ok := scope[k].(map[string]any); ok {
				tables = append(tables, t)
				for name, spec := range t {
					if s, ok := spec.(map[string]any); ok && s["optional"] == true {
						optional[name] = true
					}
				}
			}
		}
	}
	collect(m)
	if t, ok := m["target"].(map[string]any); ok {
		for _, v := range t {
			if scope, ok := v.(map[string]any); ok {
				collect(scope)
			}
		}
	}
	if len(optional) == 0 {
		return manifest, nil, nil
	}
	// Optional dependencies the default features enable.
	enabled := map[string]bool{}
	seenFeature := map[string]bool{}
	var walk func(f string)
	walk = func(f string) {
		if seenFeature[f] {
			return
		}
		seenFeature[f] = true
		list, _ := features[f].([]any)
		for _, e := range list {
			s, _ := e.(string)
			switch {
			case strings.HasPrefix(s, "dep:"):
				enabled[s[4:]] = true
			case strings.Contains(s, "?/"):
			case strings.Contains(s, "/"):
				dep, _, _ := strings.Cut(s, "/")
				if optional[dep] {
					enabled[dep] = true
				}
			default:
				if _, isFeature := features[s]; isFeature {
					walk(s)
				} else if optional[s] {
					enabled[s] = true
				}
			}
		}
	}
	walk("default")
	removed := map[string]bool{}
	for name := range optional {
		if !enabled[name] {
			removed[name] = true
		}
	}
	if len(removed) == 0 {
		return manifest, nil, nil
	}
	for _, t := range tables {
		for name := range t {
			if removed[name] {
				delete(t, name)
			}
		}
	}
	// Drop the features that need a removed dependency or feature.
	for changed := true; changed && features != nil; {
		changed = false
		for f, v := range features {
			list, _ := v.([]any)
			for _, e := range list {
				s, _ := e.(string)
				s = strings.TrimPrefix(s, "dep:")
				dep, _, _ := strings.Cut(s, "/")
				dep = strings.TrimSuffix(dep, "?")
				if removed[dep] {
					delete(features, f)
					removed[f] = true
					changed = true
					break
				}
			}
		}
	}
	out, err := toml.Marshal(m)
	var names []string
	for name := range optional {
		if !enabled[name] {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return out, names, err
}
