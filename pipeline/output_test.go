package pipeline

import (
	"bytes"
	"strings"
	"testing"
)

// Cargo's message stream is hostile input: a build script or a proc macro
// can make cargo print anything.
func TestLineScannerHostile(t *testing.T) {
	var got []string
	l := &lineScanner{max: 16, fn: func(s string) { got = append(got, s) }}
	write := func(s string) {
		// byte by byte and in one piece must agree
		for i := 0; i < len(s); i += 7 {
			_, _ = l.Write([]byte(s[i:min(i+7, len(s))]))
		}
	}
	write("short\n")
	write(strings.Repeat("x", 1<<20)) // no newline: must not grow without bound
	if len(l.buf) > 16 {
		t.Fatalf("buffer grew to %d bytes", len(l.buf))
	}
	write("tail-of-long\nexactly-16-bytes\n")
	write(strings.Repeat("y", 17) + "\n")
	write("last")
	l.flush()
	want := []string{"short", "exactly-16-bytes", "last"}
	if strings.Join(got, "|") != strings.Join(want, "|") || l.dropped != 2 {
		t.Errorf("lines %q dropped %d; want %q and 2", got, l.dropped, want)
	}
}

func TestCargoMessagesBounded(t *testing.T) {
	res := &cargoResult{stderr: &limitedBuffer{limit: 1024}}
	l := &lineScanner{max: maxCargoLine, fn: res.message}
	msg := `{"reason":"compiler-message","package_id":"evil 0.1.0","message":{"level":"error","rendered":"E"}}` + "\n"
	for range 1000 {
		_, _ = l.Write([]byte(msg))
	}
	_, _ = l.Write([]byte(`{"reason":"compiler-artifact","target":{"name":"x"}}` + "\n" + "{not json\n" + "\x00\xff\n"))
	if len(res.errors) != maxKeptErrors || res.firstError != "evil 0.1.0" || len(res.artifacts) != 1 {
		t.Errorf("%d errors, first %q, %d artifacts", len(res.errors), res.firstError, len(res.artifacts))
	}
}

func TestCappedWriter(t *testing.T) {
	var b bytes.Buffer
	c := &cappedWriter{w: &b, left: 10}
	for range 5 {
		if n, err := c.Write([]byte("abcd")); n != 4 || err != nil {
			t.Fatal(n, err)
		}
	}
	if b.String() != "abcdabcdab" || c.dropped != 10 {
		t.Errorf("%q dropped %d", b.String(), c.dropped)
	}
}

func TestLineScannerTotal(t *testing.T) {
	n := 0
	l := &lineScanner{maxTotal: 100, fn: func(string) { n++ }}
	for range 1000 {
		_, _ = l.Write([]byte("0123456789\n"))
	}
	if n != 9 || l.overflow != 11000-100 {
		t.Errorf("%d lines, overflow %d", n, l.overflow)
	}
}
