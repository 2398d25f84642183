package repo

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"slices"
	"sync/atomic"
	"time"

	"filippo.io/age"

	"github.com/cofferhq/coffer/storage"
)

const ageChunk = 64 << 10 // age's STREAM chunk size
const ageTag = 16         // Poly1305 tag per chunk

// readAhead is how much plaintext a read fetches past the chunk it needs,
// unless SetWindow says otherwise or a plan (ChunkReader.Plan) needs less.
const readAhead = 4 << 20

// ChunkReader reads single chunks of a snapshot's packs with ranged reads
// and age.DecryptReaderAt, and checks each chunk's keyed id. It is not safe
// for concurrent use; make one per goroutine.
//
// A read fetches and decrypts a window of whole 64 KiB age chunks at once
// and serves the chunks that follow from its plaintext, so that many small
// chunks cost one ranged read and one decryption. A window reaches no
// further than the read-ahead (readAhead, or SetWindow's) and, when the
// reader was told which chunks come next (Plan), no further than the
// planned chunks of that pack: readers that restore neighbouring runs of
// one pack then fetch nothing twice but the age chunk where two runs meet.
type ChunkReader struct {
	r     *Repository
	sizes map[string]int64
	id    func([]byte) ChunkID
	open  map[string]*openPack
	order []string
	gone  map[string]error // packs found missing or resized, so a repacked pack costs one request
	// reloaded are the gone packs for which the repack records were
	// listed again.
	reloaded map[string]bool

	// wins are the windows held, the most recently filled last.
	wins []*window
	// ahead bounds a window's read-ahead past the chunk it is fetched
	// for, budget the plaintext of all windows together; a window always
	// holds at least the chunk being read.
	ahead, budget int64
	// plan holds, per pack, the extents of plaintext the next reads need
	// (Plan), in offset order.
	plan map[string][]extent
	// cipher holds the ciphertext of a piece of the window being
	// decrypted.
	cipher []byte

	// reuse is set by ReuseBuffers: the bytes a read returns live only
	// until the next read, so that windows and decompressed chunks are
	// not allocated anew for every read.
	reuse bool
	// spare are memories of dropped windows that no window and no
	// returned chunk uses, at most budget bytes of them, for the next
	// window (fill): those it does not use are left to the collector,
	// so that reuse holds no memory between reads. A window fetched for
	// a chunk larger than the budget (shrink) is left to it too.
	spare [][]byte
	// plain holds the decompressed chunk the last read returned.
	plain []byte

	// Fetched counts ciphertext bytes read from storage.
	Fetched int64
	// FetchTime is the time spent in storage reads (opening a range and
	// reading it to the end).
	FetchTime time.Duration
}

// ReadStats add up, across every chunk reader that reads with a context
// carrying them (WithReadStats), the time spent fetching ciphertext from
// storage, the rest of the time spent in ChunkReader.Read (age decryption,
// zstd, the keyed chunk id) and the ciphertext bytes fetched. Times are
// summed over readers that run in parallel. A restore drill uses them to
// split a restore's time; they cost two clock reads per chunk.
type ReadStats struct {
	Fetch, Decrypt atomic.Int64 // nanoseconds
	Bytes          atomic.Int64
}

type readStatsKey struct{}

// WithReadStats returns a context whose chunk reads add to st.
func WithReadStats(ctx context.Context, st *ReadStats) context.Context {
	return context.WithValue(ctx, readStatsKey{}, st)
}

type openPack struct {
	ra        io.ReaderAt
	plainSize int64
	encSize   int64
	src       *windowReaderAt
}

// window is plaintext of a pack from offset off: whole age chunks (the
// last one may be the pack's short final chunk).
type window struct {
	pack string
	off  int64
	data []byte
}

func (w *window) holds(pack string, off, n int64) bool {
	return w.pack == pack && off >= w.off && off+n <= w.off+int64(len(w.data))
}

// extent is a range [off, end) of a pack's plaintext.
type extent struct{ off, end int64 }

// NewChunkReader returns a reader for the packs listed in m.
func (r *Repository) NewChunkReader(ctx context.Context, m *Manifest) (*ChunkReader, error) {
	return r.NewPackReader(ctx, m.Packs)
}

