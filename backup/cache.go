package backup

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"

	"github.com/cofferhq/coffer/internal/keys"
	"github.com/cofferhq/coffer/internal/progress"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/source"
)

// The change cache lets a folder backup skip reading files whose size,
// mtime, ctime and inode are unchanged since the last backup, reusing their
// chunks. It lives on the backup host, age-encrypted to the repository's
// index key (so it is no plaintext on disk, and only the signing-key holder
// reads it), one file per repository: CacheDir/<repo id>/changes.age.

// fileKey is a file's state.
type fileKey = source.FileState

type cacheRec struct {
	Key    fileKey      `json:"key"`
	SHA256 string       `json:"sha256"`
	Chunks []cacheChunk `json:"chunks"`
	// Meta is what the source stored with the item (a bucket object's
	// metadata; see source.ObjectTracker).
	Meta []byte `json:"meta,omitempty"`
}

type cacheChunk struct {
	ID     repo.ChunkID `json:"id"`
	Pack   string       `json:"p"`
	Offset int64        `json:"o"`
	Length int64        `json:"l"`
	Raw    int64        `json:"r"`
	Zstd   bool         `json:"z,omitempty"`
}

type changeCache struct {
	path     string
	identity *age.X25519Identity
	packs    map[string]*packSlot // the loaded index's packs, by SHA-256
	log      *slog.Logger
	cursors  map[string]*cacheCursor // for lookupMeta
	ahead    map[string]*cacheCursor // for knownItem
}

// The cache file is a stream, read with one cursor per source in the
// order it was written, never loaded whole: memory stays flat in the
// number of files. Content (version 3): age, to the index recipient, of a
// zstd stream of records (each its length, then its fields; see
// appendCacheEntry): a cacheHeader, then one cacheEntry per file,
// the entries of each source together and in the order the backup wrote
// them, which for a folder is the walk's order (see walkCompare).
type cacheHeader struct {
	Version int
	// Totals are the bytes and number of the files each source's
	// entries describe, for progress estimates without a pass.
	Totals map[string]progress.Counts
}

const cacheVersion = 3

type cacheEntry struct {
	Source string
	Path   string
	Rec    cacheRec
}

// cacheCursor reads one source's entries; cur is the next one not yet
// passed by the lookups.
type cacheCursor struct {
	close func()
	next  func() (cacheEntry, error)
	cur   cacheEntry
	ok    bool // cur is valid
	// A source writes its entries either in walk order (a folder) or in
	// byte order (a bucket's keys); the two differ only where one path
	// has '/' and the other a byte below it. The cursor learns which from
	// the entries and the lookups; until then it never passes an entry on
	// a comparison the two orders disagree on.
	order int    // 0 unknown, orderWalk, orderBytes
	last  string // the previous lookup's path
	// For save: the entries passed, the lookups that reproduced their
	// entry exactly, and whether the file could not be read to the end.
	passed, exact int
	damaged       bool
}

const (
	orderWalk = iota + 1
	orderBytes
)

// loadCache prepares the cache; packs are the loaded index's packs, those
// present at their recorded size and not dropped (changed since this host
// saw them, replaced by a repack record, named damaged). Nothing is read
// until the first lookup.
func loadCache(dir, repoID string, secrets *keys.Derived, packs map[string]*packSlot, log *slog.Logger) *changeCache {
	if dir == "" {
		return nil
	}
	return &changeCache{path: filepath.Join(dir, repoID, "changes.age"), identity: secrets.IndexIdentity,
		packs: packs, log: log, cursors: map[string]*cacheCursor{}, ahead: map[string]*cacheCursor{}}
}

// open reads the cache file from the start: next returns its entries in
// order, io.EOF after the last. A missing file has no entries.
func (c *changeCache) open() (next func() (cacheEntry, error), closeFn func(), err error) {
	next, closeFn, _, err = c.openHeader()
	return next, closeFn, err
}

