package main

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"time"
)

// uploadBody is the body of an upload of data. On a terminal it draws a
// progress bar on w as the bytes go out, redrawn in place at most every
// 100 ms; otherwise it is the plain bytes and nothing is drawn (the command
// prints its one-line result when the node has answered).
func uploadBody(data []byte, label string, w io.Writer, live bool) io.Reader {
	if !live {
		return bytes.NewReader(data)
	}
	return &progressReader{r: bytes.NewReader(data), size: int64(len(data)), label: label, w: w}
}

type progressReader struct {
	r     io.Reader
	size  int64
	done  int64
	label string
	w     io.Writer
	drawn time.Time
	ended bool
}

// Size is the upload's length, sent as its Content-Length.
func (p *progressReader) Size() int64 { return p.size }

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.done += int64(n)
	if p.ended {
		return n, err
	}
	end := p.done >= p.size
	if now := time.Now(); end || now.Sub(p.drawn) >= 100*time.Millisecond {
		p.drawn = now
		fmt.Fprintf(p.w, "\r\033[K%s", progressLine(p.label, p.done, p.size, 30))
		if end {
			p.ended = true
			fmt.Fprintln(p.w)
		}
	}
	return n, err
}

// progressLine is one frame of a progress bar, like
// "uploading serde 1.0.0 [=========>        ]  33% 1.0MiB of 3.0MiB".
func progressLine(label string, done, total int64, width int) string {
	frac := 1.0
	if total > 0 {
		frac = min(1, max(0, float64(done)/float64(total)))
	}
	filled := int(frac * float64(width))
	bar := strings.Repeat("=", filled)
	if filled < width {
		bar += ">" + strings.Repeat(" ", width-filled-1)
	}
	return fmt.Sprintf("%s [%s] %3d%% %s of %s", label, bar, int(frac*100), byteCount(done), byteCount(total))
}

func byteCount(n int64) string {
	if n <= 0 {
		return "0B"
	}
	return sizeStr(uint64(n))
}
