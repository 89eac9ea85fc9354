package registry

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestClaimGoldenVector pins the claim record's wire format
// (testdata/golden/claim.json; docs/FORMAT.md): a claim by the golden key
// 1 on golden@1.0.0 for two minutes from goldenTime, and the same claim
// with one bit of its signature flipped, which must not decode.
func TestClaimGoldenVector(t *testing.T) {
	path := filepath.Join("testdata", "golden", "claim.json")
	k := goldenKey(t, 1)
	r, err := Sign(k, KindClaim, "golden@1.0.0", &ClaimBody{Release: Sum([]byte("release")).Bytes(), Until: goldenTime.Add(2 * time.Minute).UnixMilli()}, goldenTime)
	if err != nil {
		t.Fatal(err)
	}
	w := wireRecord{Kind: string(r.Kind), Subject: r.Subject, Body: r.Body, Author: r.Author, Time: r.Time}
	sb, err := signingBytes(&w)
	if err != nil {
		t.Fatal(err)
	}
	got := goldenVector{
		Name: "claim", Seed: hex.EncodeToString(bytes.Repeat([]byte{1}, 32)), Author: r.Author.Hex(), PeerID: r.Author.PeerID(),
		Kind: string(r.Kind), Subject: r.Subject, Time: r.Time, Body: hex.EncodeToString(r.Body),
		SigningBytes: hex.EncodeToString(sb), Sig: hex.EncodeToString(r.Sig),
		Record: hex.EncodeToString(r.Bytes()), ID: r.ID().String(), ID58: r.ID().Base58(),
	}
	if *update {
		b, _ := json.MarshalIndent(got, "", "  ")
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	var want goldenVector
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	if want != got {
		t.Fatalf("the claim vector changed:\n got %+v\nwant %+v", got, want)
	}
	raw, _ := hex.DecodeString(want.Record)
	dec, err := DecodeRecord(raw)
	if err != nil {
		t.Fatal(err)
	}
	b, err := dec.DecodeBody()
	if err != nil {
		t.Fatal(err)
	}
	if cb := b.(*ClaimBody); cb.ReleaseID() != Sum([]byte("release")) || cb.Until != goldenTime.Add(2*time.Minute).UnixMilli() {
		t.Fatalf("decoded body %+v", cb)
	}
	flipped := bytes.Clone(raw)
	flipped[len(flipped)-1] ^= 1
	if _, err := DecodeRecord(flipped); err == nil {
		t.Fatal("a claim with a flipped signature bit decoded")
	}
}
