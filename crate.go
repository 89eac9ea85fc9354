package registry

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// DefaultMaxCrateSize is the default limit on a .crate archive's size.
const DefaultMaxCrateSize = 10 << 20

// maxUnpackedFactor bounds the unpacked size of an archive relative to the
// size limit, so that a small archive cannot expand without bound.
const maxUnpackedFactor = 20

// CrateEntry is one regular file of a .crate archive. Path is relative to
// the archive's "name-version/" directory and is clean ("src/lib.rs").
type CrateEntry struct {
	Path string
	Mode int64
	Size int64
}

// WalkCrate reads a .crate archive (a gzip'd tar whose entries all live under
// one "name-version/" directory) and calls fn for every regular file with a
// reader of its contents. It enforces the archive rules: gzip and tar must be
// well formed; only regular files and directories; no links, devices or
// absolute or escaping paths; one top directory; at most maxSize compressed
// bytes and maxUnpackedFactor×maxSize unpacked bytes. It returns the top
// directory name. WalkCrate does no I/O beyond reading b and calling fn.
func WalkCrate(b []byte, maxSize int64, fn func(CrateEntry, io.Reader) error) (string, error) {
	const op = "registry.WalkCrate"
	if maxSize <= 0 {
		maxSize = DefaultMaxCrateSize
	}
	if int64(len(b)) > maxSize {
		return "", Errorf(op, ETOOLARGE, "the .crate archive is %d bytes; this registry accepts at most %d", len(b), maxSize)
	}
	if len(b) == 0 {
		return "", Errorf(op, EINVALID, "the .crate archive is empty")
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return "", Errorf(op, EINVALID, "the upload is not a .crate archive: not gzip-compressed (%v)", err)
	}
	zr.Multistream(false)
	limit := maxSize * maxUnpackedFactor
	lr := &io.LimitedReader{R: zr, N: limit + 1}
	tr := tar.NewReader(lr)
	top := ""
	files := 0
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if lr.N <= 0 {
				return "", Errorf(op, ETOOLARGE, "the .crate archive unpacks to more than %d bytes", limit)
			}
			return "", Errorf(op, EINVALID, "the .crate archive is not a valid tar inside gzip (%v)", err)
		}
		name := strings.TrimPrefix(h.Name, "./")
		if name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, "\\") || strings.ContainsRune(name, 0) {
			return "", Errorf(op, EINVALID, "archive entry %q has an absolute or invalid path", h.Name)
		}
		clean := path.Clean(name)
		if clean == ".." || strings.HasPrefix(clean, "../") {
			return "", Errorf(op, EINVALID, "archive entry %q escapes the archive", h.Name)
		}
		dir, rest, _ := strings.Cut(clean, "/")
		if top == "" {
			top = dir
		} else if dir != top {
			return "", Errorf(op, EINVALID, "archive entry %q is outside the crate's directory %s/", h.Name, top)
		}
		switch h.Typeflag {
		case tar.TypeReg:
		case tar.TypeDir:
			continue
		case tar.TypeXGlobalHeader, tar.TypeXHeader:
			continue
		case tar.TypeSymlink, tar.TypeLink:
			return "", Errorf(op, EINVALID, "archive entry %q is a link; a .crate may hold only regular files", h.Name)
		default:
			return "", Errorf(op, EINVALID, "archive entry %q is not a regular file (type %q)", h.Name, h.Typeflag)
		}
		if rest == "" {
			return "", Errorf(op, EINVALID, "archive entry %q is a file where the crate directory should be", h.Name)
		}
		if h.Size < 0 || h.Size > limit {
			return "", Errorf(op, ETOOLARGE, "archive entry %q is %d bytes; the archive unpacks to more than %d bytes", h.Name, h.Size, limit)
		}
		files++
		if err := fn(CrateEntry{Path: rest, Mode: h.Mode, Size: h.Size}, archiveReader{tr}); err != nil {
			if lr.N <= 0 {
				return "", Errorf(op, ETOOLARGE, "the .crate archive unpacks to more than %d bytes", limit)
			}
			return "", err
		}
	}
	if lr.N <= 0 {
		return "", Errorf(op, ETOOLARGE, "the .crate archive unpacks to more than %d bytes", limit)
	}
	if top == "" || files == 0 {
		return "", Errorf(op, EINVALID, "the .crate archive holds no files")
	}
	return top, nil
}

// archiveReader marks read errors as the archive's fault, so that a
// truncated or corrupt upload is reported as invalid input.
type archiveReader struct{ r io.Reader }

func (a archiveReader) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if err != nil && err != io.EOF {
		err = Errorf("registry.WalkCrate", EINVALID, "the .crate archive is truncated or corrupt (%v)", err)
	}
	return n, err
}