// openHeader is open, and returns the file's header too.
func (c *changeCache) openHeader() (next func() (cacheEntry, error), closeFn func(), h cacheHeader, err error) {
	f, err := os.Open(c.path)
	if err != nil {
		if os.IsNotExist(err) {
			return func() (cacheEntry, error) { return cacheEntry{}, io.EOF }, func() {}, h, nil
		}
		return nil, nil, h, err
	}
	ar, err := age.Decrypt(bufio.NewReaderSize(f, 256<<10), c.identity)
	if err != nil {
		f.Close()
		return nil, nil, h, err
	}
	zr, err := zstd.NewReader(ar, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(64<<20))
	if err != nil {
		f.Close()
		return nil, nil, h, err
	}
	closeFn = func() { zr.Close(); f.Close() }
	br := bufio.NewReaderSize(zr, 64<<10)
	var buf []byte
	read := func() (*spillDecoder, error) {
		n, err := binary.ReadUvarint(br)
		if err != nil {
			return nil, err // io.EOF after the last record
		}
		if n > 64<<20 {
			return nil, fmt.Errorf("change cache record of %d bytes", n)
		}
		if uint64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(br, buf); err != nil {
			return nil, io.ErrUnexpectedEOF
		}
		return &spillDecoder{b: buf}, nil
	}
	d, err := read()
	if err == nil {
		err = decodeCacheHeader(d, &h)
	}
	if err != nil || h.Version != cacheVersion {
		closeFn()
		return nil, nil, cacheHeader{}, fmt.Errorf("not a version %d change cache", cacheVersion)
	}
	return func() (cacheEntry, error) {
		var e cacheEntry
		d, err := read()
		if err == nil {
			err = decodeCacheEntry(d, &e)
		}
		return e, err
	}, closeFn, h, nil
}

// A record of the cache file is its length (uvarint) and its fields in
// order, as the spill's (spill.encode): the header is the version, the
// number of sources and each one's name, bytes and files; an entry is
// its source, path, key (size, mtime, ctime, inode, device, ETag), hash,
// chunks (count, then each one's id, pack, offset, length, raw length and
// zstd flag) and metadata (a flag, then the bytes).

func appendCacheHeader(b []byte, h *cacheHeader) []byte {
	b = binary.AppendUvarint(b, uint64(h.Version))
	b = binary.AppendUvarint(b, uint64(len(h.Totals)))
	for _, src := range slices.Sorted(maps.Keys(h.Totals)) {
		b = appendString(b, src)
		b = binary.AppendVarint(b, h.Totals[src].Bytes)
		b = binary.AppendVarint(b, h.Totals[src].Files)
	}
	return b
}

func decodeCacheHeader(d *spillDecoder, h *cacheHeader) error {
	h.Version = int(d.uvarint())
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		return errSpillShort
	}
	h.Totals = make(map[string]progress.Counts, n)
	for range n {
		src := d.string()
		h.Totals[src] = progress.Counts{Bytes: d.varint(), Files: d.varint()}
	}
	return d.end()
}

func appendCacheEntry(b []byte, e *cacheEntry) []byte {
	b = appendString(b, e.Source)
	b = appendString(b, e.Path)
	b = appendFileState(b, &e.Rec.Key)
	b = appendString(b, e.Rec.SHA256)
	b = binary.AppendUvarint(b, uint64(len(e.Rec.Chunks)))
	for _, c := range e.Rec.Chunks {
		b = append(b, c.ID[:]...)
		b = appendString(b, c.Pack)
		b = binary.AppendVarint(b, c.Offset)
		b = binary.AppendVarint(b, c.Length)
		b = binary.AppendVarint(b, c.Raw)
		b = appendBool(b, c.Zstd)
	}
	b = appendBool(b, e.Rec.Meta != nil)
	return appendString(b, string(e.Rec.Meta))
}

