package federation

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// Frame types of /wcr/reconcile/1 (docs/FEDERATION.md §4). Never renumber.
const (
	frameHello  byte = 0x01
	frameRanges byte = 0x02
	frameWant   byte = 0x03
	frameRecord byte = 0x04
	frameEnd    byte = 0x05
	frameDone   byte = 0x06
	frameFin    byte = 0x07
	frameError  byte = 0x0f
)

// Range modes in a RANGES frame. Never renumber.
const (
	modeSkip        byte = 0
	modeFingerprint byte = 1
	modeIDList      byte = 2
)

// Error codes of an ERROR frame. Never renumber.
const (
	codeViolation byte = 1 // the receiver broke the protocol; it is penalised
	codeBusy      byte = 2 // too many sessions; try later
	codeNetwork   byte = 3 // the peers are on different networks
	codeLimit     byte = 4 // a limit of the sender's was exceeded
	codeInternal  byte = 5 // the sender failed
)

// Wire limits that both sides enforce (docs/FEDERATION.md §4.1, §4.7).
const (
	protocolVersion = 1
	// MaxRangesFrame bounds the payload of a RANGES frame and of a WANT frame.
	MaxRangesFrame = 64 << 10
	maxHello       = 256
	maxNetworkName = 64
	maxErrorFrame  = 1024
	idLen          = 34
	// maxBoundLen is the largest encoding of a bound: a 10-byte varint, the
	// prefix length byte and 34 ID bytes.
	maxBoundLen = 10 + 1 + idLen
)

// maxPayload returns the largest payload a frame of type t may carry, or -1
// for an unknown type.
func maxPayload(t byte) int {
	switch t {
	case frameHello:
		return maxHello
	case frameRanges, frameWant:
		return MaxRangesFrame
	case frameRecord:
		return registry.MaxRecordSize
	case frameEnd, frameDone, frameFin:
		return 0
	case frameError:
		return maxErrorFrame
	}
	return -1
}

