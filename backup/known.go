package backup

import (
	"bytes"
	"cmp"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"slices"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/cofferhq/coffer/internal/repo"
)

// knownIndex is the index a backup deduplicates against: every chunk of
// the loaded indexes and every chunk this backup has stored, by its full
// keyed id. A backup of many small files has one chunk a file, so the
// index is kept flat in memory: the chunks added last are in a map (at
// most knownMemMax of them), and the rest in sorted tables in unlinked
// temporary files, encrypted in blocks of knownBlock chunks with a key
// held only in memory (design.md section 9). In memory, each table keeps
// the first 8 bytes of each block's first id (a fence, about 0.5 B a
// chunk) and a Bloom filter (knownBloomBits a chunk), so that a chunk not
// in the table costs no read; a lookup that passes the filter reads and
// decrypts one block (rarely two) and compares the full 32-byte id.
//
// Chunks are added in order, and the newest location of a chunk wins; a
// pack can be dropped (drop) after its chunks are loaded, and its chunks
// are then not found, or found in an older pack that was not dropped, as
// if it had never been added. It is not safe for concurrent use.
type knownIndex struct {
	slots []*packSlot // by number
	dead  []bool      // by number: dropped
	// slotNum numbers the packs; last is the most recent one, which
	// every new chunk of an open pack names.
	slotNum map[*packSlot]uint32
	last    *packSlot
	lastNum uint32

	ids     map[repo.ChunkID]uint32 // the newest chunks, into locs
	locs    []knownLoc
	loading []knownEntry  // chunks loaded, not yet in a table, duplicates kept
	tables  []*knownTable // oldest first
	memMax  int           // chunks in ids or loading before they go to a table
	aead    cipher.AEAD   // set with the first table
	serial  uint32        // tables made, for their nonces
	n       int
	buf     []byte // a block, for lookups
}

type knownLoc struct {
	offset      int64
	length, raw uint32
	slot        uint32
	zstd        bool
}

type knownEntry struct {
	id repo.ChunkID
	l  knownLoc
	// seq is the entry's place among the chunks loaded but not yet in a
	// table, so that sorting them by (id, seq) needs no stable sort.
	seq uint32
}

// knownMemMax is how many chunks the index keeps in memory before it
// writes them to a table: about 3 MiB of map and locations (a variable
// for tests).
var knownMemMax = 1 << 15

const (
	knownBlock     = 16 // chunks a table block: 864 bytes of ciphertext
	knownEntrySize = 32 + 4 + 8 + 4 + 4 + 1
	knownBloomBits = 10 // about 1% false positives with 7 probes
	knownBloomK    = 7
)

func newKnownIndex() *knownIndex {
	return &knownIndex{ids: map[repo.ChunkID]uint32{}, slotNum: map[*packSlot]uint32{}, memMax: knownMemMax}
}

// slot returns the number of pack s.
func (k *knownIndex) slot(s *packSlot) uint32 {
	if s != k.last {
		n, ok := k.slotNum[s]
		if !ok {
			n = uint32(len(k.slots))
			k.slots = append(k.slots, s)
			k.dead = append(k.dead, false)
			k.slotNum[s] = n
		}
		k.last, k.lastNum = s, n
	}
	return k.lastNum
}

// fits reports whether l's lengths fit a knownLoc. A location that does
// not is not recorded (no chunk is that large: repo's maxChunk), so the
// chunk is not deduplicated against.
func fits(l loc) bool {
	return l.length >= 0 && l.length <= math.MaxUint32 && l.raw >= 0 && l.raw <= math.MaxUint32
}

// load records where a chunk of the repository's indexes is stored; the
// chunks of every index are loaded before the first get or add.
func (k *knownIndex) load(id repo.ChunkID, l loc) error {
	if !fits(l) {
		return nil
	}
	k.loading = append(k.loading, knownEntry{id: id, l: knownLoc{offset: l.offset, length: uint32(l.length),
		raw: uint32(l.raw), slot: k.slot(l.pack), zstd: l.zstd}, seq: uint32(len(k.loading))})
	k.n++
	if len(k.loading) >= 2*k.memMax {
		return k.flushLoading()
	}
	return nil
}

// drop leaves out every chunk loaded from pack s.
func (k *knownIndex) drop(s *packSlot) {
	if n, ok := k.slotNum[s]; ok {
		k.dead[n] = true
	}
}

// endLoad ends the loading: what was loaded goes to a table.
func (k *knownIndex) endLoad() error {
	err := k.flushLoading()
	k.loading = nil
	return err
}