func decodeCacheEntry(d *spillDecoder, e *cacheEntry) error {
	e.Source, e.Path = d.string(), d.string()
	e.Rec.Key = d.fileState()
	e.Rec.SHA256 = d.string()
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		return errSpillShort
	}
	if n > 0 {
		e.Rec.Chunks = make([]cacheChunk, n)
	}
	for i := range e.Rec.Chunks {
		c := &e.Rec.Chunks[i]
		copy(c.ID[:], d.bytes(uint64(len(c.ID))))
		c.Pack = d.string()
		c.Offset, c.Length, c.Raw = d.varint(), d.varint(), d.varint()
		c.Zstd = d.flag()
	}
	e.Rec.Meta = d.meta()
	return d.end()
}

// estimate is what the cache remembers of a source's files: their bytes
// and number, the size of its previous backup (zero when unknown). It
// reads only the file's header.
func (c *changeCache) estimate(source string) progress.Counts {
	if c == nil {
		return progress.Counts{}
	}
	_, closeFn, h, err := c.openHeader()
	if err != nil {
		return progress.Counts{}
	}
	closeFn()
	return h.Totals[source]
}

// cursor returns the source's cursor in set (c.cursors, or c.ahead for
// knownItem), opening the file and skipping to the source's entries on first
// use. A cache that cannot be read is reported once per cursor and treated
// as empty: every file is read.
func (c *changeCache) cursor(set map[string]*cacheCursor, source string) *cacheCursor {
	if cur, ok := set[source]; ok {
		return cur
	}
	cur := &cacheCursor{close: func() {}}
	set[source] = cur
	next, closeFn, err := c.open()
	if err != nil {
		c.log.Warn("change cache unreadable; reading every file", "err", err)
		cur.damaged = true
		return cur
	}
	cur.close = closeFn
	for {
		e, err := next()
		if err != nil {
			if err != io.EOF {
				c.log.Warn("change cache damaged; reading every file", "err", err)
				cur.damaged = true
			}
			return cur
		}
		if e.Source == source {
			cur.cur, cur.ok = e, true
			break
		}
	}
	cur.next = func() (cacheEntry, error) {
		e, err := next()
		if err == nil && e.Source != source {
			err = io.EOF // the source's entries are together
		}
		return e, err
	}
	return cur
}

// walkCompare orders paths as a folder walk visits them (filepath.WalkDir:
// each folder's names in byte order, a folder before its contents): byte
// order with '/' below every other byte.
func walkCompare(a, b string) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		x, y := a[i], b[i]
		if x == y {
			continue
		}
		if x == '/' {
			return -1
		}
		if y == '/' {
			return 1
		}
		if x < y {
			return -1
		}
		return 1
	}
	switch {
	case len(a) < len(b):
		return -1
	case len(a) > len(b):
		return 1
	}
	return 0
}

// lookupMeta returns the chunks of an unchanged file, and the metadata
// stored with it, when every pack the cache places them in is still in the
// loaded index (so present, at the size the index recorded).
// Paths must come in the source's order for the cursor to find them; one
// that comes out of order is only a miss.
func (c *changeCache) lookupMeta(source, path string, k fileKey) (fileRec, []byte, bool) {
	if c == nil {
		return fileRec{}, nil, false
	}
	cur := c.cursor(c.cursors, source)
	cr, ok := cur.find(path, c.log)
	if !ok || cr.Key != k {
		return fileRec{}, nil, false
	}
	rec, meta, ok := c.resolve(cr, k)
	if ok {
		cur.exact++
	}
	return rec, meta, ok
}

// knownItem is lookupMeta that records nothing, for a source that asks ahead
// (source.ObjectTracker.Known): it reads with a cursor of its own, so the
// lookups that follow still find the same entries.
func (c *changeCache) knownItem(source, path string, k fileKey) bool {
	if c == nil {
		return false
	}
	cr, ok := c.cursor(c.ahead, source).find(path, c.log)
	if !ok || cr.Key != k {
		return false
	}
	_, _, ok = c.resolve(cr, k)
	return ok
}

