package repo

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
)

// A pack's plaintext is its chunks back to back, then a trailer that lists
// them (so an index can be rebuilt from packs alone by an identity holder):
//
//	chunk bytes ... | trailer JSON | uint32 big-endian trailer length | "CPAK0001"
//
// The whole plaintext is one age file encrypted to every recipient.
const packMagic = "CPAK0001"

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
	t, err := json.Marshal(b.chunks)
	if err != nil {
		panic(err) // plain structs always marshal
	}
	b.buf.Write(t)
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(t)))
	b.buf.Write(n[:])
	b.buf.WriteString(packMagic)
	return b.buf.Bytes()
}

// ParsePackTrailer reads the chunk list from a pack's whole plaintext.
func ParsePackTrailer(plain []byte) ([]IndexChunk, error) {
	if len(plain) < 12 || string(plain[len(plain)-8:]) != packMagic {
		return nil, errors.New("not a coffer pack")
	}
	n := int(binary.BigEndian.Uint32(plain[len(plain)-12:]))
	if n > len(plain)-12 {
		return nil, errors.New("pack trailer length out of range")
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

// Reset empties the builder for reuse.
func (b *PackBuilder) Reset() {
	b.buf.Reset()
	b.chunks = b.chunks[:0]
}
