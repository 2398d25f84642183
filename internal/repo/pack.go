package repo

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync/atomic"

	"filippo.io/age"
)

// A pack's plaintext is its chunks back to back from offset 0, then a
// trailer that lists them (so an index can be rebuilt from packs alone by
// an identity holder):
//
//	chunk bytes ... | trailer | uint32 big-endian trailer length | magic
//
// Version 2 (magic "CPAK0002") lists each chunk, in the order of its bytes,
// as its 32-byte id, its stored and raw lengths as uvarints and a flags
// byte (1: zstd); offsets follow from the lengths. Version 1 ("CPAK0001",
// written until issue 12) is the JSON array of the chunks' IndexChunk, read
// still: at about 110 bytes a chunk against 36 it was a quarter of what a
// tree of small files stored (doc/design.md section 5).
//
// The whole plaintext is one age file encrypted to every recipient.
const (
	packMagic   = "CPAK0002"
	packMagicV1 = "CPAK0001"
)

// v1Trailers makes writers use version 1, for tests of repositories
// written the old way (WriteV1PackTrailers).
var v1Trailers atomic.Bool

// WriteV1PackTrailers makes the packs written from now on end in a version
// 1 trailer, as coffer wrote them until issue 12, and returns the function
// that undoes it. It is for tests that need a repository written the old
// way.
func WriteV1PackTrailers() (undo func()) {
	v1Trailers.Store(true)
	return func() { v1Trailers.Store(false) }
}

// PackBuilder accumulates chunks into one pack's plaintext.
type PackBuilder struct {
	buf    bytes.Buffer
	chunks []IndexChunk
}

// NewPackBuilder returns a builder with room for about size bytes.
func NewPackBuilder(size int) *PackBuilder {
	b := &PackBuilder{}
	b.buf.Grow(size)
	return b
}

// Add appends a chunk and returns its offset in the pack's plaintext.
func (b *PackBuilder) Add(id ChunkID, data []byte, raw int64, zstd bool) IndexChunk {
	c := IndexChunk{ID: id, Offset: int64(b.buf.Len()), Length: int64(len(data)), Raw: raw, Zstd: zstd}
	b.buf.Write(data)
	b.chunks = append(b.chunks, c)
	return c
}

// Len is the number of chunk bytes so far.
func (b *PackBuilder) Len() int { return b.buf.Len() }

// Count is the number of chunks so far.
func (b *PackBuilder) Count() int { return len(b.chunks) }

// Chunks returns the chunks added so far.
func (b *PackBuilder) Chunks() []IndexChunk { return b.chunks }

// Finish appends the trailer and returns the pack's plaintext. The builder
// must not be used afterwards.
func (b *PackBuilder) Finish() []byte {
	if _, err := writeTrailer(&b.buf, b.chunks); err != nil {
		panic(err) // a bytes.Buffer takes every write
	}
	return b.buf.Bytes()
}

// writeTrailer writes the trailer of a pack of chunks, a piece at a time
// (a pack of 90,000 tiny chunks has a trailer of 3 MB), then its length
// and the magic.
func writeTrailer(w io.Writer, chunks []IndexChunk) (int64, error) {
	write, magic := writeChunks, packMagic
	if v1Trailers.Load() {
		write, magic = writeChunkList, packMagicV1
	}
	n, err := write(w, chunks)
	if err != nil {
		return n, err
	}
	var t []byte
	t = binary.BigEndian.AppendUint32(t, uint32(n))
	t = append(t, magic...)
	m, err := w.Write(t)
	return n + int64(m), err
}

const chunkFlagZstd = 1

// PackEntrySize is what a chunk of the given stored and raw lengths adds
// to its pack's plaintext: its bytes and its entry in a version 2 trailer.
func PackEntrySize(length, raw int64) int64 {
	var b [binary.MaxVarintLen64]byte
	return length + int64(len(ChunkID{})) + int64(binary.PutUvarint(b[:], uint64(length))) +
		int64(binary.PutUvarint(b[:], uint64(raw))) + 1
}

// writeChunks writes a version 2 trailer's list of chunks, which must lie
// back to back from offset 0, and returns its length.
func writeChunks(w io.Writer, chunks []IndexChunk) (int64, error) {
	var n, off int64
	t := make([]byte, 0, 32<<10)
	for i := range chunks {
		c := &chunks[i]
		if c.Offset != off || c.Length <= 0 || c.Raw < 0 {
			return n, fmt.Errorf("pack chunk %d at %d+%d: not after the one before, at %d", i, c.Offset, c.Length, off)
		}
		off += c.Length
		t = append(t, c.ID[:]...)
		t = binary.AppendUvarint(t, uint64(c.Length))
		t = binary.AppendUvarint(t, uint64(c.Raw))
		var flags byte
		if c.Zstd {
			flags |= chunkFlagZstd
		}
		t = append(t, flags)
		if len(t) >= 32<<10-64 {
			m, err := w.Write(t)
			n += int64(m)
			if err != nil {
				return n, err
			}
			t = t[:0]
		}
	}
	m, err := w.Write(t)
	return n + int64(m), err
}

// writeChunkList writes a version 1 trailer's list of chunks, what
// json.Marshal makes of them, a piece at a time, and returns its length.
func writeChunkList(w io.Writer, chunks []IndexChunk) (int64, error) {
	var n int64
	write := func(b []byte) error {
		m, err := w.Write(b)
		n += int64(m)
		return err
	}
	if chunks == nil {
		return n, write([]byte("null"))
	}
	t := []byte{'['}
	for i := range chunks {
		if i > 0 {
			t = append(t, ',')
		}
		c, err := json.Marshal(&chunks[i])
		if err != nil {
			return n, err // plain structs always marshal
		}
		t = append(t, c...)
		if len(t) >= 32<<10 {
			if err := write(t); err != nil {
				return n, err
			}
			t = t[:0]
		}
	}
	t = append(t, ']')
	return n, write(t)
}

