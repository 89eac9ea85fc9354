package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestProgressLine(t *testing.T) {
	cases := []struct {
		done, total int64
		want        string
	}{
		{0, 3 << 20, "up [>         ]   0% 0B of 3.0MiB"},
		{1 << 20, 3 << 20, "up [===>      ]  33% 1.0MiB of 3.0MiB"},
		{3 << 20, 3 << 20, "up [==========] 100% 3.0MiB of 3.0MiB"},
		{0, 0, "up [==========] 100% 0B of 0B"},
	}
	for _, c := range cases {
		if got := progressLine("up", c.done, c.total, 10); got != c.want {
			t.Errorf("progressLine(%d, %d) = %q, want %q", c.done, c.total, got, c.want)
		}
	}
}

// TestUploadProgress: a live upload draws its bar to the end exactly once,
// and the node still gets the whole body with its Content-Length; a plain
// upload draws nothing.
func TestUploadProgress(t *testing.T) {
	var gotLen int64
	var gotBody []byte
	rec := newRecorder(t, "127.0.0.1", func(w http.ResponseWriter, r *http.Request) {
		gotLen = r.ContentLength
		gotBody, _ = io.ReadAll(r.Body)
		okJSON(w, r)
	})
	c, err := newClient(rec.srv.URL, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("crate bytes "), 100_000)
	for _, live := range []bool{true, false} {
		var drawn bytes.Buffer
		if err := c.do(context.Background(), http.MethodPost, "/crates", uploadBody(data, "uploading", &drawn, live), "application/gzip", nil); err != nil {
			t.Fatal(err)
		}
		if gotLen != int64(len(data)) || !bytes.Equal(gotBody, data) {
			t.Errorf("live=%v: the node got %d bytes with Content-Length %d, want %d", live, len(gotBody), gotLen, len(data))
		}
		out := drawn.String()
		if !live {
			if out != "" {
				t.Errorf("a plain upload drew %q", out)
			}
			continue
		}
		if strings.Count(out, "100%") != 1 || !strings.HasSuffix(out, "100% 1.1MiB of 1.1MiB\n") {
			t.Errorf("a live upload drew %q, want frames ending once at 100%%", out)
		}
	}
}
