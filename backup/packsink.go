package backup

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"filippo.io/age"

	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/storage"
)

// A packSink holds one pack's ciphertext from its first chunk until the
// pack is stored. The pack is named by the SHA-256 of its ciphertext, known
// only at its end, so it cannot stream into the store; held in memory, the
// packs being filled and uploaded were most of a backup's memory (design.md
// section 14.1). The sink is an unlinked temporary file instead: it only
// ever holds ciphertext, the bytes the repository will hold, and nothing is
// left behind by a crash. Where no temporary file can be made the
// ciphertext stays in memory.
type packSink struct {
	f   *os.File // unlinked; nil when in memory
	bw  *bufio.Writer
	mem *bytes.Buffer // when f is nil
	n   int64
}

// newPackSink makes a sink; size is the pack's expected ciphertext size,
// to allocate a memory sink once.
func newPackSink(size int) *packSink {
	if f, err := os.CreateTemp("", "coffer-pack-*"); err == nil {
		os.Remove(f.Name())
		return &packSink{f: f, bw: bufio.NewWriterSize(f, 256<<10)}
	}
	s := &packSink{mem: &bytes.Buffer{}}
	s.mem.Grow(size)
	return s
}

func (s *packSink) Write(p []byte) (int, error) {
	var n int
	var err error
	if s.f != nil {
		n, err = s.bw.Write(p)
	} else {
		n, err = s.mem.Write(p)
	}
	s.n += int64(n)
	if err != nil {
		return n, tempFileError("temporary pack file", err)
	}
	return n, nil
}

// tempFileError reports a temporary file's failure (a full TMPDIR) as
// one: without its *fs.PathError, which a source takes for a failure of
// the file it was reading (source/dir), and naming the folder.
func tempFileError(what string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("write %s in %s (TMPDIR): %w", what, os.TempDir(), err)
}

// reader returns the ciphertext written so far, seekable so that a store
// can rewind it to retry an upload.
func (s *packSink) reader() (io.ReadSeeker, error) {
	if s.f == nil {
		return bytes.NewReader(s.mem.Bytes()), nil
	}
	if err := s.bw.Flush(); err != nil {
		return nil, tempFileError("temporary pack file", err)
	}
	return io.NewSectionReader(s.f, 0, s.n), nil
}

// close releases the sink.
func (s *packSink) close() {
	if s == nil {
		return
	}
	if s.f != nil {
		s.f.Close()
	}
	s.mem = nil
}

// newIndex is the index of the packs a backup stores, sealed as each pack
// is stored (repo.IndexWriter) into a packSink: the chunk lists of the
// packs are not kept until the end.
type newIndex struct {
	sink *packSink
	w    *repo.IndexWriter
}

func startIndex(recipients []age.Recipient) (*newIndex, error) {
	s := newPackSink(0)
	w, err := repo.NewIndexWriter(s, recipients...)
	if err != nil {
		s.close()
		return nil, fmt.Errorf("index: %w", err)
	}
	return &newIndex{sink: s, w: w}, nil
}

func (x *newIndex) add(ip *repo.IndexPack) error {
	if err := x.w.Add(ip); err != nil {
		return fmt.Errorf("index: %w", err)
	}
	return nil
}

// store ends the index and stores it; it returns nil when no pack was
// stored.
func (x *newIndex) store(ctx context.Context, st storage.Store) (*repo.ObjectRef, error) {
	if x.w.Len() == 0 {
		return nil, nil
	}
	if err := x.w.Close(); err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	r, err := x.sink.reader()
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	ref := repo.ObjectRef{Name: repo.IndexPrefix + sum, Size: x.sink.n, SHA256: sum}
	if err := repo.PutObjectFrom(ctx, st, ref.Name, r, ref.Size, sum); err != nil {
		return nil, err
	}
	return &ref, nil
}

func (x *newIndex) close() {
	if x != nil {
		x.sink.close()
	}
}