// NewPackReader returns a reader for the given packs, which are expected
// at the sizes given.
func (r *Repository) NewPackReader(ctx context.Context, packs []PackRef) (*ChunkReader, error) {
	if len(r.identities) == 0 {
		return nil, ErrNoIdentity
	}
	id, err := r.ChunkIDFunc(ctx)
	if err != nil {
		return nil, err
	}
	sizes := make(map[string]int64, len(packs))
	for _, p := range packs {
		sizes[p.SHA256] = p.Size
	}
	return &ChunkReader{r: r, sizes: sizes, id: id, open: map[string]*openPack{}, gone: map[string]error{},
		ahead: readAhead, budget: maxOpen * readAhead}, nil
}

// maxOpen is how many packs a reader keeps open (their age headers and
// windows).
const maxOpen = 4

// SetWindow bounds the reader's read-ahead to n bytes of plaintext: no
// window reaches more than n past the chunk it is fetched for, and the
// windows of all its open packs hold n together, apart from a chunk
// larger than that, which is held while it is read. The default is 4 MiB
// a window and 16 MiB in all.
func (cr *ChunkReader) SetWindow(n int64) {
	cr.ahead, cr.budget = max(n, ageChunk), max(n, ageChunk)
	cr.trim(0)
}

// SetBudget bounds the plaintext the windows of all its open packs hold
// together to n bytes (no less than the read-ahead), apart from a chunk
// larger than that, which is held while it is read.
func (cr *ChunkReader) SetBudget(n int64) {
	cr.budget = max(n, cr.ahead)
	cr.trim(0)
}

// Plan tells the reader the chunks it reads next (it replaces the last
// plan). A window fetched in a pack the plan names then reaches no
// further than the planned chunks around the one being read: a reader
// given a run of files fetches their chunks and not the next run's,
// which another reader may be given.
func (cr *ChunkReader) Plan(chunks iter.Seq[ChunkRef]) {
	clear(cr.plan)
	if cr.plan == nil {
		cr.plan = map[string][]extent{}
	}
	for c := range chunks {
		if c.Length <= 0 {
			continue
		}
		cr.plan[c.Pack] = append(cr.plan[c.Pack], extent{c.Offset, c.Offset + c.Length})
	}
	// Windows the new plan does not reach into are not kept for it.
	cr.wins = slices.DeleteFunc(cr.wins, func(w *window) bool {
		if !cr.planned(w.pack, w.off, w.off+int64(len(w.data))) {
			cr.release(w.data)
			return true
		}
		return false
	})
	for pack, xs := range cr.plan {
		slices.SortFunc(xs, func(a, b extent) int { return cmp.Compare(a.off, b.off) })
		// Merge extents that no whole age chunk separates: a window
		// covering both costs nothing more.
		out := xs[:1]
		for _, x := range xs[1:] {
			last := &out[len(out)-1]
			if x.off/ageChunk <= (last.end+ageChunk-1)/ageChunk {
				last.end = max(last.end, x.end)
				continue
			}
			out = append(out, x)
		}
		cr.plan[pack] = out
	}
}

// planned reports whether the plan needs any of [off, end) of pack.
func (cr *ChunkReader) planned(pack string, off, end int64) bool {
	for _, x := range cr.plan[pack] {
		if x.off < end && off < x.end {
			return true
		}
	}
	return false
}

// reach returns the extent a window fetched for chunk c of pack may
// cover: the planned extent holding c, or c and the read-ahead after it
// for a pack the plan does not name.
func (cr *ChunkReader) reach(pack string, c ChunkRef) extent {
	end := c.Offset + c.Length
	xs, ok := cr.plan[pack]
	if !ok {
		return extent{c.Offset, end + cr.ahead}
	}
	i, _ := slices.BinarySearchFunc(xs, c.Offset, func(x extent, off int64) int { return cmp.Compare(x.off, off+1) })
	if i > 0 && xs[i-1].end >= end {
		return xs[i-1]
	}
	return extent{c.Offset, end}
}

