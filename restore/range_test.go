package restore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cofferhq/coffer/backup"
	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/internal/testing/testrepo"
	"github.com/cofferhq/coffer/source"
)

// bigFile is a source of one file of the given bytes.
type bigFile []byte

func (b bigFile) Name() string { return "docs" }
func (b bigFile) Kind() string { return "dir" }
func (b bigFile) Backup(ctx context.Context, w source.Writer) error {
	return w.WriteFile(ctx, source.Entry{Path: "f", Type: source.TypeFile, Mode: 0o600, ModTime: time.Unix(1e9, 0), Size: -1}, bytes.NewReader(b))
}

// TestOpenRanges reads ranges of a stored file of many chunks: within a
// chunk, across chunks, several in one chunk, backwards, empty, the whole
// file. Each gives exactly its bytes, a chunk that holds the end of a
// range and the start of the next is read once, and a range outside the
// file is an error.
func TestOpenRanges(t *testing.T) {
	ctx := context.Background()
	data := make([]byte, 12<<20)
	rand.New(rand.NewSource(1)).Read(data)
	s := snapshotOf(t, bigFile(data))
	e, _ := s.Entry("f")
	if len(e.Chunks) < 4 {
		t.Fatalf("file has %d chunks, want at least 4", len(e.Chunks))
	}
	c0, c1 := e.Chunks[0].Raw, e.Chunks[1].Raw
	for _, tc := range []struct {
		name   string
		ranges []source.Range
		chunks int // chunks read
	}{
		{"within the first chunk", []source.Range{{Offset: 10, Length: 100}}, 1},
		{"across three chunks", []source.Range{{Offset: c0 - 5, Length: c1 + 10}}, 3},
		{"three in one chunk", []source.Range{{Offset: 0, Length: 3}, {Offset: 10, Length: 5}, {Offset: 20, Length: 1}}, 1},
		{"adjacent, one chunk", []source.Range{{Offset: c0 + 1, Length: 3}, {Offset: c0 + 4, Length: 3}}, 1},
		{"next range starts in the chunk the last ended in", []source.Range{{Offset: c0 - 10, Length: 20}, {Offset: c0 + 100, Length: c1}}, 3},
		{"backwards", []source.Range{{Offset: c0 + 100, Length: 10}, {Offset: c0 + 10, Length: 10}}, 2},
		{"empty", []source.Range{{Offset: 5, Length: 0}}, 0},
		{"last byte", []source.Range{{Offset: int64(len(data)) - 1, Length: 1}}, 1},
		{"whole", []source.Range{{Offset: 0, Length: int64(len(data))}}, len(e.Chunks)},
	} {
		rc, err := s.OpenRanges(ctx, "f", tc.ranges)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got, err := io.ReadAll(rc)
		if n := len(rc.(*rangeReader).fr.e.Chunks); n != tc.chunks {
			t.Errorf("%s: %d chunks read, want %d", tc.name, n, tc.chunks)
		}
		rc.Close()
		var want []byte
		for _, r := range tc.ranges {
			want = append(want, data[r.Offset:r.Offset+r.Length]...)
		}
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes, %v; want %d bytes", tc.name, len(got), err, len(want))
		}
	}
	for _, r := range []source.Range{{Offset: -1, Length: 2}, {Offset: int64(len(data)) - 1, Length: 2}, {Offset: 0, Length: -1}} {
		if _, err := s.OpenRanges(ctx, "f", []source.Range{r}); err == nil {
			t.Errorf("range %+v of a %d-byte file: no error", r, len(data))
		}
	}
	if _, err := s.OpenRanges(ctx, "nope", nil); err == nil {
		t.Error("a range of a missing file: no error")
	}
}

// TestOpenRangesDamagedChunk damages the ciphertext of the chunk a range
// lies in: the read fails with an integrity error, and a range in
// another chunk still reads.
func TestOpenRangesDamagedChunk(t *testing.T) {
	ctx := context.Background()
	data := make([]byte, 8<<20)
	rand.New(rand.NewSource(2)).Read(data)
	tr := testrepo.New(t)
	res, err := backup.Run(ctx, backup.Options{Repo: tr.Host(t), Signing: tr.Signing, Sources: []source.Source{bigFile(data)}})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := Load(ctx, tr.Operator(t), res.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	s, err := snap.Source("docs")
	if err != nil {
		t.Fatal(err)
	}
	e, _ := s.Entry("f")
	c := e.Chunks[2]
	path := filepath.Join(tr.Dir, "repo", filepath.FromSlash(repo.PackName(c.Pack)))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	mac := bytes.Index(b, []byte("\n--- "))
	payload := int64(mac + 1 + bytes.IndexByte(b[mac+1:], '\n') + 1 + 16)
	off := c.Offset + c.Length/2
	b[payload+off/65536*(65536+16)+off%65536] ^= 1
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	start := e.Chunks[0].Raw + e.Chunks[1].Raw
	rc, err := s.OpenRanges(ctx, "f", []source.Range{{Offset: start + 10, Length: 10}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(rc)
	rc.Close()
	var ie *repo.IntegrityError
	if !errors.As(err, &ie) {
		t.Errorf("read of a range in a damaged chunk: %v, want an integrity error", err)
	}
	rc, err = s.OpenRanges(ctx, "f", []source.Range{{Offset: 10, Length: 10}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data[10:20]) {
		t.Errorf("range in a good chunk: %q, %v", got, err)
	}
}
