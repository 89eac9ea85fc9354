package pipeline

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkSandboxOverhead builds real crates with cargo by hand and in
// the sandbox (supervisor, seccomp filter, with and without write
// recording), interleaved, and reports the medians of WCR_BENCH_REPS runs
// (default 3) and the overhead of each sandboxed variant over raw cargo:
//
//	go test -run '^$' -bench SandboxOverhead -benchtime 1x ./pipeline/
func BenchmarkSandboxOverhead(b *testing.B) {
	p := testPipeline(b)
	reps := 3
	if n, err := strconv.Atoi(os.Getenv("WCR_BENCH_REPS")); err == nil && n > 0 {
		reps = n
	}
	var table strings.Builder
	table.WriteString("| crate | raw cargo | sandbox | overhead | sandbox + write recording | overhead |\n|---|---|---|---|---|---|\n")
	for _, name := range []string{"libc-0.2.139", "semver-1.0.14", "getrandom-0.2.8"} {
		b.Run(name, func(b *testing.B) {
			for range b.N {
				table.WriteString(benchSandboxCrate(b, p, name, reps))
			}
		})
	}
	fmt.Printf("\ncargo build of a Debian crate, milliseconds, medians of %d runs\n%s\n", reps, table.String())
}

func benchSandboxCrate(b *testing.B, p *Pipeline, name string, reps int) string {
	src := debianDir(b, name)
	work, err := os.MkdirTemp(p.cfg.WorkDir, "bench-sandbox-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(work)
	if err := os.Chmod(work, 0o755); err != nil {
		b.Fatal(err)
	}
	pkg := filepath.Join(work, "pkg")
	if out, err := exec.Command("cp", "-r", src, pkg).CombinedOutput(); err != nil {
		b.Fatalf("%v: %s", err, out)
	}
	cargo, rustc := "/usr/bin/cargo", "/usr/bin/rustc"
	env := func(home, target string) []string {
		return []string{"PATH=/usr/bin:/bin", "HOME=" + home, "CARGO_HOME=" + home, "RUSTC=" + rustc,
			"CARGO_TARGET_DIR=" + target, "CARGO_TERM_COLOR=never", "CARGO_INCREMENTAL=0", "CARGO_NET_OFFLINE=true", "TMPDIR=/tmp"}
	}
	sources := "[source.crates-io]\nreplace-with = \"debian\"\n[source.debian]\ndirectory = \"" + DebianRegistry + "\"\n"
	writeConfig := func(home string) {
		if err := os.MkdirAll(home, 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(home, "config.toml"), []byte(sources), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	writeConfig(filepath.Join(work, "lockhome"))
	lock := exec.Command(cargo, "generate-lockfile", "--offline")
	lock.Dir, lock.Env = pkg, env(filepath.Join(work, "lockhome"), filepath.Join(work, "locktarget"))
	if out, err := lock.CombinedOutput(); err != nil {
		b.Fatalf("generate-lockfile: %v: %s", err, out)
	}
	args := []string{cargo, "build", "--offline", "--message-format", "json"}
	var raw, plain, writes []float64
	for i := range reps {
		dir := func(kind string) (string, string) {
			d := filepath.Join(work, kind+strconv.Itoa(i))
			home, target := filepath.Join(d, "home"), filepath.Join(d, "target")
			writeConfig(home)
			if err := os.MkdirAll(target, 0o755); err != nil {
				b.Fatal(err)
			}
			if err := p.sb.prepareWritable(d); err != nil {
				b.Fatal(err)
			}
			return home, target
		}
		// The three variants run in a rotating order, so that none always
		// runs first (or right after another build) in a rep.
		for k := range 3 {
			switch (i + k) % 3 {
			case 0:
				home, target := dir("raw")
				cmd := exec.Command(args[0], args[1:]...)
				cmd.Dir, cmd.Env = pkg, env(home, target)
				start := time.Now()
				if out, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("raw cargo: %v: %s", err, out)
				}
				raw = append(raw, float64(time.Since(start).Microseconds())/1000)
			case 1, 2:
				record := (i+k)%3 == 2
				kind := "plain"
				if record {
					kind = "writes"
				}
				home, target := dir(kind)
				sb := *p.sb
				sb.recordWrites = record
				out := &limitedBuffer{limit: 8 << 10}
				res, err := sb.run(context.Background(), runSpec{
					Args: args, Env: env(home, target), Dir: pkg, RW: []string{home, target}, RO: []string{pkg},
					Timeout: 10 * time.Minute, Mem: 4 << 30, Procs: 512, FileSize: 2 << 30,
					Stdout: &lineScanner{fn: func(string) {}}, Stderr: out,
				})
				if err != nil || !res.ok() {
					b.Fatalf("sandboxed cargo: %v %+v: %s", err, res, out.String())
				}
				ms := float64(res.Wall.Microseconds()) / 1000
				if record {
					writes = append(writes, ms)
				} else {
					plain = append(plain, ms)
				}
			}
		}
	}
	r, s, w := median(raw), median(plain), median(writes)
	b.ReportMetric(100*(s-r)/r, "overhead-%")
	b.ReportMetric(100*(w-r)/r, "overhead-writes-%")
	return fmt.Sprintf("| %s | %.0f | %.0f | %+.1f%% | %.0f | %+.1f%% |\n", name, r, s, 100*(s-r)/r, w, 100*(w-r)/r)
}

// BenchmarkSandboxStart is the cost of one sandboxed command that does
// nothing (/bin/true): bubblewrap, setpriv, the supervisor, prlimit. Every
// native test pays it once per test and twice for the binary's baseline.
func BenchmarkSandboxStart(b *testing.B) {
	p := testPipeline(b)
	for range b.N {
		res, err := p.sb.run(context.Background(), runSpec{Args: []string{"/bin/true"}, Timeout: time.Minute})
		if err != nil || !res.ok() {
			b.Fatalf("%v %+v", err, res)
		}
	}
}
