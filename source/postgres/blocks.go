package postgres

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
)

// A dump that pg_dump writes to a pipe has no data offsets in its table of
// contents, so pg_restore can only read it front to back, one table after
// another. While the dump streams into the snapshot, a pgBlockRecorder
// follows its data blocks and notes where each starts and how long it is;
// the list is stored as the source's metadata (BlocksMetaKey, doc/design.md
// section "PostgreSQL dump blocks"). A parallel restore then feeds each of
// its pg_restore runs the table of contents and just the blocks of its own
// entries, read from the repository where the list says they are (see
// pgRestoreBlocks).

// BlocksMetaKey is the catalog metadata key of a PostgreSQL source's
// DumpBlocks. A snapshot without it is restored without it.
const BlocksMetaKey = "dump_blocks"

// DumpBlocks is where the data blocks of a snapshot's dump lie.
type DumpBlocks struct {
	// Version is 1; a restore that meets another ignores the list.
	Version int `json:"version"`
	// TOC is the length of the dump's header and table of contents: where
	// the first data block starts.
	TOC int64 `json:"toc"`
	// Blocks are the data blocks in the order of the dump. They tile the
	// rest of the dump: each starts where the one before it ends, and the
	// last ends at the end of the dump.
	Blocks []DumpBlock `json:"blocks"`
}

// DumpBlock is one data block: the dump id of its TOC entry, its offset in
// the dump and its length. It is stored as the JSON array
// [id, offset, length].
type DumpBlock struct {
	ID, Offset, Length int64
}

func (b DumpBlock) MarshalJSON() ([]byte, error) {
	return json.Marshal([3]int64{b.ID, b.Offset, b.Length})
}

func (b *DumpBlock) UnmarshalJSON(data []byte) error {
	var v [3]int64
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	b.ID, b.Offset, b.Length = v[0], v[1], v[2]
	return nil
}

const dumpBlocksVersion = 1

// maxRecordedTOC caps the header and table of contents a pgBlockRecorder
// holds while it waits for their end; a dump with a larger one records
// no blocks.
const maxRecordedTOC = 16 << 20

// pgBlockRecorder passes the dump through from r, unchanged and uncopied,
// and follows its data blocks. Only the header and the table of contents
// are held (up to maxRecordedTOC), until they are parsed. Whatever it
// cannot follow makes it record nothing; it never fails a read.
type pgBlockRecorder struct {
	r      io.Reader
	n      int64  // bytes passed
	head   []byte // the start of the dump, until the TOC is parsed
	try    int    // parse head again once it holds this many bytes
	toc    int64
	p      *pgBlockParser
	blocks []DumpBlock
	failed bool
}

func newPgBlockRecorder(r io.Reader) *pgBlockRecorder {
	return &pgBlockRecorder{r: r}
}

func (b *pgBlockRecorder) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if n > 0 && !b.failed {
		b.see(p[:n])
	}
	b.n += int64(n)
	return n, err
}

func (b *pgBlockRecorder) see(p []byte) {
	if b.p != nil {
		if b.p.feed(p, b.block) != nil {
			b.fail()
		}
		return
	}
	if len(b.head)+len(p) > maxRecordedTOC {
		b.fail()
		return
	}
	b.head = append(b.head, p...)
	if len(b.head) >= b.try {
		b.parseHead(false)
	}
}

// parseHead parses the header and TOC held so far; at the end of the dump
// (final), they must be complete.
func (b *pgBlockRecorder) parseHead(final bool) {
	toc, err := pgArchiveReadTOC(bytes.NewReader(b.head), false)
	if errors.Is(err, io.ErrUnexpectedEOF) && !final {
		b.try = 2 * len(b.head) // parse again when it has doubled
		return
	}
	if err != nil {
		b.fail()
		return
	}
	rest := b.head[toc.Length:]
	b.toc, b.head = toc.Length, nil
	b.p = &pgBlockParser{intSize: toc.IntSize, pos: toc.Length}
	if b.p.feed(rest, b.block) != nil {
		b.fail()
	}
}

func (b *pgBlockRecorder) block(id, start, end int64) error {
	b.blocks = append(b.blocks, DumpBlock{ID: id, Offset: start, Length: end - start})
	return nil
}

func (b *pgBlockRecorder) fail() {
	b.failed, b.head, b.blocks, b.p = true, nil, nil, nil
}

// result returns the blocks of the whole dump, once it was read to its
// end; false when the dump could not be followed.
func (b *pgBlockRecorder) result() (*DumpBlocks, bool) {
	if !b.failed && b.p == nil {
		b.parseHead(true)
	}
	if b.failed || !b.p.between() || b.p.pos != b.n {
		return nil, false
	}
	blocks := b.blocks
	if blocks == nil {
		blocks = []DumpBlock{}
	}
	return &DumpBlocks{Version: dumpBlocksVersion, TOC: b.toc, Blocks: blocks}, true
}

