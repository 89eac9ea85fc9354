package federation

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	registry "github.com/wasmrust/wasm-crates-registry"
)

// /wcr/blob/1 (docs/FEDERATION.md §5): one request per stream.
const (
	blobGet byte = 0x01

	blobOK         byte = 0
	blobNotFound   byte = 1
	blobBusy       byte = 2
	blobBadRequest byte = 3
	blobTooLarge   byte = 4
	blobFailed     byte = 5

	blobsPerPeer = 4 // blob streams served to one peer at a time
	blobChunk    = 64 << 10
	blobWorkers  = 2
	blobTries    = 3
)

type blobJob struct {
	id    registry.ID
	limit int64 // the release's declared size, capped by Limits.MaxBlobSize
	from  peer.ID
	tries int
}

// handleBlob serves one blob request.
func (n *Node) handleBlob(s network.Stream) {
	pid := s.Conn().RemotePeer()
	status := func(b byte) {
		_ = s.SetWriteDeadline(time.Now().Add(n.cfg.Limits.StreamIdle))
		_, _ = s.Write([]byte{b})
		_ = s.Close()
	}
	n.mu.Lock()
	st := n.state(pid)
	if st.blobConns >= blobsPerPeer {
		n.mu.Unlock()
		status(blobBusy)
		return
	}
	st.blobConns++
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		st.blobConns--
		n.mu.Unlock()
	}()
	select {
	case n.blobSem <- struct{}{}:
		defer func() { <-n.blobSem }()
	default:
		status(blobBusy)
		return
	}
	_ = s.SetReadDeadline(time.Now().Add(n.cfg.Limits.StreamIdle))
	var req [1 + idLen]byte
	if _, err := io.ReadFull(s, req[:]); err != nil {
		_ = s.Reset()
		return
	}
	id, err := registry.IDFromBytes(req[1:])
	if req[0] != blobGet || err != nil {
		n.penalize(pid, violation("malformed blob request"))
		status(blobBadRequest)
		return
	}
	b, err := n.st.GetBlob(id)
	switch {
	case registry.KindOf(err) == registry.ENOTFOUND:
		status(blobNotFound)
		return
	case err != nil:
		n.log.Error("cannot read a blob to serve it", "blob", id.String(), "err", err)
		status(blobFailed)
		return
	case int64(len(b)) > n.cfg.Limits.MaxBlobSize:
		status(blobTooLarge)
		return
	}
	_ = s.SetWriteDeadline(time.Now().Add(n.cfg.Limits.BlobTimeout))
	hdr := binary.AppendUvarint([]byte{blobOK}, uint64(len(b)))
	if _, err := s.Write(hdr); err != nil {
		_ = s.Reset()
		return
	}
	if _, err := s.Write(b); err != nil {
		_ = s.Reset()
		return
	}
	_ = s.Close()
	n.stats.blobsServed.Add(1)
	n.mu.Lock()
	st.blobsOut++
	st.bytesOut += int64(len(hdr) + len(b))
	n.mu.Unlock()
}

