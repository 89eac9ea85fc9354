package federation

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// reconParams are the tunables of range-based reconciliation. Both sides may
// use different values; the protocol works with any.
type reconParams struct {
	branch    int // sub-ranges a differing range is split into
	idListMax int // a differing range with at most this many local keys is sent as an ID list
	wantMax   int // IDs asked for per turn
	maxTurns  int // turns per side before the session is abandoned
	idle      time.Duration
	session   time.Duration
	blobPhase time.Duration // longest the blob exchange after DONE may take
	buffer    int           // received record bytes held before they are verified and stored
	wantsHeld int           // IDs remembered as missing (queued and asked for)
	relsHeld  int           // new releases kept for the blob exchange; the rest are queued
}

var defaultReconParams = reconParams{
	branch:    8,
	idListMax: 8,
	wantMax:   4096,
	maxTurns:  64,
	idle:      15 * time.Second,
	session:   5 * time.Minute,
	blobPhase: time.Minute,
	buffer:    4 << 20,
	wantsHeld: 16384,
	relsHeld:  64,
}

// maxIDsIn bounds the IDs in one received ID list or WANT frame: whatever
// fits a frame.
const maxIDsIn = MaxRangesFrame / idLen

// maxRangeFrames bounds the RANGES frames in one turn; a side whose answer
// would need more answers the rest of the key space with one fingerprint.
const maxRangeFrames = 8

// replica is what a session needs from its node.
type replica struct {
	idx     *index
	network string
	params  reconParams
	maxSkew time.Duration
	now     func() time.Time
	// load returns a held record's canonical bytes.
	load func(id registry.ID) ([]byte, error)
	// ingest durably stores verified records and returns those that were new.
	ingest func(recs []*registry.Record) ([]*registry.Record, error)
	// fetchBlobs fetches from the session's peer the missing blobs of the
	// given releases; it returns how many it stored and their bytes.
	fetchBlobs func(ctx context.Context, releases []*registry.Record) (int, int64)
	// queueBlobs schedules background fetches of the missing blobs of
	// releases the session does not keep.
	queueBlobs func(releases []*registry.Record)
	// refused reports whether this node refused the record before (a
	// quota): it is not asked for again.
	refused func(id registry.ID) bool
	// held reports whether the record is stored here already (nil: never
	// assumed). A received record that is held is dropped unverified.
	held func(id registry.ID) bool
}

// SyncStats counts what one reconciliation moved. Bytes are application
// bytes on the reconciliation and blob streams, before libp2p's encryption
// and multiplexing.
type SyncStats struct {
	RecordsIn  int   `json:"records_in"`  // records received, verified and new here
	RecordsOut int   `json:"records_out"` // records sent
	BlobsIn    int   `json:"blobs_in"`
	BlobsOut   int   `json:"blobs_out"`
	BytesIn    int64 `json:"bytes_in"`
	BytesOut   int64 `json:"bytes_out"`
	RoundTrips int   `json:"round_trips"`
}

func (s *SyncStats) add(o SyncStats) {
	s.RecordsIn += o.RecordsIn
	s.RecordsOut += o.RecordsOut
	s.BlobsIn += o.BlobsIn
	s.BlobsOut += o.BlobsOut
	s.BytesIn += o.BytesIn
	s.BytesOut += o.BytesOut
	s.RoundTrips += o.RoundTrips
}

// announced is a range for which this side sent an ID list: the peer may
// push any record in it.
type announced struct{ lo, hi key }

type session struct {
	rep       *replica
	initiator bool
	fr        *frameReader
	fw        *frameWriter
	p         reconParams

	ranges    *rangeWriter  // our response to the peer's RANGES
	outbox    []key         // records the peer lacks
	wantQ     []registry.ID // IDs we lack, not yet asked for
	queued    map[registry.ID]struct{}
	wanted    map[registry.ID]struct{} // asked for, not yet received
	answers   []registry.ID            // the peer's WANTs to answer
	announced [][]announced            // per turn, sorted and disjoint

	pending      [][]byte // received record bytes awaiting verification
	pendingBytes int
	storing      chan error         // the batch being verified and stored, if any
	rels         []*registry.Record // new releases stored during the session, at most p.relsHeld
	added        int                // new records stored during the session
	heldBack     int                // far-future records not stored
	dropped      int                // offered IDs not remembered (p.wantsHeld)
	duplicates   int                // received records already held here

	helloSeen bool
	turns     int
	stats     SyncStats
}

