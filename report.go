package registry

// Wasm compatibility verdicts, as the list filter "wasm=" names them.
const (
	WasmCompatible   = "compatible"   // builds for wasm and its tests pass under wazero
	WasmPartial      = "partial"      // builds for wasm, but some tests fail or cannot run
	WasmIncompatible = "incompatible" // does not build for any wasm target
	WasmUntested     = "untested"     // no trusted report yet (never stored in a report)
)

// Quality-gate verdicts.
const (
	GateCurated     = "curated"
	GateNeedsReview = "needs-review"
	GateRejected    = "rejected"
)

// ReportBody is the body of a report record (subject "name@version"): the
// signed result of one pipeline run. Fields 1–15 are the summary every node
// indexes; the pipeline's detail lives in higher-numbered fields.
type ReportBody struct {
	Release  []byte `cbor:"1,keyasint" json:"release"` // ID of the release record that was tested
	Outcome  string `cbor:"2,keyasint" json:"outcome"` // crater-style overall outcome
	Wasm     string `cbor:"3,keyasint" json:"wasm"`    // compatible | partial | incompatible
	GCReady  bool   `cbor:"4,keyasint,omitempty" json:"gc_ready"`
	Dual     bool   `cbor:"5,keyasint,omitempty" json:"dual"` // works natively and in wasm
	Score    uint64 `cbor:"6,keyasint" json:"score"`          // 0–100
	Gate     string `cbor:"7,keyasint" json:"gate"`           // curated | needs-review | rejected
	Started  int64  `cbor:"8,keyasint" json:"started"`        // Unix ms
	Finished int64  `cbor:"9,keyasint" json:"finished"`       // Unix ms
}

// ReleaseID returns the ID of the tested release record.
func (b *ReportBody) ReleaseID() ID {
	id, _ := IDFromBytes(b.Release)
	return id
}

func (b *ReportBody) validate(subject string) error {
	const op = "registry.ReportBody"
	if _, _, err := ParseReleaseSubject(subject); err != nil {
		return err
	}
	if _, err := IDFromBytes(b.Release); err != nil {
		return E(op, EINVALID, "release", err)
	}
	switch b.Wasm {
	case WasmCompatible, WasmPartial, WasmIncompatible:
	default:
		return Errorf(op, EINVALID, "wasm verdict %q is not compatible, partial or incompatible", b.Wasm)
	}
	switch b.Gate {
	case GateCurated, GateNeedsReview, GateRejected:
	default:
		return Errorf(op, EINVALID, "gate %q is not curated, needs-review or rejected", b.Gate)
	}
	if b.Score > 100 {
		return Errorf(op, EINVALID, "score %d is above 100", b.Score)
	}
	if b.Outcome == "" {
		return Errorf(op, EINVALID, "a report needs an outcome")
	}
	return nil
}