// Data block types (pg_backup_archiver.h).
const (
	pgBlkData  = 1
	pgBlkBlobs = 3
)

// pgBlockParser follows data blocks as pg_restore's _skipData and
// _skipBlobs (pg_backup_custom.c) read them. A block is its type byte,
// then its entry's dump id as an integer (ReadInt: a sign byte, then
// intSize bytes, least significant first). A BLK_DATA block is then
// chunks, each a length and that many bytes, up to a length of 0. A
// BLK_BLOBS block is large objects, each an OID and chunks as above, up to
// an OID of 0. It is fed the bytes as they come, in pieces of any size.
type pgBlockParser struct {
	intSize int
	pos     int64 // offset of the next byte
	state   int
	blobs   bool  // in a BLK_BLOBS block
	start   int64 // of the current block
	id      int64
	// the integer being read
	what int
	got  int // bytes of it read, the sign byte included
	sign byte
	v    uint64
	skip int64 // bytes of a chunk left to pass over
}

const (
	pgStateType = iota // next: a block's type byte
	pgStateInt         // reading an integer (what says which)
	pgStateSkip        // passing over a chunk's bytes
)

// What an integer is.
const (
	pgIntID = iota
	pgIntLength
	pgIntOID
)

// errPgBlocks says that the bytes are not data blocks as pgBlockParser
// knows them.
var errPgBlocks = errors.New("not a data block")

// between reports whether the parser stands between two blocks.
func (b *pgBlockParser) between() bool { return b != nil && b.state == pgStateType }