// ParseCrate reads a .crate archive and returns the release it describes,
// with Blob, Cksum and Size set from b. The manifest is the archive's
// top-level Cargo.toml; its name and version must match the archive's
// "name-version/" directory.
func ParseCrate(b []byte, maxSize int64) (*ReleaseBody, error) {
	const op = "registry.ParseCrate"
	var manifest []byte
	seen := map[string]bool{}
	top, err := WalkCrate(b, maxSize, func(e CrateEntry, r io.Reader) error {
		if seen[e.Path] {
			return Errorf(op, EINVALID, "archive holds %s twice", e.Path)
		}
		seen[e.Path] = true
		if e.Path == "Cargo.toml" {
			if e.Size > 1<<20 {
				return Errorf(op, ETOOLARGE, "Cargo.toml is larger than 1 MiB")
			}
			m, err := io.ReadAll(r)
			if err != nil {
				return Errorf(op, EINVALID, "cannot read Cargo.toml from the archive (%v)", err)
			}
			manifest = m
			return nil
		}
		_, err := io.Copy(io.Discard, r)
		return err
	})
	if err != nil {
		return nil, err
	}
	if manifest == nil {
		return nil, Errorf(op, EINVALID, "the archive has no %s/Cargo.toml", top)
	}
	rel, err := ParseManifest(manifest)
	if err != nil {
		return nil, err
	}
	if want := rel.Name + "-" + rel.Version; top != want {
		return nil, Errorf(op, EINVALID, "the archive's directory is %s/ but Cargo.toml says %s %s (expected %s/)", top, rel.Name, rel.Version, want)
	}
	sum := sha256.Sum256(b)
	id := IDFromDigest(sum)
	rel.Blob = id.Bytes()
	rel.Cksum = id.Hex()
	rel.Size = uint64(len(b))
	return rel, nil
}

// ParseManifest reads a packaged (normalised) Cargo.toml into a release body
// without the archive fields (Blob, Cksum, Size).
func ParseManifest(data []byte) (*ReleaseBody, error) {
	const op = "registry.ParseManifest"
	var m map[string]any
	if err := toml.Unmarshal(data, &m); err != nil {
		return nil, Errorf(op, EINVALID, "Cargo.toml is not valid TOML: %v", err)
	}
	pkg, ok := m["package"].(map[string]any)
	if !ok {
		if _, isWS := m["workspace"]; isWS {
			return nil, Errorf(op, EINVALID, "Cargo.toml is a workspace manifest without [package]; submit a member crate")
		}
		return nil, Errorf(op, EINVALID, "Cargo.toml has no [package] table")
	}
	rel := &ReleaseBody{}
	var err error
	str := func(key string) string {
		if err != nil {
			return ""
		}
		v, present := pkg[key]
		if !present {
			return ""
		}
		s, isStr := v.(string)
		if !isStr {
			if t, isTable := v.(map[string]any); isTable && t["workspace"] == true {
				err = Errorf(op, EINVALID, "package.%s is inherited from a workspace; package the crate (cargo package) so the value is written out", key)
			} else {
				err = Errorf(op, EINVALID, "package.%s must be a string", key)
			}
			return ""
		}
		return s
	}
	strs := func(key string) []string {
		if err != nil {
			return nil
		}
		v, present := pkg[key]
		if !present {
			return nil
		}
		var out []string
		out, err = stringList(op, "package."+key, v)
		return out
	}
	rel.Name = str("name")
	rel.Version = str("version")
	rel.Edition = str("edition")
	rel.RustVersion = str("rust-version")
	rel.Links = str("links")
	rel.Description = strings.TrimSpace(str("description"))
	rel.License = str("license")
	rel.LicenseFile = str("license-file")
	rel.Repository = str("repository")
	rel.Homepage = str("homepage")
	rel.Documentation = str("documentation")
	rel.Keywords = strs("keywords")
	rel.Categories = strs("categories")
	rel.Authors = strs("authors")
	if r, isStr := pkg["readme"].(string); isStr {
		rel.Readme = r
	}
	if err != nil {
		return nil, err
	}
	if rel.Name == "" {
		return nil, Errorf(op, EINVALID, "Cargo.toml has no package.name")
	}
	if err := ValidateCrateName(rel.Name); err != nil {
		return nil, err
	}
	if rel.Version == "" {
		return nil, Errorf(op, EINVALID, "Cargo.toml has no package.version")
	}
	if err := ValidateVersion(rel.Version); err != nil {
		return nil, err
	}

	if rel.Features, err = parseFeatures(op, m["features"]); err != nil {
		return nil, err
	}
	tables := []struct {
		keys []string
		kind string
	}{
		{[]string{"dependencies"}, DepNormal},
		{[]string{"dev-dependencies", "dev_dependencies"}, DepDev},
		{[]string{"build-dependencies", "build_dependencies"}, DepBuild},
	}
	addTables := func(scope map[string]any, target string) error {
		for _, t := range tables {
			for _, key := range t.keys {
				deps, err := parseDeps(op, scope[key], t.kind, target)
				if err != nil {
					return err
				}
				rel.Deps = append(rel.Deps, deps...)
			}
		}
		return nil
	}
	if err := addTables(m, ""); err != nil {
		return nil, err
	}
	if targets, isTable := m["target"].(map[string]any); isTable {
		for _, name := range sortedKeys(targets) {
			scope, isTable := targets[name].(map[string]any)
			if !isTable {
				return nil, Errorf(op, EINVALID, "target.%s must be a table", name)
			}
			if err := addTables(scope, name); err != nil {
				return nil, err
			}
		}
	}
	slices.SortStableFunc(rel.Deps, func(a, b Dep) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		if c := strings.Compare(a.Kind, b.Kind); c != 0 {
			return c
		}
		return strings.Compare(a.Target, b.Target)
	})
	return rel, nil
}

