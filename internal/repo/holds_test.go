package repo

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestHolding: only a release record with the token whose SHA-256 its hold
// recorded releases the hold; a hold without release_sha256 (older coffer)
// lasts until it expires; prune may remove released and expired holds with
// their records, records without a hold and objects that do not parse.
func TestHolding(t *testing.T) {
	now := time.Now()
	snap := func(c string) string { return strings.Repeat(c, 64) }
	token := make([]byte, 32)
	token[0] = 7
	sum := sha256.Sum256(token)
	good, bad := hex.EncodeToString(token), hex.EncodeToString(make([]byte, 32))
	hold := func(s string, exp time.Duration, withSum bool) HoldRecord {
		h := HoldRecord{Version: 1, Snapshot: s, Created: now, Expires: now.Add(exp)}
		if withSum {
			h.ReleaseSHA256 = hex.EncodeToString(sum[:])
		}
		return h
	}
	rel := func(s, tok string) HoldRecord {
		return HoldRecord{Version: 1, Snapshot: s, Expires: now, Released: true, ReleaseToken: tok}
	}
	hs := map[string]HoldRecord{
		"holds/a":                  hold(snap("a"), time.Hour, true),
		"holds/a.released-1":       rel(snap("a"), good), // the holder's: released
		"holds/a.released-2":       rel(snap("a"), bad),  // forged, but a is released anyway
		"holds/b":                  hold(snap("b"), time.Hour, true),
		"holds/b.released":         rel(snap("b"), ""),  // forged, no token
		"holds/b.released-x":       rel(snap("b"), bad), // forged, wrong token
		"holds/b.released-y":       {},                  // does not parse
		"holds/c":                  hold(snap("c"), time.Hour, false),
		"holds/c.released":         rel(snap("c"), ""), // older coffer's release: ignored
		"holds/d":                  hold(snap("d"), -time.Hour, true),
		"holds/d.released-x":       rel(snap("d"), bad),  // expired hold: both go
		"holds/e.released-1":       rel(snap("e"), good), // no hold
		"holds/f":                  {},                   // does not parse
		"holds/g":                  hold(snap("a"), 2*time.Hour, true),
		"holds/g.released-notmine": rel(snap("a"), bad),
	}
	st := Holding(hs, now, MaxClockSkew)
	if got := slices.Sorted(maps.Keys(st.Held)); !slices.Equal(got, []string{snap("a"), snap("b"), snap("c")}) {
		t.Errorf("held %v", got)
	}
	if !st.Held[snap("a")].Equal(now.Add(2 * time.Hour)) {
		t.Errorf("a held until %v, want g's expiry", st.Held[snap("a")])
	}
	if want := []string{"holds/a", "holds/a.released-1", "holds/a.released-2", "holds/d", "holds/d.released-x", "holds/e.released-1", "holds/f"}; !slices.Equal(st.Done, want) {
		t.Errorf("done %v\nwant %v", st.Done, want)
	}
	for name, want := range map[string]string{
		"holds/b.released":         "does not match",
		"holds/b.released-x":       "does not match",
		"holds/b.released-y":       "not a release record",
		"holds/c.released":         "no release_sha256",
		"holds/g.released-notmine": "does not match",
	} {
		if !strings.Contains(st.Ignored[name], want) {
			t.Errorf("ignored[%s] = %q, want %q", name, st.Ignored[name], want)
		}
	}
	if len(st.Ignored) != 5 {
		t.Errorf("ignored %v", st.Ignored)
	}
}