// fetchBlobFrom asks pid for a blob of at most limit bytes, verifies it
// against its multihash and stores it. It returns the application bytes
// read. A peer that offers more than limit is cut off and penalised.
func (n *Node) fetchBlobFrom(ctx context.Context, pid peer.ID, id registry.ID, limit int64) ([]byte, int64, error) {
	const op = "federation.FetchBlob"
	ctx, cancel := context.WithTimeout(ctx, n.cfg.Limits.BlobTimeout)
	defer cancel()
	s, err := n.host.NewStream(ctx, pid, BlobProtocol)
	if err != nil {
		return nil, 0, registry.E(op, registry.EUNAVAILABLE, "cannot open a blob stream to "+pid.String(), err)
	}
	deadline, _ := ctx.Deadline()
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	_ = s.SetWriteDeadline(nextDeadline(n.cfg.Limits.StreamIdle, deadline))
	if _, err := s.Write(append([]byte{blobGet}, id[:]...)); err != nil {
		_ = s.Reset()
		return nil, 0, registry.E(op, registry.EUNAVAILABLE, "blob request failed", err)
	}
	_ = s.CloseWrite()
	var read int64
	br := bufio.NewReader(countReader{s, &read})
	_ = s.SetReadDeadline(nextDeadline(n.cfg.Limits.StreamIdle, deadline))
	st, err := br.ReadByte()
	if err != nil {
		_ = s.Reset()
		return nil, read, n.blobIOErr(ctx, err)
	}
	switch st {
	case blobOK:
	case blobNotFound:
		_ = s.Close()
		return nil, read, registry.Errorf(op, registry.ENOTFOUND, "peer %s does not hold blob %s", pid, id)
	case blobBusy:
		_ = s.Close()
		return nil, read, registry.Errorf(op, registry.EBUSY, "peer %s is busy", pid)
	default:
		_ = s.Close()
		return nil, read, registry.Errorf(op, registry.EUNAVAILABLE, "peer %s cannot serve blob %s (status %d)", pid, id, st)
	}
	size, err := binary.ReadUvarint(br)
	if err != nil {
		_ = s.Reset()
		return nil, read, n.blobIOErr(ctx, err)
	}
	if limit <= 0 || limit > n.cfg.Limits.MaxBlobSize {
		limit = n.cfg.Limits.MaxBlobSize
	}
	if size > uint64(limit) {
		_ = s.Reset()
		err := violation("peer offered a blob of %d bytes; the limit is %d", size, limit)
		n.penalize(pid, err)
		return nil, read, err
	}
	b := make([]byte, 0, min(size, 1<<20))
	for uint64(len(b)) < size {
		_ = s.SetReadDeadline(nextDeadline(n.cfg.Limits.StreamIdle, deadline))
		chunk := min(size-uint64(len(b)), blobChunk)
		start := len(b)
		b = append(b, make([]byte, chunk)...)
		if _, err := io.ReadFull(br, b[start:]); err != nil {
			_ = s.Reset()
			return nil, read, n.blobIOErr(ctx, err)
		}
	}
	_ = s.Close()
	if registry.Sum(b) != id {
		err := violation("peer sent bytes that do not hash to blob %s", id)
		n.penalize(pid, err)
		return nil, read, err
	}
	if _, err := n.st.PutBlob(b); err != nil {
		return nil, read, err
	}
	n.stats.blobsFetched.Add(1)
	return b, read, nil
}

func (n *Node) blobIOErr(ctx context.Context, err error) error {
	const op = "federation.FetchBlob"
	if ctx.Err() != nil || isTimeout(err) {
		return registry.E(op, registry.ETIMEOUT, "blob transfer took too long", err)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return registry.E(op, registry.EUNAVAILABLE, "peer closed the blob stream early", err)
	}
	return registry.E(op, registry.EUNAVAILABLE, "blob stream failed", err)
}

// FetchBlob returns a blob, from the store when held, otherwise from the
// first connected peer that has it; the bytes are verified against id and
// stored before they are returned. ENOTFOUND when no connected peer has it.
func (n *Node) FetchBlob(ctx context.Context, id registry.ID) ([]byte, error) {
	const op = "federation.FetchBlob"
	if b, err := n.st.GetBlob(id); err == nil {
		return b, nil
	} else if registry.KindOf(err) != registry.ENOTFOUND {
		return nil, err
	}
	b, err := n.fetchFromAny(ctx, id, n.cfg.Limits.MaxBlobSize, "")
	if err != nil {
		return nil, registry.E(op, registry.KindOf(err), "blob "+id.String(), err)
	}
	return b, nil
}

