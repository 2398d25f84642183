package backup

import (
	"math"
	"testing"

	"github.com/cofferhq/coffer/internal/repo"
)

// TestKnownIndex checks the compact index of known chunks: a location
// comes back as it was added, pack and all; ids that differ only in their
// last byte are different chunks; a later location of a chunk replaces the
// earlier one; and a location whose lengths do not fit is not recorded
// rather than truncated.
func TestKnownIndex(t *testing.T) {
	k := newKnownIndex(0)
	p1, p2 := &packSlot{sha: "aa", size: 10}, &packSlot{sha: "bb", size: 20}
	var a, b repo.ChunkID
	a[31], b[31] = 1, 2
	la := loc{pack: p1, offset: 1 << 33, length: 7, raw: 9, zstd: true}
	lb := loc{pack: p2, offset: 3, length: 4, raw: 4}
	k.add(a, la)
	k.add(b, lb)
	if got, ok := k.get(a); !ok || got != la {
		t.Fatalf("get(a) = %+v %v, want %+v", got, ok, la)
	}
	if got, ok := k.get(b); !ok || got != lb {
		t.Fatalf("get(b) = %+v %v, want %+v", got, ok, lb)
	}
	var c repo.ChunkID
	c[31] = 3
	if _, ok := k.get(c); ok {
		t.Fatal("an id never added is known")
	}
	la2 := loc{pack: p2, offset: 5, length: 6, raw: 6}
	k.add(a, la2)
	if got, _ := k.get(a); got != la2 || k.len() != 2 {
		t.Fatalf("after replacing: get(a) = %+v, len %d; want %+v, 2", got, k.len(), la2)
	}
	k.add(c, loc{pack: p1, length: math.MaxUint32 + 1, raw: 1})
	if _, ok := k.get(c); ok {
		t.Fatal("a location with a length beyond 32 bits was recorded")
	}
}
