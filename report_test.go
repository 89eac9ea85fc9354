package registry

import (
	"encoding/hex"
	"testing"
)

// A target's sandbox refusals are field 16 of TargetReport, and a Refusal
// is {1: action, 2: detail, 3: count}: signed bytes, never renumbered.
func TestRefusalEncoding(t *testing.T) {
	b, err := Marshal(TargetReport{Target: "t", Outcome: "o", Refusals: []Refusal{{Action: "syscall", Detail: "ptrace", Count: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	// {1: "t", 4: "o", 16: [{1: "syscall", 2: "ptrace", 3: 2}]}
	const want = "a301617404616f1081a301677379736361" + "6c6c0266707472616365" + "0302"
	if got := hex.EncodeToString(b); got != want {
		t.Errorf("encoding\n got %s\nwant %s", got, want)
	}
	var back TargetReport
	if err := Unmarshal(b, &back); err != nil || len(back.Refusals) != 1 || back.Refusals[0] != (Refusal{Action: "syscall", Detail: "ptrace", Count: 2}) {
		t.Errorf("round trip: %+v %v", back, err)
	}
}
