package registry_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/internal/testkit"
)

// TestResolveScripts runs the conflict rules of DESIGN.md §2 ("Conflict
// rules", "Authority and time") as data: each testdata/resolve/*.txt file
// is a script of signed records and of the state they must resolve to,
// checked against Resolve and NewTrust. Every resolve is run twice, on the
// records in script order and reversed: delivery order never changes the
// state. The script language is described in docs/TESTING.md.
func TestResolveScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/resolve/*.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no scripts under testdata/resolve")
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) { runScript(t, f) })
	}
}

// script is the world a resolve script builds up.
type script struct {
	t        *testing.T
	file     string
	line     int
	authors  map[string]registry.PrivateKey
	keyNames map[string]string // by key bytes
	roots    []registry.PublicKey
	recs     []*registry.Record
	recNames map[registry.ID]string
	byName   map[string]*registry.Record
	witness  map[registry.ID]int64
	now      time.Time
	maxSkew  time.Duration
}

func runScript(t *testing.T, file string) {
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := &script{t: t, file: file, authors: map[string]registry.PrivateKey{}, keyNames: map[string]string{},
		recNames: map[registry.ID]string{}, byName: map[string]*registry.Record{}, witness: map[registry.ID]int64{},
		now: time.UnixMilli(1_000_000_000_000), maxSkew: 2 * time.Minute}
	sc := bufio.NewScanner(f)
	resolves := 0
	for sc.Scan() {
		s.line++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if line != "resolve" {
			s.directive(strings.Fields(line))
			continue
		}
		resolves++
		at := s.line
		if !sc.Scan() || strings.TrimSpace(sc.Text()) != "----" {
			s.fatalf("resolve must be followed by a ---- line and the expected state")
		}
		s.line++
		var want []string
		for sc.Scan() {
			s.line++
			l := strings.TrimRight(sc.Text(), " \t")
			if l == "" {
				break
			}
			want = append(want, l)
		}
		got := s.resolve(s.recs)
		rev := slices.Clone(s.recs)
		slices.Reverse(rev)
		if again := s.resolve(rev); !slices.Equal(got, again) {
			t.Errorf("%s:%d: the state depends on delivery order:\nin order:\n%s\nreversed:\n%s", file, at, strings.Join(got, "\n"), strings.Join(again, "\n"))
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s:%d: resolved state differs\ngot:\n%s\nwant:\n%s", file, at, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if resolves == 0 {
		t.Fatalf("%s: no resolve", file)
	}
}

func (s *script) fatalf(format string, args ...any) {
	s.t.Helper()
	s.t.Fatalf("%s:%d: %s", s.file, s.line, fmt.Sprintf(format, args...))
}

func (s *script) num(v string) int64 {
	s.t.Helper()
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		s.fatalf("%q is not an integer", v)
	}
	return n
}

func (s *script) author(name string) registry.PrivateKey {
	s.t.Helper()
	k, ok := s.authors[name]
	if !ok {
		s.fatalf("unknown author %q (declare it with: author %s <seed>)", name, name)
	}
	return k
}

func (s *script) keyName(k registry.PublicKey) string {
	if n, ok := s.keyNames[string(k)]; ok {
		return n
	}
	return "?" + k.PeerID()
}

func (s *script) keyList(ks []registry.PublicKey) string {
	var out []string
	for _, k := range ks {
		out = append(out, s.keyName(k))
	}
	slices.Sort(out)
	return strings.Join(out, ",")
}

func (s *script) recName(r *registry.Record) string {
	if n, ok := s.recNames[r.ID()]; ok {
		return n
	}
	return "?" + r.ID().String()
}

func (s *script) recList(rs []*registry.Record) string {
	var out []string
	for _, r := range rs {
		out = append(out, s.recName(r))
	}
	return strings.Join(out, " ")
}

// directive applies one line of a script:
//
//	author NAME SEED                     NAME signs with testkit.Key(SEED)
//	root NAME...                         NAME is a trust root
//	now MS | maxskew MS                  the resolver's clock and MaxSkew, in milliseconds
//	order A < B                          author A's key (or record A's ID) sorts before B's
//	witness REC at MS                    a trusted checkpoint included REC at MS
//	KIND REC SUBJECT by NAME at MS [k=v] a record named REC, signed by NAME at MS
//
// Record kinds and their options: release (no options; the body is unique
// per REC), yank [yanked=false], owners keys=NAME,..., review
// verdict=approve|reject|flag, key roles=ROLE,... [scopes=PAT,...]
// [revoked] (SUBJECT is the name of the key granted).
func (s *script) directive(f []string) {
	s.t.Helper()
	switch f[0] {
	case "author":
		if len(f) != 3 {
			s.fatalf("usage: author NAME SEED")
		}
		seed := s.num(f[2])
		if seed < 0 || seed > 255 {
			s.fatalf("seed %d is not a byte", seed)
		}
		if _, dup := s.authors[f[1]]; dup {
			s.fatalf("author %q declared twice", f[1])
		}
		k := testkit.Key(byte(seed))
		if _, dup := s.keyNames[string(k.Public())]; dup {
			s.fatalf("seed %d is taken", seed)
		}
		s.authors[f[1]] = k
		s.keyNames[string(k.Public())] = f[1]
		return
	case "root":
		for _, n := range f[1:] {
			s.roots = append(s.roots, s.author(n).Public())
		}
		return
	case "now", "maxskew":
		if len(f) != 2 {
			s.fatalf("usage: %s MS", f[0])
		}
	}
	switch f[0] {
	case "now":
		s.now = time.UnixMilli(s.num(f[1]))
		return
	case "maxskew":
		s.maxSkew = time.Duration(s.num(f[1])) * time.Millisecond
		return
	case "order":
		// order A < B: author A's key, or record A's ID, sorts before B's
		// (so a tie at equal time goes to B).
		if len(f) != 4 || f[2] != "<" {
			s.fatalf("usage: order A < B")
		}
		var c int
		if ka, ok := s.authors[f[1]]; ok {
			c = strings.Compare(string(ka.Public()), string(s.author(f[3]).Public()))
		} else {
			ra, ok1 := s.byName[f[1]]
			rb, ok2 := s.byName[f[3]]
			if !ok1 || !ok2 {
				s.fatalf("order compares two authors or two records")
			}
			c = ra.ID().Compare(rb.ID())
		}
		if c >= 0 {
			s.fatalf("%s does not sort before %s", f[1], f[3])
		}
		return
	case "witness":
		if len(f) != 4 || f[2] != "at" {
			s.fatalf("usage: witness REC at MS")
		}
		r, ok := s.byName[f[1]]
		if !ok {
			s.fatalf("unknown record %q", f[1])
		}
		s.witness[r.ID()] = s.num(f[3])
		return
	}
	if len(f) < 7 || f[3] != "by" || f[5] != "at" {
		s.fatalf("usage: KIND REC SUBJECT by NAME at MS [key=value...]")
	}
	kind, name, subject, key, at := registry.Kind(f[0]), f[1], f[2], s.author(f[4]), s.num(f[6])
	if _, dup := s.byName[name]; dup {
		s.fatalf("record %q defined twice", name)
	}
	opts := map[string]string{}
	for _, o := range f[7:] {
		k, v, _ := strings.Cut(o, "=")
		opts[k] = v
	}
	var body any
	switch kind {
	case registry.KindRelease:
		crate, version, ok := strings.Cut(subject, "@")
		if !ok {
			s.fatalf("a release's subject is name@version")
		}
		sum := sha256.Sum256([]byte(name))
		body = &registry.ReleaseBody{Name: crate, Version: version, Cksum: hex.EncodeToString(sum[:]), Blob: registry.Sum([]byte(name)).Bytes(), Size: uint64(len(name)), Description: name}
	case registry.KindYank:
		body = &registry.YankBody{Yanked: opts["yanked"] != "false"}
	case registry.KindOwners:
		var keys [][]byte
		for _, n := range strings.Split(opts["keys"], ",") {
			keys = append(keys, s.author(n).Public())
		}
		slices.SortFunc(keys, func(a, b []byte) int { return strings.Compare(string(a), string(b)) })
		body = &registry.OwnersBody{Owners: keys}
	case registry.KindReview:
		body = &registry.ReviewBody{Verdict: opts["verdict"], Comment: name}
	case registry.KindKey:
		granted := s.author(subject).Public()
		kb := &registry.KeyBody{Key: granted, Name: subject, Revoked: opts["revoked"] != "" || slices.Contains(f[7:], "revoked")}
		if v := opts["roles"]; v != "" {
			kb.Roles = strings.Split(v, ",")
		}
		if v := opts["scopes"]; v != "" {
			kb.Scopes = strings.Split(v, ",")
		}
		body, subject = kb, granted.KeyID()
	default:
		s.fatalf("unknown directive or kind %q", f[0])
	}
	r, err := registry.Sign(key, kind, subject, body, time.UnixMilli(at))
	if err != nil {
		s.fatalf("signing %s: %v", name, err)
	}
	s.recs = append(s.recs, r)
	s.recNames[r.ID()] = name
	s.byName[name] = r
}

// resolve renders the state recs resolve to under the script's roots, one
// fact a line, in a fixed order.
func (s *script) resolve(recs []*registry.Record) []string {
	auth := registry.NewTrust(s.roots, recs, s.now, s.maxSkew)
	witness := func(id registry.ID) (int64, bool) { t, ok := s.witness[id]; return t, ok }
	st := registry.Resolve(recs, s.now, s.maxSkew, auth, witness)
	var out []string
	names := slices.Sorted(maps.Keys(st.Crates))
	for _, n := range names {
		cs := st.Crates[n]
		line := "crate " + n
		if cs.Founder != nil {
			line += " founder=" + s.keyName(cs.Founder) + " owners=" + s.keyList(cs.Owners.Current())
		} else {
			line += " unfounded"
		}
		out = append(out, line)
		if len(cs.RejectedOwners) > 0 {
			out = append(out, "  rejected-owners "+s.recList(cs.RejectedOwners))
		}
		for _, v := range slices.Sorted(maps.Keys(cs.Releases)) {
			rel := cs.Releases[v]
			line := rel.Subject + " release=" + s.recName(rel.Release)
			if rel.Unauthorized {
				line += " unauthorized"
			}
			if rel.Backdated {
				line += " backdated"
			}
			out = append(out, line)
			for _, c := range rel.Conflicts {
				l := "  conflict " + s.recName(c.Record)
				if c.Authorized {
					l += " authorized"
				} else {
					l += " unauthorized"
				}
				if c.Backdated {
					l += " backdated"
				}
				out = append(out, l)
			}
			if rel.Yank != nil {
				out = append(out, fmt.Sprintf("  yank %s yanked=%t", s.recName(rel.Yank), rel.Yanked))
			}
			if len(rel.Reviews) > 0 {
				out = append(out, "  reviews "+s.recList(rel.Reviews))
			}
			if len(rel.Reports) > 0 {
				out = append(out, "  reports "+s.recList(rel.Reports))
			}
			if len(rel.Superseded) > 0 {
				out = append(out, "  superseded "+s.recList(rel.Superseded))
			}
		}
		if len(cs.Orphans) > 0 {
			out = append(out, "  orphans "+s.recList(cs.Orphans))
		}
	}
	var people []string
	for k, n := range s.keyNames {
		pk := registry.PublicKey(k)
		var roles []string
		for _, role := range []string{registry.RoleAdmin, registry.RolePublisher, registry.RoleReviewer, registry.RoleTester} {
			if auth.May(pk, role, "") {
				roles = append(roles, role)
			}
		}
		if len(roles) > 0 {
			people = append(people, "may "+n+" "+strings.Join(roles, ","))
		}
	}
	slices.Sort(people)
	out = append(out, people...)
	if len(st.Future) > 0 {
		out = append(out, "future "+s.recList(st.Future))
	}
	return out
}