// fetchFromAny tries first (if set), then the other connected peers that
// serve blobs, in random order.
func (n *Node) fetchFromAny(ctx context.Context, id registry.ID, limit int64, first peer.ID) ([]byte, error) {
	var cands []peer.ID
	for _, pid := range n.host.Network().Peers() {
		if pid == first {
			continue
		}
		if ps, err := n.host.Peerstore().SupportsProtocols(pid, BlobProtocol); err == nil && len(ps) > 0 {
			cands = append(cands, pid)
		}
	}
	rand.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
	if first != "" && n.host.Network().Connectedness(first) == network.Connected {
		cands = append([]peer.ID{first}, cands...)
	}
	var errs []error
	for _, pid := range cands {
		if ctx.Err() != nil {
			break
		}
		b, _, err := n.fetchBlobFrom(ctx, pid, id, limit)
		if err == nil {
			return b, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil, registry.Errorf("federation.FetchBlob", registry.ENOTFOUND, "no connected peer serves blobs")
	}
	return nil, registry.E("federation.FetchBlob", registry.ENOTFOUND, "no connected peer could supply it", errors.Join(errs...))
}

// sessionBlobs fetches from pid the missing blobs of releases received in a
// reconciliation: up to Limits.SessionBlobs of them now, the rest in the
// background.
func (n *Node) sessionBlobs(ctx context.Context, pid peer.ID, rels []*registry.Record) (int, int64) {
	ctx, cancel := context.WithTimeout(ctx, n.rec.blobPhase)
	defer cancel()
	var count int
	var bytes int64
	for _, r := range rels {
		id, limit, ok := releaseBlob(r)
		if !ok {
			continue
		}
		if has, err := n.st.HasBlob(id); err != nil || has {
			continue
		}
		if count >= n.cfg.Limits.SessionBlobs || ctx.Err() != nil {
			n.queueBlob(r, pid)
			continue
		}
		_, nb, err := n.fetchBlobFrom(ctx, pid, id, limit)
		bytes += nb
		if err != nil {
			n.queueBlob(r, pid)
			if errors.Is(err, errViolation) {
				break
			}
			continue
		}
		count++
	}
	return count, bytes
}

// releaseBlob returns the blob a release names and the size it declares.
func releaseBlob(r *registry.Record) (registry.ID, int64, bool) {
	if r.Kind != registry.KindRelease {
		return registry.ID{}, 0, false
	}
	body, err := r.DecodeBody()
	if err != nil {
		return registry.ID{}, 0, false
	}
	rb := body.(*registry.ReleaseBody)
	return rb.BlobID(), int64(min(rb.Size, 1<<62)), true
}

// queueBlob schedules a background fetch of a release's blob, first from
// the peer the release came from.
func (n *Node) queueBlob(r *registry.Record, from peer.ID) {
	id, limit, ok := releaseBlob(r)
	if !ok {
		return
	}
	if has, err := n.st.HasBlob(id); err == nil && has {
		return
	}
	select {
	case n.blobQ <- blobJob{id: id, limit: limit, from: from}:
	default:
		n.log.Warn("blob queue is full; the blob will be fetched on demand", "blob", id.String())
	}
}

// blobLoop runs the background blob fetchers.
func (n *Node) blobLoop() {
	defer n.wg.Done()
	var wg sync.WaitGroup
	for range blobWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-n.ctx.Done():
					return
				case j := <-n.blobQ:
					n.runBlobJob(j)
				}
			}
		}()
	}
	wg.Wait()
}

func (n *Node) runBlobJob(j blobJob) {
	if has, err := n.st.HasBlob(j.id); err == nil && has {
		return
	}
	n.mu.Lock()
	if _, busy := n.inflight[j.id]; busy {
		n.mu.Unlock()
		return
	}
	n.inflight[j.id] = struct{}{}
	n.mu.Unlock()
	_, err := n.fetchFromAny(n.ctx, j.id, j.limit, j.from)
	n.mu.Lock()
	delete(n.inflight, j.id)
	n.mu.Unlock()
	if err == nil || n.ctx.Err() != nil {
		return
	}
	j.tries++
	if j.tries >= blobTries {
		n.log.Info("giving up fetching a blob in the background; it will be fetched on demand", "blob", j.id.String(), "err", err)
		return
	}
	delay := jitter(time.Duration(j.tries*j.tries) * time.Second)
	time.AfterFunc(delay, func() {
		select {
		case n.blobQ <- j:
		default:
		}
	})
}
