package backup

import (
	"bytes"
	"testing"
)

// TestChunkBatchFull: a batch is handed over at batchChunks chunks, at
// batchBytes bytes, or with a chunk that holds a chunk buffer, not before.
func TestChunkBatchFull(t *testing.T) {
	b := &chunkBatch{}
	for i := range batchChunks - 1 {
		b.jobs = append(b.jobs, chunkJob{data: b.keep([]byte{byte(i)})})
		b.bytes++
		if b.full() {
			t.Fatalf("full at %d chunks, want %d", len(b.jobs), batchChunks)
		}
	}
	b.jobs = append(b.jobs, chunkJob{data: b.keep([]byte{1})})
	if !b.full() {
		t.Fatalf("not full at %d chunks", len(b.jobs))
	}

	b.reset()
	b.jobs = append(b.jobs, chunkJob{data: b.keep(make([]byte, batchBytes-1))})
	b.bytes = batchBytes - 1
	if b.full() {
		t.Fatalf("full at %d bytes, want %d", b.bytes, batchBytes)
	}
	b.jobs = append(b.jobs, chunkJob{data: b.keep([]byte{1})})
	b.bytes++
	if !b.full() {
		t.Fatalf("not full at %d bytes", b.bytes)
	}

	b.reset()
	buf := make([]byte, 1)
	b.jobs = append(b.jobs, chunkJob{data: buf, buf: &buf})
	if !b.full() {
		t.Fatal("not full with a chunk that holds a buffer")
	}
}

// TestChunkBatchKeep: chunks kept in a batch stay as they were while more
// are kept, the arena's end included, and a reset batch keeps new ones.
func TestChunkBatchKeep(t *testing.T) {
	b := &chunkBatch{}
	var kept, want [][]byte
	for i := 0; b.bytes < batchBytes; i++ {
		d := bytes.Repeat([]byte{byte(i)}, 1+i*997%smallChunk)
		kept = append(kept, b.keep(d))
		want = append(want, d)
		b.bytes += len(d)
	}
	// The last chunk of a full batch, of the largest small size.
	d := bytes.Repeat([]byte{0xee}, smallChunk)
	kept, want = append(kept, b.keep(d)), append(want, d)
	for i := range kept {
		if !bytes.Equal(kept[i], want[i]) {
			t.Fatalf("chunk %d changed", i)
		}
		if cap(kept[i]) != len(kept[i]) {
			t.Fatalf("chunk %d: capacity %d past its length %d", i, cap(kept[i]), len(kept[i]))
		}
	}
	b.reset()
	if len(b.jobs) != 0 || b.bytes != 0 || len(b.arena) != 0 {
		t.Fatalf("reset batch: %d jobs, %d bytes, arena %d", len(b.jobs), b.bytes, len(b.arena))
	}
	if got := b.keep([]byte("again")); string(got) != "again" {
		t.Fatalf("kept %q after reset", got)
	}
}