func parseFeatures(op string, v any) (map[string][]string, error) {
	if v == nil {
		return nil, nil
	}
	t, ok := v.(map[string]any)
	if !ok {
		return nil, Errorf(op, EINVALID, "[features] must be a table")
	}
	if len(t) == 0 {
		return nil, nil
	}
	out := make(map[string][]string, len(t))
	for k, fv := range t {
		list, err := stringList(op, "features."+k, fv)
		if err != nil {
			return nil, err
		}
		if list == nil {
			list = []string{}
		}
		out[k] = list
	}
	return out, nil
}

func parseDeps(op string, v any, kind, target string) ([]Dep, error) {
	if v == nil {
		return nil, nil
	}
	t, ok := v.(map[string]any)
	if !ok {
		return nil, Errorf(op, EINVALID, "%s dependencies must be a table", kind)
	}
	var out []Dep
	for _, name := range sortedKeys(t) {
		d := Dep{Name: name, Kind: kind, Target: target, DefaultFeatures: true}
		where := fmt.Sprintf("%s dependency %q", kind, name)
		switch spec := t[name].(type) {
		case string:
			d.Req = spec
		case map[string]any:
			if spec["workspace"] == true {
				return nil, Errorf(op, EINVALID, "%s is inherited from a workspace; package the crate (cargo package) so it is written out", where)
			}
			if s, present := spec["version"]; present {
				vs, isStr := s.(string)
				if !isStr {
					return nil, Errorf(op, EINVALID, "%s: version must be a string", where)
				}
				d.Req = vs
			}
			if o, present := spec["optional"]; present {
				b, isBool := o.(bool)
				if !isBool {
					return nil, Errorf(op, EINVALID, "%s: optional must be true or false", where)
				}
				d.Optional = b
			}
			for _, key := range []string{"default-features", "default_features"} {
				if o, present := spec[key]; present {
					b, isBool := o.(bool)
					if !isBool {
						return nil, Errorf(op, EINVALID, "%s: %s must be true or false", where, key)
					}
					d.DefaultFeatures = b
				}
			}
			if f, present := spec["features"]; present {
				list, err := stringList(op, where+" features", f)
				if err != nil {
					return nil, err
				}
				d.Features = list
			}
			if p, present := spec["package"]; present {
				ps, isStr := p.(string)
				if !isStr {
					return nil, Errorf(op, EINVALID, "%s: package must be a string", where)
				}
				d.Package = ps
			}
			if r, present := spec["registry-index"]; present {
				rs, isStr := r.(string)
				if !isStr {
					return nil, Errorf(op, EINVALID, "%s: registry-index must be a string", where)
				}
				d.Registry = rs
			}
			if d.Req == "" {
				_, hasPath := spec["path"]
				_, hasGit := spec["git"]
				if kind == DepDev && (hasPath || hasGit) {
					// Cargo drops version-less dev-dependencies when packaging.
					continue
				}
			}
		default:
			return nil, Errorf(op, EINVALID, "%s must be a version string or a table", where)
		}
		if d.Req == "" {
			return nil, Errorf(op, EINVALID, "%s has no version requirement; a registry crate needs one for every dependency", where)
		}
		if err := ValidateCrateName(d.CrateName()); err != nil {
			return nil, E(op, EINVALID, where, err)
		}
		out = append(out, d)
	}
	return out, nil
}

func stringList(op, where string, v any) ([]string, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, Errorf(op, EINVALID, "%s must be a list of strings", where)
	}
	out := make([]string, 0, len(list))
	for _, e := range list {
		s, ok := e.(string)
		if !ok {
			return nil, Errorf(op, EINVALID, "%s must be a list of strings", where)
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
