package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync/atomic"
	"time"

	"filippo.io/age"

	"github.com/cofferhq/coffer/storage"
)

const ageChunk = 64 << 10 // age's STREAM chunk size
const ageTag = 16         // Poly1305 tag per chunk

// readAhead is how much plaintext a chunk read fetches at least.
const readAhead = 4 << 20

// ChunkReader reads single chunks of a snapshot's packs with ranged reads
// and age.DecryptReaderAt, and checks each chunk's keyed id. It is not safe
// for concurrent use; make one per goroutine.
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
	return &ChunkReader{r: r, sizes: sizes, id: id, open: map[string]*openPack{}, gone: map[string]error{}}, nil
}

// Read returns the plaintext of chunk c stored in pack, verified against
// its id. When pack is gone from the store (or has another size than the
// manifest records) and a verified repack record replaces it, the chunk is
// read where the record put it (doc/design.md, section 6.3), and its keyed
// id is checked all the same.
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

// ReadStored is Read that returns the chunk's bytes as stored (a zstd
// frame when z is set), after checking its id, and the reference to where
// it was read (c itself, or its place in a repacked pack).
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
	if c.Offset > p.plainSize-c.Length {
		return nil, nil, c, integrity(name, "chunk %s lies outside the pack", ShortID(c.ID.String()))
	}
	// Read ahead: the next chunks a restore needs usually follow in the
	// same pack, so one ranged read serves many small chunks.
	coff, clen := p.cipherRange(c.Offset, c.Length)
	_, aheadLen := p.cipherRange(c.Offset, max(c.Length, readAhead))
	p.src.prefetch(ctx, coff, clen, aheadLen)
	buf := make([]byte, c.Length)
	if _, err := p.ra.ReadAt(buf, c.Offset); err != nil && !(errors.Is(err, io.EOF) && c.Offset+c.Length == p.plainSize) {
		if ctx.Err() != nil {
			return nil, nil, c, ctx.Err()
		}
		if errors.Is(err, storage.ErrNotExist) {
			if _, wasGone := cr.gone[c.Pack]; !wasGone {
				// Deleted since it was opened (prune, once a repack
				// record took over): read as if it had been gone then.
				delete(cr.open, c.Pack)
				cr.order = slices.DeleteFunc(cr.order, func(p string) bool { return p == c.Pack })
				cr.gone[c.Pack] = &IntegrityError{Object: name, Err: &goneError{"missing"}}
				return cr.read(ctx, pack, orig)
			}
			return nil, nil, c, integrity(name, "missing")
		}
		return nil, nil, c, integrity(name, "read chunk: %v", err)
	}
	data = buf
	if c.Zstd {
		data, err = Decompress(nil, buf, c.Raw)
		if err != nil {
			return nil, nil, c, integrity(name, "chunk %s: %v", ShortID(c.ID.String()), err)
		}
	} else if int64(len(buf)) != c.Raw {
		return nil, nil, c, integrity(name, "chunk %s: length %d, want %d", ShortID(c.ID.String()), len(buf), c.Raw)
	}
	if cr.id(data) != c.ID {
		return nil, nil, c, integrity(name, "chunk %s does not match its id", ShortID(c.ID.String()))
	}
	return buf, data, c, nil
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
	if len(cr.order) >= 4 {
		delete(cr.open, cr.order[0])
		cr.order = cr.order[1:]
	}
	cr.open[pack] = p
	cr.order = append(cr.order, pack)
	return p, nil
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

// windowReaderAt serves ReadAt from one prefetched window of an object, so
// that decrypting a chunk that spans many 64 KiB age chunks costs one ranged
// read rather than one per age chunk.
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

// prefetch makes sure [off, off+n) is in the window, fetching
// [off, off+ahead) when it is not.
func (w *windowReaderAt) prefetch(ctx context.Context, off, n, ahead int64) {
	if off >= w.winOff && off+n <= w.winOff+int64(len(w.win)) {
		return
	}
	w.ctx = ctx
	b, err := w.read(off, max(n, ahead), w.win[:0])
	if err != nil {
		w.win = nil // ReadAt will read again and report the error
		return
	}
	w.win, w.winOff = b, off
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