// ParsePackTrailer reads the chunk list from a pack's whole plaintext.
func ParsePackTrailer(plain []byte) ([]IndexChunk, error) {
	if len(plain) < 12 {
		return nil, errors.New("not a coffer pack")
	}
	magic := string(plain[len(plain)-8:])
	if magic != packMagic && magic != packMagicV1 {
		return nil, errors.New("not a coffer pack")
	}
	n := int(binary.BigEndian.Uint32(plain[len(plain)-12:]))
	if n > len(plain)-12 {
		return nil, errors.New("pack trailer length out of range")
	}
	if magic == packMagic {
		return parseChunks(plain[len(plain)-12-n:len(plain)-12], int64(len(plain)-12-n))
	}
	var chunks []IndexChunk
	if err := json.Unmarshal(plain[len(plain)-12-n:len(plain)-12], &chunks); err != nil {
		return nil, fmt.Errorf("pack trailer: %w", err)
	}
	end := int64(len(plain) - 12 - n)
	for _, c := range chunks {
		if c.Offset < 0 || c.Length <= 0 || c.Offset+c.Length > end {
			return nil, errors.New("pack trailer entry out of range")
		}
	}
	return chunks, nil
}

// parseChunks reads a version 2 trailer's list of chunks, whose bytes
// must fill the pack up to end.
func parseChunks(t []byte, end int64) ([]IndexChunk, error) {
	chunks := make([]IndexChunk, 0, len(t)/36)
	var off int64
	for len(t) > 0 {
		var c IndexChunk
		if len(t) < len(c.ID) {
			return nil, errors.New("pack trailer: truncated")
		}
		copy(c.ID[:], t)
		t = t[len(c.ID):]
		length, k := binary.Uvarint(t)
		if k <= 0 {
			return nil, errors.New("pack trailer: bad length")
		}
		t = t[k:]
		raw, k := binary.Uvarint(t)
		if k <= 0 || raw > maxChunk {
			return nil, errors.New("pack trailer: bad raw length")
		}
		t = t[k:]
		if len(t) == 0 || t[0]&^chunkFlagZstd != 0 {
			return nil, errors.New("pack trailer: bad flags")
		}
		c.Zstd = t[0]&chunkFlagZstd != 0
		t = t[1:]
		if length == 0 || length > uint64(end-off) {
			return nil, errors.New("pack trailer entry out of range")
		}
		c.Offset, c.Length, c.Raw = off, int64(length), int64(raw)
		off += c.Length
		chunks = append(chunks, c)
	}
	if off != end {
		return nil, fmt.Errorf("pack trailer lists %d of %d chunk bytes", off, end)
	}
	return chunks, nil
}

// Reset empties the builder for reuse.
func (b *PackBuilder) Reset() {
	b.buf.Reset()
	b.chunks = b.chunks[:0]
}

// PackWriter encrypts a pack as its chunks are added: their bytes go
// through age straight into dst, so that a pack's plaintext and its
// ciphertext are never both held. The ciphertext is hashed as it is
// written, for the pack's name. It is not safe for concurrent use.
type PackWriter struct {
	dst    *countingHash
	aw     io.WriteCloser
	off    int64
	chunks []IndexChunk
}

// countingHash passes writes on to w, hashing and counting them.
type countingHash struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (c *countingHash) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	return n, err
}

// NewPackWriter starts a pack encrypted to recipients, written to dst.
func NewPackWriter(dst io.Writer, recipients ...age.Recipient) (*PackWriter, error) {
	ch := &countingHash{w: dst, h: sha256.New()}
	aw, err := age.Encrypt(ch, recipients...)
	if err != nil {
		return nil, fmt.Errorf("encrypt pack: %w", err)
	}
	return &PackWriter{dst: ch, aw: aw}, nil
}

// Add encrypts a chunk into the pack and returns where it lies in the
// pack's plaintext.
func (w *PackWriter) Add(id ChunkID, data []byte, raw int64, zstd bool) (IndexChunk, error) {
	c := IndexChunk{ID: id, Offset: w.off, Length: int64(len(data)), Raw: raw, Zstd: zstd}
	if _, err := w.aw.Write(data); err != nil {
		return IndexChunk{}, fmt.Errorf("encrypt pack: %w", err)
	}
	w.off += int64(len(data))
	w.chunks = append(w.chunks, c)
	return c, nil
}

// Len is the number of chunk bytes so far.
func (w *PackWriter) Len() int { return int(w.off) }

// Count is the number of chunks so far.
func (w *PackWriter) Count() int { return len(w.chunks) }

// Chunks returns the chunks added so far.
func (w *PackWriter) Chunks() []IndexChunk { return w.chunks }

// Close writes the trailer, ends the age file and returns the hex SHA-256
// of the ciphertext written to dst (the pack's name, see PackName) and its
// size. The plaintext is the same as PackBuilder's for the same chunks.
func (w *PackWriter) Close() (sum string, size int64, err error) {
	if _, err := writeTrailer(w.aw, w.chunks); err != nil {
		return "", 0, fmt.Errorf("encrypt pack: %w", err)
	}
	if err := w.aw.Close(); err != nil {
		return "", 0, fmt.Errorf("encrypt pack: %w", err)
	}
	return hex.EncodeToString(w.dst.h.Sum(nil)), w.dst.n, nil
}
