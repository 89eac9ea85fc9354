package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/internal/testkit"
)

// auditEntries reads the whole audit log of d with the admin token.
func auditEntries(t *testing.T, d *daemon) []struct {
	Seq    uint64 `json:"seq"`
	Action string `json:"action"`
	Actor  string `json:"actor"`
	Record string `json:"record"`
} {
	t.Helper()
	var out []struct {
		Seq    uint64 `json:"seq"`
		Action string `json:"action"`
		Actor  string `json:"actor"`
		Record string `json:"record"`
	}
	before := uint64(0)
	for {
		var page struct {
			Entries []struct {
				Seq    uint64 `json:"seq"`
				Action string `json:"action"`
				Actor  string `json:"actor"`
				Record string `json:"record"`
			} `json:"entries"`
		}
		d.cliJSON(t, &page, "audit", "list", "--limit", "1000", "--before", fmt.Sprint(before))
		out = append(out, page.Entries...)
		if len(page.Entries) < 1000 {
			return out
		}
		before = page.Entries[len(page.Entries)-1].Seq
	}
}

// A person's token, made with the CLI, publishes what its scopes and
// crate pattern allow and gets 403 otherwise; once revoked it gets 401;
// the audit log names the person.
func TestPersonTokensEndToEnd(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, filepath.Join(dir, "data"), "--pipeline=false")
	tok := strings.TrimSpace(d.mustCLI(t, "tokens", "create", "--name", "ci", "--person", "alice", "--scope", "publish-new", "--crate", "alice-*", "--expires", "30d"))
	if !strings.HasPrefix(tok, "wcr_") {
		t.Fatalf("tokens create printed %q", tok)
	}
	write := func(name string) string {
		p := filepath.Join(dir, name+".crate")
		if err := os.WriteFile(p, makeCrate(t, name, "1.0.0", "pub fn f() {}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	d.mustCLI(t, "--token", tok, "submit", "--crate", write("alice-one"))
	_, errOut, code := d.cli(t, "--token", tok, "submit", "--crate", write("bobs-crate"))
	if code == 0 || !strings.Contains(errOut, "publish-new") {
		t.Fatalf("a crate outside the pattern: exit %d, %s", code, errOut)
	}
	_, errOut, code = d.cli(t, "--token", tok, "yank", "alice-one@1.0.0")
	if code == 0 || !strings.Contains(errOut, `"yank" scope`) {
		t.Fatalf("yank without the scope: exit %d, %s", code, errOut)
	}
	var list struct {
		Tokens []struct {
			ID     string `json:"id"`
			Person string `json:"person"`
		} `json:"tokens"`
	}
	d.cliJSON(t, &list, "tokens", "list")
	id := ""
	for _, x := range list.Tokens {
		if x.Person == "alice" {
			id = x.ID
		}
	}
	d.mustCLI(t, "tokens", "revoke", id)
	_, errOut, code = d.cli(t, "--token", tok, "submit", "--crate", write("alice-two"))
	if code == 0 || !strings.Contains(errOut, "revoked") {
		t.Fatalf("a revoked token: exit %d, %s", code, errOut)
	}
	found := false
	for _, e := range auditEntries(t, d) {
		if e.Action == "submit" && strings.HasPrefix(e.Actor, "alice (token ci)") {
			found = true
		}
	}
	if !found {
		t.Fatal("the audit log does not name alice for her submission")
	}
	if out := d.mustCLI(t, "audit", "verify"); !strings.Contains(out, "intact") {
		t.Fatalf("audit verify: %s", out)
	}
}

// 1,000 concurrent writes of several kinds: every acknowledged write has
// exactly one audit entry, and the chain verifies.
func TestConcurrentWritesAreAuditedOnce(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	d := startDaemon(t, dataDir, "--pipeline=false")
	b, err := os.ReadFile(filepath.Join(dataDir, "admin-token"))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(b))
	do := func(method, path string, body []byte) (int, []byte) {
		req, _ := http.NewRequest(method, d.url+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return 0, nil
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, out
	}
	var mu sync.Mutex
	acked := map[string]int{} // record ID → acknowledgements
	settings := 0
	var wg sync.WaitGroup
	const workers, each = 8, 125
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var mine []string
			for i := 0; i < each; i++ {
				var status int
				var out []byte
				switch {
				case i%4 == 0 || len(mine) == 0:
					name := fmt.Sprintf("audit-%d-%d", w, i)
					status, out = do("POST", "/crates", makeCrate(t, name, "1.0.0", "pub fn f() {}\n"))
					if status == 201 {
						mine = append(mine, name+"@1.0.0")
					}
				case i%4 == 1:
					status, out = do("PUT", "/crates/"+mine[len(mine)-1], []byte(fmt.Sprintf(`{"yanked":%v}`, i%8 == 1)))
				case i%4 == 2:
					status, out = do("PUT", "/crates/"+mine[len(mine)-1], []byte(`{"review":{"verdict":"approve","comment":"`+fmt.Sprint(i)+`"}}`))
				default:
					status, out = do("PUT", "/registry", []byte(fmt.Sprintf(`{"description":"writer %d step %d"}`, w, i)))
					if status == 200 {
						mu.Lock()
						settings++
						mu.Unlock()
					}
					continue
				}
				if status/100 != 2 {
					t.Errorf("write %d of worker %d: %d %s", i, w, status, out)
					continue
				}
				var res struct {
					ID      string `json:"id"`
					Release struct {
						ID string `json:"id"`
					} `json:"release"`
				}
				json.Unmarshal(out, &res)
				mu.Lock()
				if res.Release.ID != "" {
					acked[res.Release.ID]++
				}
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	entries := auditEntries(t, d)
	byRecord := map[string]int{}
	settingsEntries := 0
	for _, e := range entries {
		if e.Record != "" {
			byRecord[e.Record]++
		}
		if e.Action == "settings" {
			settingsEntries++
		}
	}
	for id := range acked {
		if byRecord[id] != 1 {
			t.Errorf("acknowledged release %s has %d audit entries", id, byRecord[id])
		}
	}
	if settingsEntries != settings {
		t.Errorf("%d acknowledged settings changes, %d audit entries", settings, settingsEntries)
	}
	writes := 0
	for _, e := range entries {
		switch e.Action {
		case "submit", "yank", "unyank", "review", "settings":
			writes++
		}
	}
	if writes < workers*each/2 || len(acked) == 0 {
		t.Fatalf("only %d audited writes for %d requests", writes, workers*each)
	}
	if out := d.mustCLI(t, "audit", "verify"); !strings.Contains(out, "intact") {
		t.Fatalf("audit verify: %s", out)
	}
	t.Logf("%d audit entries, %d acknowledged releases, %d settings changes", len(entries), len(acked), settings)
}

// PUBLIC_KEY makes a key a trust root from the first start: a release it
// signed and that reaches the node is authorized, where a node without
// the setting shows it as an untrusted claim. A key the daemon cannot read
// stops it with a sentence saying so.
func TestPublicKeyIsATrustRootFromTheStart(t *testing.T) {
	op := testkit.Key(61)
	crate := makeCrate(t, "operators", "1.0.0", "pub fn f() {}\n")
	sum := registry.Sum(crate)
	rec, err := registry.Sign(op, registry.KindRelease, "operators@1.0.0", &registry.ReleaseBody{Name: "operators", Version: "1.0.0", Cksum: sum.Hex(), Blob: sum.Bytes(), Size: uint64(len(crate))}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	recFile := filepath.Join(dir, "release.cbor")
	if err := os.WriteFile(recFile, rec.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	unauthorized := func(d *daemon) bool {
		t.Helper()
		req, _ := http.NewRequest("POST", d.url+"/records", bytes.NewReader(rec.Bytes()))
		tok, _ := os.ReadFile(filepath.Join(d.dataDir, "admin-token"))
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("importing the operator's release: %d", resp.StatusCode)
		}
		var rel struct {
			Unauthorized bool `json:"unauthorized"`
		}
		if err := getJSON(d.url+"/crates/operators@1.0.0", &rel); err != nil {
			t.Fatal(err)
		}
		return rel.Unauthorized
	}
	plain := startDaemon(t, filepath.Join(dir, "plain"), "--pipeline=false", "--p2p=false")
	if !unauthorized(plain) {
		t.Fatal("without PUBLIC_KEY, a stranger's release is authorized")
	}
	withKey := startDaemon(t, filepath.Join(dir, "with"), "--pipeline=false", "--p2p=false", "--public-key", hex.EncodeToString(op.Public().Ed25519()))
	if unauthorized(withKey) {
		t.Fatal("with PUBLIC_KEY set to its key, the operator's release is an untrusted claim")
	}
	cmd := exec.Command(daemonBin(t), "--database-url", filepath.Join(dir, "bad"), "--port", "0", "--p2p=false")
	cmd.Env = append(os.Environ(), "PUBLIC_KEY=not-a-key")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "PUBLIC_KEY") || !strings.Contains(string(out), "not an ed25519 public key") {
		t.Fatalf("a bad PUBLIC_KEY: %v\n%s", err, out)
	}
}

// TestDeveloperKeysAcrossNodes: a developer's key, registered on A, signs
// a release on the developer's machine; B, which trusts A, accepts it with
// the developer as owner. A second developer cannot yank it on either
// node until the owner adds them; a revoked key can do nothing.
func TestDeveloperKeysAcrossNodes(t *testing.T) {
	a := startDaemon(t, filepath.Join(t.TempDir(), "a"), "--pipeline=false")
	var ha healthJSON
	a.cliJSON(t, &ha, "health")
	b := startDaemon(t, filepath.Join(t.TempDir(), "b"), "--pipeline=false", "--peer", ha.Addrs[0])
	keys := t.TempDir()
	dev := func(d *daemon, key string, args ...string) (string, string, int) {
		return d.cli(t, append([]string{"--key-dir", keys, "--key", key}, args...)...)
	}
	mustDev := func(d *daemon, key string, args ...string) string {
		t.Helper()
		out, errOut, code := dev(d, key, args...)
		if code != 0 {
			t.Fatalf("%s %v: exit %d\n%s%s", key, args, code, out, errOut)
		}
		return out
	}
	id1 := strings.TrimSpace(a.mustCLI(t, "--key-dir", keys, "keys", "generate", "--name", "dev1"))
	id2 := strings.TrimSpace(a.mustCLI(t, "--key-dir", keys, "keys", "generate", "--name", "dev2"))
	if _, errOut, code := a.cli(t, "--key-dir", keys, "keys", "generate", "--name", "dev1"); code == 0 || !strings.Contains(errOut, "never overwritten") {
		t.Fatalf("generating over an existing key: %d %s", code, errOut)
	}
	if fi, err := os.Stat(filepath.Join(keys, "dev1.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}

	crate := filepath.Join(t.TempDir(), "devcrate.crate")
	os.WriteFile(crate, makeCrate(t, "devcrate", "1.0.0", "pub fn f() {}\n"), 0o644)
	// Not registered yet: refused.
	if _, errOut, code := dev(a, "dev1", "submit", "--crate", crate); code == 0 || !strings.Contains(errOut, "not registered") {
		t.Fatalf("an unregistered key publishes: %d %s", code, errOut)
	}
	for _, k := range []string{"dev1", "dev2"} {
		a.mustCLI(t, "--key-dir", keys, "keys", "register", "--name", k)
	}
	a.mustCLI(t, "keys", "approve", id1)
	a.mustCLI(t, "keys", "approve", id2)
	mustDev(a, "dev1", "submit", "--crate", crate)

	// B trusts A, so A's key records make dev1 a publisher there too.
	eventually(t, 30*time.Second, "dev1's release reaches B authorized, owned by dev1", func() bool {
		var r authorityReleaseJSON
		out, _, code := b.cli(t, "--json", "show", "devcrate@1.0.0")
		return code == 0 && json.Unmarshal([]byte(out), &r) == nil && !r.Unauthorized && len(r.Owners) == 1 && r.Owners[0] == id1
	})
	// dev2 is registered but no owner: refused on both nodes.
	for _, d := range []*daemon{a, b} {
		if _, errOut, code := dev(d, "dev2", "yank", "devcrate@1.0.0"); code == 0 || !strings.Contains(errOut, "not an owner") {
			t.Fatalf("dev2 yanks a crate it does not own: %d %s", code, errOut)
		}
	}
	// The owner adds dev2, who then can yank, on B as well.
	mustDev(a, "dev1", "owners", "add", "devcrate", id2)
	eventually(t, 30*time.Second, "B sees dev2 as an owner", func() bool {
		out, _, code := b.cli(t, "owners", "devcrate")
		return code == 0 && strings.Contains(out, id2)
	})
	mustDev(b, "dev2", "yank", "devcrate@1.0.0")
	eventually(t, 30*time.Second, "A sees the yank B took from dev2", func() bool {
		var r releaseJSON
		out, _, code := a.cli(t, "--json", "show", "devcrate@1.0.0")
		return code == 0 && json.Unmarshal([]byte(out), &r) == nil && r.Yanked
	})
	// Revoked on A, dev2 can do nothing more, there or (once the key
	// record arrives) on B.
	a.mustCLI(t, "keys", "revoke", id2)
	if _, errOut, code := dev(a, "dev2", "unyank", "devcrate@1.0.0"); code == 0 || !strings.Contains(errOut, "not registered") {
		t.Fatalf("a revoked key unyanks on A: %d %s", code, errOut)
	}
	eventually(t, 30*time.Second, "B refuses the revoked key", func() bool {
		_, errOut, code := dev(b, "dev2", "unyank", "devcrate@1.0.0")
		return code != 0 && strings.Contains(errOut, "not registered")
	})
}
