package api

import (
	"bytes"
	"encoding/xml"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	registry "github.com/wasmrust/wasm-crates-registry"
	"github.com/wasmrust/wasm-crates-registry/node"
)

// svgFacts parses an SVG badge as XML (every token, so that a broken
// document fails) and returns its width and its text nodes.
func svgFacts(t *testing.T, body []byte) (width int, texts []string) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(body))
	inText := false
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("badge is not well-formed XML: %v\n%s", err, body)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if tok.Name.Local == "svg" {
				if tok.Name.Space != "http://www.w3.org/2000/svg" {
					t.Errorf("svg element in namespace %q", tok.Name.Space)
				}
				for _, a := range tok.Attr {
					if a.Name.Local == "width" {
						width, _ = strconv.Atoi(a.Value)
					}
				}
			}
			inText = tok.Name.Local == "text"
		case xml.CharData:
			if inText {
				texts = append(texts, string(tok))
			}
		case xml.EndElement:
			inText = false
		}
	}
	return width, texts
}

func TestBadges(t *testing.T) {
	f := newFixture(t)
	for _, v := range []string{"1.0.0", "1.1.0"} {
		if r := f.do("POST", "/crates", crate(t, "badged", v, ""), true); r.status != 201 {
			t.Fatalf("submit %s: %d %s", v, r.status, r.body)
		}
	}
	shield := func(path string) (resp, shieldsBadge) {
		t.Helper()
		r := f.do("GET", path, nil, false)
		var b shieldsBadge
		r.json(t, &b)
		return r, b
	}

	// Untested: grey, the newest version.
	r, b := shield("/badges/badged.json")
	if r.status != 200 || b.SchemaVersion != 1 || b.Label != "wasm" || b.Message != "untested" || b.Color != greyColor || b.IsError {
		t.Fatalf("untested badge: %d %+v", r.status, b)
	}
	if r.header.Get("Access-Control-Allow-Origin") != "*" || r.header.Get("Cache-Control") != "public, max-age=60" {
		t.Errorf("badge headers: %v", r.header)
	}

	// A trusted tester's report on 1.1.0.
	var rel node.Release
	f.do("GET", "/crates/badged@1.1.0", nil, false).json(t, &rel)
	tester, _ := registry.GenerateKey(nil)
	rep, err := registry.Sign(tester, registry.KindReport, rel.Subject, &registry.ReportBody{
		Release: rel.ID.Bytes(), Outcome: registry.OutcomeTestPass, Wasm: registry.WasmCompatible, Score: 88, Gate: registry.GateCurated,
	}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if r := f.do("POST", "/records", rep.Bytes(), true); r.status != 201 {
		t.Fatalf("import report: %d %s", r.status, r.body)
	}
	if r := f.do("PUT", "/registry", []byte(`{"trust":{"keys":["`+tester.Public().PeerID()+`"]}}`), true); r.status != 200 {
		t.Fatalf("trust tester: %d %s", r.status, r.body)
	}
	f.do("GET", "/crates/badged@1.1.0", nil, false).json(t, &rel)
	want := "compatible · 88 · " + rel.Gate
	if rel.Gate == "" {
		t.Fatalf("a trusted report gave no gate: %+v", rel)
	}
	r, b = shield("/badges/badged.json")
	if r.status != 200 || b.Message != want || b.Color != "44cc11" {
		t.Fatalf("tested badge: %d %+v, want message %q in green", r.status, b, want)
	}
	r = f.do("GET", "/badges/badged.svg", nil, false)
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "image/svg+xml") {
		t.Fatalf("svg badge: %d %s", r.status, r.header.Get("Content-Type"))
	}
	width, texts := svgFacts(t, r.body)
	if len(texts) != 2 || texts[0] != "wasm" || texts[1] != want {
		t.Errorf("svg badge texts %q, want [wasm %q]", texts, want)
	}
	if wantW := textWidth("wasm") + textWidth(want) + 20; width != wantW {
		t.Errorf("svg badge width %d, want %d", width, wantW)
	}

	// A named version, and the newest after a yank.
	if _, b := shield("/badges/badged.json?version=1.0.0"); b.Label != "wasm 1.0.0" || b.Message != "untested" {
		t.Errorf("badge of 1.0.0: %+v", b)
	}
	if r := f.do("PUT", "/crates/badged@1.1.0", []byte(`{"yanked":true}`), true); r.status != 200 {
		t.Fatalf("yank: %d %s", r.status, r.body)
	}
	if _, b := shield("/badges/badged.json"); b.Message != "untested" {
		t.Errorf("after yanking 1.1.0 the badge shows %+v, want 1.0.0's", b)
	}
	if _, b := shield("/badges/badged.json?version=1.1.0"); !strings.HasSuffix(b.Message, " · yanked") {
		t.Errorf("a yanked version's badge: %+v", b)
	}
}

// TestBadgesOfHostileRequests: what a badge cannot be drawn for is still a
// well-formed badge with a 4xx status, and the JSON carries the error.
func TestBadgesOfHostileRequests(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		path, code, message string
		status              int
	}{
		{"/badges/nosuch.json", "not_found", "not found", 404},
		{"/badges/bad%20name%3Cscript%3E.json", "invalid", "invalid name", 400},
		{"/badges/nosuch.json?version=%3Cx%3E", "not_found", "not found", 404},
	}
	for _, c := range cases {
		r := f.do("GET", c.path, nil, false)
		var b shieldsBadge
		r.json(t, &b)
		if r.status != c.status || !b.IsError || b.Error == nil || b.Error.Code != c.code || b.Message != c.message || b.Color != greyColor {
			t.Errorf("%s: %d %s", c.path, r.status, r.body)
		}
		svg := f.do("GET", strings.Replace(c.path, ".json", ".svg", 1), nil, false)
		if svg.status != c.status {
			t.Errorf("%s as svg: status %d", c.path, svg.status)
		}
		if _, texts := svgFacts(t, svg.body); len(texts) != 2 || texts[1] != c.message {
			t.Errorf("%s as svg: texts %q", c.path, texts)
		}
	}
	if r := f.do("GET", "/badges/x.png", nil, false); r.status != 404 || r.errCode(t) != "not_found" {
		t.Errorf("a png badge: %d %s", r.status, r.body)
	}
	if r := f.do("POST", "/badges/x.svg", nil, true); r.status != 405 {
		t.Errorf("POST to a badge: %d", r.status)
	}
	// Text that needs escaping never breaks the document.
	width, texts := svgFacts(t, badgeSVG(badge{Label: `a<b>&"c'`, Message: "</svg><script>", Color: greyColor}))
	if width == 0 || len(texts) != 2 || texts[0] != `a<b>&"c'` || texts[1] != "</svg><script>" {
		t.Errorf("escaped badge: width %d texts %q", width, texts)
	}
}