func (k *knownIndex) flushLoading() error {
	if len(k.loading) == 0 {
		return nil
	}
	// Of two locations of one id, the later stays later: (id, seq) is
	// unique, so an unstable sort gives the stable sort's order, faster.
	slices.SortFunc(k.loading, func(a, b knownEntry) int {
		if c := bytes.Compare(a.id[:], b.id[:]); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	})
	err := k.writeTable(k.loading)
	k.loading = k.loading[:0]
	return err
}

// add records where chunk id is stored, replacing what was known of it.
func (k *knownIndex) add(id repo.ChunkID, l loc) error {
	if !fits(l) {
		return nil
	}
	if err := k.flushLoading(); err != nil {
		return err
	}
	kl := knownLoc{offset: l.offset, length: uint32(l.length), raw: uint32(l.raw), slot: k.slot(l.pack), zstd: l.zstd}
	if i, ok := k.ids[id]; ok {
		k.locs[i] = kl
		return nil
	}
	k.ids[id] = uint32(len(k.locs))
	k.locs = append(k.locs, kl)
	k.n++
	if len(k.ids) < k.memMax {
		return nil
	}
	es := make([]knownEntry, 0, len(k.ids))
	for id, i := range k.ids {
		es = append(es, knownEntry{id: id, l: k.locs[i]})
	}
	slices.SortFunc(es, func(a, b knownEntry) int { return bytes.Compare(a.id[:], b.id[:]) })
	if err := k.writeTable(es); err != nil {
		return err
	}
	clear(k.ids)
	k.locs = k.locs[:0]
	return nil
}

// get returns where chunk id is stored.
func (k *knownIndex) get(id repo.ChunkID) (loc, bool, error) {
	if i, ok := k.ids[id]; ok {
		return k.loc(k.locs[i]), true, nil
	}
	for i := len(k.tables) - 1; i >= 0; i-- {
		l, ok, err := k.find(k.tables[i], id)
		if err != nil || ok {
			return k.loc(l), ok, err
		}
	}
	return loc{}, false, nil
}

func (k *knownIndex) loc(l knownLoc) loc {
	return loc{pack: k.slots[l.slot], offset: l.offset, length: int64(l.length), raw: int64(l.raw), zstd: l.zstd}
}

// len is the number of chunks added and loaded.
func (k *knownIndex) len() int { return k.n }

// close removes the tables.
func (k *knownIndex) close() {
	if k == nil {
		return
	}
	for _, t := range k.tables {
		t.f.Close()
	}
	k.tables = nil
}

// knownTable is a sorted run of chunks in a temporary file: blocks of
// knownBlock entries (id, pack number, offset, length, raw length, zstd
// flag; knownEntrySize bytes), each sealed with ChaCha20-Poly1305 under
// the index's key and a nonce of the table's serial and the block's
// offset. Of two entries of one id, the later is the newer.
type knownTable struct {
	f      *os.File
	serial uint32
	n      int
	fence  []uint64 // by block: the first 8 bytes of its first id
	bloom  []uint64
}

func (t *knownTable) blocks() int { return len(t.fence) }

func knownBlockSize(n int) int { return n*knownEntrySize + chacha20poly1305.Overhead }

func (t *knownTable) nonce(off int64) []byte {
	var nonce [chacha20poly1305.NonceSize]byte
	binary.LittleEndian.PutUint32(nonce[:], t.serial)
	binary.LittleEndian.PutUint64(nonce[4:], uint64(off))
	return nonce[:]
}

// bloomProbes returns the filter's bits for id: ids are keyed hashes, so
// their bytes are already uniform (double hashing, Kirsch and
// Mitzenmacher).
func bloomProbes(id *repo.ChunkID, m uint64, f func(bit uint64) bool) bool {
	h1 := binary.LittleEndian.Uint64(id[8:])
	h2 := binary.LittleEndian.Uint64(id[16:]) | 1
	for i := range uint64(knownBloomK) {
		if !f((h1 + i*h2) % m) {
			return false
		}
	}
	return true
}

func (t *knownTable) mayHave(id *repo.ChunkID) bool {
	return bloomProbes(id, uint64(len(t.bloom))*64, func(b uint64) bool { return t.bloom[b/64]&(1<<(b%64)) != 0 })
}

// tableWriter writes a table of n entries, given in order.
type tableWriter struct {
	k     *knownIndex
	t     *knownTable
	plain []byte
	out   []byte
	off   int64 // of out
}

