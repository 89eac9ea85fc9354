package node

import (
	"context"
	"encoding/hex"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/store"
)

// The checkpoint signer (DESIGN.md §2 "Authority and time"). The node's log
// holds every record its store accepted; the signer covers it with
// checkpoint records, stored and gossiped like any record the node makes.
//
// A checkpoint is signed only when the log holds an entry that is not a
// checkpoint after the node's last checkpoint. The node's own checkpoints,
// and checkpoints from peers, are logged but never by themselves cause a
// new checkpoint: they are carried by the next one. So an idle node, and a
// federation of idle nodes, stops signing.

// maxCheckpointRounds bounds the checkpoints one signing pass makes.
const maxCheckpointRounds = 1 << 16

// checkpointer runs the signer loop.
type checkpointer struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// startCheckpointer starts the signer loop when the node is configured
// with a checkpoint interval.
func (n *Node) startCheckpointer() {
	if n.cfg.CheckpointInterval <= 0 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &checkpointer{cancel: cancel, done: make(chan struct{})}
	n.ckpt = c
	go func() {
		defer close(c.done)
		t := time.NewTicker(n.cfg.CheckpointInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if _, err := n.SignCheckpoints(ctx); err != nil && ctx.Err() == nil {
					n.log.Warn("signing a log checkpoint", "err", err)
				}
			}
		}
	}()
}

func (n *Node) stopCheckpointer() {
	if n.ckpt != nil {
		n.ckpt.cancel()
		<-n.ckpt.done
	}
}

// SignCheckpoints signs as many checkpoints as the log needs now (each
// carrying at most registry.MaxCheckpointLeaves entries), stores and
// publishes them, and returns them. It signs nothing when the log has grown
// only by checkpoints since the node's last one. A checkpoint's time is
// never before the previous one's, even if the clock stepped back.
func (n *Node) SignCheckpoints(ctx context.Context) ([]*registry.Record, error) {
	const op = "node.SignCheckpoints"
	n.ckMu.Lock()
	defer n.ckMu.Unlock()
	self := n.key.Public()
	var out []*registry.Record
	for round := 0; round < maxCheckpointRounds; round++ {
		if err := ctx.Err(); err != nil {
			return out, registry.E(op, registry.ECANCELED, "", err)
		}
		prev, last := uint64(0), int64(0)
		head, err := n.db.Checkpoint(self)
		switch {
		case err == nil:
			prev, last = head.Size, head.Time()
		case registry.KindOf(err) != registry.ENOTFOUND:
			return out, err
		}
		if n.db.LogContentSize() <= prev {
			return out, nil
		}
		end := min(n.db.LogSize(), prev+registry.MaxCheckpointLeaves)
		ents, err := n.db.LogEntries(prev, int(end-prev))
		if err != nil {
			return out, err
		}
		if uint64(len(ents)) != end-prev {
			return out, registry.Errorf(op, registry.EINTERNAL, "the log has %d entries from %d, not %d", len(ents), prev, end-prev)
		}
		leaves := make([]registry.ID, len(ents))
		for i, e := range ents {
			leaves[i] = e.ID
		}
		root, err := n.db.LogRoot(end)
		if err != nil {
			return out, err
		}
		at := max(n.cfg.Now().UnixMilli(), last+1)
		body := registry.NewCheckpointBody(self.PeerID(), prev, leaves, root)
		if h := n.db.AuditHeadNow(); h.Seq > 0 {
			if hb, err := hex.DecodeString(h.Hash); err == nil {
				body.AuditSize, body.AuditHead = h.Seq, hb
			}
		}
		rec, err := registry.Sign(n.key, registry.KindCheckpoint, self.PeerID(), body, ms(at))
		if err != nil {
			return out, err
		}
		if err := n.storeAndPublishUnaudited(ctx, rec); err != nil {
			return out, err
		}
		out = append(out, rec)
		if h, err := n.db.Checkpoint(self); err != nil || h.Size != end {
			// The node's own chain refused its checkpoint: its key signed
			// checkpoints elsewhere. Signing more would not help.
			return out, registry.Errorf(op, registry.EINTERNAL, "this node's checkpoint %s was not accepted into its own chain; see /log/evidence", rec.ID())
		}
	}
	return out, nil
}

// LogCheckpoint returns the node's latest checkpoint; ENOTFOUND before the
// first.
func (n *Node) LogCheckpoint() (*registry.Checkpoint, error) {
	return n.db.Checkpoint(n.key.Public())
}

// InclusionProof proves that a record is in the node's log of size (0 = the
// size of the node's latest checkpoint).
func (n *Node) InclusionProof(id registry.ID, size uint64) (index, treeSize uint64, proof []registry.Hash, root registry.Hash, err error) {
	if size == 0 {
		c, err := n.LogCheckpoint()
		if err != nil {
			return 0, 0, nil, root, registry.E("node.InclusionProof", registry.KindOf(err), "no size given and this node has not signed a checkpoint yet", err)
		}
		size = c.Size
	}
	if root, err = n.db.LogRoot(size); err != nil {
		return 0, size, nil, root, err
	}
	index, proof, err = n.db.InclusionProof(id, size)
	return index, size, proof, root, err
}

// ConsistencyProof proves that the node's log of size a is a prefix of its
// log of size b; it returns both roots too.
func (n *Node) ConsistencyProof(a, b uint64) (proof []registry.Hash, rootA, rootB registry.Hash, err error) {
	if proof, err = n.db.ConsistencyProof(a, b); err != nil {
		return nil, rootA, rootB, err
	}
	if rootA, err = n.db.LogRoot(a); err != nil {
		return nil, rootA, rootB, err
	}
	rootB, err = n.db.LogRoot(b)
	return proof, rootA, rootB, err
}

// LogEntries returns up to limit entries of the node's log from start.
func (n *Node) LogEntries(start uint64, limit int) ([]store.LogEntry, error) {
	return n.db.LogEntries(start, limit)
}

// LogHead returns the size and root of the node's log now (which may be
// ahead of its latest checkpoint).
func (n *Node) LogHead() (uint64, registry.Hash) { return n.db.LogHead() }

// Evidence returns the checkpoint equivocation evidence the node holds.
func (n *Node) Evidence() ([]registry.Evidence, error) { return n.db.Evidence() }

// WitnessTimes returns a record's witnessed times, one per checkpoint
// author that includes it.
func (n *Node) WitnessTimes(id registry.ID) ([]store.WitnessTime, error) {
	return n.db.WitnessTimes(id)
}

// CheckpointOf returns the head of author's checkpoint chain as this node
// holds it; ENOTFOUND when it holds no accepted checkpoint by author.
func (n *Node) CheckpointOf(author registry.PublicKey) (*registry.Checkpoint, error) {
	return n.db.Checkpoint(author)
}

// auditPins returns the audit head this node's newest accepted checkpoint
// signed (entry count → hex hash), for VerifyAudit.
func (n *Node) auditPins() (map[uint64]string, error) {
	ck, err := n.db.Checkpoint(n.key.Public())
	if registry.KindOf(err) == registry.ENOTFOUND {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	b, err := ck.Record.DecodeBody()
	if err != nil {
		return nil, err
	}
	cb := b.(*registry.CheckpointBody)
	if cb.AuditSize == 0 {
		return nil, nil
	}
	return map[uint64]string{cb.AuditSize: hex.EncodeToString(cb.AuditHead)}, nil
}
