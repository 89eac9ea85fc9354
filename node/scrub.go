package node

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/wasmrust/wasm-crates-registry/rest"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/federation"
	"github.com/wasmrust/wasm-crates-registry/store"
)

// DefaultScrubInterval is how often a node re-verifies its store unless
// configured otherwise.
const DefaultScrubInterval = 24 * time.Hour

// scrubKey is the local key of the last verification's report.
const scrubKey = "scrub/last"

// scrubBatch is how many items a background scrub reads before it pauses.
const scrubBatch = 256

// VerifyReport is the result of re-verifying the store (GET/POST /verify):
// what was checked and every damaged record and blob, which were
// quarantined.
type VerifyReport struct {
	store.ScrubReport
	// Trigger says what ran it: "scrub" (periodic), "reindex" or "api".
	Trigger string `json:"trigger"`
}

// forgetter is the part of the federation that drops quarantined records
// from reconciliation, so that peers supply them again.
type forgetter interface {
	Forget(keys []federation.ForgetKey)
}

var _ forgetter = (*federation.Node)(nil)

type scrubber struct {
	mu   sync.Mutex // one verification at a time
	stop context.CancelFunc
	done chan struct{}
}

// Verify re-verifies every stored record (ID, canonical form, schema,
// signature) and blob (hash) now, at full speed, quarantines what is
// damaged and returns the report. Quarantined records are no longer served
// or offered to peers; reconciliation fetches them again from a peer that
// holds an intact copy.
func (n *Node) Verify(ctx context.Context, actor string) (*VerifyReport, error) {
	if err := require(ctx, "node.Verify", ScopeAdmin, ""); err != nil {
		return nil, err
	}
	rep, err := n.verify(ctx, "api", 0)
	if err == nil {
		n.audit(store.AuditEntry{Action: "verify", Actor: actor,
			Detail: fmt.Sprintf("%d records and %d blobs checked, %d damaged", rep.Records, rep.Blobs, len(rep.Damaged))})
	}
	return rep, err
}

// VerifyAtStart is Verify for the daemon's --reindex, before the indexes
// are rebuilt.
func (n *Node) VerifyAtStart(ctx context.Context) (*VerifyReport, error) {
	return n.verify(ctx, "reindex", 0)
}

func (n *Node) verify(ctx context.Context, trigger string, pause time.Duration) (*VerifyReport, error) {
	n.scrub.mu.Lock()
	defer n.scrub.mu.Unlock()
	sr, err := n.db.Scrub(ctx, store.ScrubOptions{Batch: scrubBatch, Pause: pause, Quarantine: true})
	if err != nil {
		return nil, err
	}
	rep := &VerifyReport{ScrubReport: sr, Trigger: trigger}
	var keys []federation.ForgetKey
	for _, d := range sr.Damaged {
		n.log.Error("stored item is damaged and was quarantined", "kind", d.Kind, "id", d.ID, "problem", d.Problem)
		if d.Kind == "record" {
			if id, err := registry.ParseID(d.ID); err == nil {
				keys = append(keys, federation.ForgetKey{Time: d.Time, ID: id})
			}
		}
	}
	if f, ok := n.net.(forgetter); ok && len(keys) > 0 {
		f.Forget(keys)
	}
	if err := n.db.PutLocalJSON(scrubKey, rep); err != nil {
		n.log.Warn("cannot save the verification report", "err", err)
	}
	return rep, nil
}

// LastVerify returns the last verification's report; ENOTFOUND when the
// store was never verified.
func (n *Node) LastVerify() (*VerifyReport, error) {
	var rep VerifyReport
	if err := n.db.GetLocalJSON(scrubKey, &rep); err != nil {
		if registry.KindOf(err) == registry.ENOTFOUND {
			return nil, registry.Errorf("node.LastVerify", registry.ENOTFOUND, "the store has not been verified yet; run `wasm-crates-registry-cli verify`")
		}
		return nil, err
	}
	return &rep, nil
}

// scrubSummary is the last verification for health, nil when none ran.
func (n *Node) scrubSummary() *ScrubSummary {
	rep, err := n.LastVerify()
	if err != nil {
		return nil
	}
	return &ScrubSummary{Finished: rep.Finished, Trigger: rep.Trigger, Records: rep.Records, Blobs: rep.Blobs,
		Damaged: len(rep.Damaged), Complete: rep.Complete}
}

// startScrub runs the periodic scrub: every interval after the last
// verification finished (so restarts do not postpone it forever), spread
// over up to half the interval by pausing between batches.
func (n *Node) startScrub(interval time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	n.scrub.stop, n.scrub.done = cancel, make(chan struct{})
	go func() {
		defer close(n.scrub.done)
		if interval <= 0 {
			return
		}
		for {
			next := time.Now().Add(interval)
			if rep, err := n.LastVerify(); err == nil {
				next = rep.Finished.Add(interval)
			}
			t := time.NewTimer(time.Until(next))
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			recs, blobs := n.db.Counts()
			batches := (recs+blobs)/scrubBatch + 1
			pause := min(time.Second, interval/2/time.Duration(batches))
			rep, err := n.verify(ctx, "scrub", pause)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				retry := min(interval, time.Hour)
				n.log.Error("scrub failed; trying again later", "err", err, "in", retry)
				t := time.NewTimer(retry)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
				continue
			}
			n.log.Info("scrub finished", "records", rep.Records, "blobs", rep.Blobs, "damaged", len(rep.Damaged))
		}
	}()
}

func (n *Node) stopScrub() {
	if n.scrub.stop != nil {
		n.scrub.stop()
		<-n.scrub.done
	}
}

// The JSON shapes of these are the REST contract's (package rest).
type ScrubSummary = rest.ScrubSummary