func (k *knownIndex) newTableWriter(n int) (*tableWriter, error) {
	if k.aead == nil {
		key := make([]byte, chacha20poly1305.KeySize)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		aead, err := chacha20poly1305.New(key)
		if err != nil {
			return nil, err
		}
		k.aead = aead
	}
	f, err := os.CreateTemp("", "coffer-known-*")
	if err != nil {
		return nil, tempFileError("index of known chunks", err)
	}
	os.Remove(f.Name())
	k.serial++
	words := (max(n, 1)*knownBloomBits + 63) / 64
	t := &knownTable{f: f, serial: k.serial, fence: make([]uint64, 0, (n+knownBlock-1)/knownBlock),
		bloom: make([]uint64, words)}
	return &tableWriter{k: k, t: t, plain: make([]byte, 0, knownBlock*knownEntrySize), out: make([]byte, 0, 64<<10)}, nil
}

// put appends one encoded entry.
func (w *tableWriter) put(e []byte) error {
	id := (*repo.ChunkID)(e[:32])
	m := uint64(len(w.t.bloom)) * 64
	bloomProbes(id, m, func(b uint64) bool { w.t.bloom[b/64] |= 1 << (b % 64); return true })
	if len(w.plain) == 0 {
		w.t.fence = append(w.t.fence, binary.BigEndian.Uint64(e))
	}
	w.plain = append(w.plain, e...)
	w.t.n++
	if len(w.plain) == cap(w.plain) {
		return w.seal()
	}
	return nil
}

func (w *tableWriter) seal() error {
	if len(w.plain) == 0 {
		return nil
	}
	off := w.off + int64(len(w.out))
	w.out = w.k.aead.Seal(w.out, w.t.nonce(off), w.plain, nil)
	w.plain = w.plain[:0]
	if len(w.out)+knownBlockSize(knownBlock) > cap(w.out) {
		return w.write()
	}
	return nil
}

func (w *tableWriter) write() error {
	if _, err := w.t.f.WriteAt(w.out, w.off); err != nil {
		return tempFileError("index of known chunks", err)
	}
	w.off += int64(len(w.out))
	w.out = w.out[:0]
	return nil
}

func (w *tableWriter) finish() (*knownTable, error) {
	if err := w.seal(); err != nil {
		return nil, err
	}
	if err := w.write(); err != nil {
		return nil, err
	}
	return w.t, nil
}

func putKnownEntry(b []byte, e *knownEntry) []byte {
	b = append(b, e.id[:]...)
	b = binary.LittleEndian.AppendUint32(b, e.l.slot)
	b = binary.LittleEndian.AppendUint64(b, uint64(e.l.offset))
	b = binary.LittleEndian.AppendUint32(b, e.l.length)
	b = binary.LittleEndian.AppendUint32(b, e.l.raw)
	if e.l.zstd {
		return append(b, 1)
	}
	return append(b, 0)
}

func knownEntryLoc(b []byte) knownLoc {
	return knownLoc{slot: binary.LittleEndian.Uint32(b[32:]), offset: int64(binary.LittleEndian.Uint64(b[36:])),
		length: binary.LittleEndian.Uint32(b[44:]), raw: binary.LittleEndian.Uint32(b[48:]), zstd: b[52] == 1}
}

// writeTable writes es, sorted, as a new table, and merges the newest
// tables while the one before the last is no larger than the last (as a
// binary counter: about log2 of the chunks over knownMemMax tables).
func (k *knownIndex) writeTable(es []knownEntry) error {
	w, err := k.newTableWriter(len(es))
	if err != nil {
		return err
	}
	var e []byte
	for i := range es {
		e = putKnownEntry(e[:0], &es[i])
		if err := w.put(e); err != nil {
			w.t.f.Close()
			return err
		}
	}
	t, err := w.finish()
	if err != nil {
		w.t.f.Close()
		return err
	}
	k.tables = append(k.tables, t)
	for n := len(k.tables); n >= 2 && k.tables[n-2].n <= k.tables[n-1].n; n = len(k.tables) {
		m, err := k.merge(k.tables[n-2:])
		if err != nil {
			return err
		}
		k.tables[n-2].f.Close()
		k.tables[n-1].f.Close()
		k.tables = append(k.tables[:n-2], m)
	}
	return nil
}

