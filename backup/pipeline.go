package backup

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"filippo.io/age"

	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/storage"
)

// The pipeline turns chunks into stored packs. Stages, each bounded:
//
//	WriteFile (read + chunk + whole-file SHA-256, one per source)
//	  -> jobs (cap workers; each source keeps at most inflight chunks
//	     outstanding) -> workers: keyed id, dedup lookup, zstd
//	  -> open pack (one; age-encrypted and hashed as chunks are added,
//	     into a packSink) -> sealed (cap 1)
//	  -> uploaders: repo.PutObjectFrom (Options.Uploads)
//
// Memory is bounded by inflight chunk buffers (each ChunkMax) and the
// workers' compression buffers: a pack's ciphertext waits in an unlinked
// temporary file (packSink), not in memory, from its first chunk until it
// is stored.

// loc is where a chunk lives: in a pack already stored, or in one that this
// backup is still filling or uploading.
type loc struct {
	pack   *packSlot
	offset int64
	length int64
	raw    int64
	zstd   bool
}

// packSlot is a pack; sha and size are set once it is stored.
type packSlot struct {
	sha  string
	size int64
}

type chunkJob struct {
	data []byte
	buf  *[]byte
	id   repo.ChunkID
	loc  loc
}

// A chunkBatch is what a worker takes at once: small chunks of a source,
// up to batchChunks of them or batchBytes, and at most one larger chunk,
// its last. A tree of small files, one chunk a file, handed over one
// chunk at a time cost a wake-up of a worker and of the source for each
// (doc/performance.md).
type chunkBatch struct {
	jobs  []chunkJob
	recs  []*fileRec // the file of each chunk
	bytes int
	arena []byte // holds the small chunks
	done  chan struct{}
	err   error
}

// keep copies a small chunk into the batch.
func (b *chunkBatch) keep(data []byte) []byte {
	if len(b.arena)+len(data) > cap(b.arena) {
		// A full batch holds at most batchBytes and one more chunk;
		// an arena that grows leaves the chunks before in the old one.
		b.arena = make([]byte, 0, max(batchBytes+smallChunk, len(data)))
	}
	n := len(b.arena)
	b.arena = append(b.arena, data...)
	return b.arena[n:len(b.arena):len(b.arena)]
}

// reset empties a batch whose chunks are stored, for reuse.
func (b *chunkBatch) reset() {
	clear(b.jobs)
	clear(b.recs)
	b.jobs, b.recs, b.bytes, b.arena, b.err = b.jobs[:0], b.recs[:0], 0, b.arena[:0], nil
	b.done = make(chan struct{})
}

const (
	batchChunks = 64
	batchBytes  = 256 << 10
)

// full says whether the batch is to be handed over now.
func (b *chunkBatch) full() bool {
	return len(b.jobs) >= batchChunks || b.bytes >= batchBytes || b.jobs[len(b.jobs)-1].buf != nil
}

// openPack is the pack the workers are filling.
type openPack struct {
	w    *repo.PackWriter
	sink *packSink
	slot *packSlot
}

// sealedPack is a pack whose ciphertext is complete, to be stored.
type sealedPack struct {
	slot   *packSlot
	sink   *packSink
	chunks []repo.IndexChunk
	sum    string
	size   int64
}

type pipeline struct {
	ctx    context.Context
	cancel context.CancelCauseFunc

	store      storage.Store
	recipients []age.Recipient
	idFunc     func([]byte) repo.ChunkID
	packSize   int

	jobs     chan *chunkBatch
	sealed   chan sealedPack
	workers  sync.WaitGroup
	uploader sync.WaitGroup
	bufs     *chunkBufs
	sinkSize int // a pack's ciphertext at most, for a sink in memory

	// packMu is held while a chunk is added to the open pack, and orders
	// additions to known: a chunk not in known under packMu is stored
	// once.
	packMu sync.Mutex
	cur    *openPack

	mu     sync.Mutex
	known  *knownIndex
	index  *newIndex // the packs this backup wrote, for its index
	ledger *ledger   // remembers the packs written, as stored

	bytesRead   atomic.Int64
	bytesNew    atomic.Int64
	bytesStored atomic.Int64
	chunks      atomic.Int64
	chunksNew   atomic.Int64
	handovers   atomic.Int64 // batches handed to the workers
}

