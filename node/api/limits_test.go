package api

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestLimiterTableIsBounded: a flood of distinct client addresses or bogus
// tokens never grows a table past MaxEntries, buckets idle long enough to
// have refilled are swept, and a client that keeps asking keeps its
// (empty) bucket through the flood.
func TestLimiterTableIsBounded(t *testing.T) {
	const max = 1000
	l := newLimiter(1, 2, max) // refills in 2 s
	now := time.Unix(1_000_000, 0)
	for i := 0; i < 3; i++ {
		l.allow("victim", now)
	}
	if ok, _ := l.allow("victim", now); ok {
		t.Fatal("the third request within the burst of 2 was allowed")
	}
	for i := 0; i < 100*max; i++ {
		l.allow(credentialKey(fmt.Sprintf("bogus-%d", i)), now.Add(time.Duration(i)*time.Microsecond))
		if i%(max/10) == 0 {
			if ok, _ := l.allow("victim", now.Add(time.Duration(i)*time.Microsecond)); ok {
				t.Fatalf("after %d flooding keys the limited client got a fresh bucket", i)
			}
		}
		if n := l.len(); n > max {
			t.Fatalf("after %d keys the table holds %d buckets, more than %d", i+1, n, max)
		}
	}
	// Once every bucket has refilled, the next new key sweeps them all.
	l.allow("late", now.Add(time.Minute))
	if n := l.len(); n != 1 {
		t.Errorf("after every bucket refilled, the table holds %d, want 1", n)
	}
}

// TestCredentialKeyHoldsNoToken: the table is keyed by a hash, and the
// Bearer and raw forms of one token are one credential.
func TestCredentialKeyHoldsNoToken(t *testing.T) {
	tok := "wcr_secret_token_value"
	k := credentialKey("Bearer " + tok)
	if strings.Contains(k, tok) || strings.Contains(k, "secret") {
		t.Errorf("the key %q holds the token", k)
	}
	if credentialKey(tok) != k || credentialKey("  Bearer  "+tok+" ") != k {
		t.Errorf("the raw and Bearer forms of one token have different keys")
	}
	if credentialKey(tok+"x") == k {
		t.Errorf("two tokens share a key")
	}
}

// TestAddrKey: IPv4 clients are keyed by address, IPv6 by /64.
func TestAddrKey(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:5000":             "a:127.0.0.1",
		"[2001:db8:1:2:3:4:5:6]:443": "a:2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1]:1":   "a:2001:db8:1:2::/64",
		"[::ffff:10.0.0.1]:80":       "a:10.0.0.1",
	} {
		if got := addrKey(in); got != want {
			t.Errorf("addrKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// BenchmarkLimiterAllow: the cost of one rate-limit decision for a known
// client, and for a flood of new keys against a full table.
func BenchmarkLimiterAllow(b *testing.B) {
	b.Run("known", func(b *testing.B) {
		l := newLimiter(1e9, 1e9, 0)
		now := time.Now()
		for i := 0; i < b.N; i++ {
			l.allow("a:127.0.0.1", now)
		}
	})
	b.Run("flood-full-table", func(b *testing.B) {
		l := newLimiter(1, 10, DefaultMaxEntries)
		now := time.Now()
		for i := 0; i < DefaultMaxEntries; i++ {
			l.allow(credentialKey(fmt.Sprint("fill-", i)), now)
		}
		keys := make([]string, 4096)
		for i := range keys {
			keys[i] = credentialKey(fmt.Sprint("flood-", i))
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			l.allow(keys[i%len(keys)]+fmt.Sprint(i), now)
		}
		b.ReportMetric(float64(l.len()), "entries")
	})
}