func newSession(rep *replica, c streamConn, initiator bool) *session {
	deadline := time.Now().Add(rep.params.session)
	return &session{
		rep:       rep,
		initiator: initiator,
		p:         rep.params,
		fr:        newFrameReader(c, rep.params.idle, deadline),
		fw:        newFrameWriter(c, rep.params.idle, deadline),
		queued:    map[registry.ID]struct{}{},
		wanted:    map[registry.ID]struct{}{},
	}
}

// sessionResult is what a finished session reports.
type sessionResult struct {
	stats      SyncStats
	added      int // new records stored
	heldBack   int // far-future records received and not stored
	dropped    int // IDs the peer offered beyond what the session remembers
	duplicates int // records received that were held already (not verified again)
}

func (s *session) result() sessionResult {
	_ = s.waitStored()
	s.stats.BytesIn += s.fr.n
	s.stats.BytesOut += s.fw.n
	return sessionResult{stats: s.stats, added: s.added, heldBack: s.heldBack, dropped: s.dropped, duplicates: s.duplicates}
}

// initiate runs a session as the initiator.
func (s *session) initiate(ctx context.Context) (sessionResult, error) {
	if err := s.fw.write(frameHello, helloPayload(s.rep.network)); err != nil {
		return s.result(), s.ioErr(err)
	}
	s.ranges = &rangeWriter{}
	s.respondFingerprint(minKey, infKey, [16]byte{}, true)
	for {
		if err := ctx.Err(); err != nil {
			return s.result(), s.fail(registry.E("federation.Sync", registry.ECANCELED, "sync cancelled", err))
		}
		if err := s.writeTurn(); err != nil {
			return s.result(), err
		}
		s.stats.RoundTrips++
		end, err := s.readTurn()
		if err != nil {
			return s.result(), err
		}
		if end != frameEnd {
			return s.result(), s.fail(violation("expected END from the responder, got frame 0x%02x", end))
		}
		if s.idle() {
			break
		}
	}
	if err := s.fw.write(frameDone, nil); err != nil {
		return s.result(), s.ioErr(err)
	}
	if err := s.fw.flush(); err != nil {
		return s.result(), s.ioErr(err)
	}
	s.stats.RoundTrips++
	var wg sync.WaitGroup
	var blobs int
	var blobBytes int64
	if rel := s.rels; len(rel) > 0 && s.rep.fetchBlobs != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			blobs, blobBytes = s.rep.fetchBlobs(ctx, rel)
		}()
	}
	s.fr.idle = s.p.idle + s.p.blobPhase
	t, _, err := s.fr.read()
	wg.Wait()
	s.stats.BlobsIn += blobs
	s.stats.BytesIn += blobBytes
	if err != nil {
		return s.result(), s.ioErr(err)
	}
	if t != frameFin {
		return s.result(), s.fail(violation("expected FIN, got frame 0x%02x", t))
	}
	return s.result(), nil
}

// respond runs a session as the responder.
func (s *session) respond(ctx context.Context) (sessionResult, error) {
	for {
		if err := ctx.Err(); err != nil {
			return s.result(), s.fail(registry.E("federation.reconcile", registry.ECANCELED, "node is shutting down", err))
		}
		s.ranges = &rangeWriter{}
		end, err := s.readTurn()
		if err != nil {
			return s.result(), err
		}
		if end == frameDone {
			break
		}
		if end != frameEnd {
			return s.result(), s.fail(violation("expected END or DONE, got frame 0x%02x", end))
		}
		if s.turns == 0 {
			if err := s.fw.write(frameHello, helloPayload(s.rep.network)); err != nil {
				return s.result(), s.ioErr(err)
			}
		}
		if err := s.writeTurn(); err != nil {
			return s.result(), err
		}
	}
	if rel := s.rels; len(rel) > 0 && s.rep.fetchBlobs != nil {
		n, b := s.rep.fetchBlobs(ctx, rel)
		s.stats.BlobsIn += n
		s.stats.BytesIn += b
	}
	if err := s.fw.write(frameFin, nil); err != nil {
		return s.result(), s.ioErr(err)
	}
	if err := s.fw.flush(); err != nil {
		return s.result(), s.ioErr(err)
	}
	return s.result(), nil
}