// feed parses p, calling done with the dump id, start and end offset of
// every block that ends in it. It stops at the first error, done's or its
// own.
func (b *pgBlockParser) feed(p []byte, done func(id, start, end int64) error) error {
	for i := 0; i < len(p); {
		switch b.state {
		case pgStateType:
			switch p[i] {
			case pgBlkData, pgBlkBlobs:
			default:
				return fmt.Errorf("%w: type byte %d at offset %d", errPgBlocks, p[i], b.pos)
			}
			b.start, b.blobs = b.pos, p[i] == pgBlkBlobs
			b.readInt(pgIntID)
			i++
			b.pos++
		case pgStateSkip:
			k := int64(len(p) - i)
			if k > b.skip {
				k = b.skip
			}
			i += int(k)
			b.pos += k
			if b.skip -= k; b.skip == 0 {
				b.readInt(pgIntLength)
			}
		case pgStateInt:
			// Most integers arrive whole: read them at once.
			if b.got == 0 && len(p)-i > b.intSize {
				b.sign = p[i]
				var v uint64
				for k := b.intSize; k > 0; k-- {
					v = v<<8 | uint64(p[i+k])
				}
				b.v, b.got = v, 1+b.intSize
				i += 1 + b.intSize
				b.pos += int64(1 + b.intSize)
			} else {
				if b.got == 0 {
					b.sign = p[i]
				} else {
					b.v |= uint64(p[i]) << (8 * (b.got - 1))
				}
				b.got++
				i++
				b.pos++
			}
			if b.got == 1+b.intSize {
				if err := b.gotInt(done); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (b *pgBlockParser) readInt(what int) {
	b.state, b.what, b.got, b.v = pgStateInt, what, 0, 0
}

// gotInt acts on a whole integer.
func (b *pgBlockParser) gotInt(done func(id, start, end int64) error) error {
	if b.v > 1<<62 {
		return fmt.Errorf("%w: integer out of range at offset %d", errPgBlocks, b.pos)
	}
	v := int64(b.v)
	if b.sign != 0 {
		v = -v
	}
	switch b.what {
	case pgIntID:
		if v <= 0 {
			return fmt.Errorf("%w: dump id %d at offset %d", errPgBlocks, v, b.pos)
		}
		b.id = v
		if b.blobs {
			b.readInt(pgIntOID)
		} else {
			b.readInt(pgIntLength)
		}
	case pgIntLength:
		switch {
		case v < 0:
			return fmt.Errorf("%w: chunk length %d at offset %d", errPgBlocks, v, b.pos)
		case v > 0:
			b.state, b.skip = pgStateSkip, v
		case b.blobs:
			b.readInt(pgIntOID) // the end of a large object
		default:
			return b.end(done)
		}
	case pgIntOID:
		if v == 0 {
			return b.end(done)
		}
		b.readInt(pgIntLength)
	}
	return nil
}

func (b *pgBlockParser) end(done func(id, start, end int64) error) error {
	b.state = pgStateType
	return done(b.id, b.start, b.pos)
}

// errBlocksMismatch says that a snapshot's block list does not describe
// its dump.
var errBlocksMismatch = errors.New("the snapshot's list of dump blocks does not match its dump")

func blocksMismatch(format string, args ...any) error {
	return fmt.Errorf("%w: %s (restore with --jobs 1 to read the dump whole)", errBlocksMismatch, fmt.Sprintf(format, args...))
}

// pgBlockRun is one pg_restore run of the data section: the entries it
// restores, in order, and the blocks it reads, in the order of its data
// entries.
type pgBlockRun struct {
	ids    []int64
	blocks []DumpBlock
	bytes  int64
}

// pgBlockPlan is how a restore from dump blocks runs the data and
// post-data sections: runs at once, then the post-data entries left.
type pgBlockPlan struct {
	runs []*pgBlockRun
	post []int64 // in dump order
}

// pgPlanBlocks checks the block list db of a dump of size bytes against
// the dump's table of contents, and plans the data and post-data
// sections.
//
// The blocks must tile the dump after the TOC; each must belong to a TOC
// entry with data in the data section, and each such entry must have
// exactly one block. An entry's section is the one pg_restore --section
// goes by: an entry of no section (a comment, a privilege) belongs to the
// section of the entry before it.
//
// The data entries are split into up to jobs runs of about equal bytes
// (largest block first, to the run with the fewest bytes so far; entries
// without a block, a sequence's value, to the lightest run), each run's
// largest first. A post-data entry (an index, a constraint, a trigger)
// whose tables are all loaded by one run goes into that run, right after
// the last of them (and after the post-data entries it depends on), so
// that a table's indexes are built while other runs still load, as
// pg_restore --jobs builds them. The others wait for the end of the data
// section: those that need tables of two runs, those on no table, and
// those pg_restore runs in its last passes (privileges, event triggers,
// materialized view data), with what depends on them.
func pgPlanBlocks(toc *pgTOC, db *DumpBlocks, size int64, jobs int) (*pgBlockPlan, error) {
	if db.TOC != toc.Length {
		return nil, blocksMismatch("the table of contents is %d bytes, the list says %d", toc.Length, db.TOC)
	}
	// The smallest block: its type, its id and a final 0.
	minBlock := int64(1 + 2*(1+toc.IntSize))
	at := toc.Length
	byID := make(map[int64]int, len(db.Blocks))
	for i, b := range db.Blocks {
		if b.Offset != at {
			return nil, blocksMismatch("block %d of entry %d is at offset %d, want %d", i, b.ID, b.Offset, at)
		}
		if b.Length < minBlock || b.Length > size-at {
			return nil, blocksMismatch("block %d of entry %d at offset %d has length %d (dump of %d bytes)", i, b.ID, b.Offset, b.Length, size)
		}
		if _, dup := byID[b.ID]; dup {
			return nil, blocksMismatch("entry %d has two blocks", b.ID)
		}
		byID[b.ID] = i
		at += b.Length
	}
	if at != size {
		return nil, blocksMismatch("the blocks end at offset %d, the dump at %d", at, size)
	}

	type data struct {
		id    int64
		bytes int64
		block int // index in db.Blocks, or -1
	}
	var (
		datas   []data
		post    []pgTOCEntry
		section = pgSectionPreData
		sec     = make(map[int64]int, len(toc.Entries))
		dataOf  = map[int64][]int64{} // a pre-data entry's data entries (a table's TABLE DATA)
	)
	for _, e := range toc.Entries {
		if e.Section != pgSectionNone {
			section = e.Section
		}
		if _, dup := sec[e.ID]; dup {
			return nil, blocksMismatch("entry %d is listed twice in the table of contents", e.ID)
		}
		sec[e.ID] = section
		i, ok := byID[e.ID]
		switch {
		case ok && (!e.Data || section != pgSectionData):
			return nil, blocksMismatch("entry %d (%s) has a block but no data in the data section", e.ID, e.Desc)
		case !ok && e.Data:
			return nil, blocksMismatch("entry %d (%s) has data but no block", e.ID, e.Desc)
		}
		switch section {
		case pgSectionData:
			d := data{id: e.ID, block: -1}
			if ok {
				d.block, d.bytes = i, db.Blocks[i].Length
			}
			datas = append(datas, d)
			for _, dep := range e.Deps {
				dataOf[dep] = append(dataOf[dep], e.ID)
			}
		case pgSectionPostData:
			post = append(post, e)
		}
	}
	for id := range byID {
		if sec[id] != pgSectionData {
			return nil, blocksMismatch("block of entry %d, which is not in the table of contents", id)
		}
	}

	// The data entries, largest first, each to the lightest run.
	sort.SliceStable(datas, func(i, j int) bool { return datas[i].bytes > datas[j].bytes })
	runs := make([]*pgBlockRun, max(jobs, 1))
	for i := range runs {
		runs[i] = &pgBlockRun{}
	}
	// where: the run of a data entry or of a post-data entry placed in
	// one, and its place there (after its pos-th data entry).
	type place struct{ run, pos int }
	where := map[int64]place{}
	for _, d := range datas {
		k := 0
		for i, r := range runs {
			if r.bytes < runs[k].bytes {
				k = i
			}
		}
		r := runs[k]
		where[d.id] = place{k, len(r.blocks)}
		r.bytes += d.bytes
		if d.block >= 0 {
			r.blocks = append(r.blocks, db.Blocks[d.block])
		}
	}
	// Sequences' values and other data without a block come after the
	// blocks of their run.
	for _, d := range datas {
		if d.block < 0 {
			w := where[d.id]
			w.pos = len(runs[w.run].blocks)
			where[d.id] = w
		}
	}

	// Each post-data entry, in dump order, goes into the one run that
	// holds everything it needs, or waits for the end.
	later := map[string]bool{"ACL": true, "DEFAULT ACL": true, "ACL LANGUAGE": true,
		"EVENT TRIGGER": true, "MATERIALIZED VIEW DATA": true}
	plan := &pgBlockPlan{runs: runs}
	placed := map[int][][]int64{} // run -> pos -> entries
	for _, e := range post {
		p, ok := place{run: -1}, !later[e.Desc]
		need := func(id int64) {
			w, in := where[id]
			switch {
			case !in:
				ok = false // at the end, or not placed yet
			case p.run >= 0 && p.run != w.run:
				ok = false // two runs
			default:
				p.run, p.pos = w.run, max(p.pos, w.pos)
			}
		}
		for _, dep := range e.Deps {
			if !ok {
				break
			}
			switch sec[dep] {
			case 0: // not in the archive
			case pgSectionPreData:
				for _, d := range dataOf[dep] {
					need(d)
				}
			default:
				need(dep)
			}
		}
		if !ok || p.run < 0 {
			plan.post = append(plan.post, e.ID)
			continue
		}
		where[e.ID] = p
		if placed[p.run] == nil {
			placed[p.run] = make([][]int64, len(runs[p.run].blocks)+1)
		}
		placed[p.run][p.pos] = append(placed[p.run][p.pos], e.ID)
	}

	// A run's list: its data entries in the order of its blocks, each
	// followed by what was placed after it.
	byPos := make([][][]int64, len(runs)) // run -> pos -> data entries
	for _, d := range datas {
		w := where[d.id]
		if byPos[w.run] == nil {
			byPos[w.run] = make([][]int64, len(runs[w.run].blocks)+1)
		}
		byPos[w.run][w.pos] = append(byPos[w.run][w.pos], d.id)
	}
	for k, r := range runs {
		for pos := 0; pos <= len(r.blocks); pos++ {
			if byPos[k] != nil {
				r.ids = append(r.ids, byPos[k][pos]...)
			}
			if placed[k] != nil {
				r.ids = append(r.ids, placed[k][pos]...)
			}
		}
	}
	out := runs[:0]
	for _, r := range runs {
		if len(r.ids) > 0 {
			out = append(out, r)
		}
	}
	plan.runs = out
	return plan, nil
}

// pgBlockChecker passes one data block through from r, which must hold
// exactly its bytes, and fails the read as soon as they are not the block
// of entry id: another entry's block, a block that ends early, or one
// that does not end where the list says.
type pgBlockChecker struct {
	r     io.Reader
	b     DumpBlock
	p     pgBlockParser
	ended bool
}

func newPgBlockChecker(r io.Reader, b DumpBlock, intSize int) *pgBlockChecker {
	return &pgBlockChecker{r: r, b: b, p: pgBlockParser{intSize: intSize, pos: b.Offset}}
}

func (c *pgBlockChecker) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		if c.ended {
			return 0, c.mismatch("it ends at offset %d, before its length", c.p.pos)
		}
		// The block's header is checked before any of it is passed on:
		// the type byte and the id arrive in the first read of any
		// useful size.
		ferr := c.p.feed(p[:n], func(id, start, end int64) error {
			if end != c.b.Offset+c.b.Length {
				return c.mismatch("it ends at offset %d", end)
			}
			c.ended = true
			return nil
		})
		if ferr == nil && c.p.id != 0 && c.p.id != c.b.ID {
			ferr = c.mismatch("it is the block of entry %d", c.p.id)
		}
		if ferr != nil {
			if !errors.Is(ferr, errBlocksMismatch) {
				ferr = c.mismatch("%v", ferr)
			}
			return 0, ferr
		}
	}
	if err == io.EOF && !c.ended {
		return n, c.mismatch("it does not end at offset %d", c.b.Offset+c.b.Length)
	}
	return n, err
}

func (c *pgBlockChecker) mismatch(format string, args ...any) error {
	return blocksMismatch("the block of entry %d at offset %d: %s", c.b.ID, c.b.Offset, fmt.Sprintf(format, args...))
}
