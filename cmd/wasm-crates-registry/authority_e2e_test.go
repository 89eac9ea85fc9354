package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
)

type claimJSON struct {
	ID         string `json:"id"`
	Authorized bool   `json:"authorized"`
	Backdated  bool   `json:"backdated"`
}

type authorityReleaseJSON struct {
	ID           string      `json:"id"`
	Cksum        string      `json:"cksum"`
	Yanked       bool        `json:"yanked"`
	Unauthorized bool        `json:"unauthorized"`
	Witnessed    *time.Time  `json:"witnessed"`
	Owners       []string    `json:"owners"`
	Claims       []claimJSON `json:"claims"`
}

// postRecord imports a signed record into d through POST /records with d's
// admin token.
func postRecord(t *testing.T, d *daemon, r *registry.Record) {
	t.Helper()
	tok, err := os.ReadFile(filepath.Join(d.dataDir, "admin-token"))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, d.url+"/records", bytes.NewReader(r.Bytes()))
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	req.Header.Set("Content-Type", "application/cbor")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode/100 != 2 {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("POST /records: %s %s", res.Status, b)
	}
}

// TestBackdatedTakeoverFails is the takeover an attacker tried (DESIGN.md
// §2, "Authority and time"): a fresh key outside every trust set signs
// releases, an owners record and a yank for the victim's crate, all dated
// 1970, hands them to its own node, which dials the victim's node. On the
// victim's node the crate keeps its owner, its index, its downloads and
// its owner's yank; the attacker's records show as untrusted claims.
func TestBackdatedTakeoverFails(t *testing.T) {
	v := startDaemon(t, filepath.Join(t.TempDir(), "victim"), "--pipeline=false")
	var hv healthJSON
	v.cliJSON(t, &hv, "health")
	fixture := filepath.Join(repoRoot(t), "testdata", "crates", "wcr-fixture-add", "Cargo.toml")
	v.mustCLI(t, "submit", "--manifest", fixture)
	var real authorityReleaseJSON
	v.cliJSON(t, &real, "show", "wcr-fixture-add@0.1.0")
	eventually(t, 20*time.Second, "the victim's release was not witnessed by its own checkpoint", func() bool {
		var r authorityReleaseJSON
		v.cliJSON(t, &r, "show", "wcr-fixture-add@0.1.0")
		return r.Witnessed != nil
	})

	// The attacker's node joins the victim; the victim never trusted it.
	x := startDaemon(t, filepath.Join(t.TempDir(), "attacker"), "--pipeline=false", "--peer", hv.Addrs[0])
	key, err := registry.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	epoch := time.UnixMilli(1000)
	fakeRelease := func(version, content string) *registry.Record {
		crate := makeCrate(t, "wcr-fixture-add", version, content)
		sum := sha256.Sum256(crate)
		body := &registry.ReleaseBody{Name: "wcr-fixture-add", Version: version, Cksum: hex.EncodeToString(sum[:]),
			Blob: registry.Sum(crate).Bytes(), Size: uint64(len(crate))}
		r, err := registry.Sign(key, registry.KindRelease, "wcr-fixture-add@"+version, body, epoch)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	sign := func(kind registry.Kind, subject string, body any) *registry.Record {
		r, err := registry.Sign(key, kind, subject, body, epoch)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	attack := []*registry.Record{
		fakeRelease("0.0.1", "pub fn pwned() {}"),
		fakeRelease("0.1.0", "pub fn replaced() {}"),
		sign(registry.KindOwners, "wcr-fixture-add", registry.NewOwnersBody([]registry.PublicKey{key.Public()})),
		sign(registry.KindYank, "wcr-fixture-add@0.1.0", &registry.YankBody{Yanked: true, Reason: "mine now"}),
	}
	for _, r := range attack {
		postRecord(t, x, r)
	}
	eventually(t, 30*time.Second, "the attacker's records did not reach the victim's node", func() bool {
		for _, r := range attack {
			if _, _, code := v.cli(t, "record", r.ID().String()); code != 0 {
				return false
			}
		}
		return true
	})

	// Owners, winner, yank state: unchanged.
	var after authorityReleaseJSON
	v.cliJSON(t, &after, "show", "wcr-fixture-add@0.1.0")
	if after.ID != real.ID || after.Yanked || after.Unauthorized || after.Cksum != real.Cksum {
		t.Fatalf("the victim's 0.1.0 changed: %+v, was %+v", after, real)
	}
	if len(after.Owners) != 1 || after.Owners[0] != hv.PeerID {
		t.Fatalf("owners %v, want only the victim %s", after.Owners, hv.PeerID)
	}
	var claim *claimJSON
	for i := range after.Claims {
		if after.Claims[i].ID == attack[1].ID().String() {
			claim = &after.Claims[i]
		}
	}
	if claim == nil || claim.Authorized {
		t.Fatalf("the attacker's 0.1.0 is not shown as an unauthorized claim: %+v", after.Claims)
	}
	var fake authorityReleaseJSON
	v.cliJSON(t, &fake, "show", "wcr-fixture-add@0.0.1")
	if !fake.Unauthorized {
		t.Fatalf("the attacker's 0.0.1 is not an untrusted claim: %+v", fake)
	}
	show := v.mustCLI(t, "show", "wcr-fixture-add@0.0.1")
	if !strings.Contains(show, "untrusted claim") {
		t.Fatalf("show does not say the release is an untrusted claim:\n%s", show)
	}

	// The Cargo index serves only the owner's release.
	res, err := http.Get(v.url + "/index/wc/r-/wcr-fixture-add")
	if err != nil {
		t.Fatal(err)
	}
	idx, _ := io.ReadAll(res.Body)
	res.Body.Close()
	lines := strings.Split(strings.TrimSpace(string(idx)), "\n")
	if res.StatusCode != 200 || len(lines) != 1 {
		t.Fatalf("index: %s\n%s", res.Status, idx)
	}
	var line struct {
		Vers   string `json:"vers"`
		Cksum  string `json:"cksum"`
		Yanked bool   `json:"yanked"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &line); err != nil || line.Vers != "0.1.0" || line.Cksum != real.Cksum || line.Yanked {
		t.Fatalf("index line %q (%v)", lines[0], err)
	}

	// Downloads: the owner's release is served, the claim is refused.
	dl := v.mustCLI(t, "download", "-o", filepath.Join(t.TempDir(), "real.crate"), "wcr-fixture-add@0.1.0")
	if !strings.Contains(dl, "cksum verified") {
		t.Fatalf("download: %s", dl)
	}
	if _, _, code := v.cli(t, "download", "-o", filepath.Join(t.TempDir(), "fake.crate"), "wcr-fixture-add@0.0.1"); code == 0 {
		t.Fatal("the untrusted claim was served for download")
	}

	// A name the attacker claimed first is still founded by the first
	// publisher this node trusts: an untrusted claim founds nothing.
	squat, err := registry.Sign(key, registry.KindRelease, "wcr-squatted@9.9.9", func() *registry.ReleaseBody {
		crate := makeCrate(t, "wcr-squatted", "9.9.9", "pub fn squatted() {}")
		sum := sha256.Sum256(crate)
		return &registry.ReleaseBody{Name: "wcr-squatted", Version: "9.9.9", Cksum: hex.EncodeToString(sum[:]),
			Blob: registry.Sum(crate).Bytes(), Size: uint64(len(crate))}
	}(), epoch)
	if err != nil {
		t.Fatal(err)
	}
	postRecord(t, x, squat)
	eventually(t, 30*time.Second, "the squatting release did not reach the victim's node", func() bool {
		_, _, code := v.cli(t, "record", squat.ID().String())
		return code == 0
	})
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "src"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "Cargo.toml"), []byte("[package]\nname = \"wcr-squatted\"\nversion = \"0.1.0\"\nedition = \"2021\"\nlicense = \"MIT\"\ndescription = \"x\"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "src", "lib.rs"), []byte("pub fn mine() {}\n"), 0o644)
	v.mustCLI(t, "submit", "--manifest", filepath.Join(dir, "Cargo.toml"))
	var sq authorityReleaseJSON
	v.cliJSON(t, &sq, "show", "wcr-squatted@0.1.0")
	if sq.Unauthorized || len(sq.Owners) != 1 || sq.Owners[0] != hv.PeerID {
		t.Fatalf("the victim's first trusted release did not found the crate: %+v", sq)
	}

	// The real owner can still yank and unyank.
	v.mustCLI(t, "yank", "--reason", "still mine", "wcr-fixture-add@0.1.0")
	v.cliJSON(t, &after, "show", "wcr-fixture-add@0.1.0")
	if !after.Yanked {
		t.Fatal("the owner's yank was refused or not applied")
	}
	v.mustCLI(t, "unyank", "wcr-fixture-add@0.1.0")
}

// TestTrustFollowsALineOfNodes: in a line A–B–C, B joined A with trust and
// C joined B with trust. C never heard of A, yet A's release is authorized
// on C, because B's key record vouches for A. A node D that C joined
// without trust is not vouched for: its release stays an untrusted claim
// on C.
func TestTrustFollowsALineOfNodes(t *testing.T) {
	a := startDaemon(t, filepath.Join(t.TempDir(), "a"), "--pipeline=false")
	var ha, hb healthJSON
	a.cliJSON(t, &ha, "health")
	b := startDaemon(t, filepath.Join(t.TempDir(), "b"), "--pipeline=false", "--peer", ha.Addrs[0])
	b.cliJSON(t, &hb, "health")
	d := startDaemon(t, filepath.Join(t.TempDir(), "d"), "--pipeline=false")
	var hd healthJSON
	d.cliJSON(t, &hd, "health")
	c := startDaemon(t, filepath.Join(t.TempDir(), "c"), "--pipeline=false", "--peer", hb.Addrs[0], "--peer-no-trust", hd.Addrs[0])

	a.mustCLI(t, "submit", "--manifest", filepath.Join(repoRoot(t), "testdata", "crates", "wcr-fixture-add", "Cargo.toml"))
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "src"), 0o755)
	os.WriteFile(filepath.Join(dir, "Cargo.toml"), []byte("[package]\nname = \"wcr-from-d\"\nversion = \"0.1.0\"\nedition = \"2021\"\nlicense = \"MIT\"\ndescription = \"x\"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "src", "lib.rs"), []byte("pub fn d() {}\n"), 0o644)
	d.mustCLI(t, "submit", "--manifest", filepath.Join(dir, "Cargo.toml"))

	eventually(t, 30*time.Second, "A's release did not reach C authorized", func() bool {
		var r authorityReleaseJSON
		out, _, code := c.cli(t, "--json", "show", "wcr-fixture-add@0.1.0")
		return code == 0 && json.Unmarshal([]byte(out), &r) == nil && !r.Unauthorized && len(r.Owners) == 1 && r.Owners[0] == ha.PeerID
	})
	eventually(t, 30*time.Second, "D's release did not reach C", func() bool {
		_, _, code := c.cli(t, "show", "wcr-from-d@0.1.0")
		return code == 0
	})
	var fromD authorityReleaseJSON
	c.cliJSON(t, &fromD, "show", "wcr-from-d@0.1.0")
	if !fromD.Unauthorized {
		t.Fatalf("a release by a peer C joined without trust is authorized on C: %+v", fromD)
	}
	// C's Cargo index lists A's crate and not D's.
	for _, c2 := range []struct {
		path string
		want int
	}{{"/index/wc/r-/wcr-fixture-add", 200}, {"/index/wc/r-/wcr-from-d", 404}} {
		res, err := http.Get(c.url + c2.path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != c2.want {
			t.Errorf("C's index %s: %d, want %d", c2.path, res.StatusCode, c2.want)
		}
	}
}

// nodeKey reads a daemon's key from its data directory, as an attacker who
// stole it would.
func nodeKey(t *testing.T, d *daemon) registry.PrivateKey {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d.dataDir, "node.key"))
	if err != nil {
		t.Fatal(err)
	}
	seed, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	k, err := registry.KeyFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestBackdatingWithTrustedKeysFails: keys a node trusts cannot rewrite
// what was witnessed. A removed owner's owners record and yank, dated
// inside its old window, leave it removed; a second 0.1.0 signed with the
// owner's own (stolen) key and dated 1970 loses to the witnessed first
// release and is shown as backdated evidence.
func TestBackdatingWithTrustedKeysFails(t *testing.T) {
	a := startDaemon(t, filepath.Join(t.TempDir(), "a"), "--pipeline=false")
	var ha, hb healthJSON
	a.cliJSON(t, &ha, "health")
	b := startDaemon(t, filepath.Join(t.TempDir(), "b"), "--pipeline=false", "--peer", ha.Addrs[0])
	b.cliJSON(t, &hb, "health")
	a.mustCLI(t, "peers", "add", hb.Addrs[0]) // A trusts B: B may act once it owns the crate
	a.mustCLI(t, "submit", "--manifest", filepath.Join(repoRoot(t), "testdata", "crates", "wcr-fixture-add", "Cargo.toml"))
	var real authorityReleaseJSON
	a.cliJSON(t, &real, "show", "wcr-fixture-add@0.1.0")

	// A adds B, then removes it; both changes are witnessed in turn.
	windowStart := time.Now()
	a.mustCLI(t, "owners", "add", "wcr-fixture-add", hb.PeerID)
	time.Sleep(1500 * time.Millisecond)
	a.mustCLI(t, "owners", "remove", "wcr-fixture-add", hb.PeerID)
	eventually(t, 30*time.Second, "B did not see its removal", func() bool {
		out, _, _ := b.cli(t, "owners", "wcr-fixture-add")
		return strings.Contains(out, ha.PeerID) && !strings.Contains(out, hb.PeerID)
	})
	// A signs a checkpoint within a second of its log growing: let the
	// removal be witnessed before the backdated records exist at all.
	time.Sleep(2500 * time.Millisecond)

	// B's key, dating records inside its window as an owner.
	kb := nodeKey(t, b)
	inside := windowStart.Add(500 * time.Millisecond)
	grab, err := registry.Sign(kb, registry.KindOwners, "wcr-fixture-add", registry.NewOwnersBody([]registry.PublicKey{kb.Public()}), inside)
	if err != nil {
		t.Fatal(err)
	}
	yank, err := registry.Sign(kb, registry.KindYank, "wcr-fixture-add@0.1.0", &registry.YankBody{Yanked: true, Reason: "still mine"}, inside)
	if err != nil {
		t.Fatal(err)
	}
	// A's own key, stolen: a second 0.1.0 dated 1970.
	ka := nodeKey(t, a)
	crate := makeCrate(t, "wcr-fixture-add", "0.1.0", "pub fn evil() {}")
	sum := sha256.Sum256(crate)
	evil, err := registry.Sign(ka, registry.KindRelease, "wcr-fixture-add@0.1.0", &registry.ReleaseBody{Name: "wcr-fixture-add", Version: "0.1.0",
		Cksum: hex.EncodeToString(sum[:]), Blob: registry.Sum(crate).Bytes(), Size: uint64(len(crate))}, time.UnixMilli(1000))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*registry.Record{grab, yank, evil} {
		postRecord(t, b, r)
	}
	eventually(t, 30*time.Second, "the backdated records did not reach A", func() bool {
		for _, r := range []*registry.Record{grab, yank, evil} {
			if _, _, code := a.cli(t, "record", r.ID().String()); code != 0 {
				return false
			}
		}
		return true
	})
	eventually(t, 30*time.Second, "A did not witness the backdated records", func() bool {
		var r authorityReleaseJSON
		a.cliJSON(t, &r, "show", "wcr-fixture-add@0.1.0")
		for _, c := range r.Claims {
			if c.ID == evil.ID().String() {
				return c.Backdated
			}
		}
		return false
	})
	var after authorityReleaseJSON
	a.cliJSON(t, &after, "show", "wcr-fixture-add@0.1.0")
	if after.ID != real.ID || after.Cksum != real.Cksum || after.Yanked {
		t.Fatalf("0.1.0 changed: %+v, was %+v", after, real)
	}
	if len(after.Owners) != 1 || after.Owners[0] != ha.PeerID {
		t.Fatalf("owners %v: the removed owner took the crate back", after.Owners)
	}
	for _, c := range after.Claims {
		if c.ID == evil.ID().String() && (!c.Authorized || !c.Backdated) {
			t.Fatalf("the stolen-key release is not shown as authorized but backdated evidence: %+v", c)
		}
	}
	show := a.mustCLI(t, "show", "wcr-fixture-add@0.1.0")
	if !strings.Contains(show, "backdated") {
		t.Fatalf("show does not say backdated:\n%s", show)
	}
}
