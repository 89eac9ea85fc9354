package federation

import (
	"bytes"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	registry "github.com/wasmrust/wasm-crates-registry"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// goldenRanges is the RANGES frame of docs/FEDERATION.md §4.8: a Skip up to
// a bound with a 3-byte ID prefix, an ID list of one ID, then a fingerprint
// up to infinity.
func goldenRanges() []wireRange {
	var b1 key
	b1.t = 1700000000000
	copy(b1.id[:], []byte{0x12, 0x20, 0xab})
	b2 := key{t: 1700000000250}
	id := registry.Sum([]byte("hello"))
	var fp [16]byte
	for i := range fp {
		fp[i] = byte(i)
	}
	return []wireRange{
		{upper: b1, mode: modeSkip},
		{upper: b2, mode: modeIDList, ids: []registry.ID{id}},
		{upper: infKey, mode: modeFingerprint, fp: fp},
	}
}

// TestRangesGolden pins the byte layout of a RANGES payload
// (testdata/ranges-v1.hex); another implementation must produce and accept
// the same bytes.
func TestRangesGolden(t *testing.T) {
	w := &rangeWriter{}
	for _, r := range goldenRanges() {
		w.add(r)
	}
	path := filepath.Join("testdata", "ranges-v1.hex")
	if *update {
		os.WriteFile(path, []byte(hex.EncodeToString(w.buf)+"\n"), 0o644)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := hex.EncodeToString(w.buf)
	if got != strings.TrimSpace(string(want)) {
		t.Fatalf("RANGES encoding changed:\n got %s\nwant %s", got, want)
	}
	rs, err := parseRanges(w.buf, 10, minKey)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range goldenRanges() {
		if rs[i].upper != r.upper || rs[i].mode != r.mode || rs[i].fp != r.fp || len(rs[i].ids) != len(r.ids) {
			t.Fatalf("range %d decoded as %+v, want %+v", i, rs[i], r)
		}
	}
}

func TestRangeWriterMergesSkips(t *testing.T) {
	w := &rangeWriter{}
	w.add(wireRange{upper: key{t: 5}, mode: modeSkip})
	w.add(wireRange{upper: key{t: 9}, mode: modeSkip})
	w.add(wireRange{upper: infKey, mode: modeSkip})
	rs, err := parseRanges(w.buf, 0, minKey)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || !rs[0].upper.isInf() || w.open != 0 {
		t.Fatalf("three skips encoded as %d ranges (%x)", len(rs), w.buf)
	}
}

func TestParseRangesRejects(t *testing.T) {
	for name, p := range map[string][]byte{
		"empty":              {},
		"decreasing bounds":  {0x05, 0x00, modeSkip, 0x01, 0x00, modeSkip, 0x00, modeSkip},
		"equal bounds":       {0x05, 0x00, modeSkip, 0x01, 0x00, modeSkip},
		"prefix too long":    {0x05, 35},
		"unknown mode":       {0x00, 0x09},
		"after infinity":     {0x00, modeSkip, 0x05, 0x00, modeSkip},
		"short fingerprint":  {0x00, modeFingerprint, 1, 2, 3},
		"ID list overflow":   {0x00, modeIDList, 0x05},
		"ID not sha2-256":    append([]byte{0x00, modeIDList, 0x01}, bytes.Repeat([]byte{0x11}, 34)...),
		"minimal bound zero": {0x01, 0x00, modeSkip, 0x00, modeSkip},
	} {
		if _, err := parseRanges(p, 4, minKey); err == nil {
			t.Errorf("%s: parseRanges(%x) succeeded", name, p)
		}
	}
}

// FuzzParseRanges: no input panics, and whatever parses re-encodes to
// ranges that parse the same.
func FuzzParseRanges(f *testing.F) {
	w := &rangeWriter{}
	for _, r := range goldenRanges() {
		w.add(r)
	}
	f.Add(w.buf)
	f.Add([]byte{0x00, modeSkip})
	f.Fuzz(func(t *testing.T, p []byte) {
		rs, err := parseRanges(p, 64, minKey)
		if err != nil {
			return
		}
		w := &rangeWriter{}
		for _, r := range rs {
			w.add(r)
		}
		var again []wireRange
		for _, f := range w.payloads() {
			prev := minKey
			if len(again) > 0 {
				prev = again[len(again)-1].upper
			}
			more, err := parseRanges(f, 64, prev)
			if err != nil {
				t.Fatalf("re-encoded ranges do not parse: %v", err)
			}
			again = append(again, more...)
		}
		if again[len(again)-1].upper != rs[len(rs)-1].upper {
			t.Fatal("re-encoded ranges end elsewhere")
		}
	})
}

// FuzzHello: the HELLO parser never panics and round-trips.
func FuzzHello(f *testing.F) {
	f.Add(helloPayload("main"))
	f.Fuzz(func(t *testing.T, p []byte) {
		v, nw, err := parseHello(p)
		if err != nil {
			return
		}
		if !bytes.Equal(p[1:], helloPayload(nw)[1:]) || v != p[0] {
			t.Fatalf("HELLO %x parsed as %d %q", p, v, nw)
		}
	})
}
