package rest

import (
	"time"
)

// PeerInfo describes a peer for `peers` and health.
type PeerInfo struct {
	ID         string    `json:"id"`
	Addrs      []string  `json:"addrs"` // full multiaddrs
	Connected  bool      `json:"connected"`
	Saved      bool      `json:"saved"` // in the peer book: reconnected after restarts
	LastSync   time.Time `json:"last_sync,omitzero"`
	LastError  string    `json:"last_error,omitempty"`
	RecordsIn  uint64    `json:"records_in"`  // records received from the peer (gossip and reconciliation)
	RecordsOut uint64    `json:"records_out"` // records sent by reconciliation
	Score      float64   `json:"score"`       // gossipsub score, with this node's protocol penalties
	Banned     time.Time `json:"banned_until,omitzero"`
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

// PeerSync reports one reconciliation with one peer.
type PeerSync struct {
	Peer string `json:"peer"`
	SyncStats
	Duration time.Duration `json:"duration_ns"`
	Error    string        `json:"error,omitempty"`
}

// SyncReport reports a forced reconciliation: the totals and each peer.
type SyncReport struct {
	SyncStats
	Duration time.Duration `json:"duration_ns"`
	Peers    []PeerSync    `json:"peers"`
}