// idle reports whether this side has nothing to send.
func (s *session) idle() bool {
	return s.ranges.open == 0 && len(s.wantQ) == 0 && len(s.answers) == 0 && len(s.outbox) == 0
}

// writeTurn sends RANGES, WANT and RECORD frames and ends the turn.
func (s *session) writeTurn() error {
	s.turns++
	if s.turns > s.p.maxTurns {
		return s.fail(registry.Errorf("federation.reconcile", registry.ETOOLARGE, "reconciliation did not finish in %d turns", s.p.maxTurns))
	}
	if s.ranges.open > 0 {
		for _, p := range s.ranges.payloads() {
			if err := s.fw.write(frameRanges, p); err != nil {
				return s.ioErr(err)
			}
		}
	}
	s.ranges = &rangeWriter{}
	for asked := 0; len(s.wantQ) > 0 && asked < s.p.wantMax; {
		n := min(len(s.wantQ), s.p.wantMax-asked, (MaxRangesFrame-10)/idLen)
		ids := s.wantQ[:n]
		if err := s.fw.write(frameWant, appendIDs(nil, ids)); err != nil {
			return s.ioErr(err)
		}
		for _, id := range ids {
			s.wanted[id] = struct{}{}
			delete(s.queued, id)
		}
		s.wantQ = s.wantQ[n:]
		asked += n
	}
	for _, id := range s.answers {
		if err := s.sendRecord(id); err != nil {
			return err
		}
	}
	s.answers = s.answers[:0]
	for _, k := range s.outbox {
		if err := s.sendRecord(k.id); err != nil {
			return err
		}
	}
	s.outbox = s.outbox[:0]
	if err := s.fw.write(frameEnd, nil); err != nil {
		return s.ioErr(err)
	}
	if err := s.fw.flush(); err != nil {
		return s.ioErr(err)
	}
	return nil
}

func (s *session) sendRecord(id registry.ID) error {
	b, err := s.rep.load(id)
	if registry.KindOf(err) == registry.ENOTFOUND {
		return nil
	}
	if err != nil {
		return s.fail(err)
	}
	if err := s.fw.write(frameRecord, b); err != nil {
		return s.ioErr(err)
	}
	s.stats.RecordsOut++
	return nil
}

