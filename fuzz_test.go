package registry

import "testing"

func FuzzDecodeRecord(f *testing.F) {
	for _, r := range goldenRecords(f) {
		f.Add(r.Bytes())
	}
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRecord(b)
		if err != nil {
			return
		}
		// Whatever decodes must be canonical: its bytes are the input, and it
		// decodes again to the same ID.
		if string(r.Bytes()) != string(b) || r.ID() != Sum(b) {
			t.Fatal("decoded record does not keep its bytes")
		}
		if _, err := DecodeRecordWithID(b, r.ID()); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzParseCrate(f *testing.F) {
	f.Add(makeCrate(f, entry{name: "ok-1.0.0/Cargo.toml", body: "[package]\nname = \"ok\"\nversion = \"1.0.0\"\n"}))
	f.Add(makeCrate(f, entry{name: "demo-0.3.1-beta.2/Cargo.toml", body: fullManifest}))
	f.Add([]byte{0x1f, 0x8b})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseCrate(b, 1<<20)
		if err != nil {
			if KindOf(err) == EINTERNAL {
				t.Fatalf("internal error on bad input: %v", err)
			}
			return
		}
		if _, err := Sign(goldenKey(t, 1), KindRelease, ReleaseSubject(r.Name, r.Version), r, goldenTime); err != nil {
			t.Fatalf("accepted crate does not make a valid release: %v", err)
		}
	})
}

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(fullManifest))
	f.Add([]byte("[package]\nname = \"x\"\nversion = \"0.1.0\"\n[target.'cfg(unix)'.dependencies]\nlibc = \"0.2\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseManifest(b)
		if err != nil {
			if KindOf(err) != EINVALID {
				t.Fatalf("kind %s on bad input", KindOf(err))
			}
			return
		}
		if ValidateCrateName(r.Name) != nil || ValidateVersion(r.Version) != nil {
			t.Fatal("accepted an invalid name or version")
		}
	})
}

func FuzzParseID(f *testing.F) {
	id := Sum([]byte("x"))
	f.Add(id.String())
	f.Add(id.Base58())
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseID(s)
		if err != nil {
			return
		}
		if again, err := ParseID(got.String()); err != nil || again != got {
			t.Fatal("ID does not round-trip")
		}
	})
}
