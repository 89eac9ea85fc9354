// Package federation makes a registry node a libp2p peer (DESIGN.md §3,
// docs/FEDERATION.md): a go-libp2p host whose identity is the node key,
// gossipsub with one topic per network carrying one record or a bundle of
// records per message (bundle.go), a validator that verifies every record
// before it is stored or relayed,
// range-based set reconciliation over (time, ID) on /wcr/reconcile/1,
// blobs by multihash on /wcr/blob/1, and a peer book that is remembered
// across restarts. It is the only package that imports libp2p.
//
// Files by job: node.go builds and closes the host; peers.go is the peer
// book (join, forget, list); scoring.go the application score, penalties and
// bans; gater.go the connection gater; schedule.go the event loop and the
// reconciliation scheduler; gossip.go and bundle.go the topic, validator and
// bundler; reconcile.go, sync.go and wire.go the catch-up protocol; blob.go
// blob transfer; index.go the (time, ID) index; recent.go the peers to
// redial at start.
//
// The node's store is reached through the small interfaces of config.go.
// Federation keeps one thing of its own in memory: the reconciliation
// index of (time, ID) keys, read from the store at start and updated on
// every insert; the node must pass every record it stores itself to
// Publish. Records that arrive from peers are verified, stored durably and
// then reported through Config.OnIngest.
//
// Everything a peer can make a node do is bounded: frame and message
// sizes, deadlines on every read and write, sessions and streams per peer
// and in all, turns per reconciliation, queued blob fetches (Limits). A
// peer that sends forged or malformed data loses gossip score and, below
// the graylist threshold, is banned for a while.
package federation