func newPipeline(ctx context.Context, st storage.Store, recipients []age.Recipient, idFunc func([]byte) repo.ChunkID,
	known *knownIndex, bufs *chunkBufs, packSize, chunkMax, workers, uploads int) *pipeline {
	ctx, cancel := context.WithCancelCause(ctx)
	p := &pipeline{
		ctx: ctx, cancel: cancel, store: st, recipients: recipients, idFunc: idFunc,
		packSize: packSize, known: known, bufs: bufs,
		jobs:   make(chan *chunkBatch, workers),
		sealed: make(chan sealedPack, 1),
	}
	// age adds 16 bytes per 64 KiB; + room for the trailer.
	p.sinkSize = packSize + chunkMax + (packSize+chunkMax)/4096 + 1<<20
	for range workers {
		p.workers.Add(1)
		go p.work()
	}
	for range uploads {
		p.uploader.Add(1)
		go p.upload()
	}
	return p
}

// fail records the first error and stops every stage.
func (p *pipeline) fail(err error) { p.cancel(err) }

// err returns the error that stopped the pipeline, if any.
func (p *pipeline) err() error {
	if p.ctx.Err() == nil {
		return nil
	}
	return context.Cause(p.ctx)
}

// submit hands a batch of chunks to the workers.
func (p *pipeline) submit(b *chunkBatch) error {
	select {
	case p.jobs <- b:
		p.handovers.Add(1)
		return nil
	case <-p.ctx.Done():
		return p.err()
	}
}

func (p *pipeline) work() {
	defer p.workers.Done()
	var zbuf []byte
	for b := range p.jobs {
		for i := range b.jobs {
			if p.ctx.Err() != nil {
				b.err = p.err()
				break
			}
			j := &b.jobs[i]
			j.id = p.idFunc(j.data)
			if j.loc, zbuf, b.err = p.store1(j.id, j.data, zbuf); b.err != nil {
				break
			}
		}
		close(b.done)
	}
}

// store1 deduplicates one chunk and, if new, compresses it and adds it to
// the open pack.
func (p *pipeline) store1(id repo.ChunkID, data, zbuf []byte) (loc, []byte, error) {
	p.chunks.Add(1)
	p.mu.Lock()
	l, ok, err := p.known.get(id)
	p.mu.Unlock()
	if ok || err != nil {
		return l, zbuf, err
	}
	zbuf = repo.Compress(zbuf[:0], data)
	stored, z := zbuf, true
	if len(zbuf) >= len(data) {
		stored, z = data, false
	}
	p.packMu.Lock()
	p.mu.Lock()
	l, ok, err = p.known.get(id)
	p.mu.Unlock()
	if ok || err != nil { // another worker stored it meanwhile
		p.packMu.Unlock()
		return l, zbuf, err
	}
	if p.cur == nil {
		w := newPackSink(p.sinkSize)
		pw, err := repo.NewPackWriter(w, p.recipients...)
		if err != nil {
			p.packMu.Unlock()
			w.close()
			return loc{}, zbuf, err
		}
		p.cur = &openPack{w: pw, sink: w, slot: &packSlot{}}
	}
	c, err := p.cur.w.Add(id, stored, int64(len(data)), z)
	if err != nil {
		p.packMu.Unlock()
		return loc{}, zbuf, err
	}
	l = loc{pack: p.cur.slot, offset: c.Offset, length: c.Length, raw: c.Raw, zstd: z}
	p.mu.Lock()
	err = p.known.add(id, l)
	p.mu.Unlock()
	if err != nil {
		p.packMu.Unlock()
		return l, zbuf, err
	}
	var full *openPack
	if p.cur.w.Len() >= p.packSize {
		full, p.cur = p.cur, nil
	}
	p.packMu.Unlock()
	p.chunksNew.Add(1)
	p.bytesNew.Add(int64(len(data)))
	if full != nil {
		if err := p.seal(full); err != nil {
			return l, zbuf, err
		}
	}
	return l, zbuf, nil
}

