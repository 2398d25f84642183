package repo

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// TestDecodeOldWindow: chunks and documents written before the 1 MiB
// chunk window and the 256 KiB index window (zstd window 4 MiB, the
// default chunk's largest size) still decode, including matches more
// than 1 MiB back, and a frame that declares a window larger than the
// new encoders' is accepted: the decoders' window limit must not follow
// the encoders' window down.
func TestDecodeOldWindow(t *testing.T) {
	old, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1),
		zstd.WithWindowSize(DefaultChunkMax), zstd.WithLowerEncoderMem(true), zstd.WithEncoderCRC(false))
	if err != nil {
		t.Fatal(err)
	}
	// A 4 MiB chunk of random bytes whose second half repeats its first
	// (every match 2 MiB back): only a window above 2 MiB finds them.
	rng := rand.New(rand.NewPCG(1, 2))
	half := make([]byte, DefaultChunkMax/2)
	for i := range half {
		half[i] = byte(rng.Uint32())
	}
	chunk := append(append([]byte{}, half...), half...)
	z := old.EncodeAll(chunk, nil)
	if len(z) > len(chunk)*3/4 {
		t.Fatalf("the old encoder did not find the 2 MiB matches: %d of %d bytes", len(z), len(chunk))
	}
	got, err := Decompress(nil, z, int64(len(chunk)))
	if err != nil || !bytes.Equal(got, chunk) {
		t.Fatalf("old chunk: %v, equal %v", err, bytes.Equal(got, chunk))
	}
	// A streamed frame (no content size: the window descriptor says
	// 4 MiB), as the old index's stream encoder wrote it.
	var sb bytes.Buffer
	sw, err := zstd.NewWriter(&sb, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1),
		zstd.WithWindowSize(DefaultChunkMax), zstd.WithLowerEncoderMem(true), zstd.WithEncoderCRC(false))
	if err != nil {
		t.Fatal(err)
	}
	// JSON-like text with the old chunk's 2 MiB matches in the middle.
	var want bytes.Buffer
	want.WriteString(`{"a":"`)
	for _, c := range chunk {
		want.WriteByte('a' + c%26)
	}
	want.WriteString(`"}`)
	if _, err := sw.Write(want.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := sw.Close(); err != nil {
		t.Fatal(err)
	}
	var h zstd.Header
	if err := h.Decode(sb.Bytes()); err != nil {
		t.Fatal(err)
	}
	if h.SingleSegment || h.WindowSize < DefaultChunkMax {
		t.Fatalf("test frame: single segment %v, window %d", h.SingleSegment, h.WindowSize)
	}
	j, err := DecompressDocument(sb.Bytes())
	if err != nil || !bytes.Equal(j, want.Bytes()) {
		t.Fatalf("old streamed document: %v, equal %v", err, bytes.Equal(j, want.Bytes()))
	}
}