// readTurn reads the peer's frames up to END, DONE or an error and returns
// the frame type that ended the turn.
func (s *session) readTurn() (byte, error) {
	first := !s.helloSeen
	s.helloSeen = true
	var ranges []wireRange
	rangeFrames := 0
	wants := 0
	for i := 0; ; i++ {
		t, p, err := s.fr.read()
		if err != nil {
			return 0, s.ioErr(err)
		}
		if first && i == 0 {
			if t == frameError {
				return 0, s.peerError(p)
			}
			if t != frameHello {
				return 0, s.fail(violation("expected HELLO, got frame 0x%02x", t))
			}
			v, nw, err := parseHello(p)
			if err != nil {
				return 0, s.fail(err)
			}
			if v != protocolVersion {
				return 0, s.failCode(codeLimit, registry.Errorf("federation.reconcile", registry.EUNSUPPORTED, "peer speaks reconciliation version %d; this node speaks %d", v, protocolVersion))
			}
			if nw != s.rep.network {
				return 0, s.failCode(codeNetwork, registry.Errorf("federation.reconcile", registry.EINVALID, "peer is on network %q, this node on %q", nw, s.rep.network))
			}
			continue
		}
		switch t {
		case frameRanges:
			rangeFrames++
			if rangeFrames > maxRangeFrames {
				return 0, s.fail(violation("more than %d RANGES frames in one turn", maxRangeFrames))
			}
			prev := minKey
			if len(ranges) > 0 {
				prev = ranges[len(ranges)-1].upper
			}
			rs, err := parseRanges(p, maxIDsIn, prev)
			if err != nil {
				return 0, s.fail(err)
			}
			ranges = append(ranges, rs...)
		case frameWant:
			ids, rest, err := parseIDs(p, maxIDsIn)
			if err != nil || len(rest) != 0 {
				return 0, s.fail(violation("malformed WANT frame"))
			}
			wants += len(ids)
			if wants > 4*maxIDsIn {
				return 0, s.fail(violation("more than %d IDs wanted in one turn", 4*maxIDsIn))
			}
			s.answers = append(s.answers, ids...)
		case frameRecord:
			s.pending = append(s.pending, append([]byte(nil), p...))
			s.pendingBytes += len(p)
			if len(s.pending) >= 512 || s.pendingBytes >= s.p.buffer {
				if err := s.flushPending(); err != nil {
					return 0, s.fail(err)
				}
			}
		case frameEnd, frameDone:
			// The batch in flight owns wanted and announced (flushPending);
			// answering the ranges touches both.
			if err := s.waitStored(); err != nil {
				return 0, s.fail(err)
			}
			if len(ranges) > 0 {
				if !ranges[len(ranges)-1].upper.isInf() {
					return 0, s.fail(violation("RANGES of a turn do not reach the infinite bound"))
				}
				s.processRanges(ranges)
			}
			if err := s.flushPending(); err != nil {
				return 0, s.fail(err)
			}
			if err := s.waitStored(); err != nil {
				return 0, s.fail(err)
			}
			return t, nil
		case frameError:
			return 0, s.peerError(p)
		default:
			return 0, s.fail(violation("unexpected frame 0x%02x during reconciliation", t))
		}
	}
}

// processRanges answers the peer's ranges into s.ranges, queueing records
// to push and IDs to ask for. When the answer would outgrow a frame, the
// rest of the key space is answered with one fingerprint and reconciled in
// later turns.
func (s *session) processRanges(in []wireRange) {
	idx := s.rep.idx
	worst := max(s.p.branch*(maxBoundLen+17), maxBoundLen+2+10+s.p.idListMax*idLen)
	lower := minKey
	var turn []announced
	for _, r := range in {
		if s.ranges.size()+worst+maxBoundLen+17 > maxRangeFrames*MaxRangesFrame-MaxRangesFrame/2 {
			fp := idx.rangeFP(lower, infKey)
			s.ranges.add(wireRange{upper: infKey, mode: modeFingerprint, fp: fp.Short()})
			break
		}
		switch r.mode {
		case modeSkip:
			s.ranges.add(wireRange{upper: r.upper, mode: modeSkip})
		case modeFingerprint:
			if s.respondFingerprint(lower, r.upper, r.fp, false) {
				turn = append(turn, announced{lower, r.upper})
			}
		case modeIDList:
			s.reconcileIDs(lower, r.upper, r.ids)
			s.ranges.add(wireRange{upper: r.upper, mode: modeSkip})
		}
		lower = r.upper
	}
	if len(turn) > 0 {
		s.announced = append(s.announced, turn)
	}
}

