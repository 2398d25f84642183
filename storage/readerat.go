package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// NewReaderAt returns an io.ReaderAt over the object name of the given size,
// each ReadAt a ranged Open. It is safe for concurrent use.
func NewReaderAt(ctx context.Context, s Store, name string, size int64) io.ReaderAt {
	return &readerAt{ctx: ctx, s: s, name: name, size: size}
}

type readerAt struct {
	ctx  context.Context
	s    Store
	name string
	size int64
}

func (r *readerAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read %s: negative offset %d", r.name, off)
	}
	if off >= r.size {
		return 0, io.EOF
	}
	want := int64(len(p))
	if want == 0 {
		return 0, nil
	}
	if rest := r.size - off; want > rest {
		want = rest
	}
	rc, err := r.s.Open(r.ctx, r.name, off, want)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	n, err := io.ReadFull(rc, p[:want])
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return n, fmt.Errorf("read %s: object shorter than %d bytes: %w", r.name, r.size, io.ErrUnexpectedEOF)
	case err != nil:
		return n, fmt.Errorf("read %s: %w", r.name, err)
	case int64(len(p)) > want:
		return n, io.EOF
	}
	return n, nil
}