// Read returns the plaintext of chunk c stored in pack, verified against
// its id. When pack is gone from the store (or has another size than the
// manifest records) and a verified repack record replaces it, the chunk is
// read where the record put it (doc/design.md, section 6.3), and its keyed
// id is checked all the same. The bytes returned may be the reader's
// window (an uncompressed chunk): the caller must not modify them.
func (cr *ChunkReader) Read(ctx context.Context, pack string, c ChunkRef) ([]byte, error) {
	if st, ok := ctx.Value(readStatsKey{}).(*ReadStats); ok {
		start, fetch, fetched := time.Now(), cr.FetchTime, cr.Fetched
		defer func() {
			f := cr.FetchTime - fetch
			st.Fetch.Add(int64(f))
			st.Decrypt.Add(int64(time.Since(start) - f))
			st.Bytes.Add(cr.Fetched - fetched)
		}()
	}
	_, data, _, err := cr.read(ctx, pack, c)
	return data, err
}

// ReuseBuffers makes the reader reuse its memory: the bytes Read and
// ReadStored return are valid only until the next Read, ReadStored or
// Plan on cr, which may overwrite them (with another chunk's plaintext
// or a window's). It is for callers that are done with each chunk before
// they read the next (a restore writing it to a file); a caller that
// holds chunks (a stream with chunks in flight) must not call it. A
// window the reader drops is used for the next window when the sizes
// fit; the reader holds, besides its windows, at most the windows Plan
// dropped until its next window, and the largest compressed chunk read
// so far.
func (cr *ChunkReader) ReuseBuffers() { cr.reuse = true }

// ReadStored is Read that returns the chunk's bytes as stored (a zstd
// frame when z is set), after checking its id, and the reference to where
// it was read (c itself, or its place in a repacked pack). The bytes are
// the reader's window: the caller must not modify them.
func (cr *ChunkReader) ReadStored(ctx context.Context, pack string, c ChunkRef) ([]byte, ChunkRef, error) {
	stored, _, at, err := cr.read(ctx, pack, c)
	return stored, at, err
}

func (cr *ChunkReader) read(ctx context.Context, pack string, c ChunkRef) (stored, data []byte, at ChunkRef, err error) {
	orig := c
	c.Pack = pack
	size, ok := cr.sizes[pack]
	if !ok {
		return nil, nil, c, integrity(PackName(pack), "pack is not listed in the manifest")
	}
	p, err := cr.pack(ctx, pack, size)
	for hop := 0; err != nil && isGone(err) && hop < maxRelocations; hop++ {
		loc, found, rerr := cr.r.Relocate(ctx, c.Pack, c.ID)
		if rerr == nil && !found && !cr.reloaded[c.Pack] {
			// A long read (a restore drill of hours) may have loaded the
			// records before the one that replaced this pack was written:
			// list them again, once per pack.
			if cr.reloaded == nil {
				cr.reloaded = map[string]bool{}
			}
			cr.reloaded[c.Pack] = true
			cr.r.forgetRepacks()
			loc, found, rerr = cr.r.Relocate(ctx, c.Pack, c.ID)
		}
		if rerr != nil {
			if ctx.Err() != nil {
				return nil, nil, c, ctx.Err()
			}
			return nil, nil, c, fmt.Errorf("%w (reading the repack records that replace it: %w)", err, rerr)
		}
		if !found {
			if recs, _ := cr.r.Replaced(ctx, c.Pack); len(recs) > 0 {
				err = integrity(PackName(c.Pack), "%v, and repack record %s that replaces it does not hold chunk %s",
					err.(*IntegrityError).Err, ShortID(recs[0].ID), ShortID(c.ID.String()))
			}
			break
		}
		if loc.Chunk.Raw != c.Raw {
			return nil, nil, c, integrity(RepackName(loc.Record), "chunk %s: length %d, want %d", ShortID(c.ID.String()), loc.Chunk.Raw, c.Raw)
		}
		c = ChunkRef{ID: c.ID, Pack: loc.Pack.SHA256, Offset: loc.Chunk.Offset, Length: loc.Chunk.Length, Raw: loc.Chunk.Raw, Zstd: loc.Chunk.Zstd}
		p, err = cr.pack(ctx, c.Pack, loc.Pack.Size)
	}
	if err != nil {
		return nil, nil, c, err
	}
	name := PackName(c.Pack)
	if c.Offset < 0 || c.Length < 0 || c.Offset > p.plainSize-c.Length {
		return nil, nil, c, integrity(name, "chunk %s lies outside the pack", ShortID(c.ID.String()))
	}
	stored, err = cr.window(ctx, c.Pack, p, c)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, c, ctx.Err()
		}
		if errors.Is(err, storage.ErrNotExist) {
			if _, wasGone := cr.gone[c.Pack]; !wasGone {
				// Deleted since it was opened (prune, once a repack
				// record took over): read as if it had been gone then.
				cr.close(c.Pack)
				cr.gone[c.Pack] = &IntegrityError{Object: name, Err: &goneError{"missing"}}
				return cr.read(ctx, pack, orig)
			}
			return nil, nil, c, integrity(name, "missing")
		}
		return nil, nil, c, integrity(name, "read chunk: %v", err)
	}
	// stored is the window's memory.
	if c.Zstd {
		var dst []byte
		if cr.reuse && c.Raw <= maxChunk {
			if int64(cap(cr.plain)) < c.Raw {
				cr.plain = make([]byte, 0, c.Raw)
			}
			dst = cr.plain[:0]
		}
		data, err = Decompress(dst, stored, c.Raw)
		if err != nil {
			return nil, nil, c, integrity(name, "chunk %s: %v", ShortID(c.ID.String()), err)
		}
	} else {
		// Windows are never written once filled: the chunk is read
		// from the window's memory, which stays while it is used.
		data = stored
	}
	cr.shrink()
	if !c.Zstd && int64(len(data)) != c.Raw {
		return nil, nil, c, integrity(name, "chunk %s: length %d, want %d", ShortID(c.ID.String()), len(data), c.Raw)
	}
	if cr.id(data) != c.ID {
		return nil, nil, c, integrity(name, "chunk %s does not match its id", ShortID(c.ID.String()))
	}
	return stored, data, c, nil
}