// respondFingerprint answers the peer's fingerprint theirs of [lo, hi): Skip
// when equal, our ID list when we hold few keys there, otherwise our
// fingerprints of sub-ranges. force answers even without a peer
// fingerprint (the opening turn). It reports whether it sent an ID list.
func (s *session) respondFingerprint(lo, hi key, theirs [16]byte, force bool) bool {
	idx := s.rep.idx
	fp := idx.rangeFP(lo, hi)
	if !force && fp.Short() == theirs {
		s.ranges.add(wireRange{upper: hi, mode: modeSkip})
		return false
	}
	n := int(fp.Count)
	if n <= s.p.idListMax {
		ks := idx.keys(lo, hi, s.p.idListMax)
		ids := make([]registry.ID, len(ks))
		for i, k := range ks {
			ids[i] = k.id
		}
		s.ranges.add(wireRange{upper: hi, mode: modeIDList, ids: ids})
		if force {
			s.announced = append(s.announced, []announced{{lo, hi}})
		}
		return true
	}
	if force {
		s.ranges.add(wireRange{upper: hi, mode: modeFingerprint, fp: fp.Short()})
		return false
	}
	bounds, fps := idx.splitRange(lo, hi, n, min(s.p.branch, n))
	for i, b := range bounds {
		s.ranges.add(wireRange{upper: b, mode: modeFingerprint, fp: fps[i].Short()})
	}
	return false
}

// reconcileIDs compares the peer's complete ID list for [lo, hi) with ours.
func (s *session) reconcileIDs(lo, hi key, theirs []registry.ID) {
	mine := s.rep.idx.keys(lo, hi, -1)
	set := make(map[registry.ID]struct{}, len(theirs))
	for _, id := range theirs {
		set[id] = struct{}{}
	}
	for _, k := range mine {
		if _, ok := set[k.id]; ok {
			delete(set, k.id)
			continue
		}
		s.outbox = append(s.outbox, k)
	}
	for _, id := range theirs {
		if _, missing := set[id]; !missing {
			continue
		}
		delete(set, id)
		if _, ok := s.queued[id]; ok {
			continue
		}
		if _, ok := s.wanted[id]; ok {
			continue
		}
		if s.rep.refused != nil && s.rep.refused(id) {
			continue
		}
		if len(s.queued)+len(s.wanted) >= s.p.wantsHeld {
			s.dropped++
			continue
		}
		s.queued[id] = struct{}{}
		s.wantQ = append(s.wantQ, id)
	}
}

// solicited reports whether a record with key k may be sent to us: we asked
// for it, or it lies in a range we sent an ID list for.
func (s *session) solicited(k key) bool {
	if _, ok := s.wanted[k.id]; ok {
		delete(s.wanted, k.id)
		return true
	}
	for _, turn := range s.announced {
		i := sort.Search(len(turn), func(i int) bool { return turn[i].hi.compare(k) > 0 })
		if i < len(turn) && turn[i].lo.compare(k) <= 0 {
			return true
		}
	}
	return false
}

// flushPending hands the received records to a goroutine that verifies and
// stores them while the stream is read on; one batch is in flight at a
// time, and it owns the session's wanted and listed ranges until
// waitStored returns.
func (s *session) flushPending() error {
	if err := s.waitStored(); err != nil {
		return err
	}
	if len(s.pending) == 0 {
		return nil
	}
	raw := s.pending
	s.pending, s.pendingBytes = nil, 0
	done := make(chan error, 1)
	s.storing = done
	go func() { done <- s.store(raw) }()
	return nil
}

// waitStored waits for the batch in flight and returns its error.
func (s *session) waitStored() error {
	if s.storing == nil {
		return nil
	}
	err := <-s.storing
	s.storing = nil
	return err
}

// store verifies records in parallel, checks that each was solicited, and
// stores the applicable ones. A record this node already holds (gossip or
// another session brought it while this one ran) is dropped before any
// check: its bytes hash to a held record's ID, so they are that record's
// verified bytes, and verifying them again would only spend CPU.
func (s *session) store(raw [][]byte) error {
	fresh := raw[:0:0]
	for _, b := range raw {
		if s.rep.held != nil {
			if id := registry.Sum(b); s.rep.held(id) {
				delete(s.wanted, id)
				s.duplicates++
				continue
			}
		}
		fresh = append(fresh, b)
	}
	recs, err := decodeParallel(fresh)
	if err != nil {
		return violation("peer sent an invalid record: %v", err)
	}
	now := s.rep.now()
	keep := recs[:0]
	for _, r := range recs {
		if !s.solicited(keyOf(r)) {
			return violation("peer sent record %s, which was neither asked for nor in a range this node listed", r.ID())
		}
		if !registry.Applicable(r, now, s.rep.maxSkew) {
			s.heldBack++
			continue
		}
		keep = append(keep, r)
	}
	added, err := s.rep.ingest(keep)
	if err != nil {
		return err
	}
	s.stats.RecordsIn += len(added)
	s.added += len(added)
	var later []*registry.Record
	for _, r := range releases(added) {
		if len(s.rels) < s.p.relsHeld {
			s.rels = append(s.rels, r)
		} else {
			later = append(later, r)
		}
	}
	if len(later) > 0 && s.rep.queueBlobs != nil {
		s.rep.queueBlobs(later)
	}
	return nil
}

