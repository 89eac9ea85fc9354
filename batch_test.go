package registry

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

func batchRecords(t testing.TB, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		k, err := KeyFromSeed(bytes.Repeat([]byte{byte(i%7 + 1)}, 32))
		if err != nil {
			t.Fatal(err)
		}
		r, err := Sign(k, KindYank, fmt.Sprintf("c%d@1.0.0", i), &YankBody{Yanked: true}, time.Unix(1_700_000_000, 0).Add(time.Duration(i)*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		out[i] = r.Bytes()
	}
	return out
}

// A batch verifies exactly when every record does; the first bad one is
// named, whatever is wrong with it.
func TestDecodeBatch(t *testing.T) {
	raw := batchRecords(t, 64)
	recs, _, err := DecodeBatch(raw)
	if err != nil || len(recs) != 64 {
		t.Fatalf("a good batch: %d records, %v", len(recs), err)
	}
	for i, r := range recs {
		if want, _ := DecodeRecord(raw[i]); r.ID() != want.ID() {
			t.Fatalf("record %d decodes differently in a batch", i)
		}
	}
	// A signature from another record: well formed, wrong.
	forged := batchRecords(t, 64)
	other, _ := DecodeRecord(forged[40])
	r17, _ := DecodeRecord(forged[17])
	w := append([]byte(nil), forged[17]...)
	copy(w[bytes.Index(w, r17.Sig):], other.Sig)
	forged[17] = w
	if _, i, err := DecodeBatch(forged); err == nil || i != 17 || KindOf(err) != EINVALID {
		t.Fatalf("a forged signature at 17: index %d, %v", i, err)
	}
	broken := batchRecords(t, 8)
	broken[5] = broken[5][:len(broken[5])-3]
	if _, i, err := DecodeBatch(broken); err == nil || i != 5 {
		t.Fatalf("a truncated record at 5: index %d, %v", i, err)
	}
	if recs, _, err := DecodeBatch(raw[:1]); err != nil || len(recs) != 1 {
		t.Fatalf("a batch of one: %v", err)
	}
}

func BenchmarkDecodeBatch(b *testing.B) {
	raw := batchRecords(b, 64)
	b.Run("one-by-one", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			for _, r := range raw {
				if _, err := DecodeRecord(r); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*len(raw)), "µs/record")
	})
	b.Run("batch-64", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, _, err := DecodeBatch(raw); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*len(raw)), "µs/record")
	})
}
