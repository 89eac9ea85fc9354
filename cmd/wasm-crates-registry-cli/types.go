package main

import (
	"encoding/json"
	"time"
)

// The API's JSON, as much of it as the tables show. --json prints the
// node's answer unchanged.

type health struct {
	Status     string          `json:"status"`
	Name       string          `json:"name"`
	Version    string          `json:"version"`
	PeerID     string          `json:"peer_id"`
	Addrs      []string        `json:"addrs"`
	Records    int64           `json:"records"`
	Blobs      int64           `json:"blobs"`
	Digest     string          `json:"digest"`
	Peers      int             `json:"peers_connected"`
	Pipeline   bool            `json:"pipeline"`
	Uptime     string          `json:"uptime"`
	Toolchains json.RawMessage `json:"toolchains"`
}

type dep struct {
	Name     string `json:"name"`
	Req      string `json:"req"`
	Kind     string `json:"kind"`
	Target   string `json:"target"`
	Optional bool   `json:"optional"`
	Package  string `json:"package"`
}

type reportSummary struct {
	ID      string    `json:"id"`
	Author  string    `json:"author"`
	Trusted bool      `json:"trusted"`
	Time    time.Time `json:"time"`
	Current bool      `json:"current"`
	Outcome string    `json:"outcome"`
	Wasm    string    `json:"wasm"`
	GCReady bool      `json:"gc_ready"`
	Dual    bool      `json:"dual"`
	Score   uint64    `json:"score"`
	Gate    string    `json:"gate"`
	Reason  string    `json:"wasm_reason"`
}

type release struct {
	ID          string              `json:"id"`
	Name        string              `json:"name"`
	Version     string              `json:"version"`
	Subject     string              `json:"subject"`
	Author      string              `json:"author"`
	Published   time.Time           `json:"published"`
	Cksum       string              `json:"cksum"`
	Size        uint64              `json:"size"`
	Description string              `json:"description"`
	License     string              `json:"license"`
	Repository  string              `json:"repository"`
	Edition     string              `json:"edition"`
	RustVersion string              `json:"rust_version"`
	Links       string              `json:"links"`
	Keywords    []string            `json:"keywords"`
	Deps        []dep               `json:"deps"`
	Features    map[string][]string `json:"features"`
	Yanked      bool                `json:"yanked"`
	Yank        *struct {
		By     string    `json:"by"`
		At     time.Time `json:"at"`
		Reason string    `json:"reason"`
	} `json:"yank"`
	Unauthorized bool            `json:"unauthorized"`
	Witnessed    *time.Time      `json:"witnessed"`
	Backdated    bool            `json:"backdated"`
	Conflicts    []string        `json:"conflicts"`
	Claims       []claim         `json:"claims"`
	Owners       []string        `json:"owners"`
	Wasm         string          `json:"wasm"`
	WasmReason   string          `json:"wasm_reason"`
	GCReady      bool            `json:"gc_ready"`
	Dual         bool            `json:"dual"`
	Score        *uint64         `json:"score"`
	Gate         string          `json:"gate"`
	GateReasons  []string        `json:"gate_reasons"`
	Reports      []reportSummary `json:"reports"`
	Reviews      []struct {
		Author  string `json:"author"`
		Trusted bool   `json:"trusted"`
		Verdict string `json:"verdict"`
		Comment string `json:"comment"`
	} `json:"reviews"`
}

type page struct {
	Crates     []release `json:"crates"`
	NextCursor string    `json:"next_cursor"`
}

type jobEvent struct {
	Time    time.Time `json:"time"`
	Stage   string    `json:"stage"`
	Target  string    `json:"target"`
	State   string    `json:"state"`
	Message string    `json:"message"`
}

type job struct {
	ID       uint64     `json:"id"`
	Subject  string     `json:"subject"`
	State    string     `json:"state"`
	Created  time.Time  `json:"created"`
	Started  time.Time  `json:"started"`
	Finished time.Time  `json:"finished"`
	Report   string     `json:"report"`
	Outcome  string     `json:"outcome"`
	Error    string     `json:"error"`
	Events   []jobEvent `json:"events"`
}

type peerInfo struct {
	ID         string    `json:"id"`
	Addrs      []string  `json:"addrs"`
	Connected  bool      `json:"connected"`
	Saved      bool      `json:"saved"`
	LastSync   time.Time `json:"last_sync"`
	LastError  string    `json:"last_error"`
	RecordsIn  int64     `json:"records_in"`
	RecordsOut int64     `json:"records_out"`
	Score      float64   `json:"score"`
}

type syncStats struct {
	RecordsIn  int64 `json:"records_in"`
	RecordsOut int64 `json:"records_out"`
	BlobsIn    int64 `json:"blobs_in"`
	BlobsOut   int64 `json:"blobs_out"`
	BytesIn    int64 `json:"bytes_in"`
	BytesOut   int64 `json:"bytes_out"`
	RoundTrips int   `json:"round_trips"`
}

type syncReport struct {
	syncStats
	DurationNS int64 `json:"duration_ns"`
	Peers      []struct {
		Peer string `json:"peer"`
		syncStats
		DurationNS int64  `json:"duration_ns"`
		Error      string `json:"error"`
	} `json:"peers"`
}

// claim is another release of the same name@version that did not win.
type claim struct {
	ID         string     `json:"id"`
	Author     string     `json:"author"`
	Claimed    time.Time  `json:"claimed"`
	Witnessed  *time.Time `json:"witnessed"`
	Authorized bool       `json:"authorized"`
	Backdated  bool       `json:"backdated"`
}