// verifyChunk is how many records decodeParallel checks in one signature
// batch: a bundle's worth, so a batch that fails costs at most that many
// single checks to find the bad record.
const verifyChunk = 64

// decodeParallel fully verifies records on all cores, their signatures in
// batches (registry.DecodeBatch); it fails on the first invalid one.
func decodeParallel(raw [][]byte) ([]*registry.Record, error) {
	recs := make([]*registry.Record, len(raw))
	chunks := (len(raw) + verifyChunk - 1) / verifyChunk
	errs := make([]error, chunks)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(chunks, runtime.GOMAXPROCS(0)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c := int(next.Add(1) - 1)
				if c >= chunks {
					return
				}
				lo, hi := c*verifyChunk, min((c+1)*verifyChunk, len(raw))
				got, _, err := registry.DecodeBatch(raw[lo:hi])
				if err != nil {
					errs[c] = err
					continue
				}
				copy(recs[lo:hi], got)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return recs, nil
}

func releases(recs []*registry.Record) []*registry.Record {
	var out []*registry.Record
	for _, r := range recs {
		if r.Kind == registry.KindRelease {
			out = append(out, r)
		}
	}
	return out
}

// fail sends an ERROR frame for err (best effort) and returns err.
func (s *session) fail(err error) error {
	code := codeInternal
	switch {
	case errors.Is(err, errViolation):
		code = codeViolation
	case registry.KindOf(err) == registry.ETOOLARGE:
		code = codeLimit
	}
	return s.failCode(code, err)
}

func (s *session) failCode(code byte, err error) error {
	s.fw.idle = time.Second
	if s.fw.write(frameError, errorPayload(code, registry.MessageOf(err))) == nil {
		_ = s.fw.flush()
	}
	return err
}

// peerError turns a received ERROR frame into an error.
func (s *session) peerError(p []byte) error {
	const op = "federation.reconcile"
	if len(p) == 0 {
		return violation("empty ERROR frame")
	}
	msg := string(p[1:])
	switch p[0] {
	case codeBusy:
		return registry.Errorf(op, registry.EBUSY, "peer is busy: %s", msg)
	case codeNetwork:
		return registry.Errorf(op, registry.EINVALID, "peer refused: %s", msg)
	case codeViolation:
		return registry.Errorf(op, registry.EINVALID, "peer reports that this node broke the protocol: %s", msg)
	default:
		return registry.Errorf(op, registry.EUNAVAILABLE, "peer failed: %s", msg)
	}
}

// ioErr classifies a stream error; protocol violations found while reading
// are reported to the peer.
func (s *session) ioErr(err error) error {
	const op = "federation.reconcile"
	var re *registry.Error
	if errors.As(err, &re) {
		if errors.Is(err, errViolation) {
			return s.fail(err)
		}
		return err
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return registry.E(op, registry.EUNAVAILABLE, "peer closed the reconciliation stream", err)
	}
	if isTimeout(err) {
		return registry.E(op, registry.ETIMEOUT, fmt.Sprintf("peer sent nothing for %s", s.p.idle), err)
	}
	return registry.E(op, registry.EUNAVAILABLE, "reconciliation stream failed", err)
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout() || errors.Is(err, context.DeadlineExceeded)
}
