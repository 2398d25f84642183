package backup

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/cofferhq/coffer/internal/repo"
)

// TestKnownIndex checks the index of known chunks: a location comes back
// as it was added, pack and all; ids that differ only in their last byte
// are different chunks; a later location of a chunk replaces the earlier
// one; and a location whose lengths do not fit is not recorded rather
// than truncated.
func TestKnownIndex(t *testing.T) {
	k := newKnownIndex()
	defer k.close()
	p1, p2 := &packSlot{sha: "aa", size: 10}, &packSlot{sha: "bb", size: 20}
	var a, b repo.ChunkID
	a[31], b[31] = 1, 2
	la := loc{pack: p1, offset: 1 << 33, length: 7, raw: 9, zstd: true}
	lb := loc{pack: p2, offset: 3, length: 4, raw: 4}
	mustAdd(t, k, a, la)
	mustAdd(t, k, b, lb)
	if got, ok := mustGet(t, k, a); !ok || got != la {
		t.Fatalf("get(a) = %+v %v, want %+v", got, ok, la)
	}
	if got, ok := mustGet(t, k, b); !ok || got != lb {
		t.Fatalf("get(b) = %+v %v, want %+v", got, ok, lb)
	}
	var c repo.ChunkID
	c[31] = 3
	if _, ok := mustGet(t, k, c); ok {
		t.Fatal("an id never added is known")
	}
	la2 := loc{pack: p2, offset: 5, length: 6, raw: 6}
	mustAdd(t, k, a, la2)
	if got, _ := mustGet(t, k, a); got != la2 {
		t.Fatalf("after replacing: get(a) = %+v, want %+v", got, la2)
	}
	mustAdd(t, k, c, loc{pack: p1, length: math.MaxUint32 + 1, raw: 1})
	if _, ok := mustGet(t, k, c); ok {
		t.Fatal("a location with a length beyond 32 bits was recorded")
	}
}

func mustAdd(t *testing.T, k *knownIndex, id repo.ChunkID, l loc) {
	t.Helper()
	if err := k.add(id, l); err != nil {
		t.Fatal(err)
	}
}

func mustGet(t *testing.T, k *knownIndex, id repo.ChunkID) (loc, bool) {
	t.Helper()
	l, ok, err := k.get(id)
	if err != nil {
		t.Fatal(err)
	}
	return l, ok
}

