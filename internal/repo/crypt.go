package repo

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/bits"
	"runtime"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
)

// maxDocument bounds a decrypted and decompressed catalog or index, so a
// hostile object cannot exhaust memory.
const maxDocument = 4 << 30

var (
	// EncodeAll is called by every pipeline worker at once: the encoder
	// needs one internal encoder per core or the workers take turns.
	// SpeedFastest compresses invoice-like data within 4% of SpeedDefault
	// at almost twice the speed (doc/benchmarks.md).
	// A window of 1 MiB, the default chunk's average size, and the
	// lower-memory history: about 1.2 MiB an encoder rather than 4.2 MiB
	// with a window of the largest chunk (4 MiB) or 16 MiB with the
	// default 8 MiB window. Only matches more than 1 MiB back inside one
	// chunk are lost (doc/performance.md, "Soft memory limit").
	zenc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)),
		zstd.WithWindowSize(chunkWindow), zstd.WithLowerEncoderMem(true),
		zstd.WithEncoderCRC(false)) // every chunk is checked by its keyed id; documents by their SHA-256
	zdec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(maxDocument))
	// chunkDec decodes chunks; a chunk is never larger than maxChunk, so a
	// hostile frame cannot make a reader allocate more.
	chunkDec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(maxChunk))
)

// chunkWindow is the zstd window of chunks (see zenc).
const chunkWindow = 1 << 20

// maxChunk bounds any chunk's plaintext, whatever a config says.
const maxChunk = 64 << 20

// Compress returns the zstd compression of src appended to dst.
func Compress(dst, src []byte) []byte { return zenc.EncodeAll(src, dst) }

// Decompress decodes a chunk's zstd frame whose decoded size must be raw
// bytes.
func Decompress(dst, src []byte, raw int64) ([]byte, error) {
	if raw > maxChunk {
		return nil, fmt.Errorf("chunk of %d bytes exceeds the limit", raw)
	}
	if dst == nil {
		dst = make([]byte, 0, raw)
	}
	out, err := chunkDec.DecodeAll(src, dst)
	if err != nil {
		return nil, err
	}
	if int64(len(out)-len(dst)) != raw {
		return nil, fmt.Errorf("decompressed %d bytes, want %d", len(out)-len(dst), raw)
	}
	return out, nil
}

// DecompressDocument decodes a zstd frame of a document (not a chunk),
// bounded by the document limit.
func DecompressDocument(src []byte) ([]byte, error) { return zdec.DecodeAll(src, nil) }

// Encrypt returns plain encrypted to recipients as an age file.
func Encrypt(plain []byte, recipients ...age.Recipient) ([]byte, error) {
	var b bytes.Buffer
	b.Grow(len(plain) + len(plain)/4096 + 1024)
	w, err := age.Encrypt(&b, recipients...)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(plain); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Decrypt decrypts an age file.
func Decrypt(ct []byte, identities ...age.Identity) ([]byte, error) {
	r, err := age.Decrypt(bytes.NewReader(ct), identities...)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(io.LimitReader(r, maxDocument))
}

// Seal encodes v as JSON, compresses it with zstd, pads it (Pad) and
// encrypts it.
func Seal(v any, recipients ...age.Recipient) ([]byte, error) {
	j, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return Encrypt(Pad(Compress(nil, j)), recipients...)
}

// SealTo is Seal streamed into dst: encode writes the JSON, which is
// compressed and encrypted as it comes, so that neither it nor its
// compressed form is held whole (an index of a million chunks is about
// 120 MB of JSON). The padding follows the same rule as Pad.
func SealTo(dst io.Writer, encode func(io.Writer) error, recipients ...age.Recipient) error {
	sw, err := newSealWriter(dst, recipients...)
	if err != nil {
		return err
	}
	if err := encode(sw); err != nil {
		sw.zw.Close()
		return err
	}
	return sw.Close()
}

// sealWindow is the zstd window of a sealed document written as a stream.
// A backup's index is one, open from its first stored pack to its end:
// with the chunks' 4 MiB window its encoder held about 4 MiB of history
// for the whole backup. Its JSON repeats itself within a few hundred
// bytes (keys, offsets) and its chunk ids do not repeat at all, so a
// 256 KiB window compresses it as well.
const sealWindow = 256 << 10

// sealWriter compresses, pads and encrypts a document as it is written.
type sealWriter struct {
	aw io.WriteCloser
	cw *countingWriter
	zw *zstd.Encoder
	bw *bufio.Writer
}

func newSealWriter(dst io.Writer, recipients ...age.Recipient) (*sealWriter, error) {
	aw, err := age.Encrypt(dst, recipients...)
	if err != nil {
		return nil, err
	}
	cw := &countingWriter{w: aw}
	zw, err := zstd.NewWriter(cw, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1),
		zstd.WithWindowSize(sealWindow), zstd.WithLowerEncoderMem(true), zstd.WithEncoderCRC(false))
	if err != nil {
		return nil, err
	}
	return &sealWriter{aw: aw, cw: cw, zw: zw, bw: bufio.NewWriterSize(zw, 64<<10)}, nil
}

func (s *sealWriter) Write(p []byte) (int, error) { return s.bw.Write(p) }

// Close ends the zstd stream, pads it and ends the age file.
func (s *sealWriter) Close() error {
	if err := s.bw.Flush(); err != nil {
		return err
	}
	if err := s.zw.Close(); err != nil {
		return err
	}
	want := padme(max(s.cw.n+8, minPadded))
	frame := make([]byte, want-s.cw.n)
	binary.LittleEndian.PutUint32(frame, 0x184D2A50)
	binary.LittleEndian.PutUint32(frame[4:], uint32(len(frame)-8))
	if _, err := s.aw.Write(frame); err != nil {
		return err
	}
	return s.aw.Close()
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// minPadded is the smallest padded length of a sealed document.
const minPadded = 512

// Pad appends a zstd skippable frame (magic 0x184D2A50, which every zstd
// decoder skips) of zero bytes to the zstd stream z, so that its length is
// at least minPadded and a Padmé length (Nikitin et al., 2019): the top
// bits of the length are kept and the low ones rounded up, which adds at
// most about 12% and leaves O(log log L) bits of the length visible. A
// sealed document's ciphertext size then tells a bucket reader only its
// rough order of magnitude (how many chunks an index lists, how long a
// private part's tags and warnings are), not an exact count.
func Pad(z []byte) []byte {
	want := padme(max(int64(len(z))+8, minPadded))
	frame := make([]byte, want-int64(len(z)))
	binary.LittleEndian.PutUint32(frame, 0x184D2A50)
	binary.LittleEndian.PutUint32(frame[4:], uint32(len(frame)-8))
	return append(z, frame...)
}

// padme rounds n up to the next Padmé length.
func padme(n int64) int64 {
	if n < 2 {
		return n
	}
	e := int64(bits.Len64(uint64(n))) - 1 // floor(log2 n)
	s := int64(bits.Len64(uint64(e)))     // floor(log2 e) + 1
	mask := int64(1)<<(e-s) - 1
	return (n + mask) &^ mask
}

// Unseal reverses Seal into v.
func Unseal(ct []byte, v any, identities ...age.Identity) error {
	z, err := Decrypt(ct, identities...)
	if err != nil {
		return err
	}
	j, err := zdec.DecodeAll(z, nil)
	if err != nil {
		return fmt.Errorf("decompress: %w", err)
	}
	return json.Unmarshal(j, v)
}