// readBlock reads and decrypts block i of t into k.buf.
func (k *knownIndex) readBlock(t *knownTable, i int, buf []byte) ([]byte, error) {
	n := min(knownBlock, t.n-i*knownBlock)
	off := int64(i) * int64(knownBlockSize(knownBlock))
	ct := buf[:knownBlockSize(n)]
	if _, err := t.f.ReadAt(ct, off); err != nil {
		return nil, tempFileError("index of known chunks", err)
	}
	p, err := k.aead.Open(ct[:0], t.nonce(off), ct, nil)
	if err != nil {
		return nil, errors.New("index of known chunks: temporary file damaged")
	}
	return p, nil
}

// find looks id up in t: the newest of its entries whose pack is not
// dropped.
func (k *knownIndex) find(t *knownTable, id repo.ChunkID) (knownLoc, bool, error) {
	if !t.mayHave(&id) {
		return knownLoc{}, false, nil
	}
	if k.buf == nil {
		k.buf = make([]byte, knownBlockSize(knownBlock))
	}
	p := binary.BigEndian.Uint64(id[:])
	// The last block whose first id could be id; entries of id may start
	// in blocks before it when their fences equal p.
	i, _ := slices.BinarySearch(t.fence, p+1)
	if p == math.MaxUint64 {
		i = len(t.fence)
	}
	for i--; i >= 0; i-- {
		b, err := k.readBlock(t, i, k.buf)
		if err != nil {
			return knownLoc{}, false, err
		}
		for j := len(b) - knownEntrySize; j >= 0; j -= knownEntrySize {
			e := b[j : j+knownEntrySize]
			if bytes.Equal(e[:32], id[:]) {
				if l := knownEntryLoc(e); !k.dead[l.slot] {
					return l, true, nil
				}
			}
		}
		if t.fence[i] < p {
			break
		}
	}
	return knownLoc{}, false, nil
}

// tableReader reads a table's entries in order, a few blocks at a time.
type tableReader struct {
	k     *knownIndex
	t     *knownTable
	block int    // next to read
	ct    []byte // read buffer
	buf   []byte // decrypted blocks
	plain []byte // the part of buf not yet consumed
}

func (r *tableReader) next() ([]byte, error) {
	if len(r.plain) == 0 {
		if r.block >= r.t.blocks() {
			return nil, nil
		}
		// Read up to 64 blocks at once; decrypt them one by one into plain.
		nb := min(64, r.t.blocks()-r.block)
		off := int64(r.block) * int64(knownBlockSize(knownBlock))
		size := (nb-1)*knownBlockSize(knownBlock) + knownBlockSize(min(knownBlock, r.t.n-(r.block+nb-1)*knownBlock))
		if cap(r.ct) < size {
			r.ct = make([]byte, size)
		}
		ct := r.ct[:size]
		if _, err := r.t.f.ReadAt(ct, off); err != nil {
			return nil, tempFileError("index of known chunks", err)
		}
		r.buf = r.buf[:0]
		for b := range nb {
			c := ct[b*knownBlockSize(knownBlock) : min(len(ct), (b+1)*knownBlockSize(knownBlock))]
			p, err := r.k.aead.Open(c[:0], r.t.nonce(off+int64(b*knownBlockSize(knownBlock))), c, nil)
			if err != nil {
				return nil, errors.New("index of known chunks: temporary file damaged")
			}
			r.buf = append(r.buf, p...)
		}
		r.plain = r.buf
		r.block += nb
	}
	e := r.plain[:knownEntrySize]
	r.plain = r.plain[knownEntrySize:]
	return e, nil
}

// merge writes ts (consecutive tables, oldest first) as one table: of
// entries of one id, the older table's come first.
func (k *knownIndex) merge(ts []*knownTable) (*knownTable, error) {
	n := 0
	rs := make([]*tableReader, len(ts))
	heads := make([][]byte, len(ts))
	for i, t := range ts {
		n += t.n
		rs[i] = &tableReader{k: k, t: t}
		var err error
		if heads[i], err = rs[i].next(); err != nil {
			return nil, err
		}
	}
	w, err := k.newTableWriter(n)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*knownTable, error) {
		w.t.f.Close()
		return nil, err
	}
	for {
		min := -1
		for i, h := range heads {
			if h != nil && (min < 0 || bytes.Compare(h[:32], heads[min][:32]) < 0) {
				min = i
			}
		}
		if min < 0 {
			break
		}
		if err := w.put(heads[min]); err != nil {
			return fail(err)
		}
		if heads[min], err = rs[min].next(); err != nil {
			return fail(err)
		}
	}
	t, err := w.finish()
	if err != nil {
		return fail(err)
	}
	return t, nil
}
