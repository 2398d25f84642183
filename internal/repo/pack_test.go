package repo

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"strings"
	"testing"
)

// tinyPack builds a pack of n chunks of 150-700 bytes, a tree of small
// files' pack.
func tinyPack(n int) (plain []byte, chunks []IndexChunk) {
	b := NewPackBuilder(0)
	for i := range n {
		var id ChunkID
		binary.BigEndian.PutUint64(id[:], uint64(i)*0x9e3779b97f4a7c15)
		data := bytes.Repeat([]byte{byte(i)}, 150+i%550)
		chunks = append(chunks, b.Add(id, data, int64(len(data))+int64(i%7), i%3 != 0))
	}
	return b.Finish(), chunks
}

func trailerLen(plain []byte) int {
	return int(binary.BigEndian.Uint32(plain[len(plain)-12:]))
}

// TestPackTrailerSize: the trailer of a pack of tiny chunks costs at most
// 40 bytes a chunk (version 1's JSON took about 110).
func TestPackTrailerSize(t *testing.T) {
	const n = 1000
	plain, want := tinyPack(n)
	if !strings.HasSuffix(string(plain), packMagic) {
		t.Fatalf("pack ends in %q, want %q", plain[len(plain)-8:], packMagic)
	}
	if got := trailerLen(plain); got > 40*n {
		t.Fatalf("trailer of %d chunks: %d bytes (%d a chunk), want at most 40 a chunk", n, got, got/n)
	}
	got, err := ParsePackTrailer(plain)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("%d chunks, want %d", len(got), n)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("chunk %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

// TestPackTrailerV1 reads a pack written the old way: the JSON trailer
// json.Marshal makes of the chunk list, and magic CPAK0001.
func TestPackTrailerV1(t *testing.T) {
	undo := WriteV1PackTrailers()
	plain, want := tinyPack(300)
	undo()
	if !strings.HasSuffix(string(plain), packMagicV1) {
		t.Fatalf("pack ends in %q, want %q", plain[len(plain)-8:], packMagicV1)
	}
	j, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	n := trailerLen(plain)
	if got := plain[len(plain)-12-n : len(plain)-12]; !bytes.Equal(got, j) {
		t.Fatalf("version 1 trailer is not the chunk list's JSON: %.80q", got)
	}
	got, err := ParsePackTrailer(plain)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d chunks, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("chunk %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

// TestPackTrailerDamaged: a version 2 trailer that does not describe the
// pack's bytes exactly is refused with a clear error.
func TestPackTrailerDamaged(t *testing.T) {
	plain, _ := tinyPack(3)
	n := trailerLen(plain)
	start := len(plain) - 12 - n
	for _, tc := range []struct {
		name   string
		change func(p []byte) []byte
		want   string
	}{
		{"bad flags", func(p []byte) []byte { p[len(p)-13] = 0x82; return p }, "bad flags"},
		{"length too long", func(p []byte) []byte { p[start+32] = 0xff; p[start+33] = 0x7f; return p }, ""},
		{"a chunk left out", func(p []byte) []byte {
			// Drop the last entry (32 + 2 + 2 + 1 bytes: lengths of 150-700 take two).
			m := n - 37
			q := append(p[:start+m:start+m], binary.BigEndian.AppendUint32(nil, uint32(m))...)
			return append(q, packMagic...)
		}, "pack trailer lists"},
		{"truncated", func(p []byte) []byte {
			q := append(p[:start+n-1:start+n-1], binary.BigEndian.AppendUint32(nil, uint32(n-1))...)
			return append(q, packMagic...)
		}, "pack trailer"},
		{"unknown magic", func(p []byte) []byte { p[len(p)-1] = '3'; return p }, "not a coffer pack"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePackTrailer(tc.change(bytes.Clone(plain)))
			if err == nil {
				t.Fatal("parsed")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to say %q", err, tc.want)
			}
		})
	}
}

// TestPackEntrySize: a pack's plaintext is its chunks' PackEntrySize and
// 12 bytes, whatever the lengths' varints take (prune counts a pack's
// used bytes so).
func TestPackEntrySize(t *testing.T) {
	b := NewPackBuilder(1 << 20)
	want := int64(12)
	for i, n := range []int{1, 8, 127, 128, 300, 16383, 16384, 70000} {
		raw := int64(n) * int64(i+1) * 1000
		b.Add(ChunkID{byte(i)}, bytes.Repeat([]byte{'x'}, n), raw, true)
		want += PackEntrySize(int64(n), raw)
	}
	if got := int64(len(b.Finish())); got != want {
		t.Fatalf("pack plaintext %d bytes, PackEntrySize says %d", got, want)
	}
}
