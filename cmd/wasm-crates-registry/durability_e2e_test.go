package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syscallEvent is one system call of a strace -f -ttt -T -yy trace: start
// is when it was entered, end when it returned (Unix seconds).
type syscallEvent struct {
	pid        string
	name, args string
	ret        int64
	start, end float64
}

var (
	straceDone       = regexp.MustCompile(`^(\d+)\s+(\d+\.\d+)\s+(\w+)\((.*)\)\s+=\s+(-?\d+)(?:\s.*)?\s<(\d+\.\d+)>$`)
	straceUnfinished = regexp.MustCompile(`^(\d+)\s+(\d+\.\d+)\s+(\w+)\((.*?)\s*<unfinished \.\.\.>$`)
	straceResumed    = regexp.MustCompile(`^(\d+)\s+(\d+\.\d+)\s+<\.\.\. (\w+) resumed>(.*)\)\s+=\s+(-?\d+)(?:\s.*)?\s<(\d+\.\d+)>$`)
)

// parseStrace reads a trace written by strace -f -ttt -T -yy, joining calls
// that other threads interrupted ("<unfinished ...>" and "<... resumed>").
// Lines it does not understand (exits, calls that never returned) are
// skipped.
func parseStrace(r io.Reader) ([]syscallEvent, error) {
	var out []syscallEvent
	open := map[string]syscallEvent{} // pid → the call it is in
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := straceDone.FindStringSubmatch(line); m != nil {
			start, _ := strconv.ParseFloat(m[2], 64)
			dur, _ := strconv.ParseFloat(m[6], 64)
			ret, _ := strconv.ParseInt(m[5], 10, 64)
			out = append(out, syscallEvent{pid: m[1], name: m[3], args: m[4], ret: ret, start: start, end: start + dur})
			continue
		}
		if m := straceUnfinished.FindStringSubmatch(line); m != nil {
			start, _ := strconv.ParseFloat(m[2], 64)
			open[m[1]] = syscallEvent{pid: m[1], name: m[3], args: m[4], start: start}
			continue
		}
		if m := straceResumed.FindStringSubmatch(line); m != nil {
			e, ok := open[m[1]]
			if !ok || e.name != m[3] {
				continue
			}
			delete(open, m[1])
			e.end, _ = strconv.ParseFloat(m[2], 64)
			e.ret, _ = strconv.ParseInt(m[5], 10, 64)
			e.args += m[4]
			out = append(out, e)
		}
	}
	return out, sc.Err()
}