// seal ends a full pack's age file and queues it for upload.
func (p *pipeline) seal(op *openPack) error {
	sum, size, err := op.w.Close()
	if err != nil {
		op.sink.close()
		return err
	}
	select {
	case p.sealed <- sealedPack{slot: op.slot, sink: op.sink, chunks: op.w.Chunks(), sum: sum, size: size}:
		return nil
	case <-p.ctx.Done():
		op.sink.close()
		return p.err()
	}
}

func (p *pipeline) upload() {
	defer p.uploader.Done()
	for sp := range p.sealed {
		if p.ctx.Err() == nil {
			if err := p.upload1(sp); err != nil {
				p.fail(err)
			}
		}
		sp.sink.close()
	}
}

func (p *pipeline) upload1(sp sealedPack) error {
	name := repo.PackName(sp.sum)
	r, err := sp.sink.reader()
	if err != nil {
		return fmt.Errorf("upload pack: %w", err)
	}
	if err := repo.PutObjectFrom(p.ctx, p.store, name, r, sp.size, sp.sum); err != nil {
		return fmt.Errorf("upload pack: %w", err)
	}
	p.bytesStored.Add(sp.size)
	// The ledger remembers the pack as the store describes it now, so
	// that a later same-size swap is noticed (see ledger.go).
	var oi storage.ObjectInfo
	var statErr error
	if p.ledger != nil {
		oi, statErr = p.store.Stat(p.ctx, name)
	}
	p.mu.Lock()
	if p.ledger != nil && statErr == nil {
		p.ledger.wrote(oi, sp.sum)
	}
	sp.slot.sha, sp.slot.size = sp.sum, sp.size
	err = p.index.add(&repo.IndexPack{SHA256: sp.sum, Size: sp.size, Chunks: sp.chunks})
	p.mu.Unlock()
	return err
}

// finish seals the last pack, waits for every upload and returns the first
// error of any stage.
func (p *pipeline) finish() error {
	close(p.jobs)
	p.workers.Wait()
	p.packMu.Lock()
	last := p.cur
	p.cur = nil
	p.packMu.Unlock()
	if last != nil {
		if last.w.Count() > 0 && p.ctx.Err() == nil {
			if err := p.seal(last); err != nil {
				p.fail(err)
			}
		} else {
			last.sink.close()
		}
	}
	close(p.sealed)
	p.uploader.Wait()
	if err := p.err(); err != nil {
		return err
	}
	return nil
}

// abort stops the pipeline after a failure elsewhere.
func (p *pipeline) abort(err error) {
	p.fail(err)
	_ = p.finish()
}

// chunkBufs lends the source writers of a backup (its sources' pipeline,
// then its catalog's) their chunk buffers of capacity ChunkMax. Buffers
// come back to a free list rather than a sync.Pool: a writer never holds
// more than a fixed number at once, so they are allocated once and never
// become garbage.
type chunkBufs struct {
	size int
	free chan *[]byte
}

func newChunkBufs(size, max int) *chunkBufs {
	return &chunkBufs{size: size, free: make(chan *[]byte, max)}
}

func (c *chunkBufs) get() *[]byte {
	select {
	case b := <-c.free:
		return b
	default:
		b := make([]byte, c.size)
		return &b
	}
}

func (c *chunkBufs) put(b *[]byte) {
	select {
	case c.free <- b:
	default:
	}
}
