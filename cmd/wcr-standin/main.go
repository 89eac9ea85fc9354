// Command wcr-standin builds an offline stand-in for crates.io: a sparse
// index in crates.io's format (config.json, the 1/2/3/ab/cd layout, one JSON
// line per version with its dependencies, features and cksum) and the
// .crate archives it names, from a Cargo directory source such as Debian's
// /usr/share/cargo/registry. A static HTTP server serves the result; with
// -nginx-port the command also writes an nginx configuration for it.
//
//	wcr-standin -src /usr/share/cargo/registry -out DIR -url http://127.0.0.1:PORT [-nginx-port PORT]
//
// Layout of DIR:
//
//	index/config.json          {"dl": URL/crates/{crate}/{crate}-{version}.crate, "api": URL}
//	index/AB/CD/NAME …         index files
//	crates/NAME/NAME-VER.crate archives
//	nginx.conf                 with -nginx-port: `nginx -c DIR/nginx.conf` serves DIR at URL
//
// Each archive is the crate's directory as a gzip'd tar under NAME-VER/,
// made deterministically (sorted, fixed times and owners), without the
// directory source's .cargo-checksum.json. A crate whose manifest does not
// parse is skipped with a message on stderr.
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/node/cargo"
)

func main() {
	src := flag.String("src", "/usr/share/cargo/registry", "Cargo directory source: one NAME-VERSION/ directory per crate")
	out := flag.String("out", "", "output directory (created; must be empty or missing)")
	base := flag.String("url", "", "URL the output directory will be served at, such as http://127.0.0.1:8081")
	port := flag.Int("nginx-port", 0, "also write DIR/nginx.conf serving DIR on 127.0.0.1:PORT")
	only := flag.String("only", "", "comma-separated crate names to include (default: all)")
	flag.Parse()
	if *out == "" || *base == "" {
		fmt.Fprintln(os.Stderr, "wcr-standin: -out and -url are required")
		flag.Usage()
		os.Exit(2)
	}
	n, skipped, err := build(*src, *out, strings.TrimRight(*base, "/"), splitList(*only))
	if err == nil && *port > 0 {
		err = writeNginxConf(*out, *port)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "wcr-standin:", err)
		os.Exit(1)
	}
	fmt.Printf("wcr-standin: %d releases written to %s (%d skipped)\n", n, *out, skipped)
}

func splitList(s string) map[string]bool {
	if s == "" {
		return nil
	}
	m := map[string]bool{}
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			m[f] = true
		}
	}
	return m
}

// build writes the stand-in and returns the number of releases written and
// skipped.
func build(src, out, base string, only map[string]bool) (int, int, error) {
	if err := os.MkdirAll(filepath.Join(out, "index"), 0o755); err != nil {
		return 0, 0, err
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return 0, 0, err
	}
	lines := map[string][]*cargo.IndexLine{} // by lowercase name
	written, skipped := 0, 0
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(src, e.Name())
		manifest, err := os.ReadFile(filepath.Join(dir, "Cargo.toml"))
		var m *registry.ReleaseBody
		if err == nil {
			m, err = registry.ParseManifest(manifest)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "skipping %s: %s\n", e.Name(), registry.MessageOf(err))
			skipped++
			continue
		}
		if only != nil && !only[m.Name] {
			continue
		}
		// The archive's directory is NAME-VERSION as the manifest says,
		// whatever the source's directory is called.
		archive, _, err := packAs(dir, m.Name+"-"+m.Version)
		var body *registry.ReleaseBody
		if err == nil {
			body, err = registry.ParseCrate(archive, registry.DefaultMaxCrateSize)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "skipping %s: %s\n", e.Name(), registry.MessageOf(err))
			skipped++
			continue
		}
		lower := strings.ToLower(body.Name)
		dup := slices.ContainsFunc(lines[lower], func(l *cargo.IndexLine) bool { return l.Vers == body.Version })
		if dup {
			continue
		}
		p := filepath.Join(out, "crates", body.Name, body.Name+"-"+body.Version+".crate")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return 0, 0, err
		}
		if err := os.WriteFile(p, archive, 0o644); err != nil {
			return 0, 0, err
		}
		lines[lower] = append(lines[lower], cargo.NewIndexLine(body, false, func(string) bool { return true }))
		written++
	}
	for lower, ls := range lines {
		slices.SortFunc(ls, func(a, b *cargo.IndexLine) int { return registry.CompareVersions(a.Vers, b.Vers) })
		var buf bytes.Buffer
		for _, l := range ls {
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			if err := enc.Encode(l); err != nil {
				return 0, 0, err
			}
		}
		p := filepath.Join(out, "index", filepath.FromSlash(registry.IndexPath(lower)))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return 0, 0, err
		}
		if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
			return 0, 0, err
		}
	}
	cfg, _ := json.Marshal(map[string]string{"dl": base + "/crates/{crate}/{crate}-{version}.crate", "api": base})
	if err := os.WriteFile(filepath.Join(out, "index", "config.json"), append(cfg, '\n'), 0o644); err != nil {
		return 0, 0, err
	}
	return written, skipped, nil
}

