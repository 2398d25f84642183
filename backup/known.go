package backup

import (
	"math"

	"github.com/cofferhq/coffer/internal/repo"
)

// knownIndex is the index a backup deduplicates against: every chunk of
// the loaded indexes and every chunk this backup has stored, by its full
// keyed id. It is the largest thing a backup of many small files holds
// (one chunk a file), so it is compact: a map from id to a 4-byte number,
// and the locations in a slice of 24-byte records that name their pack by
// number, about 65-105 bytes a chunk against 120-240 for a map of full
// locations. It is not safe for concurrent use.
type knownIndex struct {
	ids   map[repo.ChunkID]uint32 // into locs
	locs  []knownLoc
	slots []*packSlot // by number
	// slotNum numbers the packs; last is the most recent one, which
	// every new chunk of an open pack names.
	slotNum map[*packSlot]uint32
	last    *packSlot
	lastNum uint32
}

type knownLoc struct {
	offset      int64
	length, raw uint32
	slot        uint32
	zstd        bool
}

func newKnownIndex(n int) *knownIndex {
	return &knownIndex{ids: make(map[repo.ChunkID]uint32, n), locs: make([]knownLoc, 0, n),
		slotNum: map[*packSlot]uint32{}}
}

// get returns where chunk id is stored.
func (k *knownIndex) get(id repo.ChunkID) (loc, bool) {
	i, ok := k.ids[id]
	if !ok {
		return loc{}, false
	}
	l := &k.locs[i]
	return loc{pack: k.slots[l.slot], offset: l.offset, length: int64(l.length), raw: int64(l.raw), zstd: l.zstd}, true
}

// add records where chunk id is stored, replacing what was known of it.
// A location whose lengths do not fit is not recorded (no chunk is that
// large: repo's maxChunk), so the chunk is not deduplicated against.
func (k *knownIndex) add(id repo.ChunkID, l loc) {
	if l.length < 0 || l.length > math.MaxUint32 || l.raw < 0 || l.raw > math.MaxUint32 {
		return
	}
	if l.pack != k.last {
		n, ok := k.slotNum[l.pack]
		if !ok {
			n = uint32(len(k.slots))
			k.slots = append(k.slots, l.pack)
			k.slotNum[l.pack] = n
		}
		k.last, k.lastNum = l.pack, n
	}
	kl := knownLoc{offset: l.offset, length: uint32(l.length), raw: uint32(l.raw), slot: k.lastNum, zstd: l.zstd}
	if i, ok := k.ids[id]; ok {
		k.locs[i] = kl
		return
	}
	k.ids[id] = uint32(len(k.locs))
	k.locs = append(k.locs, kl)
}

// len is the number of chunks known.
func (k *knownIndex) len() int { return len(k.ids) }
