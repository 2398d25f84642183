package backup

import (
	"bytes"
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
//	  -> pack builder (one open pack) -> sealed (cap 1)
//	  -> uploaders: age encrypt, SHA-256, repo.PutObject (Options.Uploads)
//
// Memory is bounded by inflight chunk buffers (each ChunkMax), one open
// pack, one sealed pack queued plus one held by each worker blocked on the
// queue, and per uploader one pack plaintext plus its ciphertext.

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
	done chan struct{}
	id   repo.ChunkID
	loc  loc
	err  error
}

type sealedPack struct {
	slot    *packSlot
	builder *repo.PackBuilder
}

type pipeline struct {
	ctx    context.Context
	cancel context.CancelCauseFunc

	store      storage.Store
	recipients []age.Recipient
	idFunc     func([]byte) repo.ChunkID
	packSize   int

	jobs     chan *chunkJob
	sealed   chan sealedPack
	workers  sync.WaitGroup
	uploader sync.WaitGroup
	bufs     sync.Pool
	builders sync.Pool

	mu      sync.Mutex
	known   map[repo.ChunkID]loc
	cur     *repo.PackBuilder
	curSlot *packSlot
	stored  []repo.IndexPack // packs this backup wrote, for the new index
	ledger  *ledger          // remembers the packs written, as stored

	bytesRead   atomic.Int64
	bytesNew    atomic.Int64
	bytesStored atomic.Int64
	chunks      atomic.Int64
	chunksNew   atomic.Int64
}

func newPipeline(ctx context.Context, st storage.Store, recipients []age.Recipient, idFunc func([]byte) repo.ChunkID,
	known map[repo.ChunkID]loc, packSize, chunkMax, workers, uploads int) *pipeline {
	ctx, cancel := context.WithCancelCause(ctx)
	p := &pipeline{
		ctx: ctx, cancel: cancel, store: st, recipients: recipients, idFunc: idFunc,
		packSize: packSize, known: known,
		jobs:   make(chan *chunkJob, workers),
		sealed: make(chan sealedPack, 1),
	}
	p.bufs.New = func() any { b := make([]byte, chunkMax); return &b }
	p.builders.New = func() any { return repo.NewPackBuilder(packSize + chunkMax + 1<<20) } // + room for the trailer
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

// submit hands a chunk to the workers.
func (p *pipeline) submit(j *chunkJob) error {
	select {
	case p.jobs <- j:
		return nil
	case <-p.ctx.Done():
		return p.err()
	}
}

func (p *pipeline) work() {
	defer p.workers.Done()
	var zbuf []byte
	for j := range p.jobs {
		if p.ctx.Err() != nil {
			j.err = p.err()
			close(j.done)
			continue
		}
		j.id = p.idFunc(j.data)
		j.loc, zbuf, j.err = p.store1(j.id, j.data, zbuf)
		close(j.done)
	}
}

// store1 deduplicates one chunk and, if new, compresses it and adds it to
// the open pack.
func (p *pipeline) store1(id repo.ChunkID, data, zbuf []byte) (loc, []byte, error) {
	p.chunks.Add(1)
	p.mu.Lock()
	l, ok := p.known[id]
	p.mu.Unlock()
	if ok {
		return l, zbuf, nil
	}
	zbuf = repo.Compress(zbuf[:0], data)
	stored, z := zbuf, true
	if len(zbuf) >= len(data) {
		stored, z = data, false
	}
	var full *sealedPack
	p.mu.Lock()
	if l, ok := p.known[id]; ok { // another worker stored it meanwhile
		p.mu.Unlock()
		return l, zbuf, nil
	}
	if p.cur == nil {
		p.cur = p.builders.Get().(*repo.PackBuilder)
		p.curSlot = &packSlot{}
	}
	c := p.cur.Add(id, stored, int64(len(data)), z)
	l = loc{pack: p.curSlot, offset: c.Offset, length: c.Length, raw: c.Raw, zstd: z}
	p.known[id] = l
	if p.cur.Len() >= p.packSize {
		full = &sealedPack{slot: p.curSlot, builder: p.cur}
		p.cur, p.curSlot = nil, nil
	}
	p.mu.Unlock()
	p.chunksNew.Add(1)
	p.bytesNew.Add(int64(len(data)))
	if full != nil {
		select {
		case p.sealed <- *full:
		case <-p.ctx.Done():
			return l, zbuf, p.err()
		}
	}
	return l, zbuf, nil
}

func (p *pipeline) upload() {
	defer p.uploader.Done()
	var ct bytes.Buffer
	for sp := range p.sealed {
		if p.ctx.Err() != nil {
			continue
		}
		if err := p.upload1(sp, &ct); err != nil {
			p.fail(err)
		}
	}
}

func (p *pipeline) upload1(sp sealedPack, ct *bytes.Buffer) error {
	chunks := append([]repo.IndexChunk(nil), sp.builder.Chunks()...)
	plain := sp.builder.Finish()
	ct.Reset()
	// age adds a header and 16 bytes per 64 KiB: one allocation of the
	// right size, not a doubling buffer that ends up twice the pack.
	ct.Grow(len(plain) + len(plain)/4096 + 4096)
	w, err := age.Encrypt(ct, p.recipients...)
	if err != nil {
		return fmt.Errorf("encrypt pack: %w", err)
	}
	if _, err := w.Write(plain); err != nil {
		return fmt.Errorf("encrypt pack: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("encrypt pack: %w", err)
	}
	sp.builder.Reset()
	p.builders.Put(sp.builder)
	sum := repo.HashHex(ct.Bytes())
	name := repo.PackName(sum)
	size := int64(ct.Len())
	if err := repo.PutObject(p.ctx, p.store, name, ct.Bytes()); err != nil {
		return fmt.Errorf("upload pack: %w", err)
	}
	p.bytesStored.Add(size)
	// The ledger remembers the pack as the store describes it now, so
	// that a later same-size swap is noticed (see ledger.go).
	var oi storage.ObjectInfo
	var statErr error
	if p.ledger != nil {
		oi, statErr = p.store.Stat(p.ctx, name)
	}
	p.mu.Lock()
	if p.ledger != nil && statErr == nil {
		p.ledger.wrote(oi, sum)
	}
	sp.slot.sha, sp.slot.size = sum, size
	p.stored = append(p.stored, repo.IndexPack{SHA256: sum, Size: size, Chunks: chunks})
	p.mu.Unlock()
	return nil
}

// finish seals the last pack, waits for every upload and returns the first
// error of any stage.
func (p *pipeline) finish() error {
	close(p.jobs)
	p.workers.Wait()
	p.mu.Lock()
	last := p.cur
	slot := p.curSlot
	p.cur, p.curSlot = nil, nil
	p.mu.Unlock()
	if last != nil && last.Count() > 0 && p.ctx.Err() == nil {
		select {
		case p.sealed <- sealedPack{slot: slot, builder: last}:
		case <-p.ctx.Done():
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