// streamConn is what a session needs from a stream: libp2p streams and
// net.Conn both satisfy it.
type streamConn interface {
	io.Reader
	io.Writer
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

// errViolation marks an error caused by a peer breaking the protocol; the
// peer is penalised for it.
var errViolation = errors.New("protocol violation")

func violation(format string, args ...any) error {
	return registry.E("federation.reconcile", registry.EINVALID, fmt.Sprintf(format, args...), errViolation)
}

// frameReader reads length-prefixed frames with a deadline per frame.
type frameReader struct {
	conn     streamConn
	r        *bufio.Reader
	idle     time.Duration
	deadline time.Time // overall; zero for none
	buf      []byte
	n        int64 // bytes read
}

func newFrameReader(c streamConn, idle time.Duration, deadline time.Time) *frameReader {
	fr := &frameReader{conn: c, idle: idle, deadline: deadline}
	fr.r = bufio.NewReaderSize(countReader{c, &fr.n}, 32<<10)
	return fr
}

type countReader struct {
	r io.Reader
	n *int64
}

func (c countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	*c.n += int64(n)
	return n, err
}

func nextDeadline(idle time.Duration, overall time.Time) time.Time {
	d := time.Now().Add(idle)
	if !overall.IsZero() && overall.Before(d) {
		return overall
	}
	return d
}

// read returns the next frame. The payload is valid until the next call.
func (fr *frameReader) read() (byte, []byte, error) {
	if err := fr.conn.SetReadDeadline(nextDeadline(fr.idle, fr.deadline)); err != nil {
		return 0, nil, err
	}
	t, err := fr.r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	max := maxPayload(t)
	if max < 0 {
		return 0, nil, violation("unknown frame type 0x%02x", t)
	}
	n, err := binary.ReadUvarint(fr.r)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	if n > uint64(max) {
		return 0, nil, violation("frame type 0x%02x carries %d bytes; the limit is %d", t, n, max)
	}
	if cap(fr.buf) < int(n) {
		fr.buf = make([]byte, n)
	}
	p := fr.buf[:n]
	if _, err := io.ReadFull(fr.r, p); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return t, p, nil
}

// frameWriter writes frames through a buffer; flush sends them.
type frameWriter struct {
	conn     streamConn
	w        *bufio.Writer
	idle     time.Duration
	deadline time.Time
	n        int64 // bytes written
	hdr      [1 + binary.MaxVarintLen64]byte
}

func newFrameWriter(c streamConn, idle time.Duration, deadline time.Time) *frameWriter {
	fw := &frameWriter{conn: c, idle: idle, deadline: deadline}
	fw.w = bufio.NewWriterSize(countWriter{c, &fw.n}, 32<<10)
	return fw
}

type countWriter struct {
	w io.Writer
	n *int64
}

func (c countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	*c.n += int64(n)
	return n, err
}

func (fw *frameWriter) write(t byte, payload []byte) error {
	if len(payload) > maxPayload(t) {
		return registry.Errorf("federation.writeFrame", registry.EINTERNAL, "frame type 0x%02x of %d bytes exceeds its limit", t, len(payload))
	}
	if err := fw.conn.SetWriteDeadline(nextDeadline(fw.idle, fw.deadline)); err != nil {
		return err
	}
	fw.hdr[0] = t
	h := binary.PutUvarint(fw.hdr[1:], uint64(len(payload)))
	if _, err := fw.w.Write(fw.hdr[:1+h]); err != nil {
		return err
	}
	_, err := fw.w.Write(payload)
	return err
}

func (fw *frameWriter) flush() error {
	if err := fw.conn.SetWriteDeadline(nextDeadline(fw.idle, fw.deadline)); err != nil {
		return err
	}
	return fw.w.Flush()
}

// wireRange is one range of a RANGES frame. Its lower bound is the previous
// range's upper bound (the first starts at minKey).
type wireRange struct {
	upper key
	mode  byte
	fp    [16]byte      // modeFingerprint
	ids   []registry.ID // modeIDList
}

// appendBound encodes b after a bound with time *prevT: 0x00 for the
// infinite bound, otherwise uvarint(1 + t − prevT), a prefix length and that
// many ID bytes. Bounds in a frame increase, so t ≥ *prevT.
func appendBound(dst []byte, prevT *int64, b key) []byte {
	if b.isInf() {
		return append(dst, 0)
	}
	dst = binary.AppendUvarint(dst, uint64(b.t-*prevT)+1)
	*prevT = b.t
	n := boundPrefixLen(b)
	dst = append(dst, byte(n))
	return append(dst, b.id[:n]...)
}

// rangeWriter builds the RANGES frames of one turn, merging adjacent Skip
// ranges. A frame is closed when the next range might not fit it; each
// frame's times are delta-encoded from zero.
type rangeWriter struct {
	frames    [][]byte // closed frames
	buf       []byte   // the open frame
	prevT     int64
	lastStart int
	lastPrevT int64
	lastSkip  bool
	open      int // ranges that are not Skip
	total     int // bytes in closed frames
}

// maxRangeLen bounds the encoding of one range carrying at most maxIDs IDs.
func maxRangeLen(maxIDs int) int { return maxBoundLen + 1 + 10 + maxIDs*idLen }

func (w *rangeWriter) size() int { return w.total + len(w.buf) }

func (w *rangeWriter) add(r wireRange) {
	if r.mode == modeSkip && w.lastSkip {
		w.buf = w.buf[:w.lastStart]
		w.prevT = w.lastPrevT
	} else if len(w.buf)+maxRangeLen(len(r.ids)) > MaxRangesFrame {
		w.frames = append(w.frames, w.buf)
		w.total += len(w.buf)
		w.buf, w.prevT = nil, 0
	}
	w.lastStart, w.lastPrevT = len(w.buf), w.prevT
	w.buf = appendBound(w.buf, &w.prevT, r.upper)
	w.buf = append(w.buf, r.mode)
	switch r.mode {
	case modeFingerprint:
		w.buf = append(w.buf, r.fp[:]...)
	case modeIDList:
		w.buf = binary.AppendUvarint(w.buf, uint64(len(r.ids)))
		for _, id := range r.ids {
			w.buf = append(w.buf, id[:]...)
		}
	}
	w.lastSkip = r.mode == modeSkip
	if !w.lastSkip {
		w.open++
	}
}

// payloads returns the frames of the turn.
func (w *rangeWriter) payloads() [][]byte {
	if len(w.buf) == 0 {
		return w.frames
	}
	return append(w.frames, w.buf)
}

// parseRanges decodes one RANGES payload whose first range starts above
// prev (minKey for a turn's first frame). Bounds must strictly increase and
// nothing may follow the infinite bound; an ID list may hold at most maxIDs
// IDs, each a sha2-256 multihash. Whether the turn's ranges reach the
// infinite bound is for the caller to check.
func parseRanges(p []byte, maxIDs int, prev key) ([]wireRange, error) {
	var out []wireRange
	var prevT int64
	if len(p) == 0 {
		return nil, violation("empty RANGES frame")
	}
	for len(p) > 0 {
		if prev.isInf() {
			return nil, violation("RANGES frame continues after the infinite bound")
		}
		var r wireRange
		v, n := uvarint(p)
		if n <= 0 {
			return nil, violation("RANGES frame has a malformed bound")
		}
		p = p[n:]
		if v == 0 {
			r.upper = infKey
		} else {
			if v-1 > uint64(math.MaxInt64/2-prevT) {
				return nil, violation("RANGES frame has a bound time out of range")
			}
			r.upper.t = prevT + int64(v-1)
			prevT = r.upper.t
			if len(p) < 1 || int(p[0]) > idLen || len(p) < 1+int(p[0]) {
				return nil, violation("RANGES frame has a malformed bound prefix")
			}
			copy(r.upper.id[:], p[1:1+int(p[0])])
			p = p[1+int(p[0]):]
		}
		if r.upper.compare(prev) <= 0 {
			return nil, violation("RANGES frame bounds do not increase")
		}
		prev = r.upper
		if len(p) < 1 {
			return nil, violation("RANGES frame ends inside a range")
		}
		r.mode = p[0]
		p = p[1:]
		switch r.mode {
		case modeSkip:
		case modeFingerprint:
			if len(p) < 16 {
				return nil, violation("RANGES frame ends inside a fingerprint")
			}
			copy(r.fp[:], p[:16])
			p = p[16:]
		case modeIDList:
			ids, rest, err := parseIDs(p, maxIDs)
			if err != nil {
				return nil, err
			}
			r.ids, p = ids, rest
		default:
			return nil, violation("RANGES frame has unknown mode %d", r.mode)
		}
		out = append(out, r)
	}
	return out, nil
}

// uvarint decodes a minimally encoded unsigned LEB128 varint; n ≤ 0 when
// p does not start with one.
func uvarint(p []byte) (uint64, int) {
	v, n := binary.Uvarint(p)
	if n > 1 && p[n-1] == 0 {
		return 0, -1
	}
	return v, n
}

// parseIDs decodes uvarint(n) followed by n 34-byte multihashes.
func parseIDs(p []byte, maxIDs int) ([]registry.ID, []byte, error) {
	c, n := uvarint(p)
	if n <= 0 {
		return nil, nil, violation("malformed ID count")
	}
	p = p[n:]
	if c > uint64(maxIDs) || c*idLen > uint64(len(p)) {
		return nil, nil, violation("ID list of %d IDs exceeds the limit of %d or the frame", c, maxIDs)
	}
	ids := make([]registry.ID, c)
	for i := range ids {
		id, err := registry.IDFromBytes(p[:idLen])
		if err != nil {
			return nil, nil, violation("ID list holds something that is not a sha2-256 multihash")
		}
		ids[i] = id
		p = p[idLen:]
	}
	return ids, p, nil
}

func appendIDs(dst []byte, ids []registry.ID) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(ids)))
	for _, id := range ids {
		dst = append(dst, id[:]...)
	}
	return dst
}

// helloPayload is: version (1 byte), uvarint length, network name.
func helloPayload(network string) []byte {
	b := []byte{protocolVersion}
	b = binary.AppendUvarint(b, uint64(len(network)))
	return append(b, network...)
}

func parseHello(p []byte) (version byte, network string, err error) {
	if len(p) < 2 {
		return 0, "", violation("HELLO frame is too short")
	}
	version = p[0]
	n, k := uvarint(p[1:])
	if k <= 0 || n > maxNetworkName || uint64(len(p)-1-k) != n {
		return 0, "", violation("HELLO frame has a malformed network name")
	}
	return version, string(p[1+k:]), nil
}

func errorPayload(code byte, msg string) []byte {
	if len(msg) > maxErrorFrame-1 {
		msg = msg[:maxErrorFrame-1]
	}
	return append([]byte{code}, msg...)
}