// goneError says that a pack is not in the store as the manifest (or a
// repack record) describes it: missing, or of another size. A repack
// record may then say where its chunks went.
type goneError struct{ msg string }

func (e *goneError) Error() string { return e.msg }

func isGone(err error) bool {
	var g *goneError
	return errors.As(err, &g)
}

func (cr *ChunkReader) pack(ctx context.Context, pack string, size int64) (*openPack, error) {
	if p, ok := cr.open[pack]; ok {
		return p, nil
	}
	if err, ok := cr.gone[pack]; ok {
		return nil, err
	}
	name := PackName(pack)
	st, err := cr.r.Store.Stat(ctx, name)
	if errors.Is(err, storage.ErrNotExist) {
		cr.gone[pack] = &IntegrityError{Object: name, Err: &goneError{"missing"}}
		return nil, cr.gone[pack]
	}
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", name, err)
	}
	if st.Size != size {
		cr.gone[pack] = &IntegrityError{Object: name, Err: &goneError{fmt.Sprintf("size %d, want %d", st.Size, size)}}
		return nil, cr.gone[pack]
	}
	src := &windowReaderAt{ctx: ctx, st: cr.r.Store, name: name, size: size, fetched: &cr.Fetched, fetchTime: &cr.FetchTime}
	ra, plain, err := age.DecryptReaderAt(src, size, cr.r.identities...)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, decryptError(name, err)
	}
	p := &openPack{ra: ra, plainSize: plain, encSize: size, src: src}
	if len(cr.order) >= maxOpen {
		cr.close(cr.order[0])
	}
	cr.open[pack] = p
	cr.order = append(cr.order, pack)
	return p, nil
}

// window returns chunk c's stored bytes from a window of pack p,
// fetching and decrypting a new window when none holds them. The bytes
// are the window's memory, which is never written once filled.
func (cr *ChunkReader) window(ctx context.Context, pack string, p *openPack, c ChunkRef) ([]byte, error) {
	for i := len(cr.wins) - 1; i >= 0; i-- {
		if w := cr.wins[i]; w.holds(pack, c.Offset, c.Length) {
			return w.data[c.Offset-w.off:][:c.Length], nil
		}
	}
	w, err := cr.fill(ctx, pack, p, c.Offset, c.Length, cr.reach(pack, c))
	if err != nil && ctx.Err() == nil && !errors.Is(err, storage.ErrNotExist) {
		// A damaged age chunk elsewhere in the window fails only the
		// chunks it holds: fetch c's own age chunks alone.
		w, err = cr.fill(ctx, pack, p, c.Offset, c.Length, extent{c.Offset, c.Offset + c.Length})
	}
	if err != nil {
		return nil, err
	}
	return w.data[c.Offset-w.off:][:c.Length], nil
}

