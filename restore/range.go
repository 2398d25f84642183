package restore

import (
	"context"
	"fmt"
	"io"
	"sort"

	"github.com/cofferhq/coffer/internal/repo"
	"github.com/cofferhq/coffer/source"
)

var _ source.RangeReader = (*Source)(nil)

// OpenRanges implements source.RangeReader. It reads the chunks that hold
// the ranges, each verified against its keyed id as Open does, fetching
// one chunk ahead, and returns only the bytes of the ranges. The file's
// whole-file hash is not checked.
func (s *Source) OpenRanges(ctx context.Context, path string, ranges []source.Range) (io.ReadCloser, error) {
	e, err := s.file(ctx, path)
	if err != nil {
		return nil, err
	}
	// starts[i] is where chunk i begins in the file.
	starts := make([]int64, len(e.Chunks)+1)
	for i, c := range e.Chunks {
		starts[i+1] = starts[i] + c.Raw
	}
	if starts[len(e.Chunks)] != e.Size {
		return nil, &repo.IntegrityError{Object: "catalog", Err: fmt.Errorf("%q: chunks hold %d bytes, catalog says %d", e.Path, starts[len(e.Chunks)], e.Size)}
	}
	// The chunks to read, in order, make a stream of their own; segs are
	// the parts of that stream to return.
	var (
		picked []repo.ChunkRef
		segs   []source.Range
		next   int64 // end of the picked chunks in that stream
		last   = -1  // index in e.Chunks of the last chunk picked
		lastAt int64 // where it starts in the stream
		cursor int64 // end of the last segment
	)
	for _, r := range ranges {
		if r.Offset < 0 || r.Length < 0 || r.Offset > e.Size-r.Length {
			return nil, fmt.Errorf("%q: range of %d bytes at %d is outside its %d bytes", e.Path, r.Length, r.Offset, e.Size)
		}
		for off, n := r.Offset, r.Length; n > 0; {
			i := sort.Search(len(e.Chunks), func(i int) bool { return starts[i+1] > off })
			at := lastAt + off - starts[i]
			if i != last || at < cursor {
				picked = append(picked, e.Chunks[i])
				last, lastAt = i, next
				at = next + off - starts[i]
				next += e.Chunks[i].Raw
			}
			take := min(n, starts[i+1]-off)
			if k := len(segs) - 1; k >= 0 && segs[k].Offset+segs[k].Length == at {
				segs[k].Length += take
			} else {
				segs = append(segs, source.Range{Offset: at, Length: take})
			}
			cursor = at + take
			off, n = off+take, n-take
		}
	}
	sub := *e
	sub.Chunks = picked
	fr, err := newFileReader(ctx, s.s, &sub, 1)
	if err != nil {
		return nil, err
	}
	fr.h = nil // the stream is not the file: its hash would mean nothing
	return &rangeReader{fr: fr, segs: segs, src: s}, nil
}

// rangeReader returns the segments of a fileReader's stream. It never
// reads that stream to its end, so the fileReader never checks the
// whole-file hash (of a stream that is not the file).
type rangeReader struct {
	fr   *fileReader
	segs []source.Range
	pos  int64 // position in fr's stream
	src  *Source
}

func (r *rangeReader) Read(p []byte) (int, error) {
	for len(r.segs) > 0 && r.segs[0].Length == 0 {
		r.segs = r.segs[1:]
	}
	if len(r.segs) == 0 {
		return 0, io.EOF
	}
	seg := &r.segs[0]
	if skip := seg.Offset - r.pos; skip > 0 {
		n, err := io.CopyN(io.Discard, r.fr, skip)
		r.pos += n
		if err != nil {
			return 0, unexpected(err)
		}
	}
	if int64(len(p)) > seg.Length {
		p = p[:seg.Length]
	}
	n, err := r.fr.Read(p)
	r.pos += int64(n)
	seg.Offset += int64(n)
	seg.Length -= int64(n)
	r.src.add(int64(n), 0)
	if err != nil && n == 0 {
		return 0, unexpected(err)
	}
	return n, nil
}

// unexpected turns the end of the chunk stream, which comes only after
// every segment was read, into an error.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func (r *rangeReader) Close() error { return r.fr.Close() }
