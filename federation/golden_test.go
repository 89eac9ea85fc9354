package federation

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// tapConn records what one side writes.
type tapConn struct {
	net.Conn
	mu  *sync.Mutex
	out *bytes.Buffer
}

func (c tapConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.out.Write(p)
	c.mu.Unlock()
	return c.Conn.Write(p)
}

var frameNames = map[byte]string{
	frameHello: "HELLO", frameRanges: "RANGES", frameWant: "WANT", frameRecord: "RECORD",
	frameEnd: "END", frameDone: "DONE", frameFin: "FIN", frameError: "ERROR",
}

// transcript renders a side's bytes one frame per line.
func transcript(who string, b []byte) string {
	var sb strings.Builder
	fr := newFrameReader(discardConn{bytes.NewReader(b)}, time.Second, time.Time{})
	for {
		t, p, err := fr.read()
		if err == io.EOF {
			return sb.String()
		}
		if err != nil {
			return sb.String() + "error: " + err.Error() + "\n"
		}
		fmt.Fprintf(&sb, "%s %-6s %02x%s %s\n", who, frameNames[t], t, hex.EncodeToString(appendUvarint(nil, uint64(len(p)))), hex.EncodeToString(p))
	}
}

// interleave orders two transcripts turn by turn (a turn ends with END,
// DONE or FIN), starting with the first.
func interleave(a, b string) string {
	turns := func(s string) [][]string {
		var out [][]string
		var cur []string
		for _, l := range strings.SplitAfter(s, "\n") {
			if l == "" {
				continue
			}
			cur = append(cur, l)
			if f := strings.Fields(l); len(f) > 1 && (f[1] == "END" || f[1] == "DONE" || f[1] == "FIN") {
				out = append(out, cur)
				cur = nil
			}
		}
		if len(cur) > 0 {
			out = append(out, cur)
		}
		return out
	}
	ta, tb := turns(a), turns(b)
	var sb strings.Builder
	for i := 0; i < max(len(ta), len(tb)); i++ {
		if i < len(ta) {
			sb.WriteString(strings.Join(ta[i], ""))
		}
		if i < len(tb) {
			sb.WriteString(strings.Join(tb[i], ""))
		}
	}
	return sb.String()
}

func appendUvarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// TestSessionGolden pins a whole reconciliation byte by byte
// (testdata/session-v1.txt, explained in docs/FEDERATION.md §4.8): the
// initiator holds records 0–11, the responder records 1–12, all signed by
// the key with the all-zero seed at fixed times.
func TestSessionGolden(t *testing.T) {
	key, _ := registry.KeyFromSeed(make([]byte, 32))
	at := time.UnixMilli(1700000000000)
	var recs []*registry.Record
	for i := range 13 {
		r, err := registry.Sign(key, registry.KindReview, fmt.Sprintf("golden@1.0.%d", i),
			&registry.ReviewBody{Verdict: registry.VerdictApprove}, at.Add(time.Duration(i)*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	a := newTestReplica(t, recs[:12])
	b := newTestReplica(t, recs[1:])
	a.rep.network, b.rep.network = "main", "main"
	a.rep.now = func() time.Time { return at.Add(time.Hour) }
	b.rep.now = a.rep.now
	ca, cb := net.Pipe()
	var mu sync.Mutex
	var outA, outB bytes.Buffer
	done := make(chan error, 1)
	go func() {
		_, err := newSession(b.rep, tapConn{cb, &mu, &outB}, false).respond(context.Background())
		cb.Close()
		done <- err
	}()
	_, errA := newSession(a.rep, tapConn{ca, &mu, &outA}, true).initiate(context.Background())
	ca.Close()
	if err := <-done; err != nil || errA != nil {
		t.Fatalf("initiator: %v; responder: %v", errA, err)
	}
	got := "# I = initiator (holds golden@1.0.0 to 1.0.11), R = responder (holds 1.0.1 to 1.0.12)\n" +
		"# side type header(type, uvarint length) payload, all hex; turns alternate\n" +
		interleave(transcript("I", outA.Bytes()), transcript("R", outB.Bytes()))
	path := filepath.Join("testdata", "session-v1.txt")
	if *update {
		os.WriteFile(path, []byte(got), 0o644)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Fatalf("reconciliation bytes changed; compare with %s:\n%s", path, got)
	}
}