// TestAcknowledgedWritesFollowTheirSync traces the real daemon's system
// calls with strace while clients submit crates, and checks at the disk's
// level what DESIGN.md §4 promises: every acknowledged write is synced
// before its acknowledgement. For each 201 response, on its own TCP
// connection, a sync — msync(MS_SYNC) of Badger's memory-mapped logs, or
// fsync/fdatasync of a file in the data directory — must have been entered
// after the daemon read the last bytes of the request, and have returned
// before the daemon began to write the response. A sync entered earlier
// cannot cover data that had not arrived yet.
func TestAcknowledgedWritesFollowTheirSync(t *testing.T) {
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Fatal("strace is not installed: apt-get install strace (make test installs it)")
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	tracePath := filepath.Join(t.TempDir(), "trace")
	d := startDaemonUnder(t, []string{strace, "-f", "--seccomp-bpf", "-qq", "-ttt", "-T", "-yy", "-s", "16",
		"-e", "trace=read,write,writev,msync,fsync,fdatasync", "-e", "signal=none", "-o", tracePath, "--"},
		dataDir, "--pipeline=false", "--p2p=false")
	tok, err := os.ReadFile(filepath.Join(dataDir, "admin-token"))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tok))

	// Each submission on a fresh connection, whose client port names it in
	// the trace.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	const workers, perWorker = 4, 250
	var mu sync.Mutex
	acked := map[int]int{} // client port → acknowledgements on it
	total := 0
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < perWorker; i++ {
				name := fmt.Sprintf("synced-%d-%d", w, i)
				body := makeCrate(t, name, "1.0.0", "// "+name+"\n")
				var port int
				ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
					GotConn: func(info httptrace.GotConnInfo) {
						port = info.Conn.LocalAddr().(*net.TCPAddr).Port
					},
				})
				req, _ := http.NewRequestWithContext(ctx, "POST", d.url+"/crates", bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+token)
				resp, err := client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 201 {
					errs <- fmt.Errorf("submit %s: %d %s", name, resp.StatusCode, b)
					return
				}
				mu.Lock()
				acked[port]++
				total++
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// Stop the daemon (strace's child) so that strace writes the whole
	// trace and exits.
	children, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", d.cmd.Process.Pid, d.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.Fields(string(children) + " x")[0])
	if err != nil {
		t.Fatalf("no daemon under strace: %q", children)
	}
	syscall.Kill(pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { d.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the traced daemon did not stop")
	}

	f, err := os.Open(tracePath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	events, err := parseStrace(f)
	if err != nil {
		t.Fatal(err)
	}

	var syncs []syscallEvent
	for _, e := range events {
		switch {
		case e.ret != 0:
		case e.name == "msync" && strings.Contains(e.args, "MS_SYNC"),
			(e.name == "fsync" || e.name == "fdatasync") && strings.Contains(e.args, "<"+dataDir):
			syncs = append(syncs, e)
		}
	}
	// Per client port, in trace order: the end of the last read that
	// returned request bytes, and each response.
	type window struct {
		port           int
		read, response float64
	}
	var windows []window
	lastRead := map[int]float64{}
	portRE := regexp.MustCompile(`^\d+<TCP:\[[^\]]*->127\.0\.0\.1:(\d+)\]>`)
	for _, e := range events {
		m := portRE.FindStringSubmatch(e.args)
		if m == nil {
			continue
		}
		port, _ := strconv.Atoi(m[1])
		if _, ours := acked[port]; !ours {
			continue
		}
		switch {
		case e.name == "read" && e.ret > 0:
			lastRead[port] = e.end
		case (e.name == "write" || e.name == "writev") && strings.Contains(e.args, `"HTTP/1.1 201`):
			windows = append(windows, window{port, lastRead[port], e.start})
		}
	}
	if len(windows) != total {
		t.Fatalf("the trace shows %d acknowledgements on the clients' connections, the clients got %d", len(windows), total)
	}
	var bad []string
	for _, w := range windows {
		covered := false
		for _, s := range syncs {
			if s.start >= w.read && s.end <= w.response {
				covered = true
				break
			}
		}
		if !covered {
			bad = append(bad, fmt.Sprintf("port %d: request read by %.6f, response from %.6f", w.port, w.read, w.response))
		}
	}
	if len(bad) > 0 {
		t.Fatalf("%d of %d acknowledgements were sent with no sync between the request and the response (%d syncs in the trace), e.g.\n%s",
			len(bad), len(windows), len(syncs), strings.Join(bad[:min(5, len(bad))], "\n"))
	}
	t.Logf("%d acknowledged submissions, each after a sync that began once its request was read (%d syncs traced)", len(windows), len(syncs))
}

// parseStrace joins interrupted calls by thread, takes the return time of
// a resumed call from its resumption, and skips lines it does not know.
func TestParseStrace(t *testing.T) {
	trace := `101 10.000000 msync(0x7f00, 4096, MS_SYNC <unfinished ...>
102 10.100000 write(7<TCP:[127.0.0.1:80->127.0.0.1:5000]>, "HTTP/1.1 201 Cre"..., 300) = 300 <0.000010>
101 10.200000 <... msync resumed>) = 0 <0.200000>
103 10.300000 read(7<TCP:[127.0.0.1:80->127.0.0.1:5000]>, 0xc000, 4096) = -1 EAGAIN (Resource temporarily unavailable) <0.000004>
104 10.400000 <... fsync resumed>) = 0 <0.1>
105 10.500000 exit_group(0) = ?
+++ exited with 0 +++
garbage
`
	events, err := parseStrace(strings.NewReader(trace))
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 3 {
		t.Fatalf("%d events: %+v", len(events), events)
	}
	m, w, r := events[1], events[0], events[2]
	if m.name != "msync" || m.start != 10.0 || m.end != 10.2 || !strings.Contains(m.args, "MS_SYNC") || m.ret != 0 {
		t.Errorf("msync: %+v", m)
	}
	if w.name != "write" || w.start != 10.1 || w.ret != 300 || !strings.Contains(w.args, `"HTTP/1.1 201`) {
		t.Errorf("write: %+v", w)
	}
	if r.name != "read" || r.ret != -1 {
		t.Errorf("read: %+v", r)
	}
}