// piece is how much plaintext a window decrypts at a time (4 age
// chunks): its ciphertext is read from the ranged read into a buffer of
// that size, never the whole window's.
const piece = 4 * ageChunk

// fill fetches and decrypts a window of pack p that holds [off, off+n),
// in whole age chunks: the read-ahead's worth of extent x (all of it
// when it fits: the reads of a run of files go back and forth within
// it) that off falls in. What a window holds of the new one's start is
// kept, not fetched again: a window ends on an age chunk boundary, so a
// chunk that runs past its end costs only the age chunks after it.
func (cr *ChunkReader) fill(ctx context.Context, pack string, p *openPack, off, n int64, x extent) (*window, error) {
	// Windows of an extent lie on a grid from its start, so that which
	// bytes a window holds does not depend on the order of the reads.
	ahead := (cr.ahead + ageChunk - 1) / ageChunk * ageChunk
	grid := x.off / ageChunk * ageChunk
	start := grid + (off-grid)/ahead*ahead
	end := max(off+n, min(x.end, start+ahead))
	end = min((end+ageChunk-1)/ageChunk*ageChunk, p.plainSize)
	var old []byte
	for _, w := range cr.wins {
		if w.pack == pack && start >= w.off && start < w.off+int64(len(w.data)) {
			old = w.data[start-w.off:]
			break
		}
	}
	keep := min(int64(len(old)), end-start)
	cr.trim(end - start)
	// win may be the memory of a window trim just dropped, and old a
	// part of it: copy moves overlapping bytes correctly.
	win := cr.buffer(end - start)
	copy(win, old[:keep])
	// Spare memory that did not fit is not held past the fill.
	clear(cr.spare)
	cr.spare = cr.spare[:0]
	from := start + keep
	if from == end {
		w := &window{pack: pack, off: start, data: win}
		cr.wins = append(cr.wins, w)
		return w, nil
	}
	coff, clen := p.cipherRange(from, end-from)
	p.src.ctx = ctx
	rc, err := p.src.open(coff, clen)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if cr.cipher == nil {
		cr.cipher = make([]byte, piece+piece/ageChunk*ageTag)
	}
	for at := from; at < end; {
		k := min(end-at, piece)
		pc, pl := p.cipherRange(at, k)
		ct := cr.cipher[:pl]
		if err := p.src.readFull(rc, ct); err != nil {
			return nil, err
		}
		p.src.win, p.src.winOff = ct, pc
		_, err := p.ra.ReadAt(win[at-start:][:k], at)
		p.src.win = nil
		if err != nil && !(errors.Is(err, io.EOF) && at+k == p.plainSize) {
			return nil, err
		}
		at += k
	}
	w := &window{pack: pack, off: start, data: win}
	cr.wins = append(cr.wins, w)
	return w, nil
}

// trim drops windows, the least recently filled first, until they and
// size more bytes fit the budget.
func (cr *ChunkReader) trim(size int64) {
	held := size
	for _, w := range cr.wins {
		held += int64(cap(w.data))
	}
	for len(cr.wins) > 0 && held > cr.budget {
		held -= int64(cap(cr.wins[0].data))
		cr.release(cr.wins[0].data)
		cr.wins[0] = nil
		cr.wins = cr.wins[1:]
	}
}

// shrink keeps, of a window larger than the budget (fetched for a large
// chunk), only its last age chunk, which the next chunk may start in.
func (cr *ChunkReader) shrink() {
	if len(cr.wins) == 0 {
		return
	}
	w := cr.wins[len(cr.wins)-1]
	if int64(cap(w.data)) <= cr.budget {
		return
	}
	last := (int64(len(w.data)) - 1) / ageChunk * ageChunk
	w.data, w.off = slices.Clone(w.data[last:]), w.off+last
}

// release keeps the memory of a dropped window for later windows, when
// the reader reuses its memory (ReuseBuffers) and it fits the budget of
// spare memory. Windows are dropped (trim, close, Plan) before the read
// that drops them has found its chunk, so nothing a caller may still use
// lies in them: what an earlier read returned expired when this one
// began.
func (cr *ChunkReader) release(b []byte) {
	if !cr.reuse || int64(cap(b)) > cr.budget {
		return
	}
	held := int64(cap(b))
	for _, s := range cr.spare {
		held += int64(cap(s))
	}
	if held <= cr.budget {
		cr.spare = append(cr.spare, b[:0])
	}
}