// epoch is the modification time of every archived file, so that the same
// directory always gives the same bytes.
var epoch = time.Date(2006, 1, 2, 15, 4, 5, 0, time.UTC)

// packAs archives dir as a .crate: a gzip'd tar of its regular files under
// top/, sorted, with fixed metadata. A symbolic link is followed only when
// it resolves to a regular file inside the source (dir's parent): a crate
// directory cannot smuggle other files of the machine into its archive.
func packAs(dir, top string) ([]byte, string, error) {
	root, err := filepath.EvalSymlinks(filepath.Dir(dir))
	if err != nil {
		return nil, "", err
	}
	var files []string
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != dir && (d.Name() == ".git" || d.Name() == "target") {
				return filepath.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == ".cargo-checksum.json" || rel == ".cargo-ok" {
			return nil
		}
		files = append(files, rel)
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	slices.Sort(files)
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	tw := tar.NewWriter(zw)
	for _, rel := range files {
		p, err := filepath.EvalSymlinks(filepath.Join(dir, rel))
		if err != nil || !strings.HasPrefix(p, root+string(filepath.Separator)) {
			fmt.Fprintf(os.Stderr, "%s: leaving out %s, which is not a file inside %s\n", top, rel, root)
			continue
		}
		fi, err := os.Stat(p)
		if err != nil || !fi.Mode().IsRegular() {
			continue // a special file
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, "", err
		}
		mode := int64(0o644)
		if fi.Mode()&0o111 != 0 {
			mode = 0o755
		}
		hdr := &tar.Header{Name: top + "/" + filepath.ToSlash(rel), Mode: mode, Size: int64(len(b)), ModTime: epoch, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if len(hdr.Name) < 100 {
			hdr.Format = tar.FormatUSTAR
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, "", err
		}
		if _, err := tw.Write(b); err != nil {
			return nil, "", err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, "", err
	}
	if err := zw.Close(); err != nil {
		return nil, "", err
	}
	return buf.Bytes(), top, nil
}

// writeNginxConf writes a configuration that serves out on 127.0.0.1:port
// as an unprivileged foreground process, with every path inside out.
func writeNginxConf(out string, port int) error {
	abs, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	conf := fmt.Sprintf(`# Serves the wcr-standin output in %[1]s: nginx -c %[1]s/nginx.conf
daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx-error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path %[1]s/tmp/body;
    proxy_temp_path %[1]s/tmp/proxy;
    fastcgi_temp_path %[1]s/tmp/fastcgi;
    uwsgi_temp_path %[1]s/tmp/uwsgi;
    scgi_temp_path %[1]s/tmp/scgi;
    types { application/json json; application/gzip crate; }
    default_type text/plain;
    server {
        listen 127.0.0.1:%[2]d;
        root %[1]s;
        etag on;
        location / { try_files $uri =404; }
    }
}
`, abs, port)
	if err := os.MkdirAll(filepath.Join(abs, "tmp"), 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(abs, "nginx.conf"), []byte(conf), 0o644)
}
