package repo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"io"
	"testing"
	"time"

	"github.com/cofferhq/coffer/storage"
)

// TestPackWriterSamePlaintext checks that a pack encrypted as its chunks
// are added decrypts to exactly the plaintext PackBuilder makes (chunks,
// the trailer, its length and the magic), in both trailer versions, and
// that Close names the ciphertext it wrote. The trailer is long enough to
// be written in several pieces.
func TestPackWriterSamePlaintext(t *testing.T) {
	t.Run("v2", func(t *testing.T) { testPackWriterSamePlaintext(t) })
	t.Run("v1", func(t *testing.T) {
		defer WriteV1PackTrailers()()
		testPackWriterSamePlaintext(t)
	})
}

func testPackWriterSamePlaintext(t *testing.T) {
	id := mustIdentity(t)
	for _, n := range []int{1, 2, 3000} {
		b := NewPackBuilder(0)
		var ct bytes.Buffer
		w, err := NewPackWriter(&ct, id.Recipient())
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			var cid ChunkID
			binary.BigEndian.PutUint32(cid[:], uint32(i))
			data := bytes.Repeat([]byte{byte(i)}, 1+i%300)
			want := b.Add(cid, data, int64(len(data))*2, i%2 == 0)
			got, err := w.Add(cid, data, int64(len(data))*2, i%2 == 0)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("chunk %d: %+v, want %+v", i, got, want)
			}
		}
		if w.Len() != b.Len() || w.Count() != n {
			t.Fatalf("Len %d Count %d, want %d %d", w.Len(), w.Count(), b.Len(), n)
		}
		sum, size, err := w.Close()
		if err != nil {
			t.Fatal(err)
		}
		if h := sha256.Sum256(ct.Bytes()); sum != hex.EncodeToString(h[:]) || size != int64(ct.Len()) {
			t.Fatalf("Close = %s %d, want the ciphertext's %x %d", sum, size, h, ct.Len())
		}
		plain, err := Decrypt(ct.Bytes(), id)
		if err != nil {
			t.Fatal(err)
		}
		if want := b.Finish(); !bytes.Equal(plain, want) {
			t.Fatalf("%d chunks: plaintext differs from PackBuilder's (%d vs %d bytes)", n, len(plain), len(want))
		}
		chunks, err := ParsePackTrailer(plain)
		if err != nil || len(chunks) != n {
			t.Fatalf("trailer: %d chunks, %v", len(chunks), err)
		}
	}
}

// TestPutIndexSameDocument checks that the streamed index decrypts and
// decompresses to the JSON json.Marshal makes of the Index, padded like
// Seal's documents, and that Unseal reads it back.
func TestPutIndexSameDocument(t *testing.T) {
	ctx := context.Background()
	st, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	id := mustIdentity(t)
	var packs []IndexPack
	for p := range 50 {
		ip := IndexPack{SHA256: HashHex([]byte{byte(p)}), Size: int64(1000 + p)}
		for c := range 200 {
			var cid ChunkID
			binary.BigEndian.PutUint32(cid[:], uint32(p<<16|c))
			ip.Chunks = append(ip.Chunks, IndexChunk{ID: cid, Offset: int64(c * 10), Length: 10, Raw: 20, Zstd: c%3 == 0})
		}
		packs = append(packs, ip)
	}
	packs[1].ModTime = time.Date(2026, 11, 30, 17, 0, 0, 5, time.UTC) // as a repair's index has
	packs[2].Chunks = nil
	for _, tc := range [][]IndexPack{packs, packs[:1]} {
		ref, err := PutIndex(ctx, st, tc, id.Recipient())
		if err != nil {
			t.Fatal(err)
		}
		rc, err := st.Open(ctx, ref.Name, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		ct, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || HashHex(ct) != ref.SHA256 || int64(len(ct)) != ref.Size {
			t.Fatalf("stored object does not match its ref %+v: %v", ref, err)
		}
		z, err := Decrypt(ct, id)
		if err != nil {
			t.Fatal(err)
		}
		if len(z) != int(padme(int64(len(z)))) || len(z) < minPadded {
			t.Fatalf("sealed length %d is not a padded length", len(z))
		}
		j, err := zdec.DecodeAll(z, nil)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(Index{Version: Version, Packs: tc})
		if !bytes.Equal(j, want) {
			t.Fatalf("index JSON differs from json.Marshal's:\n%.200s\n%.200s", j, want)
		}
		var ix Index
		if err := Unseal(ct, &ix, id); err != nil || len(ix.Packs) != len(tc) {
			t.Fatalf("Unseal: %d packs, %v", len(ix.Packs), err)
		}
	}
}
