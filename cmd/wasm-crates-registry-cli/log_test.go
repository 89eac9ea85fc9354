package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/internal/testkit"
	"github.com/wasmrust/wasm-crates-registry/node"
	"github.com/wasmrust/wasm-crates-registry/node/api"
)

// runCLI runs the CLI in-process and returns its exit code and stdout.
func runCLI(t *testing.T, args ...string) (int, string) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	done := make(chan []byte)
	go func() { b, _ := io.ReadAll(r); done <- b }()
	code := runApp(append([]string{"wasm-crates-registry-cli"}, args...))
	w.Close()
	os.Stdout = old
	return code, string(<-done)
}

func TestLogVerify(t *testing.T) {
	n, err := node.Open(context.Background(), node.Config{DataDir: t.TempDir(), Announce: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	srv := httptest.NewServer(api.New(n, nil))
	defer srv.Close()
	k := testkit.Key(3)
	var raws [][]byte
	for i := 0; i < 30; i++ {
		r, err := registry.Sign(k, registry.KindYank, "c"+strconv.Itoa(i)+"@1.0.0", &registry.YankBody{Yanked: true}, time.Now().Add(-time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		raws = append(raws, r.Bytes())
	}
	recs, err := n.Ingest(context.Background(), "t", raws)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.SignCheckpoints(context.Background()); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := func(name string) string { return filepath.Join(dir, name) }
	api := "--api=" + srv.URL
	os.WriteFile(file("rec.cbor"), recs[7].Bytes(), 0o644)

	ok := func(args ...string) string {
		t.Helper()
		code, out := runCLI(t, args...)
		if code != 0 || !strings.HasPrefix(out, "OK") && !strings.Contains(out, "verified") {
			t.Fatalf("%v: exit %d\n%s", args, code, out)
		}
		return out
	}
	fail := func(args ...string) {
		t.Helper()
		if code, out := runCLI(t, args...); code == 0 {
			t.Fatalf("%v succeeded:\n%s", args, out)
		}
	}
	ok(api, "log", "checkpoint", "-o", file("ck.cbor"))
	ok(api, "log", "verify", recs[3].ID().String())
	ok(api, "log", "verify", "--checkpoint", file("ck.cbor"), "--author", n.PeerID(), file("rec.cbor"))
	fail(api, "log", "verify", "--checkpoint", file("ck.cbor"), "--author", k.Public().PeerID(), file("rec.cbor"))

	// Offline: a saved proof and a saved checkpoint, no node at all.
	ok(api, "log", "prove", "-o", file("proof.json"), recs[7].ID().String())
	ok("--api=http://127.0.0.1:1", "log", "verify", "--checkpoint", file("ck.cbor"), "--proof", file("proof.json"), file("rec.cbor"))
	// A proof for another record, a tampered checkpoint, a tampered record.
	fail("--api=http://127.0.0.1:1", "log", "verify", "--checkpoint", file("ck.cbor"), "--proof", file("proof.json"), recs[8].ID().String())
	// A proof whose hashes were tampered with, for the right record.
	pj, _ := os.ReadFile(file("proof.json"))
	var proof map[string]any
	if err := json.Unmarshal(pj, &proof); err != nil {
		t.Fatal(err)
	}
	hs := proof["proof"].([]any)
	h0 := []byte(hs[0].(string))
	if h0[0] == '0' {
		h0[0] = '1'
	} else {
		h0[0] = '0'
	}
	hs[0] = string(h0)
	pj, _ = json.Marshal(proof)
	os.WriteFile(file("bad-proof.json"), pj, 0o644)
	fail("--api=http://127.0.0.1:1", "log", "verify", "--checkpoint", file("ck.cbor"), "--proof", file("bad-proof.json"), file("rec.cbor"))
	ck, _ := os.ReadFile(file("ck.cbor"))
	ck[len(ck)-5] ^= 1
	os.WriteFile(file("bad-ck.cbor"), ck, 0o644)
	fail("--api=http://127.0.0.1:1", "log", "verify", "--checkpoint", file("bad-ck.cbor"), "--proof", file("proof.json"), file("rec.cbor"))
	rb := bytes.Clone(recs[7].Bytes())
	rb[10] ^= 1
	os.WriteFile(file("bad-rec.cbor"), rb, 0o644)
	fail("--api=http://127.0.0.1:1", "log", "verify", "--checkpoint", file("ck.cbor"), "--proof", file("proof.json"), file("bad-rec.cbor"))

	// A whole downloaded log against the checkpoint, and a tampered copy.
	if code, out := runCLI(t, api, "log", "download", "-o", file("log.txt")); code != 0 {
		t.Fatalf("download: %d %s", code, out)
	}
	ok(api, "log", "verify", "--checkpoint", file("ck.cbor"), "--log", file("log.txt"))
	lines, _ := os.ReadFile(file("log.txt"))
	ls := strings.Split(string(lines), "\n")
	ls[4], ls[5] = ls[5], ls[4]
	os.WriteFile(file("bad-log.txt"), []byte(strings.Join(ls, "\n")), 0o644)
	fail(api, "log", "verify", "--checkpoint", file("ck.cbor"), "--log", file("bad-log.txt"))

	// A record the checkpoint does not cover yet.
	late, _ := registry.Sign(k, registry.KindYank, "late@1.0.0", &registry.YankBody{}, time.Now().Add(-time.Minute))
	if _, err := n.Ingest(context.Background(), "t", [][]byte{late.Bytes()}); err != nil {
		t.Fatal(err)
	}
	fail(api, "log", "verify", "--checkpoint", file("ck.cbor"), late.ID().String())

	// Consistency between two checkpoints.
	cks, _ := n.SignCheckpoints(context.Background())
	c2, _ := registry.ParseCheckpoint(cks[0])
	c1, _ := registry.ParseCheckpoint(mustRecord(t, file("ck.cbor")))
	ok(api, "log", "prove", "--from", itoa(c1.Size), "--to", itoa(c2.Size))
}

func mustRecord(t *testing.T, path string) *registry.Record {
	b, _ := os.ReadFile(path)
	r, err := registry.DecodeRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