// resolve places a cache record's chunks where the cache says they are,
// once each pack it names is found among the loaded index's packs: a pack
// is named by the SHA-256 of its bytes, so a pack there by that name and
// at its recorded size holds every chunk an earlier backup stored in it,
// where it stored it. A pack gone, replaced (by a repack record, or by
// bytes of another size) or dropped is not there, and the file is read.
// One map lookup a pack, not an index lookup (a read of a table block) a
// chunk; a file's chunks are mostly in one pack.
func (c *changeCache) resolve(cr cacheRec, k fileKey) (fileRec, []byte, bool) {
	rec := fileRec{entry: repo.Entry{Size: k.Size, SHA256: cr.SHA256}}
	if len(cr.Chunks) > 0 {
		rec.locs = make([]idLoc, 0, len(cr.Chunks))
	}
	var s *packSlot
	for _, ch := range cr.Chunks {
		if s == nil || s.sha != ch.Pack {
			if s = c.packs[ch.Pack]; s == nil {
				return fileRec{}, nil, false
			}
		}
		if ch.Offset < 0 || ch.Length <= 0 || ch.Raw < 0 || ch.Offset > s.size-ch.Length ||
			!fits(loc{length: ch.Length, raw: ch.Raw}) {
			return fileRec{}, nil, false
		}
		rec.locs = append(rec.locs, idLoc{id: ch.ID, loc: loc{pack: s, offset: ch.Offset, length: ch.Length,
			raw: ch.Raw, zstd: ch.Zstd}})
	}
	return rec, cr.Meta, true
}

// find returns the entry of path, passing the entries before it: paths
// must come in the order the source wrote them last time.
func (cur *cacheCursor) find(path string, log *slog.Logger) (cacheRec, bool) {
	if cur.last != "" {
		cur.learn(cur.last, path)
	}
	cur.last = path
	for cur.ok && cur.before(cur.cur.Path, path) {
		cur.advance(log)
	}
	if !cur.ok || cur.cur.Path != path {
		return cacheRec{}, false
	}
	cr := cur.cur.Rec
	cur.advance(log)
	return cr, true
}

// learn notes the order of a pair of paths that came a before b.
func (cur *cacheCursor) learn(a, b string) {
	if cur.order != 0 {
		return
	}
	w, y := walkCompare(a, b), strings.Compare(a, b)
	switch {
	case w < 0 && y > 0:
		cur.order = orderWalk
	case w > 0 && y < 0:
		cur.order = orderBytes
	}
}

// before reports whether a comes before b in the source's order.
func (cur *cacheCursor) before(a, b string) bool {
	w, y := walkCompare(a, b), strings.Compare(a, b)
	switch cur.order {
	case orderWalk:
		return w < 0
	case orderBytes:
		return y < 0
	}
	return w < 0 && y < 0
}

func (cur *cacheCursor) advance(log *slog.Logger) {
	prev := cur.cur.Path
	cur.passed++
	e, err := cur.next()
	if err != nil {
		if err != io.EOF {
			log.Warn("change cache damaged; reading the remaining files", "err", err)
			cur.damaged = true
		}
		cur.ok = false
		return
	}
	cur.cur = e
	cur.learn(prev, e.Path)
}

// close releases the cursors' files.
func (c *changeCache) close() {
	if c == nil {
		return
	}
	for _, cur := range c.cursors {
		cur.close()
	}
	for _, cur := range c.ahead {
		cur.close()
	}
	c.cursors, c.ahead = map[string]*cacheCursor{}, map[string]*cacheCursor{}
}

// save writes the cache of this backup's files, read back from the spill
// (the records with a file state), after the entries of the sources not
// backed up this time, copied from the old file; called after the
// manifest is written, when every pack has its name.
func (c *changeCache) save(log *slog.Logger, sources []*sourceWriter, sp *spill) {
	if c == nil {
		return
	}
	if c.unchanged(sources) {
		// The file would be written again byte for byte the same in
		// what it says: an unchanged tree costs no second pass over the
		// spill, no encoding and no fsync.
		c.close()
		return
	}
	c.close()
	err := writeFileAtomicFunc(c.path, func(w io.Writer) error { return c.write(w, sources, sp) })
	if err != nil {
		log.Warn("could not save the change cache; the next backup reads every file", "err", err)
	}
}

