package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// wasmCache is the wazero compilation cache (native code that the wasm
// runner maps executable) as the host keeps it: only the node writes the
// shared directory, every file in it is listed with its sha256 in a
// manifest that only the node can read (0600, beside the directory), and
// anything that does not match the manifest is removed before a runner
// mounts the directory, read-only. The compile helper writes new entries
// into a staging directory; the host hashes them while copying them in.
type wasmCache struct {
	dir      string // the shared cache directory
	manifest string // the manifest file
	log      *slog.Logger

	mu    sync.Mutex
	files map[string]cacheEntry // by path relative to dir
}

// cacheEntry is one verified cache file. The stat fields are not stored:
// they let verify skip hashing a file that has not changed since it was
// hashed in this process.
type cacheEntry struct {
	Sum  string `json:"sha256"`
	Size int64  `json:"size"`

	ino, mtime, ctime int64
}

// openWasmCache creates or checks the cache directory: every file that the
// manifest does not list with its exact hash is removed.
func openWasmCache(dir, manifest string, log *slog.Logger) (*wasmCache, error) {
	const op = "pipeline.wasmCache"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, registry.E(op, registry.EINTERNAL, "cannot create the compilation cache "+dir, err)
	}
	c := &wasmCache{dir: dir, manifest: manifest, log: log, files: map[string]cacheEntry{}}
	listed := map[string]cacheEntry{}
	if b, err := os.ReadFile(manifest); err == nil {
		if err := json.Unmarshal(b, &listed); err != nil {
			log.Warn("the compilation cache's manifest is unreadable; the cache is emptied", "manifest", manifest, "err", err)
			listed = map[string]cacheEntry{}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, registry.E(op, registry.EINTERNAL, "cannot read the compilation cache's manifest", err)
	}
	removed := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			return os.Chmod(p, 0o755)
		}
		want, ok := listed[rel]
		if ok && d.Type().IsRegular() {
			if e, err := hashFile(p); err == nil && e.Sum == want.Sum && e.Size == want.Size {
				c.files[rel] = e
				return nil
			}
		}
		removed++
		return os.Remove(p)
	})
	if err != nil {
		return nil, registry.E(op, registry.EINTERNAL, "cannot check the compilation cache "+dir, err)
	}
	if removed > 0 {
		log.Warn("compilation cache files that did not match the manifest were removed", "dir", dir, "files", removed)
	}
	if err := c.save(); err != nil {
		return nil, err
	}
	return c, nil
}

// hashFile hashes a regular file without following a link, and notes its
// identity.
func hashFile(p string) (cacheEntry, error) {
	var e cacheEntry
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return e, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return e, err
	}
	if !fi.Mode().IsRegular() {
		return e, errors.New("not a regular file")
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return e, err
	}
	e.Sum, e.Size = hex.EncodeToString(h.Sum(nil)), n
	e.ino, e.mtime, e.ctime = statKey(fi)
	return e, nil
}

func statKey(fi fs.FileInfo) (ino, mtime, ctime int64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int64(st.Ino), st.Mtim.Nano(), st.Ctim.Nano()
	}
	return 0, fi.ModTime().UnixNano(), 0
}

// save writes the manifest. c.mu is held or c is not shared yet.
func (c *wasmCache) save() error {
	b, err := json.Marshal(c.files)
	if err != nil {
		return registry.E("pipeline.wasmCache", registry.EINTERNAL, "", err)
	}
	tmp := c.manifest + ".tmp"
	_ = os.Remove(tmp)
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return registry.E("pipeline.wasmCache", registry.EINTERNAL, "cannot write the compilation cache's manifest", err)
	}
	if err := os.Rename(tmp, c.manifest); err != nil {
		return registry.E("pipeline.wasmCache", registry.EINTERNAL, "cannot write the compilation cache's manifest", err)
	}
	return nil
}

