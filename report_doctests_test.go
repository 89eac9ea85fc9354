package registry

import (
	"encoding/hex"
	"testing"
	"time"
)

// Doc-test counts are field 17 of TargetReport and the extra flag field
// 18: signed bytes, never renumbered.
func TestDocTestsEncoding(t *testing.T) {
	b, err := Marshal(TargetReport{Target: "t", Outcome: "o", DocTests: &TestCounts{Passed: 2, Failed: 1}, Extra: true})
	if err != nil {
		t.Fatal(err)
	}
	// {1: "t", 4: "o", 17: {1: 2, 2: 1, 3: 0}, 18: true}
	const want = "a4016174" + "04616f" + "11a3010202010300" + "12f5"
	if got := hex.EncodeToString(b); got != want {
		t.Errorf("encoding\n got %s\nwant %s", got, want)
	}
	var back TargetReport
	if err := Unmarshal(b, &back); err != nil || back.DocTests == nil || *back.DocTests != (TestCounts{Passed: 2, Failed: 1}) || !back.Extra {
		t.Errorf("round trip: %+v %v", back, err)
	}
}

// Doc-test counts are bounded, each and in all.
func TestDocTestsBounded(t *testing.T) {
	k, err := GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(d *TestCounts) error {
		body := &ReportBody{Release: Sum([]byte("r")).Bytes(), Outcome: "test-pass", Wasm: WasmCompatible, Gate: GateCurated,
			Targets: []TargetReport{{Target: "x86_64-unknown-linux-gnu", Outcome: "test-pass", DocTests: d}}}
		_, err := Sign(k, KindReport, "c@1.0.0", body, time.Now())
		return err
	}
	for _, d := range []*TestCounts{nil, {}, {Passed: MaxDocTests}, {Passed: MaxDocTests / 2, Failed: MaxDocTests / 2}} {
		if err := sign(d); err != nil {
			t.Errorf("%+v refused: %v", d, err)
		}
	}
	for _, d := range []*TestCounts{{Passed: MaxDocTests + 1}, {NotRun: 1 << 63}, {Passed: MaxDocTests, Failed: 1},
		{Passed: 1<<64 - 1, Failed: 1}, {Ignored: MaxDocTests, Timeout: MaxDocTests}} {
		if err := sign(d); KindOf(err) != EINVALID {
			t.Errorf("%+v: %v, want EINVALID", d, err)
		}
	}
}