// TestKnownIndexTables checks the index once it spills to its tables
// (a few chunks in memory, so that loading and adding write many tables
// and merge them) against a model: every id is found at its newest
// location whose pack was not dropped (a pack a repack replaced, or one
// that changed in the store, is left out of the load, with older copies
// of its chunks found instead), ids never added are not found, including
// ids that share a table fence (the first 8 bytes) or every bit the Bloom
// filter probes with a known id, so that a false positive must be caught
// by the full compare.
func TestKnownIndexTables(t *testing.T) {
	k := newKnownIndex()
	defer k.close()
	k.memMax = 5
	rng := rand.New(rand.NewPCG(1, 2))
	packs := make([]*packSlot, 6)
	for i := range packs {
		packs[i] = &packSlot{sha: string(rune('a' + i)), size: int64(i)}
	}
	randID := func() repo.ChunkID {
		var id repo.ChunkID
		for i := range id {
			id[i] = byte(rng.IntN(256))
		}
		return id
	}
	type cand struct {
		l    loc
		pack int
	}
	model := map[repo.ChunkID][]cand{} // oldest first
	var ids []repo.ChunkID
	// Load: packs in order, some chunks in two or three of them.
	for p := range 4 {
		for range 150 {
			id := randID()
			if len(ids) > 0 && rng.IntN(4) == 0 {
				id = ids[rng.IntN(len(ids))]
			} else {
				ids = append(ids, id)
			}
			l := loc{pack: packs[p], offset: rng.Int64N(1 << 40), length: rng.Int64N(1 << 20), raw: rng.Int64N(1 << 20), zstd: rng.IntN(2) == 0}
			if err := k.load(id, l); err != nil {
				t.Fatal(err)
			}
			model[id] = append(model[id], cand{l, p})
		}
	}
	// Pack 2 was replaced by a repack: its chunks are not deduplicated
	// against, whether loaded before or after other copies.
	k.drop(packs[2])
	if err := k.endLoad(); err != nil {
		t.Fatal(err)
	}
	if len(k.tables) < 2 {
		t.Fatalf("%d tables after loading 600 chunks 5 at a time, want some merged and some not", len(k.tables))
	}
	want := func(id repo.ChunkID) (loc, bool) {
		cs := model[id]
		for i := len(cs) - 1; i >= 0; i-- {
			if cs[i].pack != 2 {
				return cs[i].l, true
			}
		}
		return loc{}, false
	}
	check := func(when string) {
		t.Helper()
		for _, id := range ids {
			wl, wok := want(id)
			got, ok := mustGet(t, k, id)
			if ok != wok || got != wl {
				t.Fatalf("%s: get(%x) = %+v %v, want %+v %v", when, id[:8], got, ok, wl, wok)
			}
		}
	}
	check("loaded")
	// This backup's chunks: new ones, in packs 4 and 5, and new
	// locations of known ones (the newest wins).
	for i := range 100 {
		id := randID()
		if i%5 == 0 {
			id = ids[rng.IntN(len(ids))]
		} else {
			ids = append(ids, id)
		}
		l := loc{pack: packs[4+i%2], offset: int64(i), length: int64(i + 1), raw: int64(i + 2)}
		mustAdd(t, k, id, l)
		model[id] = append(model[id], cand{l, 4 + i%2})
	}
	check("added")
	// Misses: new ids; an id that shares the first 8 bytes of a known one
	// (the same fence); an id that sets every bit of the Bloom filter a
	// known one sets (bytes 8-24) and differs elsewhere.
	for _, id := range ids[:50] {
		if _, ok := want(id); !ok {
			continue
		}
		miss := []repo.ChunkID{randID(), id, id}
		miss[1][31] ^= 1
		miss[2][0] ^= 0x80
		miss[2][30] ^= 1
		for _, m := range miss {
			if _, ok := model[m]; ok {
				continue
			}
			if l, ok := mustGet(t, k, m); ok {
				t.Fatalf("get(%x) = %+v, an id never added (near %x)", m, l, id)
			}
		}
	}
	// Every table must have been passed by its filter for the ids that
	// differ outside bytes 8-24: they are the false positives.
	var fp int
	for _, tb := range k.tables {
		for _, id := range ids[:50] {
			m := id
			m[0] ^= 0x80
			if _, ok := model[m]; !ok && tb.mayHave(&m) {
				fp++
			}
		}
	}
	if fp == 0 {
		t.Fatal("no Bloom filter false positive tested")
	}
}

// TestKnownIndexLoadOrder: of the locations of one chunk loaded before a
// table is written, the last loaded wins, as the newest, however many
// copies there are and however they are spread over the load (the sort
// that makes a table keeps their order); a dropped pack's copy gives way
// to the one loaded before it.
func TestKnownIndexLoadOrder(t *testing.T) {
	k := newKnownIndex()
	defer k.close()
	k.memMax = 1 << 12
	packs := make([]*packSlot, 5)
	for i := range packs {
		packs[i] = &packSlot{sha: string(rune('a' + i)), size: int64(i)}
	}
	ids := make([]repo.ChunkID, 300)
	for i := range ids {
		ids[i][0], ids[i][1] = byte(i), byte(i>>8)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	last := map[repo.ChunkID]loc{}
	prev := map[repo.ChunkID]loc{}
	for range 6 {
		for _, i := range rng.Perm(len(ids)) {
			p := rng.IntN(len(packs))
			l := loc{pack: packs[p], offset: rng.Int64N(1 << 30), length: 1 + rng.Int64N(1<<20), raw: 1}
			if err := k.load(ids[i], l); err != nil {
				t.Fatal(err)
			}
			if p != 4 {
				prev[ids[i]] = l // the newest copy in a pack not dropped
			}
			last[ids[i]] = l
		}
	}
	k.drop(packs[4])
	if err := k.endLoad(); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		want, ok := prev[id]
		got, found := mustGet(t, k, id)
		if found != ok || got != want {
			t.Fatalf("chunk %x: get = %+v %v, want the newest copy not dropped %+v (last loaded %+v)", id[:2], got, found, want, last[id])
		}
	}
}