// stage makes dir a staging copy of the cache for one compile: a link to
// every verified entry, so that the compiler finds what is cached, and room
// for what it adds. The links point into the shared directory, which the
// sandbox sees read-only.
func (c *wasmCache) stage(dir string) error {
	const op = "pipeline.wasmCache.stage"
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return registry.E(op, registry.EINTERNAL, "", err)
	}
	for rel := range c.files {
		dst := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return registry.E(op, registry.EINTERNAL, "", err)
		}
		if err := os.Symlink(filepath.Join(c.dir, rel), dst); err != nil {
			return registry.E(op, registry.EINTERNAL, "", err)
		}
	}
	return nil
}

// adopt copies the new regular files of a staging directory into the
// shared cache, hashing them on the way, and lists them in the manifest.
// Links and files the cache already holds are ignored.
func (c *wasmCache) adopt(stage string) error {
	const op = "pipeline.wasmCache.adopt"
	var news []string
	err := filepath.WalkDir(stage, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && !strings.HasSuffix(p, ".tmp") {
			rel, _ := filepath.Rel(stage, p)
			news = append(news, rel)
		}
		return nil
	})
	if err != nil {
		return registry.E(op, registry.EINTERNAL, "cannot read the staging cache", err)
	}
	sort.Strings(news)
	c.mu.Lock()
	defer c.mu.Unlock()
	changed := false
	for _, rel := range news {
		if _, ok := c.files[rel]; ok {
			continue
		}
		e, err := c.copyIn(filepath.Join(stage, rel), rel)
		if err != nil {
			c.log.Warn("a new compilation cache entry was not adopted", "file", rel, "err", err)
			continue
		}
		c.files[rel] = e
		changed = true
	}
	if changed {
		return c.save()
	}
	return nil
}

func (c *wasmCache) copyIn(src, rel string) (cacheEntry, error) {
	var e cacheEntry
	in, err := os.OpenFile(src, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return e, err
	}
	defer in.Close()
	if fi, err := in.Stat(); err != nil || !fi.Mode().IsRegular() {
		return e, errors.New("not a regular file")
	}
	dst := filepath.Join(c.dir, rel)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return e, err
	}
	out, err := os.CreateTemp(filepath.Dir(dst), ".adopt-*")
	if err != nil {
		return e, err
	}
	defer os.Remove(out.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), in)
	if err == nil {
		err = out.Chmod(0o644)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return e, err
	}
	if err := os.Rename(out.Name(), dst); err != nil {
		return e, err
	}
	fi, err := os.Lstat(dst)
	if err != nil {
		return e, err
	}
	e.Sum, e.Size = hex.EncodeToString(h.Sum(nil)), n
	e.ino, e.mtime, e.ctime = statKey(fi)
	return e, nil
}

// verify removes every file of the shared directory that the manifest does
// not list with its hash. A file whose identity and times did not change
// since it was hashed is not hashed again.
func (c *wasmCache) verify() error {
	const op = "pipeline.wasmCache.verify"
	c.mu.Lock()
	defer c.mu.Unlock()
	changed := false
	seen := map[string]bool{}
	err := filepath.WalkDir(c.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(c.dir, p)
		want, ok := c.files[rel]
		if ok && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				ino, mt, ct := statKey(fi)
				if ino == want.ino && mt == want.mtime && ct == want.ctime && fi.Size() == want.Size {
					seen[rel] = true
					return nil
				}
			}
			if e, err := hashFile(p); err == nil && e.Sum == want.Sum && e.Size == want.Size {
				c.files[rel] = e
				seen[rel] = true
				return nil
			}
		}
		c.log.Warn("a compilation cache file did not match the manifest and was removed", "file", rel)
		delete(c.files, rel)
		changed = true
		return os.Remove(p)
	})
	if err != nil {
		return registry.E(op, registry.EINTERNAL, "cannot check the compilation cache", err)
	}
	for rel := range c.files {
		if !seen[rel] {
			delete(c.files, rel)
			changed = true
		}
	}
	if changed {
		return c.save()
	}
	return nil
}