// unchanged reports whether the cache save would write holds exactly what
// the file holds already: for every source backed up, its lookups passed
// every one of its entries (none trails, none was damaged), each one
// reproduced by a lookup that hit (same path, key, hash, metadata and
// chunks), no file was read and remembered besides, and the header's
// totals are the same. The entries of other sources are copied unchanged
// either way.
func (c *changeCache) unchanged(sources []*sourceWriter) bool {
	_, closeFn, h, err := c.openHeader()
	if err != nil {
		return false
	}
	closeFn()
	if h.Totals == nil {
		return false // no file
	}
	for _, sw := range sources {
		if n, ok := h.Totals[sw.name]; !ok || n != sw.cached {
			return false
		}
		cur, ok := c.cursors[sw.name]
		if !ok {
			if sw.cached.Files != 0 {
				return false
			}
			continue // no lookups: the totals say the file has no entries of it
		}
		if cur.damaged || cur.ok || cur.passed != cur.exact || int64(cur.exact) != sw.cached.Files {
			return false
		}
	}
	return true
}

func (c *changeCache) write(w io.Writer, sources []*sourceWriter, sp *spill) error {
	aw, err := age.Encrypt(w, c.identity.Recipient())
	if err != nil {
		return err
	}
	zw, err := zstd.NewWriter(aw, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return err
	}
	var buf []byte
	put := func(rec []byte) error {
		var head [binary.MaxVarintLen64]byte
		if _, err := zw.Write(binary.AppendUvarint(head[:0], uint64(len(rec)))); err != nil {
			return err
		}
		_, err := zw.Write(rec)
		buf = rec
		return err
	}
	// Sources not backed up this time keep their entries, so separate
	// jobs per source against one repository all benefit.
	backedUp := map[string]bool{}
	h := cacheHeader{Version: cacheVersion, Totals: map[string]progress.Counts{}}
	for _, sw := range sources {
		backedUp[sw.name] = true
		h.Totals[sw.name] = sw.cached
	}
	next, closeFn, old, err := c.openHeader()
	if err == nil {
		for src, n := range old.Totals {
			if !backedUp[src] {
				h.Totals[src] = n
			}
		}
	}
	if err := put(appendCacheHeader(buf[:0], &h)); err != nil {
		if closeFn != nil {
			closeFn()
		}
		return err
	}
	if err == nil {
		for {
			e, err := next()
			if err != nil {
				break // a damaged tail loses only other sources' entries
			}
			if !backedUp[e.Source] {
				if err := put(appendCacheEntry(buf[:0], &e)); err != nil {
					closeFn()
					return err
				}
			}
		}
		closeFn()
	}
	recs, err := sp.records()
	if err != nil {
		return err
	}
	for _, sw := range sources {
		for range sw.count {
			rec, err := recs()
			if err != nil {
				return err
			}
			if rec.State == nil {
				continue
			}
			e := cacheEntry{Source: sw.name, Path: rec.Entry.Path, Rec: cacheRec{Key: *rec.State, SHA256: rec.Entry.SHA256, Meta: rec.Meta}}
			for _, l := range rec.Locs {
				e.Rec.Chunks = append(e.Rec.Chunks, cacheChunk{ID: l.ID, Pack: sp.pack(l).sha, Offset: l.Offset,
					Length: l.Length, Raw: l.Raw, Zstd: l.Zstd})
			}
			if err := put(appendCacheEntry(buf[:0], &e)); err != nil {
				return err
			}
		}
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return aw.Close()
}

func writeFileAtomic(path string, data []byte) error {
	return writeFileAtomicFunc(path, func(w io.Writer) error {
		_, err := bytes.NewReader(data).WriteTo(w)
		return err
	})
}

// writeFileAtomicFunc writes path through fill: a temporary file beside
// it, fsync, rename.
func writeFileAtomicFunc(path string, fill func(io.Writer) error) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	bw := bufio.NewWriterSize(f, 256<<10)
	if err := fill(bw); err != nil {
		f.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