// buffer returns n bytes for a window: spare memory when the reader
// reuses it and some fits closely (the smallest that does: a window
// counts in the budget at its capacity, so a much larger memory would
// crowd out other windows), else new memory. The bytes are not cleared.
func (cr *ChunkReader) buffer(n int64) []byte {
	if !cr.reuse {
		return make([]byte, n)
	}
	best := -1
	for i, s := range cr.spare {
		if c := int64(cap(s)); c >= n && c-n <= max(n/4, ageChunk) && (best < 0 || cap(s) < cap(cr.spare[best])) {
			best = i
		}
	}
	if best < 0 {
		return make([]byte, n)
	}
	b := cr.spare[best][:n]
	cr.spare = slices.Delete(cr.spare, best, best+1)
	return b
}

// close forgets an open pack and its windows.
func (cr *ChunkReader) close(pack string) {
	delete(cr.open, pack)
	cr.order = slices.DeleteFunc(cr.order, func(p string) bool { return p == pack })
	cr.wins = slices.DeleteFunc(cr.wins, func(w *window) bool {
		if w.pack == pack {
			cr.release(w.data)
			return true
		}
		return false
	})
}

// cipherRange maps a plaintext range of an age file to the ciphertext
// range that holds it.
func (p *openPack) cipherRange(off, n int64) (int64, int64) {
	chunks := (p.plainSize + ageChunk - 1) / ageChunk
	if chunks == 0 {
		chunks = 1
	}
	payloadOff := p.encSize - (p.plainSize + chunks*ageTag)
	if off+n > p.plainSize {
		n = p.plainSize - off
	}
	first, last := off/ageChunk, (off+n-1)/ageChunk
	start := payloadOff + first*(ageChunk+ageTag)
	end := min(p.encSize, payloadOff+(last+1)*(ageChunk+ageTag))
	return start, end - start
}

// windowReaderAt is the ciphertext age.DecryptReaderAt reads: while a
// window is decrypted, win holds its ciphertext (ChunkReader.fill), so that
// the window costs one ranged read rather than one per age chunk; other
// reads (the header and final chunk when a pack is opened) go to storage.
type windowReaderAt struct {
	ctx       context.Context
	st        storage.Store
	name      string
	size      int64
	win       []byte
	winOff    int64
	fetched   *int64
	fetchTime *time.Duration
}

// open starts a ranged read of [off, off+n), for readFull.
func (w *windowReaderAt) open(off, n int64) (io.ReadCloser, error) {
	start := time.Now()
	defer func() { *w.fetchTime += time.Since(start) }()
	return w.st.Open(w.ctx, w.name, off, n)
}

// readFull reads len(p) bytes of a ranged read.
func (w *windowReaderAt) readFull(rc io.Reader, p []byte) error {
	start := time.Now()
	n, err := io.ReadFull(rc, p)
	*w.fetched += int64(n)
	*w.fetchTime += time.Since(start)
	return err
}

// read reads [off, off+n), reusing buf's memory when it is large enough.
func (w *windowReaderAt) read(off, n int64, buf []byte) ([]byte, error) {
	start := time.Now()
	defer func() { *w.fetchTime += time.Since(start) }()
	rc, err := w.st.Open(w.ctx, w.name, off, n)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b := buf[:0]
	if int64(cap(b)) < n {
		b = make([]byte, n)
	}
	b = b[:n]
	m, err := io.ReadFull(rc, b)
	*w.fetched += int64(m)
	if err != nil {
		return nil, err
	}
	return b, nil
}

func (w *windowReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= w.winOff && off+int64(len(p)) <= w.winOff+int64(len(w.win)) {
		return copy(p, w.win[off-w.winOff:]), nil
	}
	n := int64(len(p))
	if off+n > w.size {
		n = w.size - off
	}
	if n <= 0 {
		return 0, io.EOF
	}
	b, err := w.read(off, n, nil)
	if err != nil {
		return 0, err
	}
	c := copy(p, b)
	if c < len(p) {
		return c, io.EOF
	}
	return c, nil
}
